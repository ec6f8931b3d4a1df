-- boot: run by the host at install time with the private raw table.
-- It takes the host's own arguments (script=, e=, outfile=, on_error=,
-- stats=, follow=, symbols=) and loads each script given, with a public API, an
-- environment and a module path of its own (lua/sandbox.lua). It returns
-- true and the function that loads the scripts of a later -plugin of
-- this same plugin, or nil and one message for the user's mistakes; the
-- host then makes QEMU refuse the plugin.
--
-- Several scripts share a run: script= (or e=) starts a script, and the
-- arguments after it, outfile= included, are that script's. With one
-- script, its arguments may come anywhere. Host arguments of the run
-- (on_error=, stats=, follow=, symbols=) may come anywhere, once each.
local raw = ...

-- Host arguments of the whole run, given at most once; of HOST_LISTS,
-- as often as needed.
local HOST_RUN = { on_error = true, stats = true, follow = true, bytecode = true, memlimit = true,
    hook_timeout = true }
local HOST_LISTS = { symbols = true }

local compat = raw.load_embedded("compat")(raw)
local args = raw.load_embedded("args")(compat)
local sandbox = raw.load_embedded("sandbox")()

local function dirname(path)
    return path:match("^(.*)/[^/]*$") or "."
end

-- Whether path names something (stat, not open: opening a FIFO blocks).
local function exists(path)
    return raw.file_kind(path) ~= nil
end

