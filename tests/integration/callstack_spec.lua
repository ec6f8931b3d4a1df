-- Shadow call stacks (stdlib/callstack.lua, host/callstack.c) against
-- the program's own count of its calls: tests/guests/calls.c counts every
-- edge (caller, callee) of recursion, mutual recursion, calls through
-- pointers, a tail call and longjmp out of deep calls, on 8 threads, and
-- prints them; tests/guests/throws.cc does the same for C++ exceptions
-- thrown through frames, caught, rethrown, and tests/guests/signals.c for
-- signal handlers that call, return, or siglongjmp, and in system mode
-- tests/guests/system/calls.c on two vCPUs. The calling-context
-- tree must give the same counts, and must not drift or grow over a
-- million calls, 10^5 throws or 10^4 iterations of signals.
local helper = require("helper")

-- Prints every call edge (by function name), the stack each time the
-- function "probe" starts, and the tree's shape.
local SCRIPT = [=[
local callstack = require("callstack")
local cs = callstack.new()
local probes = {}
luahost.on_tb_translate(function(tb)
    local s = luahost.symbolize(tb:vaddr())
    if s and s.symbol == "probe" and s.symbol_offset == 0 then
        tb:on_exec(function()
            local names = {}
            for i, f in ipairs(cs:stack()) do names[i] = f.name end
            probes[#probes + 1] = "stack at probe " .. table.concat(names, ";") .. "\n"
        end)
    end
end)
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
    luahost.outs(table.concat(lines, "\n") .. "\n" .. table.concat(probes))
    luahost.printf("nodes %d deepest %d truncated %d total %d\n", t.n, deepest, p.truncated, p.total)
end)
]=]

