-- scripts/cflow.lua against QEMU's libcflow.so in the same run: the same
-- report, byte for byte, for every sort, on guests with loops and calls
-- (loop), every shape of call and return (calls) and faults in mid-block
-- (faults: the early exits, counted by the guest itself too).
local helper = require("helper")

local SCRIPT = helper.source_root .. "/scripts/cflow.lua"
local C_PLUGIN = "contrib/plugins/libcflow.so"

-- Runs both plugins with the same arguments; returns the C plugin's
-- report, the port's, and the run.
local function both(arch, guest, guest_args, args)
    local c = helper.c_plugin(C_PLUGIN)
    for _, a in ipairs(args) do
        c = c .. "," .. a
    end
    local r = helper.run_file(arch, SCRIPT, helper.guest(guest, arch),
        { plugins = { c }, args = args, guest_args = guest_args })
    return r.log, r.report, r
end

local function count(text, pattern)
    local n = 0
    for _ in text:gmatch(pattern) do
        n = n + 1
    end
    return n
end

-- The report with each node's destinations sorted: with several vCPUs,
-- which of two destinations first used at the same moment on two vCPUs
-- comes first races, in cflow.c as in the port.
local function dests_sorted(report)
    local out, dests = {}, {}
    for line in report:gmatch("[^\n]*\n") do
        if line:find("^      to ") then
            dests[#dests + 1] = line
        else
            table.sort(dests)
            table.move(dests, 1, #dests, #out + 1, out)
            dests = {}
            out[#out + 1] = line
        end
    end
    table.sort(dests)
    table.move(dests, 1, #dests, #out + 1, out)
    return table.concat(out)
end

local GUESTS = {
    { "loop", { "2000" } },
    { "calls", { "200", "0" } },        -- no thread besides main: see the threads test
    { "faults", { "3000" } },     -- 1000 faults
}
local SORTS = { {}, { "sort=hottest" }, { "sort=early" }, { "sort=exceptions" } }

describe("cflow.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, guest in ipairs(GUESTS) do
            for _, args in ipairs(SORTS) do
                local what = ("%s %s %s"):format(arch, guest[1], table.concat(args, ","))
                it("writes libcflow.so's report in the same run (" .. what .. ")", function()
                    local c, lua = both(arch, guest[1], guest[2], args)
                    assert.matches("^collected %d+ control flow nodes in the hash table\n", c)
                    assert.are.equal(10, count(c, "\n  addr: 0x"), c)
                    assert.are.equal(c, lua)
                end)
            end
        end

        it("writes libcflow.so's nodes and counts with guest threads (" .. arch .. ")", function()
            for _, args in ipairs({ { "sort=hottest" }, { "sort=exceptions" } }) do
                local c, lua = both(arch, "calls", { "300", "3" }, args)
                assert.are.equal(10, count(c, "\n  addr: 0x"), c)
                assert.are.equal(dests_sorted(c), dests_sorted(lua))
            end
        end)

        it("counts each fault in mid-block as an early exit, as the guest does (" .. arch .. ")", function()
            local c, lua, r = both(arch, "faults", { "3000" }, { "sort=early" })
            assert.are.equal(c, lua)
            local caught = tonumber(r.stdout:match("caught=(%d+)"))
            assert.are.equal(1000, caught)
            local node = lua:match("\n  addr: 0x%x+ fault: [^\n]* %(sync fault%)\n    early exits (%d+)\n")
            assert.are.equal(caught, tonumber(node), lua)
            -- each early exit told on stderr, by both plugins in the same words
            local lines = {}
            for line in r.stderr:gmatch("vcpu_tb_branched_exec: [^\n]*") do
                lines[line] = (lines[line] or 0) + 1
            end
            local told = 0
            for line, n in pairs(lines) do
                assert.are.equal(0, n % 2, line)
                told = told + n
            end
            assert.are.equal(2 * caught, told, r.stderr)
        end)
    end

    it("refuses an argument cflow.c does not know, as cflow.c does (topn is not one)", function()
        local c = helper.qemu("x86_64", { helper.c_plugin(C_PLUGIN) .. ",topn=5" }, helper.guest("loop", "x86_64"),
            { "10" })
        assert.are_not.equal(0, c.status)
        assert.matches("option parsing failed: topn=5", c.stderr)
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT, { "topn=5" }) },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(1, r.status)
        assert.matches("cflow%.lua:%d+: option parsing failed: topn=5 %(known options: sort%)", r.stderr)
    end)

    it("refuses a sort cflow.c does not know, as cflow.c does", function()
        local c = helper.qemu("x86_64", { helper.c_plugin(C_PLUGIN) .. ",sort=coldest" },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are_not.equal(0, c.status)
        assert.matches("failed to parse: coldest", c.stderr)
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT, { "sort=coldest" }) },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(1, r.status)
        assert.matches("cflow%.lua:%d+: expected one of hottest, early, exceptions: sort=coldest", r.stderr)
    end)
end)
