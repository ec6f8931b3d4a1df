-- boot: run by the host at install time with the private raw table.
-- It builds the public API, takes the host's own arguments (script=,
-- on_error=, outfile=, stats=, e=, symbols=), sets the module path and
-- loads the script. It returns true,
-- or nil and one message for the user's mistakes; the host then makes
-- QEMU refuse the plugin.
local raw = ...

-- e=: Lua source given in the plugin argument itself (one-liners).
local HOST_ARGS = { script = true, on_error = true, outfile = true, stats = true, e = true,
    symbols = true }
-- Host arguments that may be given several times, as lists.
local HOST_LISTS = { symbols = true }

local compat = raw.load_embedded("compat")(raw)
local args = raw.load_embedded("args")(compat)
local luahost = raw.load_embedded("luahost")(raw, args, compat)

local function dirname(path)
    return path:match("^(.*)/[^/]*$") or "."
end

local function is_file(path)
    local f = io.open(path, "r")
    if f then
        f:close()
        return true
    end
    return false
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
    if name:find("/", 1, true) or is_file(name) then
        return name
    end
    for _, dir in ipairs({ dirs.scripts, dirs.examples }) do
        local shipped = dir .. "/" .. name
        if is_file(shipped) then
            return shipped
        end
    end
    return name
end

-- Explicit search paths, no relative entries (a script must not pick up
-- a stray module from wherever QEMU was started).
local function set_module_path(script_dir, dirs)
    local function absolute_only(path)
        local kept = {}
        for entry in path:gmatch("[^;]+") do
            if entry:sub(1, 1) == "/" then
                kept[#kept + 1] = entry
            end
        end
        return table.concat(kept, ";")
    end
    package.path = table.concat({
        script_dir .. "/?.lua",
        dirs.stdlib .. "/?.lua",
        dirs.stdlib .. "/?/init.lua",
        dirs.scripts .. "/?.lua",
        absolute_only(package.path),
    }, ";")
    package.cpath = table.concat({ script_dir .. "/?.so", absolute_only(package.cpath) }, ";")
end

local function split_host_args(argv)
    local host, rest = {}, {}
    for _, arg in ipairs(argv) do
        local key, value = arg:match("^([^=]*)=(.*)$")
        if key and HOST_LISTS[key] then
            host[key] = host[key] or {}
            table.insert(host[key], value)
        elseif key and HOST_ARGS[key] then
            if host[key] then
                return nil, ("%s= given twice"):format(key)
            end
            host[key] = value
        else
            rest[#rest + 1] = arg
        end
    end
    return host, rest
end

-- The script's own traceback, without the frames of this file.
local function script_traceback(err)
    if args.is_usage_error(err) then
        return tostring(err)
    end
    local trace = debug.traceback(tostring(err), 2)
    local lines = {}
    for line in trace:gmatch("[^\n]+") do
        if line:find("lua/boot.lua", 1, true) or line:find("in function 'xpcall'", 1, true) then
            break
        end
        lines[#lines + 1] = line
    end
    return table.concat(lines, "\n")
end

local host, script_argv = split_host_args(raw.argv)
if not host then
    return nil, script_argv
end
if host.e and host.script then
    return nil, "script= and e= given: use one of them"
end
if not host.e and (not host.script or host.script == "") then
    return nil, "no script given: use -plugin libluahost.so,script=FILE.lua[,name=value...]"
end
if host.on_error then
    if host.on_error ~= "abort" and host.on_error ~= "disable" then
        return nil, ("on_error=%s: expected on_error=abort or on_error=disable"):format(host.on_error)
    end
    raw.set_error_policy(host.on_error)
end

if host.stats then
    if host.stats ~= "on" and host.stats ~= "off" then
        return nil, ("stats=%s: expected stats=on or stats=off"):format(host.stats)
    end
end

if host.outfile then
    local ok, err = luahost._set_outfile(host.outfile)
    if not ok then
        return nil, err
    end
end
luahost._set_outfile = nil

-- symbols=FILE[@BIAS]: an ELF file or a System.map whose addresses, plus
-- BIAS, name the guest's code (a kernel, a bare-metal program).
for _, spec in ipairs(host.symbols or {}) do
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

local dirs = data_dirs(raw.info)
local path, chunk, err
if host.e then
    -- e=CODE: the chunk is named "(e)" in messages; require looks in the
    -- current directory first, as for a script there.
    path = "./(e)"
    chunk, err = load(host.e, "=(e)")
    if not chunk then
        return nil, err
    end
else
    path = find_script(host.script, dirs)
    chunk, err = loadfile(path)
end
if not chunk then
    local f, open_err = io.open(path, "r")
    if not f then
        if host.script:find("/", 1, true) then
            return nil, "cannot open script " .. open_err
        end
        return nil, ("cannot open script %s (looked in the current directory, %s and %s)")
            :format(open_err, dirs.scripts, dirs.examples)
    end
    f:close()
    return nil, err
end
local script_dir = dirname(path)
if script_dir:sub(1, 1) ~= "/" then
    script_dir = raw.info.cwd .. "/" .. script_dir
end
set_module_path(script_dir, dirs)
luahost.argv = script_argv
package.loaded.luahost = luahost
_G.luahost = luahost

local ok, msg = xpcall(chunk, script_traceback)
if not ok then
    return nil, msg
end
if host.stats == "on" then     -- only for a plugin that installed
    raw.enable_stats()
end
return true