-- Where the Lua files are: next to the sources for a plugin run from its
-- build tree, in the installed data directory otherwise.
local function data_dirs(info)
    local plugin = info.plugin_path or ""
    local root = info.datadir
    if plugin:sub(1, #info.build_root + 1) == info.build_root .. "/" then
        root = info.source_root
    end
    return { stdlib = root .. "/stdlib", scripts = root .. "/scripts", examples = root .. "/examples" }
end

-- A name with a slash is a path; a bare name is looked up in the current
-- directory, then among the shipped scripts, then the shipped examples.
local function find_script(name, dirs)
    if name:find("/", 1, true) or exists(name) then
        return name
    end
    for _, dir in ipairs({ dirs.scripts, dirs.examples }) do
        local shipped = dir .. "/" .. name
        if exists(shipped) then
            return shipped
        end
    end
    return name
end

-- A script's module path and cpath: explicit, no relative entries (a
-- script must not pick up a stray module from wherever QEMU was started).
local function module_paths(script_dir, dirs)
    local function absolute_only(path)
        local kept = {}
        for entry in path:gmatch("[^;]+") do
            if entry:sub(1, 1) == "/" then
                kept[#kept + 1] = entry
            end
        end
        return table.concat(kept, ";")
    end
    local path = table.concat({
        script_dir .. "/?.lua",
        dirs.stdlib .. "/?.lua",
        dirs.stdlib .. "/?/init.lua",
        dirs.scripts .. "/?.lua",
        absolute_only(package.path),
    }, ";")
    return path, table.concat({ script_dir .. "/?.so", absolute_only(package.cpath) }, ";")
end

-- How a script is named in messages.
local function script_name(spec)
    return spec.script and ("script=" .. spec.script) or "e="
end

-- The host arguments of the run so far (a later -plugin adds to them).
local run = { symbols = {} }

-- Splits one -plugin's arguments into the run's and each script's:
-- { script = NAME | e = CODE, argv = {...}, outfile = FILE }.
local function split_args(argv)
    local scripts, before, new_symbols = {}, {}, {}
    local current
    for _, arg in ipairs(argv) do
        local key, value = arg:match("^([^=]*)=(.*)$")
        if key == "script" or key == "e" then
            current = { [key] = value, argv = {} }
            scripts[#scripts + 1] = current
        elseif key == "outfile" then
            local owner = current or run
            if owner.outfile then
                return nil, current and ("outfile= given twice for " .. script_name(current))
                    or "outfile= given twice"
            end
            owner.outfile = value
        elseif key and HOST_LISTS[key] then
            table.insert(new_symbols, value)
        elseif key and HOST_RUN[key] then
            if run[key] then
                return nil, ("%s= given twice"):format(key)
            end
            run[key] = value
        elseif current then
            table.insert(current.argv, arg)
        else
            before[#before + 1] = arg
        end
    end
    if #scripts == 0 then
        return nil, "no script given: use -plugin libluahost.so,script=FILE.lua[,name=value...]"
    elseif #scripts == 1 then
        table.move(scripts[1].argv, 1, #scripts[1].argv, #before + 1, before)
        scripts[1].argv = before
    elseif #before > 0 then
        return nil, ("%s comes before the first script=: with several scripts, each script's "
            .. "arguments follow its script= (or e=)"):format(before[1])
    end
    return scripts, new_symbols
end

-- outfile=FILE: one writer per FILE, shared by the scripts that name it.
-- Opened now, so a bad path is refused at load time; flushed by the host
-- at exit (it always registers its exit work), before any stop and before
-- the guest forks. With %p (as Valgrind's --log-file) each process writes
-- a file of its own, named by its id (%% is a %); without, a forked child
-- writes to the same file. Truncated when the run starts, then written
-- in append mode (O_APPEND): a forked child, or the parent writing after
-- it, or the program a process exec'd under follow=on (same pid, so the
-- same %p file), adds to the file instead of writing over what is there.
local writers = {}

local function open_append(name, truncate)
    if truncate then
        local f, err = io.open(name, "w")
        if not f then
            return nil, err
        end
        f:close()
    end
    local f, err = io.open(name, "a")
    if f then
        f:setvbuf("full")
    end
    return f, err
end

local function outfile_name(pattern, pid)
    return (pattern:gsub("%%([%%p])", function(c) return c == "p" and tostring(pid) or "%" end))
end

local function outfile_writer(pattern)
    if writers[pattern] then
        return writers[pattern]
    end
    local pid = raw.getpid()
    local f, err = open_append(outfile_name(pattern, pid), not raw.execed_by())
    if not f then
        return nil, "cannot open outfile " .. err
    end
    local per_process = pattern:find("%%p") ~= nil
    -- A write that fails (a full disk, /dev/full) is an error where the
    -- script wrote (luahost.outs or printf, two levels up): a report must
    -- not vanish in silence.
    writers[pattern] = function(text)
        if per_process and raw.getpid() ~= pid then
            pid = raw.getpid()
            f = assert(open_append(outfile_name(pattern, pid), true))    -- the parent's stays open in it
        end
        local ok, write_err = f:write(text)
        if not ok then
            error(("cannot write outfile %s: %s"):format(outfile_name(pattern, pid), tostring(write_err)), 3)
        end
    end
    return writers[pattern]
end

-- What the main chunk's error becomes: the host's message handler (C:
-- whatever the script did to debug, tostring or the error value), then
-- the traceback cut where this file's frames begin. The string functions
-- are taken now: a script may change the shared string table.
local message_handler = raw.message_handler
local find, gmatch, concat = string.find, string.gmatch, table.concat

local function without_boot_frames(trace)
    local lines = {}
    for line in gmatch(trace, "[^\n]+") do
        if find(line, "lua/boot.lua", 1, true) or find(line, "in function 'xpcall'", 1, true) then
            break
        end
        lines[#lines + 1] = line
    end
    return concat(lines, "\n")
end

-- memlimit=SIZE (bytes, or with K, M, G; 0 or off: none) and
-- hook_timeout=SECONDS (0 or off: none); the defaults are the host's.
local SIZE_UNITS = { [""] = 1, K = 2 ^ 10, M = 2 ^ 20, G = 2 ^ 30 }

local function set_limits()
    local bytes, seconds = -1, -1       -- -1: the default
    if run.memlimit then
        local number, unit = run.memlimit:match("^(%d+)([KMG]?)$")
        if run.memlimit == "off" then
            bytes = 0
        elseif not number or #number > 13 then
            return nil, ("memlimit=%s: expected a size such as 512M or 2G (K, M, G: 2^10, 2^20, 2^30 bytes), "
                .. "or off"):format(run.memlimit)
        else
            bytes = math.floor(tonumber(number) * SIZE_UNITS[unit])
        end
        if bytes > 0 and bytes < 2 ^ 24 then
            return nil, ("memlimit=%s: at least 16M (the host and its modules need some)"):format(run.memlimit)
        end
    end
    if run.hook_timeout then
        local number = run.hook_timeout:match("^%d+$")
        if run.hook_timeout == "off" then
            seconds = 0
        elseif not number or tonumber(number) > 86400 then
            return nil, ("hook_timeout=%s: expected seconds, 1 to 86400, or 0 or off"):format(run.hook_timeout)
        else
            seconds = tonumber(number)
        end
    end
    raw.set_limits(bytes, seconds)
    return true
end

-- Checks the run's host arguments, once each however many -plugin give them.
local checked = {}

local function take_run_args(new_symbols)
    if run.on_error and not checked.on_error then
        if run.on_error ~= "abort" and run.on_error ~= "disable" then
            return nil, ("on_error=%s: expected on_error=abort or on_error=disable"):format(run.on_error)
        end
        raw.set_error_policy(run.on_error)
        checked.on_error = true
    end
    if run.stats and not checked.stats then
        if run.stats ~= "on" and run.stats ~= "off" then
            return nil, ("stats=%s: expected stats=on or stats=off"):format(run.stats)
        end
        checked.stats = true
    end
    if (run.memlimit or run.hook_timeout) and not checked.limits then
        local ok, err = set_limits()
        if not ok then
            return nil, err
        end
        checked.limits = true
    end
    if run.bytecode and not checked.bytecode then
        if run.bytecode ~= "on" and run.bytecode ~= "off" then
            return nil, ("bytecode=%s: expected bytecode=on or bytecode=off"):format(run.bytecode)
        end
        checked.bytecode = true
    end
    if run.follow and not checked.follow then
        if run.follow ~= "on" and run.follow ~= "off" then
            return nil, ("follow=%s: expected follow=on or follow=off"):format(run.follow)
        end
        local ok, err = raw.set_follow(run.follow == "on")
        if not ok then
            return nil, err
        end
        checked.follow = true
    end
    if run.outfile and not checked.outfile then
        local ok, err = outfile_writer(run.outfile)
        if not ok then
            return nil, err
        end
        checked.outfile = true
    end
    -- symbols=FILE[@BIAS]: an ELF file or a System.map whose addresses,
    -- plus BIAS, name the guest's code (a kernel, a bare-metal program).
    for _, spec in ipairs(new_symbols) do
        local file, bias_text = spec:match("^(.*)@([^@/]*)$")
        file = file or spec
        local bias = 0
        if bias_text then
            bias = args.parse_u64(bias_text)
            if not bias then
                return nil, ("symbols=%s: the bias after @ must be a number (0x hex, decimal)"):format(spec)
            end
        end
        local ok, err = raw.add_symbols(file, bias)
        if not ok then
            return nil, ("symbols=%s: %s"):format(spec, err)
        end
    end
    return true
end

-- How scripts and the modules they require are loaded: "t" (text), or
-- "bt" with bytecode=on.
local function load_mode()
    return run.bytecode == "on" and "bt" or "t"
end

-- Where a script's source is, and its chunk loaded in env; or nil and why.
local function script_path(spec, dirs)
    if spec.e then
        -- e=CODE: named "(e)" in messages; require looks in the current
        -- directory first, as for a script there.
        return "./(e)"
    elseif spec.script == "" then
        return nil, "no script given: use -plugin libluahost.so,script=FILE.lua[,name=value...]"
    end
    return find_script(spec.script, dirs)
end

local function load_chunk(spec, path, env, dirs)
    if spec.e then
        return load(spec.e, "=(e)", "t", env)
    end
    local kind = raw.file_kind(path)
    if kind and kind ~= "file" then
        return nil, ("cannot open script %s: a %s, not a file"):format(path, kind)
    end
    -- Text only, unless bytecode=on: Lua does not verify bytecode, and a
    -- malformed chunk can crash the host.
    local chunk, err = loadfile(path, load_mode(), env)
    if chunk then
        return chunk
    elseif err:find("attempt to load a binary chunk", 1, true)         -- Lua 5.4
            or err:find("attempt to load chunk with wrong mode", 1, true) then  -- LuaJIT
        return nil, ("%s is precompiled Lua, which Lua does not check: a bad chunk can crash QEMU. "
            .. "Load it with bytecode=on, or give the source"):format(path)
    end
    local f, open_err = io.open(path, "r")
    if not f then
        if spec.script:find("/", 1, true) then
            return nil, "cannot open script " .. open_err
        end
        return nil, ("cannot open script %s (looked in the current directory, %s and %s)")
            :format(open_err, dirs.scripts, dirs.examples)
    end
    f:close()
    return nil, err
end

-- Loads and runs one script, with its own luahost, globals and modules.
local function start_script(spec, dirs)
    local luahost = raw.load_embedded("luahost")(raw, args, compat)
    local outfile = spec.outfile or run.outfile
    if outfile then
        local write, err = outfile_writer(outfile)
        if not write then
            return nil, err
        end
        luahost._set_writer(write)
    end
    luahost._set_writer = nil
    luahost.outfile = outfile       -- its name, for ports whose own argument it is (bbv.lua)
    luahost.argv = spec.argv
    -- When other processes' reports may go to the same place (a fork,
    -- follow=on), each report starts by naming its process; not in a
    -- file of its own (outfile=NAME.%p), unless an exec'd program under
    -- follow=on, with the same pid, adds to it.
    local own_file = outfile and outfile:find("%%p") and run.follow ~= "on"
    luahost.on_exit(function()
        local note = not own_file and raw.process_note()
        if note then
            luahost.outs(("== luahost: %s ==\n"):format(note))
        end
    end)
    local path, err = script_path(spec, dirs)
    if not path then
        return nil, err
    end
    local script_dir = dirname(path)
    if script_dir:sub(1, 1) ~= "/" then
        script_dir = raw.info.cwd .. "/" .. script_dir
    end
    local path_, cpath_ = module_paths(script_dir, dirs)
    local env = sandbox.new(luahost, path_, cpath_, load_mode())
    local chunk
    chunk, err = load_chunk(spec, path, env, dirs)
    if not chunk then
        return nil, err
    end
    local ok, msg = xpcall(chunk, message_handler)
    if not ok then
        return nil, without_boot_frames(tostring(msg))
    end
    return true
end

raw.scripts_in_run = 0

-- Loads the scripts one -plugin names; returns true, or nil and why.
local function start(argv)
    local scripts, new_symbols = split_args(argv)
    if not scripts then
        return nil, new_symbols
    end
    local ok, err = take_run_args(new_symbols)
    if not ok then
        return nil, err
    end
    raw.scripts_in_run = raw.scripts_in_run + #scripts
    local dirs = data_dirs(raw.info)
    for _, spec in ipairs(scripts) do
        ok, err = start_script(spec, dirs)
        if not ok then
            return nil, err
        end
    end
    if run.stats == "on" then     -- only for a plugin that installed
        raw.enable_stats()
    end
    return true
end

local ok, err = start(raw.argv)
if not ok then
    return nil, err
end
return true, start
