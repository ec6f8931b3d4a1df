-- Conditional callbacks and 64-bit exactness of scoreboards and inline
-- ops. The guest's counted loop (tests/guests/counted_loop.h) executes
-- its head block exactly N times; an inline op on the block's last
-- instruction counts the iterations, so the callbacks at the block's
-- start see the values 0 .. N-1, and each condition fires as often as
-- its comparison holds over those values.
local helper = require("helper")

local N = 1000

local SCRIPT = [[
local opt = luahost.args { head = 0, imm = "small" }
local ffi = jit and require("ffi")
local BIG = jit and ffi.new("uint64_t", 2^53) + 1 or math.tointeger(2^53) + 1
local imm = opt.imm == "big" and BIG or tonumber(opt.imm)
local CONDS = { "eq", "ne", "lt", "le", "gt", "ge", "always", "never" }
local count = luahost.scoreboard()
local fired = { tb = {}, insn = {} }
local function counter(where, cond)
    fired[where][cond] = 0
    return function(vcpu) fired[where][cond] = fired[where][cond] + 1 end
end
luahost.on_tb_translate(function(tb)
    if tb:vaddr() ~= opt.head then return end
    assert(#tb >= 2, "the loop head block has its branch as last instruction")
    tb:insn(#tb):inline("add", count, 1)
    for _, cond in ipairs(CONDS) do
        tb:on_exec_if(count, cond, imm, counter("tb", cond))
        tb:insn(1):on_exec_if(count, cond, imm, counter("insn", cond))
    end
end)
luahost.on_exit(function()
    luahost.printf("count %d\n", count:sum())
    for _, where in ipairs({ "tb", "insn" }) do
        for _, cond in ipairs(CONDS) do
            luahost.printf("%s %s %d\n", where, cond, fired[where][cond] or 0)
        end
    end
end)
]]

-- How often each condition holds for the values 0 .. n-1 against m.
local function expected(n, m)
    local e = { always = n, never = 0, eq = 0, ne = 0, lt = 0, le = 0, gt = 0, ge = 0 }
    for v = 0, n - 1 do
        e.eq = e.eq + (v == m and 1 or 0)
        e.ne = e.ne + (v ~= m and 1 or 0)
        e.lt = e.lt + (v < m and 1 or 0)
        e.le = e.le + (v <= m and 1 or 0)
        e.gt = e.gt + (v > m and 1 or 0)
        e.ge = e.ge + (v >= m and 1 or 0)
    end
    return e
end

describe("conditional callbacks", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, imm in ipairs({ "0", "1", "500", "999", "1000", "5000", "big" }) do
            it("fire on tb and insn as each condition holds, imm=" .. imm .. " (" .. arch .. ")", function()
                local guest = helper.guest("loop", arch)
                local head = helper.hot_loop_head(helper.qemu(arch, {}, guest, { "1" }).stdout)
                local r = helper.run_lua(arch, SCRIPT, guest, {
                    args = { "head=" .. head, "imm=" .. imm }, guest_args = { tostring(N) },
                })
                assert.are.equal(N, tonumber(r.report:match("count (%d+)")), r.report)
                local m = imm == "big" and math.tointeger(2 ^ 53) + 1 or tonumber(imm)
                for cond, times in pairs(expected(N, m)) do
                    for _, where in ipairs({ "tb", "insn" }) do
                        assert.are.equal(times, tonumber(r.report:match(where .. " " .. cond .. " (%d+)")),
                            where .. " " .. cond)
                    end
                end
            end)
        end
    end
end)

describe("scoreboards", function()
    after_each(helper.cleanup)

    it("hold values at and above 2^53 exactly, and add inline modulo 2^64", function()
        local guest = helper.guest("loop", "x86_64")
        local head = helper.hot_loop_head(helper.qemu("x86_64", {}, guest, { "1" }).stdout)
        local r = helper.run_lua("x86_64", [[
local opt = luahost.args { head = 0 }
local ffi = jit and require("ffi")
-- an exact u64 in either Lua build (LuaJIT cannot parse Lua 5.4's <<)
local join = jit and function(hi, lo) return ffi.new("uint64_t", hi) * 2^32 + lo end
    or load("return function(hi, lo) return hi << 32 | lo end")()
local function u64(hex)
    return join(tonumber(hex:sub(1, 8), 16), tonumber(hex:sub(9), 16))
end
local board = luahost.scoreboard { "a", "b", "c", "steps" }
local STEP = u64("0020000000000001")   -- 2^53 + 1
luahost.on_tb_translate(function(tb)
    if tb:vaddr() == opt.head then tb:inline("add", board.steps, STEP) end
end)
luahost.on_vcpu_init(function(vcpu)
    board.a:set(vcpu, u64("0020000000000000"))
    board.b:set(vcpu, u64("0020000000000001"))
    board.c:set(vcpu, u64("ffffffffffffffff"))
    board.c:add(vcpu, 2)
    local row = board:find(vcpu)
    row.a = row.a + 2
    local ok, err = pcall(function() return row.nofield end)
    luahost.printf("row: %s\n", err)
end)
luahost.on_exit(function()
    luahost.printf("a %x b %x c %x steps %x\n", board.a:get(0), board.b:get(0), board.c:get(0),
        board.steps:sum())
    luahost.printf("b exact: %s\n", tostring(board.b:get(0) == u64("0020000000000001")))
end)
]], guest, { args = { "head=" .. head }, guest_args = { tostring(N) } })
        local steps = N * (math.tointeger(2 ^ 53) + 1)   -- wraps like the u64 slot
        assert.is_truthy(r.report:find(("a 20000000000002 b 20000000000001 c 1 steps %x\n"):format(steps), 1, true),
            r.report)
        assert.is_truthy(r.report:find("b exact: true\n", 1, true))
        assert.is_truthy(r.report:find("row: [^\n]*%.lua:%d+: no field nofield in this scoreboard\n"), r.report)
    end)

    it("refuse reserved and repeated field names", function()
        local r = helper.run_lua("x86_64", [[
for _, fields in ipairs({ { "find" }, { "a", "a" }, { 1 } }) do
    local ok, err = pcall(luahost.scoreboard, fields)
    luahost.printf("%s\n", err)
end
]], helper.guest("loop", "x86_64"), { guest_args = { "1" } })
        local _, n = r.report:gsub("luahost.scoreboard: field name [^\n]* is not a string, reserved or repeated\n", "")
        assert.are.equal(3, n, r.report)
    end)
end)