-- Runs the script on guest NAME; returns QEMU's result, the tool's edges
-- ("caller callee" = calls), the tree's shape, and the stacks at probe.
local function run(name, arch, guest_args)
    local r = helper.run_lua(arch, SCRIPT, helper.guest(name, arch), { guest_args = guest_args })
    local tool = {}
    for caller, callee, n in r.report:gmatch("edge (%S+) (%S+) (%d+)") do
        tool[caller .. " " .. callee] = tonumber(n)
    end
    local shape = {}
    for k, v in r.report:gmatch("(%a+) (%d+)") do
        shape[k] = tonumber(v)
    end
    local probes = {}
    for stack in r.report:gmatch("stack at probe (%S+)") do
        probes[#probes + 1] = stack
    end
    return r, tool, shape, probes
end

-- Every edge the program printed has the program's count in the tool's
-- edges; returns the program's edges ("caller callee" = calls).
local function assert_program_edges(stdout, tool)
    local program = {}
    for caller, callee, n in stdout:gmatch("edge (%S+) (%S+) (%d+)") do
        local key = caller .. " " .. callee
        program[key] = tonumber(n)
        assert.are.equal(program[key], tool[key], key .. "\n" .. stdout)
    end
    return program
end

-- The number of entries in a table.
local function size(t)
    local n = 0
    for _ in pairs(t) do
        n = n + 1
    end
    return n
end

describe("call stacks", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("count every call edge the program counts, on 8 threads (" .. arch .. ") #threads", function()
            local r, tool, shape = run("calls", arch, { "1000", "8" })
            assert.are.equal(13, size(assert_program_edges(r.stdout, tool)), r.stdout)  -- calls.c's edges, all seen
            assert.are.equal(0, shape.truncated, r.report)
        end)

        it("neither drift nor grow over a million calls (" .. arch .. ")", function()
            local _, tool_small, small = run("calls", arch, { "2000", "0" })
            local _, tool_big, big = run("calls", arch, { "150000", "0" })
            assert.are.equal(150000, tool_big["worker loop_target"])
            assert.are.equal(2000, tool_small["worker loop_target"])
            assert.are.equal(0, big.truncated)
            -- the same contexts whatever the number of calls: nothing drifts deeper
            assert.are.equal(small.nodes, big.nodes)
            assert.are.equal(small.deepest, big.deepest)
            assert.is_true(big.deepest < 40, "deepest " .. big.deepest)
        end)
    end

    for _, arch in ipairs(helper.arches) do
        it("count every edge of C++ exceptions through frames, on 4 threads (" .. arch .. ") #threads", function()
            if not helper.read(helper.guest("throws", arch)) then
                pending("no throws-" .. arch .. ": this build found no g++ for it (tools/setup installs it)")
                return
            end
            local r, tool, shape = run("throws", arch, { "1000", "4" })
            local program = assert_program_edges(r.stdout, tool)
            assert.are.equal(8, size(program), r.stdout)    -- throws.cc's edges, all seen
            assert.are.equal(0, shape.truncated, r.report)
            -- the unwinder's calls, in the frame that threw or was unwound
            local dive_throws = program["worker dive"] + program["relay dive"]
            assert.are.equal(dive_throws, tool["dive __cxa_throw"], r.report)
            assert.are.equal(program["worker local_catch"], tool["local_catch __cxa_throw"], r.report)
            assert.are.equal(program["worker relay"], tool["relay __cxa_rethrow"], r.report)
            assert.are.equal(program["dive unwound"], tool["dive _Unwind_Resume"], r.report)
            assert.are.equal(dive_throws + program["worker local_catch"], tool["__cxa_throw _Unwind_RaiseException"])
            assert.are.equal(tonumber(r.stdout:match("throws (%d+)")),
                tool["__cxa_throw _Unwind_RaiseException"] + tool["relay __cxa_rethrow"])
        end)

        it("keep the stack where it was across 10^5 throws (" .. arch .. ")", function()
            if not helper.read(helper.guest("throws", arch)) then
                pending("no throws-" .. arch .. ": this build found no g++ for it (tools/setup installs it)")
                return
            end
            local _, tool_small, small, probes_small = run("throws", arch, { "1000", "0" })
            local r, tool_big, big, probes_big = run("throws", arch, { "25000", "0" })
            assert.is_true(tonumber(r.stdout:match("throws (%d+)")) >= 100000, r.stdout)
            assert_program_edges(r.stdout, tool_big)
            assert.are.equal(25000, tool_big["worker dive"])
            assert.are.equal(1000, tool_small["worker dive"])
            -- probe, before the loop and after it: the same stack, main's call of worker's
            assert.are.equal(2, #probes_big, r.report)
            assert.matches(";main;worker;probe$", probes_big[1])
            assert.are.equal(probes_big[1], probes_big[2])
            assert.are.same(probes_small, probes_big)
            -- the same contexts whatever the number of throws
            assert.are.equal(0, big.truncated)
            assert.are.equal(small.nodes, big.nodes)
            assert.are.equal(small.deepest, big.deepest)
        end)
    end

    for _, arch in ipairs(helper.arches) do
        it("count the calls of signal handlers, and lose no frame to siglongjmp (" .. arch .. ")", function()
            local _, _, small, probes_small = run("signals", arch, { "100", "0" })
            local r, tool, big, probes = run("signals", arch, { "10000", "0" })
            assert.are.equal(10, size(assert_program_edges(r.stdout, tool)), r.stdout)  -- signals.c's edges
            -- each run of a handler is a context of its own, under what it interrupted
            local checked = 0
            for handler, n in r.stdout:gmatch("handled (%S+) (%d+)") do
                local calls = 0
                for key, c in pairs(tool) do
                    if key:match(" (%S+)$") == handler then
                        calls = calls + c
                    end
                end
                assert.are.equal(tonumber(n), calls, handler .. "\n" .. r.report)
                checked = checked + 1
            end
            assert.are.equal(3, checked, r.stdout)
            -- probe, before and after: the same stack; the tree as small after 10000 iterations as after 100
            assert.are.equal(2, #probes, r.report)
            assert.matches(";main;worker;probe$", probes[1])
            assert.are.equal(probes[1], probes[2])
            assert.are.same(probes_small, probes)
            assert.are.equal(0, big.truncated)
            assert.are.equal(small.nodes, big.nodes)
            assert.are.equal(small.deepest, big.deepest)
        end)

        it("count every edge while a timer's signals come anywhere, calls included (" .. arch .. ")", function()
            local r, tool, _, probes = run("signals", arch, { "10", "100" })
            assert.are.equal(17, size(assert_program_edges(r.stdout, tool)), r.stdout)  -- with timed's
            -- 100, or one more that came before the timer was stopped
            local handled = tonumber(r.stdout:match("handled on_alrm (%d+)"))
            assert.is_true(handled >= 100, r.stdout)
            local calls = 0
            for key, c in pairs(tool) do
                if key:match(" on_alrm$") then
                    calls = calls + c
                end
            end
            assert.are.equal(handled, calls, r.report)
            assert.are.equal(2, #probes, r.report)
            assert.are.equal(probes[1], probes[2])
        end)
    end

    it("count every call edge a bare-metal guest counts, on two vCPUs in system mode", function()
        local guest = helper.system_guest("calls", "aarch64")
        local outfile = helper.tmpname()
        local r = helper.qemu_system({ helper.luahost_plugin(helper.lua_file(SCRIPT),
            { "outfile=" .. outfile, "symbols=" .. guest }) }, guest)
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("\ncalls done\n$", r.stdout)
        local report = helper.read(outfile) or ""
        local tool = {}
        for caller, callee, n in report:gmatch("edge (%S+) (%S+) (%d+)") do
            tool[caller .. " " .. callee] = tonumber(n)
        end
        assert.are.equal(8, size(assert_program_edges(r.stdout, tool)), r.stdout)     -- calls.c's edges
        -- probe, twice on each vCPU: called by work, called by each CPU's C entry
        local probes = {}
        for stack in report:gmatch("stack at probe (%S+)") do
            probes[#probes + 1] = stack
        end
        table.sort(probes)
        assert.are.same({ "start;work;probe", "start;work;probe", "start_cpu1;work;probe", "start_cpu1;work;probe" },
            probes)
    end)

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
