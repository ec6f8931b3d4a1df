-- Nothing is lost under load (issue 15): 8 guest threads run a block 10^6
-- times in all while callbacks on it raise errors under on_error=disable.
-- Every event is counted (the guest's own definition: counted_loop's head
-- runs THREADS * ITERS times), the error summary counts exactly the
-- errors raised, and the exit status is the one on_error=disable defines.
local helper = require("helper")

local THREADS, ITERS = 8, 125000

local SCRIPT = [[
local opt = luahost.args { head = luahost.args.u64(0) }
local inline_count = luahost.scoreboard()
local called, raised = 0, 0        -- the host lock orders these updates
luahost.on_tb_translate(function(tb)
    if tb:vaddr() ~= opt.head then
        return
    end
    tb:inline("add", inline_count, 1)
    tb:on_exec(function() called = called + 1 end)
    tb:on_exec(function(vcpu)
        raised = raised + 1
        error("failed on vcpu " .. vcpu)
    end)
    %s
end)
luahost.on_exit(function()
    luahost.printf("inline=%%d called=%%d raised=%%d\n", inline_count:sum(), called, raised)
end)
]]

-- A memory callback on the loop's first instruction that raises too (the
-- x86_64 head, sub $1, %rdi, touches no memory: this one never runs;
-- aarch64 likewise). It is there so that the run has a second disabled
-- function that is never called: the summary must not count it.
local EXTRA = [[tb:insn(1):on_mem(function() raised = raised + 1 error("mem") end)]]

-- 64 functions of distinct definitions (each a chunk of its own name), each
-- disabled on its first error: 64 errors from whichever threads get there.
local MANY = [[for i = 1, 64 do
        tb:on_exec(load("local raised_by = ... return function() raised_by() error('fn') end",
            "=fn" .. i)(function() raised = raised + 1 end))
    end]]

describe("under load, with 8 guest threads", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it(("counts every event and every error under on_error=disable (%s)"):format(arch), function()
            local guest = helper.guest("threads", arch)
            local head = helper.nm(guest, "hot_loop_head")
            local r = helper.run_lua(arch, SCRIPT:format(EXTRA), guest, {
                args = { ("head=0x%x"):format(head), "on_error=disable" },
                guest_args = { tostring(THREADS), tostring(ITERS) },
                status = false,
            })
            assert.are.equal(1, r.status, r.stderr)       -- on_error=disable with errors: 1
            local inline, called, raised = r.report:match("inline=(%d+) called=(%d+) raised=(%d+)")
            assert.are.equal(THREADS * ITERS, tonumber(inline), r.report)
            assert.are.equal(THREADS * ITERS, tonumber(called), r.report)
            local errors = r.stderr:match("(%d+) callback error%(s%) in this run")
            assert.are.equal(tonumber(raised), tonumber(errors), r.stderr)
            assert.is_true(tonumber(raised) >= 1)
            local _, messages = r.stderr:gsub("error in tb exec callback[^\n]*: failed on vcpu %d+", "")
            assert.are.equal(tonumber(raised), messages, r.stderr)
            assert.is_nil(r.stderr:find("SIG", 1, true))
        end)

        it(("counts 64 errors from 64 functions raised at once (%s)"):format(arch), function()
            local guest = helper.guest("threads", arch)
            local r = helper.run_lua(arch, SCRIPT:format(MANY), guest, {
                args = { ("head=0x%x"):format(helper.nm(guest, "hot_loop_head")), "on_error=disable" },
                guest_args = { tostring(THREADS), tostring(ITERS) },
                status = false,
            })
            assert.are.equal(1, r.status, r.stderr)
            local inline, called, raised = r.report:match("inline=(%d+) called=(%d+) raised=(%d+)")
            assert.are.equal(THREADS * ITERS, tonumber(inline), r.report)
            assert.are.equal(THREADS * ITERS, tonumber(called), r.report)
            -- the first tb exec callback raises on its first call too
            assert.are.equal(65, tonumber(raised), r.report)
            assert.matches("\nluahost: 65 callback error%(s%) in this run", r.stderr)
        end)
    end
end)
