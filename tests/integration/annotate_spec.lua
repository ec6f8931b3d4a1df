-- examples/annotate.lua against QEMU's libinsn.so (tests/tcg/plugins) in
-- the same run: with match= (an empty prefix) it keeps a record of every
-- instruction it sees, with QEMU's disassembly and the times it ran. The
-- function's extent comes from the guest's symbol table (nm -S), the hot
-- loop's counts from counted_loop.h.
local helper = require("helper")

local SCRIPT = helper.source_root .. "/examples/annotate.lua"

-- Our listing of fn: { [pc] = { count, disas } }, the rows in order, and
-- the total line's count.
local function listing(report, fn)
    local body = report:match("\n?" .. fn:gsub("%p", "%%%0") .. " %([^\n]*%):\n(.-)\n *%d+  instructions executed in ")
    assert.is_truthy(body, report)
    local rows, order = {}, {}
    for line in (body .. "\n"):gmatch("([^\n]*)\n") do
        if not line:match("^ *%.%.%.$") then
            local count, pc, disas = line:match("^ *(%d+)  0x(%x+)  (.*)$")
            assert.is_truthy(count, line)
            rows[tonumber(pc, 16)] = { tonumber(count), disas }
            order[#order + 1] = tonumber(pc, 16)
        end
    end
    local total = tonumber(report:match("\n *(%d+)  instructions executed in " .. fn:gsub("%p", "%%%0") .. "\n"))
    return rows, order, total
end

-- libinsn.so's records "  pc: disas (hits N)" inside [from, to). It
-- may keep several records of one instruction (its hash table's keys
-- are freed once inserted, so a later translation of the instruction
-- misses its record): their hits are added up.
local function libinsn_records(log, from, to)
    local rows = {}
    for pc, disas, hits in log:gmatch("\n  (%x+): ([^\n]-) %(hits (%d+)%)") do
        local at = tonumber(pc, 16)
        if at >= from and at < to then
            local row = rows[at] or { 0, disas }
            assert.are.equal(row[2], disas)
            row[1] = row[1] + tonumber(hits)
            rows[at] = row
        end
    end
    return rows
end

local function symbol(arch, guest, name)
    for _, s in ipairs(helper.elf_symbols(arch, guest)) do
        if s.name == name and s.size then
            return s
        end
    end
    error("no sized symbol " .. name .. " in " .. guest)
end

describe("annotate.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("lists each instruction's disassembly and count as libinsn.so sees them (" .. arch .. ")", function()
            if (helper.sanitizer() or ""):find("address") then
                pending("libinsn.so's match= reads freed memory (its hash table's keys), which "
                    .. "AddressSanitizer, preloaded into QEMU, stops")
                return
            end
            local guest = helper.guest("loop", arch)
            local fns = { "main", "mix", "counted_loop" }
            local r = helper.run_file(arch, SCRIPT, guest, { guest_args = { "3000" },
                args = { "fn=main", "fn=mix", "fn=counted_loop" },
                plugins = { helper.c_plugin("tests/tcg/plugins/libinsn.so") .. ",match=" } })
            for _, fn in ipairs(fns) do
                local sym = symbol(arch, guest, fn)
                local ours, order, total = listing(r.report, fn)
                local theirs = libinsn_records(r.log, sym.addr, sym.addr + sym.size)
                assert.is_truthy(next(theirs), fn .. ": libinsn.so saw none of it")
                assert.are.same(theirs, ours)
                assert.are.equal(sym.addr, order[1], fn .. " starts at its symbol")
                local sum = 0
                for i, pc in ipairs(order) do
                    assert.is_true(i == 1 or order[i - 1] < pc, "by address")
                    sum = sum + ours[pc][1]
                end
                assert.are.equal(sum, total)
            end
            -- counted_loop.h: the jump to the head and the return once,
            -- the head's two instructions 3000 times each
            local ours, order = listing(r.report, "counted_loop")
            local head = helper.hot_loop_head(r.stdout)
            assert.are.equal(4, #order)
            assert.are.same({ 1, 3000, 3000, 1 },
                { ours[order[1]][1], ours[order[2]][1], ours[order[3]][1], ours[order[4]][1] })
            assert.are.equal(head, order[2])
        end)

        it("is exact on 8 concurrent vCPUs (" .. arch .. ") #threads", function()
            local r = helper.run_file(arch, SCRIPT, helper.guest("threads", arch),
                { args = { "fn=counted_loop" }, guest_args = { "8", "20000" } })
            local ours = listing(r.report, "counted_loop")
            assert.are.equal(8 * 20000, ours[helper.hot_loop_head(r.stdout)][1])
        end)
    end

    it("marks code that never ran, and says when a function never ran", function()
        local r = helper.run_file("x86_64", SCRIPT, helper.guest("loop", "x86_64"),
            { args = { "fn=mix", "fn=no_such_function" }, guest_args = { "1" } })
        -- loop.c: one call, mix(1, 0), takes the even branch: the odd
        -- one, between the branch and the even one, never runs
        local _, order = listing(r.report, "mix")
        assert.matches("\n +%d+  0x%x+  [^\n]*\n +%.%.%.\n +1  0x%x+", r.report)
        assert.is_true(#order >= 4, r.report)
        assert.matches("\nno_such_function: no instruction of it ran\n$", r.report)
    end)

    it("refuses a run without fn= and unknown arguments, in one line", function()
        for _, case in ipairs({ { {}, "give the function to annotate: fn=NAME" },
                                { { "fn=main", "bogus=1" }, "option parsing failed: bogus=1" } }) do
            local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT, case[1]) },
                helper.guest("loop", "x86_64"), { "10" })
            assert.are_not.equal(0, r.status)
            assert.matches("annotate%.lua:%d+: " .. case[2]:gsub("%p", "%%%0"), r.stderr)
            assert.are.equal(1, select(2, r.stderr:gsub("luahost: ", "")), r.stderr)
        end
    end)
end)
