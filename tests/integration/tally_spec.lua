-- luahost.tally (host/tally.c) against counts we did not make: libmem.so's
-- line per memory access and libbb.so's blocks per vCPU, in the same run,
-- and QEMU's own -d exec log of every block executed.
local helper = require("helper")

local function c_plugin(name, args)
    return helper.c_plugin("tests/tcg/plugins/" .. name) .. (args and "," .. args or "")
end

-- Prints every row of the tallies named in `names` (globals of the script):
-- "name vcpu key key2 count", keys in hex, in the rows' order.
local PRINT_ROWS = [[
local function hex(v) return ("%x"):format(v) end
luahost.on_exit(function()
    for _, name in ipairs(names) do
        local rows = _G[name]:rows()
        for i = 1, rows.n do
            luahost.printf("%s %d %s %s %s\n", name, rows.vcpu[i], hex(rows.key[i]),
                hex(rows.key2[i]), (tostring(rows.count[i]):gsub("U?LL$", "")))
        end
    end
end)
]]

-- { [name] = list of { vcpu, key, key2, count } } from PRINT_ROWS' report.
local function printed_rows(report)
    local all = {}
    for name, vcpu, key, key2, count in report:gmatch("(%w+) (%d+) (%x+) (%x+) (%d+)\n") do
        all[name] = all[name] or {}
        table.insert(all[name], { tonumber(vcpu), key, key2, tonumber(count) })
    end
    return all
end

local KINDS = { load = "2", store = "3" }   -- luahost.LOAD, luahost.STORE

