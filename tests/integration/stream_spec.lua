-- Event streams (luahost.stream): what C records and Lua reads in batches
-- is every event, in each vCPU's order, with the values QEMU reports.
-- Oracles: QEMU's libmem.so in the same run for accesses, QEMU's inline
-- counters in the same run for counts, and the translated blocks' own
-- instruction lists for order.
local helper = require("helper")

local STREAM_ACCESSES = helper.read(helper.test_script("stream_accesses.lua"))

local function libmem(args)
    return helper.c_plugin("tests/tcg/plugins/libmem.so") .. "," .. args
end

-- Counts per vCPU and kind from the stream, next to inline counters of the
-- same events; coalesced events are counted by the stream, not delivered.
-- Also checks order: a tb event is followed by its instructions' events,
-- each at the end of the one before (the first at the tb's pc), and a
-- memory event comes after its instruction's exec event.
local COUNTS = [==[
local opt = luahost.args { capacity = 4096, mem_block = 0 }
local kinds = { [luahost.TB] = "tb", [luahost.INSN] = "insn", [luahost.LOAD] = "load", [luahost.STORE] = "store" }
local counted = {}      -- counted[vcpu][kind]
local state = {}        -- per vCPU: insns still expected after a tb, last insn pc
local at_exit = {}      -- the stream's count when the vCPU exited, per exit
local bad = {}
local board = luahost.scoreboard { "tb", "insn", "load", "store" }

local function on_batch(vcpu, batch)
    local c = counted[vcpu] or { tb = 0, insn = 0, load = 0, store = 0 }
    counted[vcpu] = c
    local st = state[vcpu] or { left = 0 }
    state[vcpu] = st
    local kind, pcs, sizes, addrs = batch.kind, batch.pc, batch.size, batch.addr
    for i = 1, batch.n do
        local k = kinds[kind[i]]
        c[k] = c[k] + 1
        local pc = pcs[i]
        if k == "tb" then
            if st.left ~= 0 then bad[#bad + 1] = "a tb before the previous one's instructions" end
            st.left, st.next_pc = sizes[i], pc
        elseif k == "insn" then
            if st.left <= 0 or pc ~= st.next_pc then
                bad[#bad + 1] = ("insn 0x%x out of order"):format(tonumber(pc))
            end
            st.left, st.next_pc, st.last_pc = st.left - 1, pc + sizes[i], pc
        elseif pc ~= st.last_pc then
            bad[#bad + 1] = ("access of 0x%x after insn 0x%x"):format(tonumber(pc), tonumber(st.last_pc or 0))
        end
        if (k == "tb" or k == "insn") and addrs[i] ~= pc then bad[#bad + 1] = "exec addr is not the pc" end
    end
end

local stream = luahost.stream { on_batch = on_batch, capacity = opt.capacity,
    coalesce = opt.mem_block > 0 and { mem = opt.mem_block } or nil }

luahost.on_tb_translate(function(tb)
    stream:exec(tb)
    tb:inline("add", board.tb, 1)
    for _, insn in tb:insns() do
        stream:exec(insn)
        stream:mem(insn)
        insn:inline("add", board.insn, 1)
        insn:mem_inline("add", board.load, 1, "r")
        insn:mem_inline("add", board.store, 1, "w")
    end
end)

luahost.on_vcpu_exit(function(vcpu)
    local c = counted[vcpu] or { insn = 0 }
    at_exit[#at_exit + 1] = ("%d %d %d"):format(vcpu, c.insn, board.insn:get(vcpu))
end)

luahost.on_exit(function()
    for vcpu = 0, luahost.num_vcpus() - 1 do
        local c = counted[vcpu] or { tb = 0, insn = 0, load = 0, store = 0 }
        local exec, mem = stream:coalesced(vcpu)
        luahost.printf("vcpu %d tb %d/%d insn %d/%d mem %d/%d\n", vcpu, c.tb, board.tb:get(vcpu),
            c.insn, board.insn:get(vcpu), c.load + c.store + mem, board.load:get(vcpu) + board.store:get(vcpu))
    end
    for _, line in ipairs(at_exit) do
        luahost.printf("exit %s\n", line)
    end
    luahost.printf("bad %d %s\n", #bad, bad[1] or "")
end)
]==]

-- Two streams of the same events: one whole, one coalesced per set (a
-- non-power-of-two number of sets for accesses). The whole one's events,
-- put through the rule here, must be the coalesced one's, in the same
-- order (compared by a running hash and a count), and the events the rule
-- drops the coalesced one's counts.
local SETS = [==[
local RULE = { exec = { block = 64, sets = 32 }, mem = { block = 64, sets = 24 } }
local CLASS = { [luahost.TB] = "exec", [luahost.INSN] = "exec", [luahost.LOAD] = "mem", [luahost.STORE] = "mem" }
local expected, got, dropped, last = {}, {}, {}, {}

local function hash(h, kind, addr)
    return (h * 1000003 + addr * 4 + kind) % 2147483647
end

local function on_whole(vcpu, batch)
    local e = expected[vcpu] or { n = 0, h = 0 }
    local d = dropped[vcpu] or { exec = 0, mem = 0 }
    local l = last[vcpu] or { exec = {}, mem = {} }
    expected[vcpu], dropped[vcpu], last[vcpu] = e, d, l
    for i = 1, batch.n do
        local kind, addr = tonumber(batch.kind[i]), tonumber(batch.addr[i])
        local class = CLASS[kind]
        local number = math.floor(addr / RULE[class].block)
        local set = number % RULE[class].sets
        if l[class][set] == number then
            d[class] = d[class] + 1
        else
            l[class][set] = number
            e.n, e.h = e.n + 1, hash(e.h, kind, addr)
        end
    end
end

local function on_coalesced(vcpu, batch)
    local g = got[vcpu] or { n = 0, h = 0 }
    got[vcpu] = g
    for i = 1, batch.n do
        g.n, g.h = g.n + 1, hash(g.h, tonumber(batch.kind[i]), tonumber(batch.addr[i]))
    end
end

local whole = luahost.stream { on_batch = on_whole }
local coalesced = luahost.stream { on_batch = on_coalesced, coalesce = { exec = RULE.exec.block,
    exec_sets = RULE.exec.sets, mem = RULE.mem.block, mem_sets = RULE.mem.sets } }
luahost.on_tb_translate(function(tb)
    whole:exec(tb)
    coalesced:exec(tb)
    for _, insn in tb:insns() do
        whole:exec(insn)
        whole:mem(insn)
        coalesced:exec(insn)
        coalesced:mem(insn)
    end
end)

luahost.on_exit(function()
    for vcpu = 0, luahost.num_vcpus() - 1 do
        local e, g, d = expected[vcpu], got[vcpu], dropped[vcpu]
        local exec, mem = coalesced:coalesced(vcpu)
        luahost.printf("vcpu %d expected %d %d got %d %d dropped %d %d coalesced %s %s\n", vcpu, e.n, e.h,
            g.n, g.h, d.exec, d.mem, exec, mem)
    end
end)
]==]

-- stream:insns against the per-instruction registrations it stands for:
-- a second stream gets stream:exec(tb), and stream:exec(insn, id) and
-- stream:mem(insn, id) per instruction, with ids numbered here by first-
-- seen address. Its events, less the executions stream:insns merges (an
-- instruction in the same 16-byte block as the one before it in its
-- block), must be stream:insns' events in the same order, the merged
-- ones its coalesced count, and every execution QEMU's inline counter
-- counts one of the two. The iterator must give each new id once, in
-- order, with its address, and stream:insn each id's address, bytes,
-- QEMU's symbol and guest address as the instruction's handle gave them.
local INSNS = [==[
local BLOCK = 16
local KIND_NAMES = { [luahost.INSN] = "insn", [luahost.LOAD] = "mem", [luahost.STORE] = "mem" }
local id_of, ids = {}, 0
local kept = {}     -- kept[id]: what stream:insn(id) must give
local board = luahost.scoreboard()
local expected, got, merged, prev = {}, {}, {}, {}
local bad = {}

local function hash(h, kind, id, addr, size)
    h = (h * 1000003 + addr % 1000000007) % 2147483647
    return (h * 31 + (id * 4 + kind) * 17 + size) % 2147483647
end

local function on_whole(vcpu, batch)
    local e = expected[vcpu] or { n = 0, h = 0 }
    expected[vcpu] = e
    merged[vcpu] = merged[vcpu] or 0
    for i = 1, batch.n do
        local kind, addr = tonumber(batch.kind[i]), tonumber(batch.addr[i])
        if kind == luahost.TB then
            prev[vcpu] = nil
        elseif kind == luahost.INSN and prev[vcpu] == math.floor(addr / BLOCK) then
            merged[vcpu] = merged[vcpu] + 1
        else
            if kind == luahost.INSN then prev[vcpu] = math.floor(addr / BLOCK) end
            e.n, e.h = e.n + 1, hash(e.h, kind, tonumber(batch.id[i]), addr, tonumber(batch.size[i]))
        end
    end
end

local function on_insns(vcpu, batch)
    local g = got[vcpu] or { n = 0, h = 0, insn = 0 }
    got[vcpu] = g
    for i = 1, batch.n do
        local kind = tonumber(batch.kind[i])
        if not KIND_NAMES[kind] then bad[#bad + 1] = "kind " .. kind end
        if kind == luahost.INSN then g.insn = g.insn + 1 end
        g.n, g.h = g.n + 1, hash(g.h, kind, tonumber(batch.id[i]), tonumber(batch.addr[i]),
            tonumber(batch.size[i]))
    end
end

local whole = luahost.stream { on_batch = on_whole, capacity = 1000 }
local insns = luahost.stream { on_batch = on_insns, capacity = 777 }

luahost.on_tb_translate(function(tb)
    local new = {}
    for id, insn, addr in insns:insns(tb, BLOCK) do
        new[#new + 1] = ("%d 0x%x"):format(id, tonumber(addr))
        if addr ~= insn:vaddr() then bad[#bad + 1] = "address of id " .. id end
        kept[id] = { addr, insn:data(), insn:qemu_symbol() }
    end
    local mine = {}
    whole:exec(tb)
    for _, insn in tb:insns() do
        local addr = insn:vaddr()
        if not id_of[addr] then
            ids = ids + 1
            id_of[addr] = ids
            mine[#mine + 1] = ("%d 0x%x"):format(ids, tonumber(addr))
        end
        whole:exec(insn, id_of[addr])
        whole:mem(insn, id_of[addr])
        insn:inline("add", board, 1)
    end
    if table.concat(new, ",") ~= table.concat(mine, ",") then
        bad[#bad + 1] = "new ids " .. table.concat(new, ",") .. " against " .. table.concat(mine, ",")
    end
end)

luahost.on_exit(function()
    for vcpu = 0, luahost.num_vcpus() - 1 do
        local e, g = expected[vcpu] or { n = 0, h = 0 }, got[vcpu] or { n = 0, h = 0, insn = 0 }
        local exec = insns:coalesced(vcpu)
        luahost.printf("vcpu %d expected %d %d got %d %d merged %d coalesced %s executed %d/%s\n", vcpu,
            e.n, e.h, g.n, g.h, merged[vcpu] or 0, exec, g.insn + exec, board:get(vcpu))
    end
    local entry     -- counted_loop's first instruction, by QEMU's symbols
    for id = 1, insns:numbered() do
        local addr, data, symbol, vaddr = insns:insn(id)
        local k = kept[id]
        if addr ~= k[1] or data ~= k[2] or symbol ~= k[3] or vaddr ~= addr then
            bad[#bad + 1] = "stream:insn(" .. id .. ")"
        end
        if symbol == "counted_loop" and not (entry and entry < vaddr) then
            entry = vaddr
        end
    end
    luahost.printf("ids %d numbered %d counted_loop 0x%x\n", ids, insns:numbered(), entry or 0)
    luahost.printf("ids %d bad %d %s\n", ids, #bad, bad[1] or "")
end)
]==]

local function check_counts(report, vcpus)
    local rows = 0
    for vcpu, tb, tb_inline, insn, insn_inline, mem, mem_inline in
            report:gmatch("vcpu (%d+) tb (%d+)/(%d+) insn (%d+)/(%d+) mem (%d+)/(%d+)\n") do
        rows = rows + 1
        assert.are.equal(tb_inline, tb, "tb events of vCPU " .. vcpu)
        assert.are.equal(insn_inline, insn, "insn events of vCPU " .. vcpu)
        assert.are.equal(mem_inline, mem, "memory events of vCPU " .. vcpu)
        assert.is_true(tonumber(insn) > 0)
    end
    assert.is_true(rows >= vcpus, report)
    -- delivered at vCPU exit: when a thread's vCPU exits, the stream has
    -- seen every instruction QEMU counted for that vCPU index so far
    for vcpu, streamed, inline in report:gmatch("exit (%d+) (%d+) (%d+)\n") do
        assert.are.equal(inline, streamed, "at the exit of vCPU " .. vcpu)
    end
    assert.matches("\nbad 0 \n", "\n" .. report, 1, true)
end

describe("event streams", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("deliver every access as libmem.so sees it, in order, with values (" .. arch .. ")", function()
            for _, capacity in ipairs({ "4096", "7" }) do
                local r = helper.run_lua(arch, STREAM_ACCESSES, helper.guest("api", arch), {
                    args = { "capacity=" .. capacity },
                    plugins = { libmem("print-accesses=on") },
                    guest_args = { "50" },
                })
                local theirs = r.log:match("insn_vaddr,.*")
                assert.is_truthy(theirs, r.log)
                assert.is_true(#r.report > 1000)
                assert.are.equal(theirs, r.report)
            end
        end)

        it("keep loads and stores apart as asked (" .. arch .. ")", function()
            local r = helper.run_lua(arch, STREAM_ACCESSES, helper.guest("api", arch), {
                args = { "track=w" }, plugins = { libmem("print-accesses=on,track=w") }, guest_args = { "20" },
            })
            assert.are.equal(r.log:match("insn_vaddr,.*"), r.report)
            assert.is_nil(r.report:find(",load,", 1, true))
        end)

        it("count exactly what inline counters count, in order, on 8 threads (" .. arch .. ") #threads", function()
            for _, capacity in ipairs({ "4096", "13" }) do
                local r = helper.run_lua(arch, COUNTS, helper.guest("threads", arch), {
                    args = { "capacity=" .. capacity }, guest_args = { "8", "20000" },
                })
                check_counts(r.report, 2)
            end
        end)

        it("coalesce accesses to the previous block, counting them (" .. arch .. ")", function()
            local r = helper.run_lua(arch, COUNTS, helper.guest("memtraffic", arch), {
                args = { "mem_block=64" },
            })
            check_counts(r.report, 1)
        end)

        it("coalesce per set exactly as the rule says, in order (" .. arch .. ")", function()
            local r = helper.run_lua(arch, SETS, helper.guest("memtraffic", arch))
            local vcpu, en, eh, gn, gh, de, dm, ce, cm = r.report:match(
                "vcpu (%d+) expected (%d+) (%d+) got (%d+) (%d+) dropped (%d+) (%d+) coalesced (%d+) (%d+)\n")
            assert.are.equal("0", vcpu, r.report)
            assert.are.equal(en, gn, "events delivered")
            assert.are.equal(eh, gh, "the events delivered, in order")
            assert.are.equal(de, ce, "executions coalesced")
            assert.are.equal(dm, cm, "accesses coalesced")
            assert.is_true(tonumber(de) > 0 and tonumber(dm) > 0 and tonumber(en) > 0, r.report)
        end)

        it("register every instruction with ids by address in one call: stream:insns (" .. arch .. ") #threads",
                function()
            local r = helper.run_lua(arch, INSNS, helper.guest("threads", arch), { guest_args = { "4", "20000" } })
            local rows = 0
            for vcpu, en, eh, gn, gh, merged, coalesced, executed, inline in r.report:gmatch(
                    "vcpu (%d+) expected (%d+) (%d+) got (%d+) (%d+) merged (%d+) coalesced (%d+) "
                    .. "executed (%d+)/(%d+)\n") do
                rows = rows + 1
                assert.are.equal(en, gn, "events of vCPU " .. vcpu)
                assert.are.equal(eh, gh, "the events of vCPU " .. vcpu .. ", in order")
                assert.are.equal(merged, coalesced, "executions merged on vCPU " .. vcpu)
                assert.are.equal(inline, executed, "executions of vCPU " .. vcpu)
                assert.is_true(tonumber(gn) > 0 and tonumber(merged) > 0, r.report)
            end
            assert.is_true(rows >= 2, r.report)
            assert.matches("\nids %d+ bad 0 \n", "\n" .. r.report)
            local ids, numbered, entry = r.report:match("\nids (%d+) numbered (%d+) counted_loop 0x(%x+)\n")
            assert.are.equal(ids, numbered)
            assert.are.equal(helper.nm(helper.guest("threads", arch), "counted_loop"), tonumber(entry, 16))
        end)
    end

    it("give physical addresses and devices in system mode as libmem.so does", function()
        -- two vCPUs: lines interleave by batch here, by access there
        helper.assert_system_accesses_as_libmem(STREAM_ACCESSES, { "capacity=100" })
    end)
end)

describe("stream misuse", function()
    after_each(helper.cleanup)

    local function fails(source, message, opts)
        opts = opts or {}
        local r = helper.run_lua("x86_64", source, helper.guest("loop", "x86_64"),
            { status = false, args = opts.args })
        assert.are_not.equal(0, r.status, "qemu should fail")
        assert.matches(message, r.stderr, 1, true)
        return r
    end

    it("names the script line of a bad option", function()
        fails("luahost.stream { on_batch = print, capacity = 0 }",
            ":1: luahost.stream: capacity must be an integer from 1 to 2^24, got 0")
        fails("luahost.stream { on_batch = print, coalesce = { mem = 48 } }",
            ":1: luahost.stream: coalesce takes exec = and mem = block sizes, powers of two, "
            .. "and exec_sets = and mem_sets = counts; got mem = 48")
        fails("luahost.stream { on_batch = print, coalesce = { mem = 64, mem_sets = 0 } }",
            ":1: luahost.stream: coalesce mem_sets must be an integer from 1 to 65536, got 0")
        fails("luahost.stream { on_batch = print, coalesce = { exec_sets = 4 } }",
            ":1: luahost.stream: coalesce exec_sets needs exec = (a block size)")
        fails("luahost.stream { on_batch = print, size = 1 }", ":1: luahost.stream: unknown option size")
        fails("luahost.stream { }", ":1: luahost.stream: option on_batch (a function) is required")
        fails("local s = luahost.stream { on_batch = print }\nluahost.on_tb_translate(function(tb) s:exec(tb, -1) end)",
            ":2: bad argument #2 to 'exec' (id must be an integer from 0 to 2^32 - 1)")
        local made = "local s = luahost.stream { on_batch = print }\n"
        fails(made .. "luahost.on_tb_translate(function(tb) s:insns(tb, 48) end)",
            ":2: bad argument #2 to 'insns' (block must be a power of two)")
        fails(made .. "luahost.on_tb_translate(function(tb) s:insns(tb:insn(1)) end)",
            ":2: bad argument #1 to 'insns' (luahost.tb expected, got ")
        fails(made .. "luahost.on_exit(function() assert(s:numbered() == 0) s:insn(1) end)",
            ":2: bad argument #1 to 'insn' (not an id stream:insns gave (it numbered 0, from 1))")
        fails(made .. "luahost.on_tb_translate(function(tb) s:insns(tb) end)\n"
            .. "luahost.on_exit(function() s:insn(s:numbered() + 1) end)",
            ":3: bad argument #1 to 'insn' (not an id stream:insns gave (it numbered ")
        fails(made .. "luahost.on_exit(function() s:insn('one') end)",
            ":2: bad argument #1 to 'insn' (number expected, got string)")
        fails([[
local s, later = luahost.stream { on_batch = print }
luahost.on_tb_translate(function(tb) later = later or s:insns(tb) end)
luahost.on_exit(function()
    later(nil, 0)
end)
]], ":4: attempt to use a tb handle after the callback that provided it returned")
    end)

    it("refuses a batch used after its on_batch returned, naming the line", function()
        fails([[
local kept
local s = luahost.stream { on_batch = function(vcpu, batch) kept = batch end }
luahost.on_tb_translate(function(tb) s:exec(tb) end)
luahost.on_exit(function()
    print(kept.n)
end)
]], ":5: attempt to use a stream batch after the on_batch call that received it returned")
    end)

    -- A batch smaller than the capacity follows a full one, so that the
    -- column's storage holds values past batch.n from the batch before:
    -- every 13th block flushes, mid-batch (capacity 8), once batches came.
    local PAST_N = [[
local batches, blocks, told = 0, 0, false
local s
s = luahost.stream { capacity = 8, %s on_batch = function(vcpu, batch)
    batches = batches + 1
    if batch.n < 8 and batches > 1 and not told then
        told = true
        luahost.printf("n=%%d past=%%s\n", batch.n, tostring(batch.addr[batch.n + 1]))
        luahost.printf("zero=%%s\n", tostring(batch.kind[0]))
    end
end }
luahost.on_tb_translate(function(tb)
    s:exec(tb)
    tb:on_exec(function()
        blocks = blocks + 1
        if blocks %% 13 == 0 then s:flush() end
    end)
end)
]]

    it("gives no value past batch.n: an error under LuaJIT, nil under Lua 5.4", function()
        if os.getenv("LUAHOST_FLAVOUR") == "luajit" then
            fails(PAST_N:format(""), ":7: stream batch column: index ")
            local r = fails(PAST_N:format(""), "out of range 1..")
            assert.matches("%(batch%.n%)", r.stderr)
        else
            local r = helper.run_lua("x86_64", PAST_N:format(""), helper.guest("loop", "x86_64"))
            assert.matches("n=%d past=nil\nzero=nil\n", r.report)
        end
    end)

    it("reads raw columns with unchecked = true (LuaJIT: no check at all)", function()
        local r = helper.run_lua("x86_64", PAST_N:format("unchecked = true,"), helper.guest("loop", "x86_64"))
        assert.matches("n=%d past=[%d%w]+\nzero=", r.report)
    end)

    it("refuses a column the stream does not record, naming the line", function()
        fails([[
local s = luahost.stream { on_batch = function(vcpu, batch)
    local v = batch.value
end }
luahost.on_tb_translate(function(tb) s:exec(tb) end)
]], ":2: this stream does not record value: make it with luahost.stream{ values = true, ... }")
        fails([[
local s = luahost.stream { on_batch = function(vcpu, batch)
    local v = batch.pcs
end }
luahost.on_tb_translate(function(tb) s:exec(tb) end)
]], ":2: a stream batch has no column 'pcs'")
    end)

    it("reports an error in on_batch with its traceback and stops (on_error=abort)", function()
        local r = fails([[
local s = luahost.stream { on_batch = function(vcpu, batch)
    error("boom")
end }
luahost.on_tb_translate(function(tb) s:exec(tb) end)
luahost.on_exit(function() print("exit hook ran") end)
]], "error in stream batch callback: ")
        assert.matches(":2: boom", r.stderr, 1, true)
        assert.is_nil(r.stdout:find("exit hook ran", 1, true))
        assert.are.equal(1, r.status)
    end)

    it("disables a failing stream and ends with status 1 after the exit hooks (on_error=disable)", function()
        local script = helper.lua_file([[
local calls = 0
local s = luahost.stream { capacity = 16, on_batch = function(vcpu, batch)
    calls = calls + 1
    error("boom")
end }
luahost.on_tb_translate(function(tb) s:exec(tb) end)
luahost.on_exit(function() luahost.printf("calls %d\n", calls) end)
]])
        local outfile = helper.tmpname()
        local r = helper.qemu("x86_64",
            { helper.luahost_plugin(script, { "on_error=disable", "outfile=" .. outfile }) },
            helper.guest("loop", "x86_64"))
        assert.are.equal(1, r.status)
        assert.matches("this stream batch callback is disabled", r.stderr, 1, true)
        assert.are.equal("calls 1\n", helper.read(outfile))
    end)

    it("flushes only from a callback with a vCPU", function()
        fails([[
local s = luahost.stream { on_batch = function() end }
luahost.on_exit(function() s:flush() end)
]], ":2: stream:flush() delivers the running vCPU's events: call it from a callback with a vCPU index")
    end)
end)

describe("stats=on", function()
    after_each(helper.cleanup)

    it("reports translations and streamed events at exit, even when the guest closed stderr", function()
        local r = helper.run_lua("x86_64", [[
local s = luahost.stream { on_batch = function() end }
luahost.on_tb_translate(function(tb) s:exec(tb) end)
]], helper.guest("loop", "x86_64"), { args = { "stats=on" } })
        local blocks, waited, batches, events = r.stderr:match(
            "luahost: stats: (%d+) blocks translated, [%d.]+ ms in translation hooks %([%d.]+ us per block%), "
            .. "([%d.]+) ms of it waiting for the Lua lock %([%d.]+ us per block%); "
            .. "(%d+) batches, (%d+) events streamed")
        assert.is_truthy(blocks, r.stderr)
        assert.is_true(tonumber(blocks) > 0 and tonumber(batches) > 0 and tonumber(events) > 0)
        assert.are.equal(0, tonumber(waited))     -- one thread: nobody else takes the lock
    end)

    -- The jit guest's threads each write new code and run it (tests/guests/
    -- jit.c): each run of that code holds the lock 0.5 ms, so the other
    -- threads translate theirs while one holds it.
    it("tells the translation hooks' own time from their wait for the lock #threads", function()
        local r = helper.run_lua("x86_64", [[
luahost.on_tb_translate(function(tb)
    if tb:vaddr() > 0x10000000 then     -- the code the guest writes, each thread its own
        tb:on_exec(function()
            local stop = os.clock() + 0.0005
            while os.clock() < stop do end
        end)
    end
end)
]], helper.guest("jit", "x86_64"), { args = { "stats=on" }, guest_args = { "4", "10", "16" } })
        local total, waited = r.stderr:match(
            "in translation hooks %(([%d.]+) us per block%), [%d.]+ ms of it waiting for the Lua lock %(([%d.]+) us")
        assert.is_truthy(total, r.stderr)
        assert.is_true(tonumber(waited) > 0, r.stderr)
        assert.is_true(tonumber(waited) <= tonumber(total), r.stderr)
    end)
end)
