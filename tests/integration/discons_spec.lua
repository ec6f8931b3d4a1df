-- scripts/discons.lua against QEMU's tests/tcg/plugins/libdiscons.so
-- (QEMU 10.2) in the same qemu-system-aarch64 run, on the traps guest
-- (supervisor calls, breakpoints, timer interrupts, a PSCI host call) and
-- on the sys guest (two vCPUs, PSCI host calls). QEMU 10.2 reports these
-- discontinuities right, so both plugins find no mismatch; with
-- trace-all=on both print every instruction executed, and a port that
-- kept its "just after a discontinuity" state wrong would print mismatch
-- reports the C plugin does not.
local helper = require("helper")

local SCRIPT = helper.script("discons.lua")
local C_PLUGIN = "tests/tcg/plugins/libdiscons.so"
local NOT_10_0 = "discons.c and discontinuity events are QEMU 10.2; this QEMU is 10.0"

local function qemu_10_2()
    return (os.getenv("QEMU_INCLUDE") or ""):find("qemu%-sid") ~= nil
end

-- Both plugins with the same arguments in one run of guest: the run,
-- and our outfile.
local function run(guest, args)
    local outfile = helper.tmpname()
    local c = helper.c_plugin(C_PLUGIN)
    local ours = { "outfile=" .. outfile }
    for _, a in ipairs(args) do
        c = c .. "," .. a
        ours[#ours + 1] = a
    end
    local r = helper.qemu_system({ c, helper.luahost_plugin(SCRIPT, ours) }, helper.system_guest(guest, "aarch64"))
    assert.are.equal(0, r.status, r.stderr)
    return r, helper.read(outfile) or ""
end

-- The "Exec insn" lines of each vCPU, in order.
local function per_vcpu(text)
    local lines = {}
    for line in text:gmatch("[^\n]+") do
        local vcpu = line:match("^Exec insn at %x+ on VCPU (%d+)$")
        assert.is_truthy(vcpu, "not an instruction line: " .. line)
        lines[vcpu] = lines[vcpu] or {}
        table.insert(lines[vcpu], line)
    end
    return lines
end

describe("discons.lua", function()
    after_each(helper.cleanup)

    it("traces what libdiscons.so traces, and finds no mismatch (traps guest)", function()
        if not qemu_10_2() then
            pending(NOT_10_0)
            return
        end
        local r, ours = run("traps", { "abort=off", "trace-all=on" })
        assert.are.equal("traps svc=5 brk=3 irq=4\n", r.stdout)
        assert.are.equal(r.log, ours)
        local n = select(2, ours:gsub("Exec insn at", ""))
        assert.is_true(n > 200, ours)
        assert.is_falsy(ours:find("mismatch"))
    end)

    it("traces what libdiscons.so traces on two vCPUs (sys guest)", function()
        if not qemu_10_2() then
            pending(NOT_10_0)
            return
        end
        local r, ours = run("sys", { "abort=off", "trace-all=on" })
        assert.matches("sys done", r.stdout)
        local theirs, mine = per_vcpu(r.log), per_vcpu(ours)
        assert.is_truthy(theirs["1"], "vCPU 1 ran")
        assert.are.same(theirs, mine)
    end)

    it("stays silent, as libdiscons.so, with the default abort=on", function()
        if not qemu_10_2() then
            pending(NOT_10_0)
            return
        end
        local r, ours = run("traps", {})
        assert.are.equal("traps svc=5 brk=3 irq=4\n", r.stdout)
        assert.are.equal("", r.log)
        assert.are.equal("", ours)
    end)

    -- QEMU gives no wrong PC to catch, so the report and abort=on are
    -- exercised with a copy of the script that records has_from wrongly
    -- (every instruction "goes on" to the next): the timer interrupt that
    -- comes at a block's end is then a mismatch.
    it("reports a mismatch in discons.c's words and ends QEMU with abort=on", function()
        if not qemu_10_2() then
            pending(NOT_10_0)
            return
        end
        local source, n = helper.read(SCRIPT):gsub("i < n and 1 or 0", "1")
        assert.are.equal(1, n)
        local broken = helper.lua_file(source)
        local r = helper.qemu_system({ helper.luahost_plugin(broken, {}) }, helper.system_guest("traps", "aarch64"))
        assert.are.equal(134, r.status)
        assert.matches("^Discon source PC mismatch on VCPU 0\nExpected:      %x+\nEncountered:   %x+\n"
            .. "Executed Last: %x+\nEvent type:    interrupt\n", r.stderr)
        assert.is_falsy(r.stdout:find("traps svc"))
        local outfile = helper.tmpname()
        r = helper.qemu_system({ helper.luahost_plugin(broken, { "abort=off", "outfile=" .. outfile }) },
            helper.system_guest("traps", "aarch64"))
        assert.are.equal(0, r.status)
        assert.matches("^Discon source PC mismatch on VCPU 0\n", helper.read(outfile))
    end)

    it("says it only works in system mode, as libdiscons.so, and loads", function()
        if not qemu_10_2() then
            pending(NOT_10_0)
            return
        end
        local outfile = helper.tmpname()
        local r = helper.qemu("x86_64", { helper.c_plugin(C_PLUGIN),
            helper.luahost_plugin(SCRIPT, { "outfile=" .. outfile }) }, helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal("Testing of the disontinuity plugin API is only possible in system emulation mode.", r.log)
        assert.are.equal(r.log, helper.read(outfile))
    end)

    -- One line naming the argument, and QEMU refuses the plugin.
    local function refused(args)
        local r = helper.qemu_system({ helper.luahost_plugin(SCRIPT, args) }, helper.system_guest("traps", "aarch64"))
        assert.are_not.equal(0, r.status)
        local lines = {}
        for line in r.stderr:gmatch("[^\n]+") do
            if line:find("discons%.lua") then
                lines[#lines + 1] = line
            end
        end
        assert.are.equal(1, #lines, r.stderr)
        return lines[1]
    end

    it("refuses bad arguments as discons.c does, in one line", function()
        assert.matches("boolean argument parsing failed: abort=maybe", refused({ "abort=maybe" }))
        assert.matches("boolean argument parsing failed: trace%-all=2", refused({ "trace-all=2" }))
        assert.matches("option parsing failed: trace=on", refused({ "trace=on" }))
        if not qemu_10_2() then
            assert.matches("discons%.lua needs QEMU 10%.2 or later %(discontinuity events%)", refused({}))
        end
    end)
end)
