-- stdlib/agg.lua without QEMU: a fake luahost whose scoreboard entries
-- are plain counters, and tb/insn handles whose inline ops add to them
-- as QEMU's generated code would (execs times).
local helper = require("helper")

local outs, exit_hooks, report_hooks
local fake = {}

function fake.outs(s) outs[#outs + 1] = s end
function fake.on_exit(fn) exit_hooks[#exit_hooks + 1] = fn end
function fake.on_report(fn) report_hooks[#report_hooks + 1] = fn end
function fake.scoreboard(names)
    local board = {}
    for _, n in ipairs(names) do
        board[n] = { value = 0, sum = function(self) return self.value end }
    end
    return board
end

-- A handle that "executes" execs times: each inline add lands at once.
local function handle(execs)
    return {
        inline = function(_, op, entry, imm)
            assert(op == "add")
            entry.value = entry.value + imm * execs
        end,
        mem_inline = function(_, op, entry, imm)
            assert(op == "add")
            entry.value = entry.value + imm * execs
        end,
    }
end

package.loaded.luahost = fake
package.path = helper.source_root .. "/stdlib/?.lua;" .. package.path
local agg = require("agg")

-- As the host: every exit hook, then every report hook.
local function exit()
    for _, fn in ipairs(exit_hooks) do fn() end
    for _, fn in ipairs(report_hooks) do fn() end
    return table.concat(outs)
end

describe("agg", function()
    before_each(function()
        agg._reset()
        outs, exit_hooks, report_hooks = {}, {}, {}
    end)

    it("adds run-time and inline counts per key, printed smallest first at exit", function()
        local c = agg.count("syscalls")
        c:add("read")
        c:add("read", 2)
        c:inline(handle(10), "write")
        c:inline(handle(5), "read", 2)
        assert.are.equal(13, c:get("read"))
        assert.are.equal("@syscalls[write]: 10\n@syscalls[read]: 13\n", exit())
        assert.are.equal(1, #report_hooks, "one report hook for all maps")
    end)

    it("gives a key's entry: adds made to it elsewhere count for the key", function()
        local c = agg.count("mnemonics")
        local mov = c:entry("mov")
        assert.are.equal(mov, c:entry("mov"), "one entry per key")
        mov.value = mov.value + 7           -- as an insn_mix's inline adds would
        c:inline(handle(2), "mov")
        c:entry("add").value = 3
        assert.are.equal(9, c:get("mov"))
        assert.are.equal("@mnemonics[add]: 3\n@mnemonics[mov]: 9\n", exit())
    end)

    it("prints a map without keys as @name", function()
        agg.count("n"):add()
        assert.are.equal("@n: 1\n", exit())
    end)

    it("shares one scoreboard among 64 keys", function()
        local boards = 0
        local real = fake.scoreboard
        fake.scoreboard = function(names) boards = boards + 1; return real(names) end
        local c = agg.count("many")
        for i = 1, 65 do
            c:inline(handle(1), i)
        end
        fake.scoreboard = real
        assert.are.equal(2, boards)
    end)

    it("limits the printed keys to the largest", function()
        local c = agg.count("top", { limit = 2 })
        for k, v in pairs({ a = 1, b = 5, c = 3 }) do
            c:add(k, v)
        end
        assert.are.equal("@top[c]: 3\n@top[b]: 5\n", exit())
    end)

    it("computes stats from run-time values and translation-time values", function()
        local s = agg.stats("size")
        s:add(4)
        s:add(8)
        s:inline(handle(3), 2)     -- value 2, executed 3 times
        s:inline(handle(0), 100)   -- never executed: not in min/max
        assert.are.same({ count = 5, sum = 18, min = 2, max = 8, avg = 18 / 5 }, s:values()[agg.NOKEY])
        assert.are.equal("@size: count 5, min 2, max 8, average 3.6, total 18\n", exit())
    end)

    it("buckets powers of two as bpftrace does, with bars", function()
        local h = agg.hist("bytes")
        for _, v in ipairs({ 0, 1, 2, 3, 8, 1024 }) do
            h:add(v)
        end
        h:inline(handle(4), 1)
        local text = exit()
        local lines = {}
        for line in text:gmatch("[^\n]*\n") do
            lines[#lines + 1] = line
        end
        assert.are.equal("@bytes:\n", lines[1])
        assert.are.equal("[0]                    1 |" .. ("@"):rep(10) .. (" "):rep(42) .. "|\n", lines[2])
        assert.are.equal("[1]                    5 |" .. ("@"):rep(52) .. "|\n", lines[3])
        assert.are.equal("[2, 4)                 2 |" .. ("@"):rep(20) .. (" "):rep(32) .. "|\n", lines[4])
        assert.matches("^%[4, 8%)  +0 |", lines[5])
        assert.matches("^%[512, 1K%)  +0 |", lines[12])
        assert.matches("^%[1K, 2K%)  +1 |", lines[13])
        assert.are.equal("\n", lines[14])
    end)

    it("buckets linearly with under- and overflow", function()
        local h = agg.lhist("lat", 0, 30, 10)
        for _, v in ipairs({ -1, 0, 9, 10, 29, 30, 99 }) do
            h:add(v)
        end
        local labels = {}
        for _, b in ipairs(h:buckets()) do
            labels[#labels + 1] = b.label .. "=" .. b.count
        end
        assert.are.same({ "(..., 0)=1", "[0, 10)=2", "[10, 20)=1", "[20, 30)=1", "[30, ...)=2" }, labels)
        assert.has_error(function() agg.lhist("bad", 10, 0, 1) end, "agg.lhist expects min < max and step > 0")
    end)

    it("keeps a histogram per key", function()
        local h = agg.hist("bytes")
        h:add(8, "store")
        h:add(1, "load")
        local text = exit()
        assert.matches("@bytes%[load%]:\n%[1%] +1 |", text)
        assert.matches("@bytes%[store%]:\n%[8, 16%) +1 |", text)
    end)

    it("writes tidy CSV and one JSON document", function()
        agg.set_format("csv")
        local c = agg.count("calls")
        c:add("a,b", 2)
        agg.stats("size"):add(4)
        local h = agg.hist("bytes")
        h:add(2)
        assert.are.equal('map,key,stat,value\n@calls,"a,b",count,2\n@size,,count,1\n@size,,sum,4\n'
            .. '@size,,min,4\n@size,,max,4\n@size,,avg,4\n@bytes,,"[2, 4)",1\n', exit())
        assert.are.equal('{"@bytes":[{"count":1,"high":4,"low":2}],"@calls":{"a,b":2},'
            .. '"@size":{"avg":4,"count":1,"max":4,"min":4,"sum":4}}\n', agg.render("json"))
    end)

    it("refuses bad names, duplicate maps, bad handles and formats", function()
        agg.count("x")
        assert.has_error(function() agg.count("x") end, "agg.count: a map named x exists already")
        assert.has_error(function() agg.count(1) end, "agg.count expects a map name, got number")
        assert.has_error(function() agg.count("y"):inline(42, "k") end,
            "inline expects a tb or insn handle, got number")
        assert.has_error(function() agg.set_format("xml") end)
    end)

    it("does not print maps made with print = false, nor anything when auto is off", function()
        agg.count("quiet", { print = false }):add("k")
        agg.count("loud"):add("k")
        assert.are.equal("@loud[k]: 1\n", exit())
        outs = {}
        agg.set_auto(false)
        assert.are.equal("", exit())
    end)
end)
