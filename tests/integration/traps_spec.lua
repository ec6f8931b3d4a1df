-- scripts/traps.lua against QEMU 10.2's libtraps.so in the same run, in
-- user mode (x86_64, aarch64) and in system mode (the two-vCPU guest of
-- system_spec.lua, whose host calls come from its definition, and
-- irqs.S, which counts its own exceptions and interrupts). QEMU 10.0
-- has neither libtraps.so nor discontinuity callbacks: there the script
-- must refuse to load, saying why.
local helper = require("helper")

local SCRIPT = helper.script("traps.lua")
local C_PLUGIN = "contrib/plugins/libtraps.so"

local function have_traps()
    return helper.read(helper.c_plugin(C_PLUGIN)) ~= nil
end

local NO_TRAPS = "QEMU 10.0 has no libtraps.so and no discontinuity callbacks (QEMU 10.2 only)"

-- traps.c prints its user-mode note without a newline, so the header
-- follows it on the same line; traps.lua ends the note's line.
local NOTE = "Note: interrupts are only reported in system emulation mode."

-- The per-vCPU rows of a report: { vcpu = { interrupts, exceptions, hostcalls } }.
local function rows(text)
    local out, n = {}, 0
    for vcpu, i, e, h in text:gmatch("\n *(%d+), +(%d+), +(%d+), +(%d+)") do
        out[tonumber(vcpu)] = { tonumber(i), tonumber(e), tonumber(h) }
        n = n + 1
    end
    return out, n
end

describe("traps.lua agrees with libtraps.so", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, case in ipairs({ { "loop", { "1000" } }, { "threads", { "4", "1000" } } }) do
            it(("in user mode on %s %s"):format(arch, case[1]), function()
                if not have_traps() then
                    pending(NO_TRAPS)
                    return
                end
                local r = helper.run_file(arch, SCRIPT, helper.guest(case[1], arch),
                    { plugins = { helper.c_plugin(C_PLUGIN) }, guest_args = case[2] })
                assert.is_truthy(r.log:find(NOTE .. "VCPU, interrupts", 1, true), r.log)
                assert.are.equal(r.log:gsub(NOTE, NOTE .. "\n", 1), r.report)
                local _, n = rows(r.report)
                assert.is_true(n >= 1)
            end)
        end
    end

    it("in system mode on two vCPUs, with the guest's host calls", function()
        if not have_traps() then
            pending(NO_TRAPS)
            return
        end
        local outfile = helper.tmpname()
        local r = helper.qemu_system({ helper.c_plugin(C_PLUGIN),
            helper.luahost_plugin(SCRIPT, { "outfile=" .. outfile }) }, helper.system_guest("sys", "aarch64"))
        assert.are.equal(0, r.status, r.stderr)
        local report = helper.read(outfile) or ""
        assert.are.equal(r.log, report)
        assert.is_falsy(report:find("Note:", 1, true))
        -- sys.S: vCPU 0 makes two PSCI calls through HVC (CPU_ON,
        -- SYSTEM_OFF), vCPU 1 none, and nothing else traps
        local per_vcpu, n = rows(report)
        assert.are.equal(2, n)
        assert.are.same({ 0, 0, 2 }, per_vcpu[0])
        assert.are.same({ 0, 0, 0 }, per_vcpu[1])
    end)

    -- irqs.S: vCPU 0 takes svc exceptions and timer interrupts, which it
    -- counts itself and prints, and one host call (PSCI SYSTEM_OFF)
    it("in system mode, with the guest's own count of its exceptions and interrupts", function()
        if not have_traps() then
            pending(NO_TRAPS)
            return
        end
        local outfile = helper.tmpname()
        local r = helper.qemu_system({ helper.c_plugin(C_PLUGIN),
            helper.luahost_plugin(SCRIPT, { "outfile=" .. outfile }) }, helper.system_guest("irqs", "aarch64"))
        assert.are.equal(0, r.status, r.stderr)
        assert.is_truthy(r.stdout:find("traps done\n", 1, true), r.stdout)
        local svcs, irqs = tonumber(r.stdout:match("svcs=(%d+)\n")), tonumber(r.stdout:match("irqs=(%d+)\n"))
        assert.are.same({ 5, 3 }, { svcs, irqs }, "the guest's own counts (SVCS, TICKS)")
        local report = helper.read(outfile) or ""
        assert.are.equal(r.log, report)
        local per_vcpu = rows(report)
        assert.are.same({ irqs, svcs, 1 }, per_vcpu[0])
        assert.are.same({ 0, 0, 0 }, per_vcpu[1])
    end)

    it("refuses arguments, which traps.c ignores", function()
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT, { "bogus=1" }) },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are_not.equal(0, r.status)
        assert.matches("traps%.lua:%d+: option parsing failed: bogus=1", r.stderr)
    end)

    it("refuses to load without discontinuity callbacks, saying why (QEMU 10.0)", function()
        if have_traps() then
            pending("this QEMU has discontinuity callbacks (10.2): the refusal is for QEMU 10.0")
            return
        end
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT) }, helper.guest("loop", "x86_64"), { "10" })
        assert.are_not.equal(0, r.status)
        assert.matches("traps%.lua:%d+: traps%.lua needs QEMU 10%.2 or later %(discontinuity callbacks%)", r.stderr)
        assert.are.equal(1, select(2, r.stderr:gsub("luahost: ", "")), "one line of ours: " .. r.stderr)
    end)
end)
