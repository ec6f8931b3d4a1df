-- scripts/ips.lua against QEMU's libips.so. Only one plugin of a run can
-- have QEMU's time control, so the two run one after the other, with the
-- same arguments, on the same bare-metal guest (tests/guests/system/
-- clock.S, two vCPUs): each vCPU times a loop of a known number of
-- instructions with its own clock (the virtual counter, CNTVCT_EL0). At
-- N instructions per second the loop must take insns / N seconds of
-- guest time, give or take a quantum; unthrottled, it takes far less.
local helper = require("helper")

local SCRIPT = helper.script("ips.lua")
local C_PLUGIN = "contrib/plugins/libips.so"

local function clock_guest()
    return helper.system_guest("clock", "aarch64")
end

local function qemu_10_2()
    return (os.getenv("QEMU_INCLUDE") or ""):find("qemu%-sid") ~= nil
end

-- Runs the guest with these plugins; returns each vCPU's loop time in
-- seconds of guest time, and the instructions in the loop.
local function timed(plugins)
    local r = helper.qemu_system(plugins, clock_guest())
    assert.are.equal(0, r.status, r.stderr)
    local frq = tonumber(r.stdout:match("cntfrq=(%d+)\n"))
    assert.is_truthy(frq, r.stdout)
    assert.is_truthy(r.stdout:find("clock done\n", 1, true), r.stdout)
    return { tonumber(r.stdout:match("ticks0=(%d+)\n")) / frq, tonumber(r.stdout:match("ticks1=(%d+)\n")) / frq },
        tonumber(r.stdout:match("insns=(%d+)\n"))
end

-- The guest's time for its loop must be what the rate makes of its
-- instructions: at most one quantum (ipq instructions) less, as a
-- counter read may fall anywhere in a quantum, and not much more (a
-- loaded machine delays the vCPUs beyond the plugin's sleeps).
local function assert_rate(who, seconds, insns, ips, ipq)
    local expected = insns / ips
    for vcpu, s in ipairs(seconds) do
        local what = ("%s, vCPU %d: %.3f s of guest time for %d instructions at %d per second (%.3f s)")
            :format(who, vcpu - 1, s, insns, ips, expected)
        assert.is_true(s >= expected - 1.5 * ipq / ips, what)
        assert.is_true(s <= expected * 1.5, what)
    end
end

describe("ips.lua", function()
    after_each(helper.cleanup)

    it("makes the guest's clock run at ips= as libips.so does (two vCPUs)", function()
        local ips = 2000000
        local alone, insns = timed({})
        for vcpu, s in ipairs(alone) do   -- the limit is far below QEMU's own speed
            assert.is_true(s < insns / ips / 4, ("unthrottled vCPU %d took %.3f s"):format(vcpu - 1, s))
        end
        local args = "ips=" .. ips
        assert_rate("libips.so", timed({ helper.c_plugin(C_PLUGIN) .. "," .. args }), insns, ips, ips / 10)
        assert_rate("ips.lua", timed({ helper.luahost_plugin(SCRIPT, { args }) }), insns, ips, ips / 10)
    end)

    it("takes a suffix and ipq= as libips.so does (QEMU 10.2)", function()
        if not qemu_10_2() then
            pending("QEMU 10.0's ips.c takes no suffix and no ipq= (the refusal is tested below)")
            return
        end
        local args = { "ips=4m", "ipq=100000" }
        local _, insns = timed({})
        assert_rate("libips.so", timed({ helper.c_plugin(C_PLUGIN) .. "," .. table.concat(args, ",") }),
            insns, 4000000, 100000)
        assert_rate("ips.lua", timed({ helper.luahost_plugin(SCRIPT, args) }), insns, 4000000, 100000)
    end)

    it("refuses user mode in one line, where libips.so aborts QEMU", function()
        local c = helper.qemu("x86_64", { helper.c_plugin(C_PLUGIN) .. ",ips=1000000" },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(134, c.status, "libips.so: " .. c.stderr)   -- SIGABRT: g_assert(time_handle)
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT, { "ips=1000000" }) },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(1, r.status, r.stderr)
        assert.matches("luahost: [^\n]*ips%.lua:%d+: time control needs system emulation [^\n]*\n", r.stderr)
        assert.are.equal(1, select(2, r.stderr:gsub("luahost: ", "")), r.stderr)
    end)

    it("refuses bad arguments in one line, as libips.so does, and more", function()
        local cases = {
            { "bogus=1", "option parsing failed: bogus=1" },
            { "ips=5", "minimum of 10 instructions per second needed: ips=5" },
            { "ips=abc", "ips parsing failed: not a number: ips=abc" },
            { "ips=99999999999999999999", "ips out of range (below 2^53): ips=99999999999999999999" },
        }
        if qemu_10_2() then
            cases[#cases + 1] = { "ips=2x", "bad suffix x (expected k, m or g): ips=2x" }
            cases[#cases + 1] = { "ipq=0", "bad ipq value: ipq=0" }
            cases[#cases + 1] = { "ipq=ten", "bad ipq value: ipq=ten" }
        else
            -- 10.0's ips.c reads "20k" as 20 and does not know ipq=
            cases[#cases + 1] = { "ips=20k", "QEMU 10.0's ips.c takes no suffix (it would read 20): ips=20k" }
            cases[#cases + 1] = { "ipq=100", "option parsing failed: ipq=100" }
        end
        for _, case in ipairs(cases) do
            local r = helper.qemu_system({ helper.luahost_plugin(SCRIPT, { case[1] }) }, clock_guest())
            assert.are_not.equal(0, r.status)
            local ours = r.stderr:match("luahost: ([^\n]*)\n")
            assert.is_truthy(ours, r.stderr)
            assert.matches("ips%.lua:%d+: " .. case[2]:gsub("%p", "%%%0"), ours)
            assert.are.equal(1, select(2, r.stderr:gsub("luahost: ", "")), r.stderr)
        end
    end)
end)
