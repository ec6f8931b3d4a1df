-- stdlib/address.lua is pure Lua: tested here without QEMU.
local helper = require("helper")
local address = assert(loadfile(helper.source_root .. "/stdlib/address.lua"))()

describe("address", function()
    it("keys an address as %x prints it", function()
        assert.are.equal("401000", address.key(0x401000))
        assert.are.equal("0", address.key(0))
    end)

    it("reads base 0 as strtoull does: 0x hex, 0 octal, decimal", function()
        assert.are.equal("401000", address.parse("0x401000"))
        assert.are.equal("401000", address.parse("0X00401000"))
        assert.are.equal("8", address.parse("010"))
        assert.are.equal("0", address.parse("0"))
        assert.are.equal("3e8", address.parse("1000"))
        assert.are.equal("ffffffffffffffff", address.parse("0xFFFFFFFFFFFFFFFF"))
    end)

    it("reads base 16 with 0x optional", function()
        assert.are.equal("401000", address.parse("401000", 16))
        assert.are.equal("401000", address.parse("0x401000", 16))
        assert.are.equal("10", address.parse("010", 16))
    end)

    it("refuses what is not a number, or too wide to be exact", function()
        for _, case in ipairs({ { "main", 0 }, { "", 0 }, { "10e3", 0 }, { "08", 0 }, { "0x", 0 },
                                { "main", 16 }, { "", 16 }, { "0x1g", 16 },
                                { "0x10000000000000000", 0 }, { "9007199254740993", 0 } }) do
            local key, why = address.parse(case[1], case[2])
            assert.is_nil(key, case[1])
            assert.is_truthy(why:find("^not a") or why:find("^wider than 64 bits"), why)
        end
    end)
end)
