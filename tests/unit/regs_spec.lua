-- stdlib/regs.lua without QEMU: registers are fakes whose read() returns
-- what register:read() would (a u64 and its size, or the bytes in target
-- order).
local helper = require("helper")

package.path = helper.source_root .. "/stdlib/?.lua;" .. package.path   -- regs requires glob
local regs = require("regs")

-- A fake register: read() returns its current value and size.
local function fake_register(name, size, value)
    local reg = { name = name, value = value }
    function reg:read()
        return self.value, size
    end
    return reg
end

describe("regs.select", function()
    local list = {
        { name = "rax" }, { name = "rbx" }, { name = "eflags" }, { name = "xmm0" }, { name = "FPCR" },
    }

    local function names(picked)
        local out = {}
        for i, reg in ipairs(picked) do
            out[i] = reg.name
        end
        return out
    end

    it("picks by glob, in the registers' order, counting the patterns each matched", function()
        local picked, hits = regs.select(list, { "xmm*", "r?x", "rax" })
        assert.are.same({ "rax", "rbx", "xmm0" }, names(picked))
        assert.are.same({ 2, 1, 1 }, hits)
    end)

    it("matches the lower-case name too", function()
        assert.are.same({ "FPCR" }, names(regs.select(list, { "fpcr" })))
        assert.are.same({ "FPCR" }, names(regs.select(list, { "FP?R" })))
    end)

    it("picks nothing without patterns or matches", function()
        assert.are.same({}, names(regs.select(list, {})))
        assert.are.same({}, names(regs.select(list, { "zz*" })))
    end)
end)

describe("regs.hex", function()
    it("prints integers with two digits per byte of the register", function()
        assert.are.equal("0x00000202", regs.hex(0x202, 4))
        assert.are.equal("0x0000000000000001", regs.hex(1, 8))
        -- at and above 2^53: a Lua 5.4 integer (negative above 2^63), a LuaJIT uint64_t
        local BIG = jit and require("ffi").new("uint64_t", 0xfedcba98) * 2 ^ 32 + 0x76543210
            or 0xfedcba9876543210
        assert.are.equal("0xfedcba9876543210", regs.hex(BIG, 8))
    end)

    it("prints byte strings last byte first: the value of a little-endian register", function()
        assert.are.equal("0xffeeddccbbaa99887766554433221100",
            regs.hex("\0\17\34\51\68\85\102\119\136\153\170\187\204\221\238\255"))
        assert.are.equal("0x" .. ("00"):rep(9) .. "3f", regs.hex("\63" .. ("\0"):rep(9)))
    end)
end)

describe("regs.watcher", function()
    it("reports the registers that changed since the last look, in list order", function()
        local a = fake_register("a", 8, 1)
        local v = fake_register("v", 16, ("\0"):rep(16))
        local w = regs.watcher({ a, v, a })      -- a listed twice: reported twice
        local function look()
            local seen = {}
            for i, reg, value, size in w:changed() do
                seen[#seen + 1] = ("%d %s %s"):format(i, reg.name, regs.hex(value, size))
            end
            return seen
        end
        assert.are.same({}, look())
        a.value = 2
        assert.are.same({ "1 a 0x0000000000000002", "3 a 0x0000000000000002" }, look())
        assert.are.same({}, look())
        v.value = "\1" .. ("\0"):rep(15)
        assert.are.same({ "2 v 0x" .. ("00"):rep(15) .. "01" }, look())
        a.value, v.value = 1, ("\0"):rep(16)
        assert.are.same({ "1 a 0x0000000000000001", "2 v 0x" .. ("00"):rep(16), "3 a 0x0000000000000001" },
            look())
    end)
end)
