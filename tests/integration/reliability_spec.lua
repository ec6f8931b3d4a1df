-- What a script does wrong, or does in an unusual order, ends in one
-- readable message and a defined exit status: never a crash of QEMU
-- (status 128 + N), an assertion inside it, "error in error handling" or
-- a run that takes minutes. Issue 15.
local helper = require("helper")

local GUEST = helper.guest("loop", "x86_64")
local API_GUEST = helper.guest("api", "x86_64")

local function escape(s)
    return (s:gsub("%p", "%%%0"))
end

-- Runs the script at path with args on guest (loop 10 by default); the
-- result has name, the path as messages show it. Killed after 120 s: a
-- run that would take minutes fails (status 124) instead of holding up
-- the suite.
local function run_script(script, args, guest, guest_args)
    local log = helper.tmpname()
    local cmd = { "timeout -k 10 120", helper.quote(helper.qemu_build() .. "/qemu-x86_64"),
        "-plugin", helper.quote(helper.luahost_plugin(script, args)), "-d plugin -D", helper.quote(log),
        helper.quote(guest or GUEST) }
    for _, a in ipairs(guest_args or { "10" }) do
        cmd[#cmd + 1] = helper.quote(a)
    end
    local status, stdout, stderr = helper.sh(table.concat(cmd, " "))
    return { status = status, stdout = stdout, stderr = stderr, log = helper.read(log) or "", name = script }
end

-- The same with the script's source.
local function run(source, args, guest, guest_args)
    return run_script(helper.lua_file(source), args, guest, guest_args)
end

-- QEMU exited with status (not by a signal: 128 + N), and nothing said
-- "error in error handling".
local function assert_status(status, r)
    assert.are.equal(status, r.status, r.stderr)
    assert.is_falsy(r.stderr:find("error in error handling", 1, true), r.stderr)
end

describe("an error value of any type", function()
    after_each(helper.cleanup)

    -- error(value) in an exit hook, after the script took away the
    -- globals a handler written in Lua would use.
    local cases = {
        { "nil", "%(error object is a nil value%)" },
        { "true", "%(error object is a boolean value%)" },
        { "42", "42" },
        { "{}", "%(error object is a table value%)" },
        { "setmetatable({}, { __tostring = function() return 'told' end })", "told" },
        { "setmetatable({}, { __tostring = function() error('inner') end })",
            "%(error object is a table value; its __tostring failed: FILE:5: inner%)" },
        { "setmetatable({}, { __tostring = function() return 7 end })",
            "%(error object is a table value; its __tostring returned a number%)" },
        { "io.stdout", "file %(0?x?%x+%)" },
        { "coroutine.create(print)", "%(error object is a thread value%)" },
        { "print", "%(error object is a function value%)" },
        { "kept_tb", "tb %(expired%)" },
    }
    for _, case in ipairs(cases) do
        it(("is reported with where it was raised and a traceback: error(%s)"):format(case[1]), function()
            local r = run(([[
local kept_tb
luahost.on_tb_translate(function(tb) kept_tb = tb end)
debug, tostring, getmetatable, string = nil, nil, nil, nil
luahost.on_exit(function()
    error(%s)
end)
]]):format(case[1]))
            assert_status(1, r)
            local message = case[2]:gsub("FILE", function() return escape(r.name) end)
            assert.matches("\nluahost: error in exit hook: " .. escape(r.name) .. ":5: " .. message
                .. "\nstack traceback:\n\t%[C%]: in function 'error'\n", "\n" .. r.stderr)
            assert.matches("stopping emulation %(on_error=abort%)", r.stderr)
        end)
    end

    it("a usage error is its message alone", function()
        local r = run("tostring = nil\nluahost.on_exit(function()\n    luahost.usage_error('bad input')\nend)\n")
        assert_status(1, r)
        assert.matches("^luahost: error in exit hook: " .. escape(r.name) .. ":3: bad input\nluahost: stopping",
            r.stderr)
    end)
end)

describe("a callback's identity and name", function()
    after_each(helper.cleanup)

    it("a C function is a callback of its own, named by the line that registered it", function()
        -- coroutine.wrap makes a C function: it used to share its identity
        -- with every other C function, error included
        local r = run([[
luahost.on_exit(coroutine.wrap(function() luahost.outs("exit hook ran\n") end))
luahost.on_vcpu_init(error)
]], { "on_error=disable" })
        assert_status(1, r)
        local what = "vcpu init hook %(a C function registered at " .. escape(r.name) .. ":2%)"
        assert.matches("^luahost: error in " .. what .. ": 0\n", r.stderr)
        assert.matches("\nluahost: this " .. what .. " is disabled %(on_error=disable%)", r.stderr)
        assert.matches("1 callback error%(s%) in this run", r.stderr)
        assert.matches("exit hook ran\n", r.log)
    end)

    it("a function registered as two kinds of hook is named by the one that failed", function()
        local r = run([[
local function hook(vcpu)
    if vcpu == nil then error("failed at exit") end
end
luahost.on_vcpu_init(hook)
luahost.on_exit(hook)
]])
        assert_status(1, r)
        assert.matches("^luahost: error in exit hook: " .. escape(r.name) .. ":2: failed at exit\n", r.stderr)
    end)
end)

describe("reset and uninstall", function()
    after_each(helper.cleanup)

    -- source runs in the third syscall hook, with n the syscall count
    local function on_third_syscall(source, args)
        return run(([[
local n = 0
luahost.on_syscall(function()
    n = n + 1
    if n == 3 then
%s
    end
end)
]]):format(source), args, API_GUEST, {})
    end

    local function assert_refused(r, line, message)
        assert_status(1, r)
        assert.matches("luahost: error in [^\n]*: " .. escape(r.name) .. ":" .. line .. ": " .. message, r.stderr)
    end

    it("nothing is registered after uninstall in the hook that asked", function()
        local r = on_third_syscall("luahost.uninstall()\nluahost.on_flush(print)")
        assert_refused(r, 6,
            "no flush hook can be registered after luahost%.uninstall %(the plugin is being unloaded%)")
    end)

    it("nothing is registered in the uninstall's completion", function()
        local r = on_third_syscall("luahost.uninstall(function()\nluahost.on_flush(print)\nend)")
        assert_refused(r, 6, "no flush hook can be registered after luahost%.uninstall")
        assert.matches("error in uninstall completion callback", r.stderr)
        r = on_third_syscall("luahost.uninstall(function()\nluahost.stream { on_batch = print }\nend)")
        assert_refused(r, 6, "no stream batch callback can be registered after luahost%.uninstall")
    end)

    it("no exec callback is registered after uninstall in the translation hook that asked", function()
        local r = run("luahost.on_tb_translate(function(tb)\n    luahost.uninstall()\n    tb:on_exec(print)\nend)\n")
        assert_refused(r, 3, "no tb exec callback can be registered after luahost%.uninstall")
    end)

    it("uninstall is refused while a reset is pending", function()
        local r = on_third_syscall("luahost.reset()\nluahost.uninstall()")
        assert_refused(r, 6, "luahost%.uninstall: a reset is pending %(call it from the reset's completion function%)")
    end)

    it("uninstall in a reset's completion unloads the plugin", function()
        local r = on_third_syscall([[
luahost.reset(function()
    luahost.uninstall(function() luahost.outs("uninstalled\n") end)
end)]])
        assert_status(0, r)
        assert.matches("uninstalled\n", r.log)
    end)

    it("a reset in a reset's completion is refused as pending", function()
        local r = on_third_syscall("luahost.reset(function()\nluahost.reset()\nend)")
        assert_refused(r, 6, "luahost%.reset: a reset is already pending")
    end)

    it("hooks registered after asking for a reset are kept after it", function()
        local r = on_third_syscall([[
luahost.reset(function() luahost.outs("reset done\n") end)
luahost.on_exit(function() luahost.outs("registered before the reset completed\n") end)]])
        assert_status(0, r)
        assert.are.equal("reset done\nregistered before the reset completed\n", r.log)
    end)

    it("an uninstall stops the interval hooks #threads", function()
        -- the interval thread woke up in an unloaded plugin
        local r = run([[
local ticks, translations = 0, 0
luahost.on_interval(0.01, function() ticks = ticks + 1 end)
luahost.on_tb_translate(function()
    translations = translations + 1
    if translations == 100 then
        luahost.uninstall(function() luahost.outs("uninstalled\n") end)
    end
end)
]], {}, GUEST, { "20000000" })
        assert_status(0, r)
        assert.matches("uninstalled\n", r.log)
        assert.matches("checksum=", r.stdout)
    end)

    it("a reset drops the interval hooks registered before it #threads", function()
        -- they kept ticking after the reset, and a script that registered
        -- its hooks again in the completion had each one twice
        local r = run([[
local old, new, reset_done, translations = 0, 0, false, 0
luahost.on_interval(0.01, function() if reset_done then old = old + 1 end end)
luahost.on_tb_translate(function()
    translations = translations + 1
    if translations == 100 then
        luahost.reset(function()
            reset_done = true
            luahost.on_interval(0.01, function() new = new + 1 end)
            luahost.on_exit(function() luahost.outs(("old=%d new>0=%s\n"):format(old, tostring(new > 0))) end)
        end)
    end
end)
]], {}, GUEST, { "20000000" })
        assert_status(0, r)
        assert.are.equal("old=0 new>0=true\n", r.log)
    end)

    it("neither is asked for from an interval hook #threads", function()
        for _, fn in ipairs({ "uninstall", "reset" }) do
            local r = run(("luahost.on_interval(0.01, function()\n    luahost.%s()\nend)\n"):format(fn),
                {}, GUEST, { "100000000" })
            assert_refused(r, 2, "luahost%." .. fn .. " cannot be called from an interval hook")
        end
    end)

    it("an uninstall from a system-mode exit hook completes at once, in it", function()
        -- no vCPU is current at exit: QEMU unloaded the plugin under the hook
        local r = helper.qemu_system({ helper.luahost_plugin(helper.lua_file([[
luahost.on_exit(function()
    luahost.uninstall(function() io.stderr:write("uninstalled\n") end)
    io.stderr:write("back in the exit hook\n")
end)
luahost.on_exit(function() io.stderr:write("second exit hook\n") end)
]])) }, helper.system_guest("sys", "aarch64"))
        assert_status(0, r)
        assert.are.equal("uninstalled\nback in the exit hook\n", r.stderr)
    end)
end)

describe("arguments that do not fit", function()
    after_each(helper.cleanup)

    local function refused(script, args)
        local r = run_script(script, args)
        assert_status(1, r)
        assert.matches("Could not load plugin", r.stderr)
        return r.stderr:match("^luahost: [^\n]*" .. escape(script) .. ":%d+: ([^\n]*)\n")
    end

    it("an integer beyond 64 bits", function()
        local range = os.getenv("LUAHOST_FLAVOUR") == "luajit" and "-2^53 to 2^53" or "-2^63 to 2^63 - 1"
        for _, limit in ipairs({ "99999999999999999999", "0x10000000000000000", "-99999999999999999999" }) do
            local message = refused("hotblocks.lua", { "limit=" .. limit })
            assert.are.equal(("integer argument out of range (%s): limit=%s"):format(range, limit), message)
        end
    end)

    it("a cache geometry too large to simulate, at once", function()
        -- 2^52 bytes (exact in both Lua builds) used to take minutes and all memory
        local message = refused("cache.lua", { "dcachesize=4503599627370496" })
        assert.are.equal("dcache cannot be constructed from given parameters: cache size / block size is "
            .. "70368744177664 blocks, more than the 16777216 (2^24) simulated "
            .. "(dcachesize=4503599627370496, dblksize=64, dassoc=8)", message)
        message = refused("cache.lua", { "l2cachesize=1073741824", "cores=2" })
        assert.are.equal("cores=2: 2 cores of these caches hold 33555456 blocks, more than the 33554432 (2^25) "
            .. "simulated", message)
    end)
end)

describe("a recursion through C functions", function()
    after_each(helper.cleanup)

    -- rec recurses through string.gsub, sorted through table.sort's
    -- comparator: each level a C function calling Lua again. Lua's own
    -- limit stops both with an error ("C stack overflow" in Lua 5.4,
    -- "stack overflow" in LuaJIT) before the host stack runs out.
    local RECURSIONS = [[
local function rec(s)
    return (s:gsub(".", rec))
end
local function sorted()
    table.sort({ 1, 2, 3 }, function(a, b)
        sorted()
        return a < b
    end)
end
local function stopped(fn)
    local ok, err = pcall(fn, "x")
    return not ok and tostring(err):match("stack overflow") ~= nil
end
]]

    it("is stopped by Lua in an exec callback on a guest thread", function()
        -- QEMU gives guest threads 256 KiB of host stack
        local r = run(RECURSIONS .. [[
local seen = {}
luahost.on_tb_translate(function(tb)
    tb:on_exec(function(vcpu)
        if vcpu > 0 and not seen[vcpu] then
            seen[vcpu] = true
            luahost.printf("vcpu %d: %s %s\n", vcpu, stopped(rec), stopped(sorted))
        end
    end)
end)
]], {}, helper.guest("threads", "x86_64"), { "2", "1000" })
        assert_status(0, r)
        -- a vCPU index may be reused by the next thread
        assert.matches("^vcpu %d: true true\n", r.log)
        assert.is_falsy(r.log:find("false", 1, true), r.log)
    end)

    it("is stopped by Lua in the main chunk and in an exit hook", function()
        -- LuaJIT's limit needs about 50 MiB of host stack, more than a main thread's
        local r = run(RECURSIONS .. [[
luahost.printf("main chunk: %s %s\n", stopped(rec), stopped(sorted))
luahost.on_exit(function()
    rec("x")
end)
]])
        assert_status(1, r)
        assert.matches("main chunk: true true\n", r.log)
        assert.matches("^luahost: error in exit hook: [^\n]*stack overflow", r.stderr)
    end)
end)

describe("an error in the main chunk", function()
    after_each(helper.cleanup)

    it("gets its place, a traceback and no frame of the loader, whatever the script took away", function()
        local r = run("debug.traceback = nil\ntostring = nil\nlocal function f() error(nil) end\nf()\n")
        assert_status(1, r)
        assert.matches("^luahost: " .. escape(r.name) .. ":3: %(error object is a nil value%)\nstack traceback:\n",
            r.stderr)
        assert.matches(escape(r.name) .. ":4: in main chunk\nqemu%-x86_64: Could not load plugin", r.stderr)
        assert.is_nil(r.stderr:find("boot.lua", 1, true), r.stderr)
    end)

    it("with a __tostring that fails", function()
        local r = run("local t = setmetatable({}, { __tostring = function() error('inner') end })\nerror(t)\n")
        assert_status(1, r)
        assert.matches("^luahost: " .. escape(r.name) .. ":2: %(error object is a table value; its __tostring "
            .. "failed: " .. escape(r.name) .. ":1: inner%)\n", r.stderr)
    end)
end)
