-- 64-bit guest values read, compare and index tables the same way in both
-- Lua flavours, with no tonumber and no hex strings in the script: stream
-- columns are plain numbers where they fit, luahost.args.u64 is exact over
-- 64 bits, and under LuaJIT equal values above 2^53 are one (interned)
-- object wherever they come from.
local helper = require("helper")

local function run(arch, source, args, status)
    return helper.run_lua(arch, source, helper.guest("loop", arch),
        { args = args, guest_args = { "2000" }, status = status })
end

describe("64-bit values", function()
    for _, arch in ipairs({ "x86_64", "aarch64" }) do
        it("from a stream index tables keyed by tb:vaddr() (" .. arch .. ")", function()
            local r = run(arch, [==[
local translated, seen, missing, kinds = {}, 0, 0, {}
local stream = luahost.stream { capacity = 64, on_batch = function(_, batch)
    local pc = batch.pc
    for i = 1, batch.n do
        seen = seen + 1
        kinds[type(pc[i])] = true
        if not translated[pc[i]] or pc[i] + 0 ~= translated[pc[i]] then
            missing = missing + 1
        end
    end
end }
luahost.on_tb_translate(function(tb)
    translated[tb:vaddr()] = tb:vaddr()
    stream:exec(tb)
end)
luahost.on_exit(function()
    local names = {}
    for k in pairs(kinds) do names[#names + 1] = k end
    table.sort(names)
    luahost.printf("seen=%d missing=%d types=%s\n", seen, missing, table.concat(names, ","))
end)
]==])
            local seen, missing, types = r.report:match("seen=(%d+) missing=(%d+) types=(%S+)")
            assert.is_truthy(seen, r.report .. r.stderr)
            assert.is_true(tonumber(seen) > 1000, r.report)
            assert.are.equal("0", missing)
            assert.are.equal("number", types)
        end)
    end

    it("parse exactly to 2^64 - 1 and equal what the host hands out", function()
        local r = run("x86_64", [[
local opt = luahost.args { big = luahost.args.u64(), max = luahost.args.u64(), hex = luahost.args.u64(nil, 16) }
local board = luahost.scoreboard()
luahost.on_exit(function()
    board:set(0, opt.big)
    local keyed = { [board:get(0)] = "same" }
    luahost.printf("big=%x max=%x hex=%x keyed=%s equal=%s\n", opt.big, opt.max, opt.hex,
        tostring(keyed[opt.big]), tostring(rawequal(board:get(0), opt.big)))
end)
]], { "big=0x20000000000001", "max=18446744073709551615", "hex=FfFfFfFfFfFfFfFe" })
        assert.matches("big=20000000000001 max=ffffffffffffffff hex=fffffffffffffffe keyed=same equal=true",
            r.report, 1, true)
    end)

    it("refuse an argument wider than 64 bits, naming it", function()
        local r = run("x86_64", [[
local opt = luahost.args { addr = luahost.args.u64() }
]], { "addr=0x10000000000000000" }, false)
        assert.are_not.equal(0, r.status)
        assert.matches("unsigned 64-bit argument parsing failed (wider than 64 bits): addr=0x10000000000000000",
            r.stderr, 1, true)
    end)
end)
