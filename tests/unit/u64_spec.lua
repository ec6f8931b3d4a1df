-- args.parse_u64 and args.u64: exact unsigned 64-bit arguments (lua/args.lua,
-- lua/compat.lua), under the suite's Lua 5.4. The LuaJIT side (interned
-- cdata above 2^53) is tested through the plugin in the integration suite.
local helper = require("helper")
local compat = assert(loadfile(helper.source_root .. "/lua/compat.lua"))()
local args = assert(loadfile(helper.source_root .. "/lua/args.lua"))(compat)

describe("args.parse_u64", function()
    it("reads decimal, 0x hex and 0 octal as strtoull base 0 does", function()
        assert.are.equal(4198400, args.parse_u64("4198400"))
        assert.are.equal(0x401000, args.parse_u64("0x401000"))
        assert.are.equal(0x401000, args.parse_u64("0X401000"))
        assert.are.equal(8, args.parse_u64("010"))
        assert.are.equal(0, args.parse_u64("0"))
    end)

    it("is exact over all 64 bits", function()
        assert.are.equal(math.mininteger, args.parse_u64("0x8000000000000000"))
        assert.are.equal(-1, args.parse_u64("18446744073709551615"))
        assert.are.equal(-1, args.parse_u64("0xffffffffffffffff"))
        assert.are.equal(-1, args.parse_u64("01777777777777777777777"))
        assert.are.equal(9007199254740993, args.parse_u64("9007199254740993"))
        assert.are.equal(math.type(args.parse_u64("9007199254740993")), "integer")
    end)

    it("refuses what does not fit or is not a number", function()
        for _, text in ipairs({ "18446744073709551616", "0x10000000000000000", "02000000000000000000000" }) do
            local value, why = args.parse_u64(text)
            assert.is_nil(value, text)
            assert.are.equal("wider than 64 bits", why)
        end
        for _, text in ipairs({ "", "0x", "08", "12a", "-1", " 1", "1.5", "0x1g" }) do
            local value, why = args.parse_u64(text)
            assert.is_nil(value, text)
            assert.matches("not a number", why, 1, true)
        end
    end)

    it("reads hex with or without 0x in base 16, as strtoull base 16", function()
        assert.are.equal(0x401000, args.parse_u64("401000", 16))
        assert.are.equal(0x401000, args.parse_u64("0x401000", 16))
        assert.are.equal(0x10, args.parse_u64("010", 16))
        local value, why = args.parse_u64("zz", 16)
        assert.is_nil(value)
        assert.are.equal("not a hex address", why)
    end)
end)

describe("args.u64", function()
    it("parses a named argument and refuses a bad one naming it", function()
        assert.are.same({ addr = 0x401000 }, args.parse({ addr = args.u64() }, { "addr=0x401000" }))
        local ok, err = pcall(args.parse, { addr = args.u64() }, { "addr=0x1x" })
        assert.is_false(ok)
        assert.matches("unsigned 64-bit argument parsing failed (not a number", tostring(err), 1, true)
        assert.matches("addr=0x1x", tostring(err), 1, true)
    end)
end)
