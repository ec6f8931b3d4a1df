-- The limits a script runs under (issue 15): memlimit=, hook_timeout=,
-- and a signal during a call into Lua that does not end. Each stops Lua
-- with an ordinary error naming the hook, the script's line and a
-- traceback, and a defined exit status; none costs anything before it
-- fires. LuaJIT runs no hook in code it compiled: a compiled loop that
-- never ends is ended with the process, after a message.
local helper = require("helper")

local GUEST = helper.guest("loop", "x86_64")
local LUAJIT = os.getenv("LUAHOST_FLAVOUR") == "luajit"

local function escape(s)
    return (s:gsub("%p", "%%%0"))
end

-- Runs source with args (timeout -k 5 60: a hang fails with 124).
local function run(source, args, guest_args)
    local script = helper.lua_file(source)
    local status, _, stderr = helper.sh(("timeout -k 5 60 %s -plugin %s -d plugin %s %s"):format(
        helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(helper.luahost_plugin(script, args)),
        helper.quote(GUEST), table.concat(guest_args or { "10" }, " ")))
    return { status = status, stderr = stderr, name = script }
end

-- A loop LuaJIT does not compile (string.gsub is not compiled), so that
-- its hooks run there too.
local SLOW_LOOP = 'while true do ("x"):gsub("x", "y") end'

describe("hook_timeout=", function()
    after_each(helper.cleanup)

    it("interrupts a callback that runs longer, with its line and status 1", function()
        local r = run("luahost.on_exit(function()\n    " .. SLOW_LOOP .. "\nend)\n", { "hook_timeout=1" })
        assert.are.equal(1, r.status, r.stderr)
        assert.matches("luahost: error in exit hook: " .. escape(r.name) .. ":2: interrupted: ran longer than 1 s "
            .. "%(hook_timeout=1; 0 turns the limit off%)\nstack traceback:\n", r.stderr)
    end)

    it("interrupts the main chunk too: the plugin is refused", function()
        local r = run("local n = 0\n" .. SLOW_LOOP .. "\n", { "hook_timeout=1" })
        assert.are.equal(1, r.status, r.stderr)
        assert.matches(escape(r.name) .. ":2: interrupted: ran longer than 1 s", r.stderr)
        assert.matches("Could not load plugin", r.stderr)
    end)

    it("ends the process when LuaJIT compiled the loop, saying why", function()
        local r = run("luahost.on_exit(function()\n    local n = 0 while true do n = n + 1 end\nend)\n",
            { "hook_timeout=1" })
        if LUAJIT then
            assert.are.equal(1, r.status, r.stderr)
            assert.matches("luahost: a call into Lua has run for %d+ s in code LuaJIT compiled, which cannot be "
                .. "interrupted: ending the process %(the exit hooks cannot run%)", r.stderr)
        else
            assert.are.equal(1, r.status, r.stderr)
            assert.matches(escape(r.name) .. ":2: interrupted: ran longer than 1 s", r.stderr)
        end
    end)

    it("refuses a value that is not seconds", function()
        for _, bad in ipairs({ "-1", "1.5", "x", "86401", "" }) do
            local r = run("", { "hook_timeout=" .. bad })
            assert.are.equal(1, r.status, r.stderr)
            assert.matches("hook_timeout=" .. escape(bad) .. ": expected seconds, 1 to 86400, or 0 or off", r.stderr)
        end
    end)
end)

describe("memlimit=", function()
    after_each(helper.cleanup)

    it("stops a script whose Lua grows past it, with its line (or Lua's out of memory)", function()
        local r = run([[
luahost.on_exit(function()
    local t = {}
    for i = 1, 1e9 do t[i] = ("x"):rep(100) .. i end
end)
]], { "memlimit=64M", "hook_timeout=0" })
        assert.are.equal(1, r.status, r.stderr)
        local located = r.stderr:match(escape(r.name) .. ":3: memory limit reached: the script's Lua holds %d+ MiB "
            .. "%(memlimit=64M%)")
        local refused = r.stderr:match("error in exit hook: not enough memory %(memlimit=64M: Lua holds %d+ MiB and "
            .. "asked for %d+ KiB more%)")
        assert.is_truthy(located or (LUAJIT and refused), r.stderr)
    end)

    it("refuses one allocation bigger than it, naming the hook", function()
        local r = run("luahost.on_exit(function()\n    local s = ('x'):rep(2^28)\nend)\n", { "memlimit=64M" })
        assert.are.equal(1, r.status, r.stderr)
        assert.matches("luahost: error in exit hook: not enough memory %(memlimit=64M: Lua holds %d+ MiB and asked "
            .. "for 262144 KiB more%)", r.stderr)
    end)

    it("is off with memlimit=off, and takes K, M and G", function()
        local r = run("luahost.on_exit(function() local s = ('x'):rep(2^27) luahost.outs(#s .. '\\n') end)",
            { "memlimit=off" })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("134217728\n", r.stderr)
        for _, ok in ipairs({ "16777216", "16384K", "16M", "1G" }) do
            assert.are.equal(0, run("", { "memlimit=" .. ok }).status, ok)
        end
    end)

    it("refuses a size it cannot read, or too small for the host", function()
        for _, bad in ipairs({ "-1", "1.5G", "12T", "x", "", "1M" }) do
            local r = run("", { "memlimit=" .. bad })
            assert.are.equal(1, r.status, r.stderr)
            assert.matches("memlimit=" .. escape(bad) .. ": ", r.stderr)
        end
    end)
end)

describe("a signal during a call into Lua that does not end", function()
    after_each(helper.cleanup)

    -- Starts QEMU on the waiting guest with source, sends sig once the
    -- guest runs (or after a second), returns status and stderr.
    local function signalled(source, sig)
        local script = helper.lua_file(source)
        local out = helper.tmpname()
        local status, _, stderr = helper.sh(([[
env --default-signal=INT,TERM,HUP timeout -k 5 60 %s -plugin %s -d plugin %s wait >%s &
pid=$!
for i in $(seq 20); do grep -q ready %s && break; sleep 0.05; done
sleep 0.3
kill -%s $pid
wait $pid
]]):format(helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(helper.luahost_plugin(script)),
            helper.quote(helper.guest("ends", "x86_64")), out, out, sig))
        return status, stderr, script
    end

    for _, sig in ipairs({ "INT", "TERM" }) do
        it(("is interrupted by SIG%s; the run then ends as the signal says, with the report"):format(sig), function()
            local status, stderr, script = signalled(([[
local n = 0
luahost.on_syscall(function()
    n = n + 1
    if n == 3 then %s end
end)
luahost.on_exit(function() luahost.printf("report: %%d syscalls\n", n) end)
]]):format(SLOW_LOOP), sig)
            assert.are.equal(128 + (sig == "INT" and 2 or 15), status, stderr)
            assert.matches("luahost: error in syscall hook: " .. escape(script) .. ":4: interrupted! %(a signal ends "
                .. "the run: the exit hooks still run%)", stderr)
            assert.matches("\nreport: 3 syscalls\n", stderr)
        end)
    end

    it("leaves the exit hooks the signal leads to alone, however long they take", function()
        local status, stderr = signalled([[
luahost.on_exit(function()
    local t0 = os.clock()
    while os.clock() - t0 < 0.6 do end
    luahost.printf("report complete\n")
end)
]], "INT")
        assert.are.equal(130, status, stderr)
        assert.matches("report complete\n", stderr)
        assert.is_nil(stderr:find("interrupted", 1, true), stderr)
    end)
end)
