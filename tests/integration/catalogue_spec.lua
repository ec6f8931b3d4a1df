-- The catalogue of bad inputs (tests/catalogue/, issue 15): every case is
-- one QEMU run of a script that does something wrong, or of a guest that
-- ends badly, and one `it` here, named "category: case". Each asserts what
-- the case expects (exit status, message fragments with file:line) and,
-- for all of them, what no bad input may cause: a death of QEMU by a
-- signal (unless the guest kills itself), a hang (each run is killed
-- after 60 s), "error in error handling", an internal error of QEMU.
--
-- A case (a table) holds:
--   name        what it does, unique in its category
--   source      the script's Lua source, written to a temporary .lua file;
--   script      or a shipped script, relative to the source root
--               ("scripts/cache.lua"); or neither when `plugin` names them
--   args        plugin arguments after script=SCRIPT
--   plugin      the whole list instead of script=SCRIPT and args
--   plugins     several -plugin options: a list of such lists
--   arch        "x86_64" (default) or "aarch64"
--   guest       tests/guests' program (default "loop"), or "modules/NAME"
--               for a dynamically linked one (helper.modules_guest)
--   guest_args  its arguments (default { "10" })
--   send        { SIGNAL, SECONDS }: send QEMU SIGNAL after SECONDS
--   status      the expected exit status (default 1)
--   signal      instead, the signal QEMU must die of (status 128 + N)
--   stderr, log, stdout, outfile
--               fragments that must appear, in this order, in QEMU's
--               stderr, the -d plugin log, the guest's stdout, OUTFILE
--               (a temporary file); plain text, or { pattern = "..." }
--               for a Lua pattern
--   stderr_is, stdout_is
--               the whole of QEMU's stderr, of the guest's stdout
--   no_stderr, no_log
--               fragments that must not appear
--   once        stderr fragments that must appear exactly once
--   setup       function(ctx) run first: ctx.tmp is an empty directory,
--               ctx.script the script's path
--   lua54, luajit
--               fields that replace the case's own in that Lua build
--               (where the flavours' own messages differ)
--   flavours    the Lua builds the case runs in, when not both
--               ({ "lua5.4" }: the other one's behaviour is a known bug)
-- In every string, and in the source, SCRIPT stands for the script's path
-- as messages show it, TMP for ctx.tmp, OUTFILE for the temporary
-- outfile, ROOT for the source root, PLUGIN for libluahost.so's path,
-- GUEST for the guest's path and ARCH for the guest's architecture.
local helper = require("helper")

local CATEGORIES = { "hostargs", "portargs", "load", "hooks", "misuse", "errobjs", "guests", "exhaustion" }
local FLAVOUR = os.getenv("LUAHOST_FLAVOUR") or "lua5.4"
local FORBIDDEN = { "error in error handling", "QEMU internal", "Segmentation fault", "core dumped",
    "dumped core", "Assertion", "PANIC", "unprotected error" }
-- A guest that kills itself makes QEMU say so; nothing else may.
local FORBIDDEN_AT_SIGNAL = { "error in error handling", "QEMU internal", "dumped core", "Assertion", "PANIC",
    "unprotected error" }

local function flavoured(case)
    local own = case[FLAVOUR == "luajit" and "luajit" or "lua54"]
    if not own then
        return case
    end
    local c = {}
    for k, v in pairs(case) do
        c[k] = v
    end
    for k, v in pairs(own) do
        c[k] = v
    end
    return c
end

local function substitute(text, vars)
    return (text:gsub("%u+", function(word)
        return vars[word]
    end))
end

local function substitute_all(list, vars)
    local out = {}
    for i, text in ipairs(list or {}) do
        out[i] = substitute(text, vars)
    end
    return out
end

local function escape(s)
    return (s:gsub("%p", "%%%0"))
end

-- Where fragment is found in text from init on: its start and end, or nil.
local function find(text, fragment, vars, init)
    if type(fragment) == "table" then
        return text:find(substitute(fragment.pattern, setmetatable({}, { __index = function(_, word)
            return vars[word] and escape(vars[word])
        end })), init)
    end
    return text:find(substitute(fragment, vars), init, true)
end

local function show(r)
    return ("status %s\n--- stderr:\n%s--- log:\n%s--- stdout:\n%s--- outfile:\n%s"):format(
        r.status, r.stderr, r.log, r.stdout, r.outfile)
end

local function assert_in_order(r, where, fragments, vars)
    local at = 1
    for _, fragment in ipairs(fragments or {}) do
        local _, stop = find(r[where], fragment, vars, at)
        assert(stop, ("%s lacks (after what came before) %s\n%s"):format(where,
            type(fragment) == "table" and "pattern " .. substitute(fragment.pattern, vars)
                or substitute(fragment, vars), show(r)))
        at = stop + 1
    end
end

local function run_case(case)
    case = flavoured(case)
    local arch = case.arch or "x86_64"
    local ctx = { tmp = helper.tmpname() .. ".d" }
    assert(os.execute("mkdir " .. helper.quote(ctx.tmp)))
    local outfile = ctx.tmp .. "/outfile"
    if case.source then
        ctx.script = ctx.tmp .. "/script.lua"
    elseif case.script then
        ctx.script = helper.source_root .. "/" .. case.script
    end
    local guest_path, qemu_args = helper.guest(case.guest or "loop", arch), {}
    local dynamic = (case.guest or ""):match("^modules/(.*)")
    if dynamic then
        guest_path, qemu_args = helper.modules_guest(dynamic .. "-" .. arch), helper.dynamic_qemu_args[arch]
    end
    local vars = { SCRIPT = ctx.script, TMP = ctx.tmp, OUTFILE = outfile, ROOT = helper.source_root,
        PLUGIN = helper.plugin(), GUEST = guest_path, ARCH = arch }
    if case.source then
        helper.write(ctx.script, substitute(case.source, vars))
    end
    if case.setup then
        case.setup(ctx)
    end
    local plugins = case.plugins
    if not plugins then
        local list = case.plugin
        if not list then
            list = { "script=SCRIPT" }
            for _, a in ipairs(case.args or {}) do
                list[#list + 1] = a
            end
        end
        plugins = { list }
    end
    local log = ctx.tmp .. "/log"
    -- exec: no shell is left to report a death by a signal on stderr
    local cmd = { "exec timeout -k 5 60", helper.quote(helper.qemu_build() .. "/qemu-" .. arch) }
    if case.send then
        table.insert(cmd, 2, ("timeout --preserve-status -s %s %s"):format(case.send[1], case.send[2]))
    end
    for _, a in ipairs(qemu_args) do
        cmd[#cmd + 1] = helper.quote(a)
    end
    for _, list in ipairs(plugins) do
        local words = { helper.plugin() }
        for _, a in ipairs(list) do
            words[#words + 1] = substitute(a, vars)
        end
        cmd[#cmd + 1] = "-plugin " .. helper.quote(table.concat(words, ","))
    end
    cmd[#cmd + 1] = "-d plugin -D " .. helper.quote(log) .. " " .. helper.quote(guest_path)
    for _, a in ipairs(case.guest_args or { "10" }) do
        cmd[#cmd + 1] = helper.quote(substitute(a, vars))
    end
    local r = {}
    r.status, r.stdout, r.stderr = helper.sh(table.concat(cmd, " ") .. " </dev/null")
    r.log, r.outfile = helper.read(log) or "", helper.read(outfile) or ""
    os.execute("rm -rf " .. helper.quote(ctx.tmp))

    assert(r.status ~= 124 and r.status ~= 128 + 9, "QEMU hung: killed after 60 s\n" .. show(r))
    if case.signal then
        assert(r.status == 128 + case.signal, ("expected death by signal %d\n%s"):format(case.signal, show(r)))
    else
        assert(r.status < 128, "QEMU died of a signal\n" .. show(r))
        local status = case.status or 1
        assert(r.status == status, ("expected exit status %d\n%s"):format(status, show(r)))
    end
    for _, text in ipairs(case.signal and FORBIDDEN_AT_SIGNAL or FORBIDDEN) do
        for _, where in ipairs({ "stderr", "log", "outfile" }) do
            assert(not r[where]:find(text, 1, true), ("%s says %q\n%s"):format(where, text, show(r)))
        end
    end
    for _, where in ipairs({ "stderr", "log", "stdout", "outfile" }) do
        assert_in_order(r, where, case[where], vars)
    end
    for where, key in pairs({ stderr = "stderr_is", stdout = "stdout_is" }) do
        if case[key] then
            assert(r[where] == substitute(case[key], vars), ("%s is not exactly\n%s\n%s"):format(
                where, substitute(case[key], vars), show(r)))
        end
    end
    for where, key in pairs({ stderr = "no_stderr", log = "no_log" }) do
        for _, fragment in ipairs(case[key] or {}) do
            assert(not find(r[where], fragment, vars, 1), ("%s must not say %s\n%s"):format(
                where, substitute(fragment, vars), show(r)))
        end
    end
    for _, fragment in ipairs(substitute_all(case.once, vars)) do
        local n = select(2, r.stderr:gsub(escape(fragment), ""))
        assert(n == 1, ("stderr says %q %d times, not once\n%s"):format(fragment, n, show(r)))
    end
end

after_each(helper.cleanup)

for _, category in ipairs(CATEGORIES) do
    local names = {}
    for _, case in ipairs(require("catalogue." .. category)) do
        assert(not names[case.name], category .. ": two cases named " .. case.name)
        names[case.name] = true
        local runs = not case.flavours
        for _, f in ipairs(case.flavours or {}) do
            runs = runs or f == FLAVOUR
        end
        local test = runs and it or pending
        test(category .. ": " .. case.name, function()
            run_case(case)
        end)
    end
end
