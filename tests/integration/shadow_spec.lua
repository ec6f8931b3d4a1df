-- luahost.shadow: stores mirrored and loads checked in C (host/shadow.c),
-- against libmem.so's region summary (tests/tcg/plugins/mem.c) loaded
-- into the same QEMU run: the same check, in 16 KiB regions.
local helper = require("helper")

local MEM = helper.c_plugin("tests/tcg/plugins/libmem.so") .. ",region-summary=on"

-- libmem.so's rows "0xBASE, READS, WRITES, SEEN" and warnings "0xBASE:OFFSET".
local function c_regions(log)
    local rows = {}
    for base, reads, writes, seen in log:gmatch("\n0x(%x+), (%d+), (%d+), (%a+)") do
        rows[tonumber(base, 16)] = { reads = tonumber(reads), writes = tonumber(writes), seen = seen }
    end
    return rows
end

local function count(t)
    local n = 0
    for _ in pairs(t) do
        n = n + 1
    end
    return n
end

local function warnings(text)
    local list = {}
    for base in text:gmatch("Warning: 0x(%x+):%d+ read an un%-instrumented value\n") do
        list[#list + 1] = tonumber(base, 16)
    end
    table.sort(list)
    return list
end

-- Our rows, printed by SCRIPT, summed into regions of size big.
local SCRIPT = [[
local opt = luahost.args { region = 4096 }
local unseen = {}
local shadow = luahost.shadow { region = opt.region, on_unseen = function(vcpu, base, offset)
    unseen[#unseen + 1] = ("unseen %d 0x%x %d\n"):format(vcpu, base, offset)
end }
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        shadow:mem(insn)
    end
end)
luahost.on_exit(function()
    luahost.outs(table.concat(unseen))
    for _, r in ipairs(shadow:regions()) do
        luahost.printf("region 0x%x %d %d %s\n", r.base, r.reads, r.writes, tostring(r.seen_all))
    end
end)
]]

local function ours(report, big)
    local rows, n = {}, 0
    for base, reads, writes, seen in report:gmatch("region 0x(%x+) (%d+) (%d+) (%a+)\n") do
        base = tonumber(base, 16)
        local key = base - base % big
        local row = rows[key] or { reads = 0, writes = 0, seen = "true" }
        rows[key] = row
        row.reads, row.writes = row.reads + tonumber(reads), row.writes + tonumber(writes)
        if seen == "false" then
            row.seen = "false"
        end
        n = n + 1
    end
    return rows, n
end

describe("luahost.shadow", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("counts and checks as libmem.so's region summary, in its 16 KiB regions (" .. arch .. ")", function()
            local r = helper.run_file_with_libmem_regions(arch, helper.lua_file(SCRIPT),
                helper.guest("memtraffic", arch),
                { args = { "region=16384" }, guest_args = { "64", "16", "2", "1000", "10" }, plugins = { MEM } })
            local theirs = c_regions(r.log)
            assert.is_truthy(next(theirs), "libmem.so's region rows missing: " .. r.log)
            assert.are.same(theirs, (ours(r.report, 16384)))
            -- on_unseen: once per region it marks, at the loads libmem.so warns of
            local unseen = {}
            for base in r.report:gmatch("unseen %d+ 0x(%x+) %d+\n") do
                unseen[#unseen + 1] = tonumber(base, 16)
            end
            table.sort(unseen)
            assert.is_true(#unseen > 0)
            assert.are.same(warnings(r.log), unseen)
        end)

        it("in 4 KiB regions, adds up to libmem.so's 16 KiB ones (" .. arch .. ")", function()
            local r = helper.run_file_with_libmem_regions(arch, helper.lua_file(SCRIPT),
                helper.guest("memtraffic", arch),
                { args = { "region=4096" }, guest_args = { "64", "16", "2", "1000", "10" }, plugins = { MEM } })
            local summed, n = ours(r.report, 16384)
            local theirs = c_regions(r.log)
            assert.is_true(n > count(theirs))
            for base, row in pairs(theirs) do
                local mine = summed[base] or {}
                assert.are.same({ row.reads, row.writes }, { mine.reads, mine.writes }, ("0x%x"):format(base))
            end
            assert.are.equal(count(theirs), count(summed))
        end)
    end

    it("refuses bad options with the script's line", function()
        for _, case in ipairs({
            { "luahost.shadow(5)", "luahost.shadow expects a table of options, got number" },
            { "luahost.shadow { region = 3 }", "luahost.shadow: region must be a power of two from 1 to 2^30, got 3" },
            { "luahost.shadow { size = 8 }", "luahost.shadow: unknown option size (expected region, on_unseen)" },
            { "luahost.shadow { on_unseen = 1 }", "luahost.shadow: option on_unseen must be a function, got number" },
        }) do
            local r = helper.run_lua("x86_64", case[1] .. "\n", helper.guest("loop", "x86_64"),
                { guest_args = { "1" }, status = false })
            assert.are_not.equal(0, r.status)
            assert.matches("%.lua:1: " .. case[2]:gsub("%p", "%%%0"), r.stderr)
        end
    end)
end)
