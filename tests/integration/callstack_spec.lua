-- Shadow call stacks (stdlib/callstack.lua, host/callstack.c) against
-- the program's own count of its calls: tests/guests/calls.c counts every
-- edge (caller, callee) of recursion, mutual recursion, calls through
-- pointers, a tail call and longjmp out of deep calls, on 8 threads, and
-- prints them; the calling-context tree must give the same counts, and
-- must not drift or grow over a million calls.
local helper = require("helper")

-- Prints every call edge (by function name) and the tree's shape.
local SCRIPT = [=[
local callstack = require("callstack")
local cs = callstack.new()
luahost.on_exit(function()
    local p = cs:profile()
    local lines = {}
    for key, e in pairs(p.edges) do
        local caller, callee = key:match("^(.-)%z(.*)$")
        lines[#lines + 1] = ("edge %s %s %d"):format(caller, callee, e.calls)
    end
    table.sort(lines)
    local t = cs:tree()
    local depth, deepest = {}, 0
    for id = 1, t.n do
        depth[id] = t.parent[id] == 0 and 0 or depth[t.parent[id]] + 1
        deepest = math.max(deepest, depth[id])
    end
    luahost.outs(table.concat(lines, "\n") .. "\n")
    luahost.printf("nodes %d deepest %d truncated %d total %d\n", t.n, deepest, p.truncated, p.total)
end)
]=]

local function run(arch, guest_args)
    local r = helper.run_lua(arch, SCRIPT, helper.guest("calls", arch), { guest_args = guest_args })
    local tool = {}
    for caller, callee, n in r.report:gmatch("edge (%S+) (%S+) (%d+)") do
        tool[caller .. " " .. callee] = tonumber(n)
    end
    local shape = {}
    for k, v in r.report:gmatch("(%a+) (%d+)") do
        shape[k] = tonumber(v)
    end
    return r, tool, shape
end

describe("call stacks", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("count every call edge the program counts, on 8 threads (" .. arch .. ") #threads", function()
            local r, tool, shape = run(arch, { "1000", "8" })
            local checked = 0
            for caller, callee, n in r.stdout:gmatch("edge (%S+) (%S+) (%d+)") do
                assert.are.equal(tonumber(n), tool[caller .. " " .. callee], caller .. " -> " .. callee)
                checked = checked + 1
            end
            assert.are.equal(13, checked, r.stdout)    -- calls.c's edges, all seen
            assert.are.equal(0, shape.truncated, r.report)
        end)

        it("neither drift nor grow over a million calls (" .. arch .. ")", function()
            local _, tool_small, small = run(arch, { "2000", "0" })
            local _, tool_big, big = run(arch, { "150000", "0" })
            assert.are.equal(150000, tool_big["worker loop_target"])
            assert.are.equal(2000, tool_small["worker loop_target"])
            assert.are.equal(0, big.truncated)
            -- the same contexts whatever the number of calls: nothing drifts deeper
            assert.are.equal(small.nodes, big.nodes)
            assert.are.equal(small.deepest, big.deepest)
            assert.is_true(big.deepest < 40, "deepest " .. big.deepest)
        end)
    end

    it("gives the stack in a callback, a tail call in its caller's frame", function()
        local guest = helper.guest("calls", "x86_64")
        local r = helper.run_lua("x86_64", [[
local callstack = require("callstack")
local cs = callstack.new()
local seen = {}
luahost.on_tb_translate(function(tb)
    local s = luahost.symbolize(tb:vaddr())
    if s and s.symbol_offset == 0 and (s.symbol == "tail_to" or s.symbol == "rec") then
        tb:on_exec(function()
            local names = {}
            for i, f in ipairs(cs:stack()) do names[i] = f.name end
            local line = table.concat(names, ";")
            if not seen[line] then
                seen[line] = true
                luahost.outs(line .. "\n")
            end
        end)
    end
end)
]], guest, { guest_args = { "3" } })
        -- the frames of main's own call of worker (no thread): tail_from gave way to tail_to
        assert.matches("\n[^\n]*;main;worker;tail_to\n", "\n" .. r.report)
        assert.matches("\n[^\n]*;main;worker;rec;rec;rec\n", "\n" .. r.report)
        assert.is_nil(r.report:find("tail_from;tail_to", 1, true), r.report)
    end)

    it("refuses a bad max_depth, naming the line", function()
        local r = helper.run_lua("x86_64", 'require("callstack").new { max_depth = 0 }', helper.guest("loop", "x86_64"),
            { status = false })
        assert.are.equal(1, r.status)
        assert.matches(":1: callstack.new: max_depth must be an integer from 1 to 2%^20", r.stderr)
    end)
end)