-- From libmem.so's print-accesses lines: counts by "address kind" (address
-- the column's, masked to block), and the keys in order of first access.
local function libmem_counts(log, column, block)
    local counts, order = {}, {}
    local pattern = "\n0x%x+,[^,\n]*,0x(%x+),0x(%x+),%d+,(%a+),"
    for vaddr, hwaddr, kind in log:gmatch(pattern) do
        local addr = tonumber(column == "virtual" and vaddr or hwaddr, 16)
        local key = ("%x %s"):format(addr - addr % block, KINDS[kind])
        if not counts[key] then
            order[#order + 1] = key
        end
        counts[key] = (counts[key] or 0) + 1
    end
    return counts, order
end

-- The same from our rows, summed over vCPUs.
local function tally_counts(rows)
    local counts, order = {}, {}
    for _, row in ipairs(rows or {}) do
        local key = ("%s %s"):format(row[2], row[3])
        if not counts[key] then
            order[#order + 1] = key
        end
        counts[key] = (counts[key] or 0) + row[4]
    end
    return counts, order
end

local MEM_TALLIES = [[
names = { "exact", "pages" }
exact = luahost.tally { address = ADDRESS }
pages = luahost.tally { address = ADDRESS, block = 4096 }
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        exact:mem(insn)
        pages:mem(insn)
    end
end)
]] .. PRINT_ROWS

describe("luahost.tally", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("counts every access libmem.so prints, by address and by page, in order of first use ("
            .. arch .. ")", function()
            local r = helper.run_lua(arch, MEM_TALLIES:gsub("ADDRESS", '"virtual"'), helper.guest("api", arch),
                { plugins = { c_plugin("libmem.so", "print-accesses=true") } })
            local ours = printed_rows(r.report)
            local want, want_order = libmem_counts(r.log, "virtual", 1)
            local got, got_order = tally_counts(ours.exact)
            assert.is_true(#want_order > 100, "libmem.so printed too few accesses")
            assert.are.same(want, got)
            -- one vCPU: the order of first use is the order libmem.so printed them
            assert.are.same(want_order, got_order)
            assert.are.same((libmem_counts(r.log, "virtual", 4096)), (tally_counts(ours.pages)))
        end)

        it("counts each vCPU's blocks as libbb.so, vCPUs made later too (" .. arch .. ", 8 threads) #threads",
            function()
            local r = helper.run_lua(arch, [[
names = { "blocks" }
blocks = luahost.tally()
luahost.on_tb_translate(function(tb)
    blocks:exec(tb, 7)
end)
-- rows() before the end, on an ending thread (others may still count)
luahost.on_vcpu_exit(function()
    assert(blocks:rows().n > 0)
end)
]] .. PRINT_ROWS, helper.guest("threads", arch),
                { guest_args = { "8", "20000" }, plugins = { c_plugin("libbb.so", "inline=on") } })
            local want = {}
            for cpu, bbs in r.log:gmatch("CPU(%d+): bb's: (%d+)") do
                want[tonumber(cpu)] = tonumber(bbs)
            end
            local got = {}
            for _, row in ipairs(printed_rows(r.report).blocks or {}) do
                assert.are.equal("7", row[2])
                got[row[1]] = (got[row[1]] or 0) + row[4]
            end
            assert.is_truthy(want[1], "libbb.so saw fewer than two vCPUs")
            assert.are.same(want, got)
        end)
    end

    it("counts the blocks -d exec logs after each block, under a condition", function()
        local outfile, log = helper.tmpname(), helper.tmpname()
        local plugin = helper.luahost_plugin(helper.lua_file([[
names = { "follows" }
follows = luahost.tally()
local prev = luahost.scoreboard()
luahost.on_tb_translate(function(tb)
    follows:exec(tb, prev, prev, "ne", 0)     -- (the block before, this one); not the first
    tb:inline("store", prev, tb:vaddr())
end)
]] .. PRINT_ROWS), { "outfile=" .. outfile })
        local guest = helper.guest("loop", "x86_64")
        local status, _, err = helper.sh(("%s -plugin %s -d exec,nochain -D %s %s 10"):format(
            helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(plugin), helper.quote(log),
            helper.quote(guest)))
        assert.are.equal(0, status, err)
        local want, want_order, before = {}, {}, nil
        for pc in helper.read(log):gmatch("Trace %d+: 0x%x+ %[%x+/0*(%x+)/") do
            if before then
                local key = before .. " " .. pc
                if not want[key] then
                    want_order[#want_order + 1] = key
                end
                want[key] = (want[key] or 0) + 1
            end
            before = pc
        end
        local got, got_order = tally_counts(printed_rows(helper.read(outfile)).follows)
        assert.is_true(#want_order > 100, "-d exec logged too few blocks")
        assert.are.same(want, got)
        assert.are.same(want_order, got_order)
    end)

    -- sys: two vCPUs; alias: the MMU on, RAM seen at another virtual address
    for _, guest in ipairs({ "sys", "alias" }) do
        it("keys system-mode accesses by physical address, as libmem.so (" .. guest .. ")", function()
            local outfile = helper.tmpname()
            local r = helper.qemu_system({
                c_plugin("libmem.so", "print-accesses=true"),
                helper.luahost_plugin(helper.lua_file(MEM_TALLIES:gsub("ADDRESS", '"physical"')),
                    { "outfile=" .. outfile }),
            }, helper.system_guest(guest, "aarch64"))
            assert.are.equal(0, r.status, r.stderr)
            local ours = printed_rows(helper.read(outfile) or "")
            local vcpus = {}
            for _, row in ipairs(ours.exact or {}) do
                vcpus[row[1]] = true
            end
            if guest == "sys" then
                assert.are.same({ [0] = true, [1] = true }, vcpus)
            end
            local want = libmem_counts(r.log, "physical", 1)
            assert.is_truthy(next(want), "libmem.so printed no access")
            assert.are.same(want, (tally_counts(ours.exact)))
            assert.are.same((libmem_counts(r.log, "physical", 4096)), (tally_counts(ours.pages)))
        end)
    end

    -- alias: the MMU on, so an access's base (virtual less physical) is not 0
    it("keys accesses by instruction, physical address and base, as libmem.so prints them", function()
        local outfile = helper.tmpname()
        local r = helper.qemu_system({
            c_plugin("libmem.so", "print-accesses=true"),
            helper.luahost_plugin(helper.lua_file([[
names = { "at" }
at = luahost.tally { key = "pc", key2 = "paddr", key3 = "base" }
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        at:mem(insn)
    end
end)
local function hex(v) return ("%x"):format(v) end
luahost.on_exit(function()
    local rows = at:rows()
    for i = 1, rows.n do
        luahost.printf("%s %s %s %s\n", hex(rows.key[i]), hex(rows.key2[i]), hex(rows.key3[i]),
            (tostring(rows.count[i]):gsub("U?LL$", "")))
    end
end)
]]), { "outfile=" .. outfile }),
        }, helper.system_guest("alias", "aarch64"))
        assert.are.equal(0, r.status, r.stderr)
        local want, got, bases = {}, {}, 0
        for pc, vaddr, paddr in r.log:gmatch("\n0x(%x+),[^,\n]*,0x(%x+),0x(%x+),%d+,%a+,") do
            local base = ("%x"):format(tonumber(vaddr, 16) - tonumber(paddr, 16))
            local key = ("%x %x %s"):format(tonumber(pc, 16), tonumber(paddr, 16), base)
            want[key] = (want[key] or 0) + 1
            bases = bases + (base ~= "0" and 1 or 0)
        end
        for key, count in (helper.read(outfile) or ""):gmatch("(%x+ %x+ %x+) (%d+)\n") do
            got[key] = (got[key] or 0) + tonumber(count)
        end
        assert.is_true(bases > 0, "the MMU made no access's base other than 0")
        assert.are.same(want, got)
    end)

    it("counts what QEMU's inline ops count, across a reset", function()
        local r = helper.run_lua("x86_64", [[
local blocks = luahost.tally()
local runs = luahost.scoreboard()
local translated, reset = 0, false
local function report()
    local rows, sum = blocks:rows(), 0
    for i = 1, rows.n do
        sum = sum + rows.count[i]
    end
    luahost.printf("reset %s tally %d inline %d\n", tostring(reset), sum, runs:sum())
end
local function on_translate(tb)
    blocks:exec(tb, 0)
    tb:inline("add", runs, 1)
    translated = translated + 1
    if translated == 50 then
        luahost.reset(function()    -- drops every hook: register them again
            reset = true
            luahost.on_tb_translate(on_translate)
            luahost.on_exit(report)
        end)
    end
end
luahost.on_tb_translate(on_translate)
luahost.on_exit(report)
]], helper.guest("loop", "x86_64"))
        local reset, tally, inline = r.report:match("reset (%a+) tally (%d+) inline (%d+)")
        assert.are.equal("true", reset, r.report)
        assert.is_true(tonumber(inline) > 1000)
        assert.are.equal(inline, tally)
    end)

    it("gives a key of 2^53 or more as one value, that indexes one table entry", function()
        local r = helper.run_lua("x86_64", [[
local K = jit and loadstring("return 0x1000000000000001ULL")() or math.tointeger(2 ^ 60) + 1
local big = luahost.tally()
local entry = luahost.scoreboard()
luahost.on_tb_translate(function(tb)
    big:exec(tb, K)
    tb:inline("store", entry, K)
    big:exec(tb, entry)
end)
local function hex(v) return ("%x"):format(v) end
luahost.on_exit(function()
    local rows, again = big:rows(), big:rows()
    local seen, distinct = {}, 0
    for i = 1, rows.n do
        if not seen[rows.key[i] ] then
            seen[rows.key[i] ] = true
            distinct = distinct + 1
        end
    end
    luahost.printf("rows %d distinct %d key %s same %s\n", rows.n, distinct, hex(rows.key[1]),
        tostring(seen[again.key[again.n] ] == true))
end)
]], helper.guest("loop", "x86_64"))
        local rows, distinct, key, same = r.report:match("rows (%d+) distinct (%d+) key (%x+) same (%a+)")
        assert.is_true(tonumber(rows) > 10, r.report)
        assert.are.equal("1", distinct)
        assert.are.equal("1000000000000001", key)
        assert.are.equal("true", same)
    end)
end)

describe("luahost.tally misuse", function()
    after_each(helper.cleanup)

    local function fails(source, message)
        local r = helper.run_lua("x86_64", source, helper.guest("loop", "x86_64"), { status = false })
        assert.are_not.equal(0, r.status, "qemu should fail")
        assert.matches(message, r.stderr, 1, true)
    end

    it("names the script line of a bad option", function()
        fails("luahost.tally { block = 48 }", ":1: luahost.tally: block must be a power of two from 1 to 2^52, got 48")
        fails("luahost.tally { address = 'guest' }",
            ':1: luahost.tally: address must be "virtual", "physical" or "device", got guest')
        fails("luahost.tally { size = 1 }",
            ":1: luahost.tally: unknown option size (expected address, block, key, key2, key3)")
        fails("luahost.tally { key2 = 'vaddr' }",
            ":1: luahost.tally: key2 must be one of address, kind, device, paddr, pc, base, none, got vaddr")
        fails("luahost.tally(3)", ":1: luahost.tally expects a table of options, got number")
        fails("local t = luahost.tally()\nluahost.on_tb_translate(function(tb) t:exec(tb, 'x') end)",
            ":2: bad argument #2 to 'exec'")
    end)

    it("refuses to add to another vCPU's table", function()
        fails("local t = luahost.tally()\nt:add(0, 1, 2)",
            ":2: tally:add(0, ...) must be called from a callback of vCPU 0")
    end)
end)
