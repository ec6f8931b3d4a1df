-- stdlib/insnclass.lua is pure Lua: tested here without QEMU. Encodings
-- are from the Arm ARM (A64) and the SPARC V8 manual.
local helper = require("helper")
local insnclass = assert(loadfile(helper.source_root .. "/stdlib/insnclass.lua"))()

local function class_of(table_name, opcode, groups)
    return insnclass.match(insnclass.new(table_name), opcode, groups).name
end

describe("insnclass", function()
    it("reads the first 32 bits little-endian, zero-padded", function()
        assert.are.equal(0xd503201f, insnclass.opcode("\x1f\x20\x03\xd5"))
        assert.are.equal(0x000000c3, insnclass.opcode("\xc3"))
        assert.are.equal(0x0000e875, insnclass.opcode("\x75\xe8"))
        assert.are.equal(0x70c38348, insnclass.opcode("\x48\x83\xc3\x70\x99"))
        assert.are.equal(0, insnclass.opcode(""))
    end)

    it("picks the table by QEMU target name, as howvec.c", function()
        assert.are.equal("aarch64", insnclass.table_for("aarch64"))
        assert.are.equal("sparc", insnclass.table_for("sparc"))
        assert.are.equal("sparc64", insnclass.table_for("sparc64"))
        assert.are.equal("x86_64", insnclass.table_for("x86_64"))
        assert.are.equal("default", insnclass.table_for("riscv64"))
    end)

    it("classifies aarch64 instructions by mask and pattern", function()
        assert.are.equal("  Add/Sub (imm)", class_of("aarch64", 0xf1000400))      -- subs x0, x0, #1
        assert.are.equal("  Cond Branch (imm)", class_of("aarch64", 0x54ffffc1))  -- b.ne .-8
        assert.are.equal("  Branch (reg)", class_of("aarch64", 0xd65f03c0))       -- ret
        assert.are.equal("  Branch (imm)", class_of("aarch64", 0x14000002))       -- b .+8
        assert.are.equal("  Exception Gen", class_of("aarch64", 0xd4000001))      -- svc #0
        assert.are.equal("  PCrel addr", class_of("aarch64", 0x90000000))         -- adrp x0, .
        assert.are.equal("  Hints", class_of("aarch64", 0xd503203f))              -- yield
        assert.are.equal("  SVE", class_of("aarch64", 0x04200000))
        assert.are.equal("Unclassified", class_of("aarch64", 0x02000000))
    end)

    it("lets the first matching class win", function()
        -- nop is also a hint; udf #0 is also in the reserved space
        assert.are.equal("    NOP", class_of("aarch64", 0xd503201f))
        assert.are.equal("  UDEF", class_of("aarch64", 0x00000000))
        assert.are.equal("Reserved", class_of("aarch64", 0x00010000))
        local classes = {
            { name = "a", mask = 0xff000000, pattern = 0x12000000 },
            { name = "b", mask = 0xf0000000, pattern = 0x10000000 },
            { name = "c", mask = 0xf0000000, pattern = 0x20000000 },
        }
        assert.are.equal("a", insnclass.match(classes, 0x12345678).name)
        assert.are.equal("b", insnclass.match(classes, 0x13345678).name)
        -- no match: the last class, as howvec.c's loop leaves it
        assert.are.equal("c", insnclass.match(classes, 0x43345678).name)
    end)

    it("has howvec.c's defaults of what is counted how", function()
        local what = {}
        for _, class in ipairs(insnclass.new("aarch64")) do
            what[class.opt] = class.what
        end
        assert.are.equal("none", what.udef)
        assert.are.equal("none", what.nop)
        assert.are.equal("class", what.sve)
        assert.are.equal("class", what.unclas)
        assert.are.equal(42, #insnclass.new("aarch64"))
        local default = insnclass.new("default")
        assert.are.same({ name = "Unclassified", opt = "unclas", mask = 0, pattern = 0, what = "individual" },
            default[1])
        assert.are.equal(1, #default)
        assert.are.equal("individual", insnclass.new("sparc")[8].what)
        assert.are.equal("individual", insnclass.new("sparc64")[5].what)
    end)

    it("classifies sparc and sparc64 instructions", function()
        assert.are.equal("Call", class_of("sparc", 0x40000010))            -- call
        assert.are.equal("Branch ICond", class_of("sparc", 0x12800004))    -- bne
        assert.are.equal("SetHi", class_of("sparc", 0x03000001))           -- sethi
        assert.are.equal("ALU", class_of("sparc", 0x82006001))             -- add %g1, 1, %g1
        assert.are.equal("Load/Store", class_of("sparc", 0xc2002000))      -- ld [%g0+0], %g1
        assert.are.equal("Unclassified", class_of("sparc", 0x00000000))    -- unimp
        assert.are.equal("Arith/Logical/Move", class_of("sparc64", 0xc2002000))
        assert.are.equal("SetHi & Branches", class_of("sparc64", 0x03000001))
    end)

    it("counts every instruction on its own with the default table", function()
        assert.are.equal("Unclassified", class_of("default", 0xdeadbeef))
    end)

    it("classifies x86_64 instructions by capstone group, control flow first", function()
        assert.are.equal("  Jump", class_of("x86_64", 0, { "branch_relative", "jump" }))
        assert.are.equal("  Call", class_of("x86_64", 0, { "call", "branch_relative", "mode64" }))
        assert.are.equal("  Return", class_of("x86_64", 0, { "ret", "mode64" }))
        assert.are.equal("  Interrupt", class_of("x86_64", 0, { "int" }))
        assert.are.equal("  Privileged", class_of("x86_64", 0, { "privilege" }))
        assert.are.equal("  AVX-512", class_of("x86_64", 0, { "avx512", "vlx" }))
        assert.are.equal("  AVX/AVX2/FMA", class_of("x86_64", 0, { "avx2", "novlx" }))
        assert.are.equal("  SSE", class_of("x86_64", 0, { "sse2" }))
        assert.are.equal("  MMX/3DNow!", class_of("x86_64", 0, { "mmx" }))
        assert.are.equal("  x87 FPU", class_of("x86_64", 0, { "fpu" }))
        assert.are.equal("Other", class_of("x86_64", 0, { "mode64" }))
        assert.are.equal("Other", class_of("x86_64", 0, {}))
        assert.is_true(insnclass.new("x86_64").uses_groups)
        assert.is_nil(insnclass.new("aarch64").uses_groups)
    end)

    it("finds, for any groups, the first class naming one of them, as a walk of the table does", function()
        -- the rule, walked: the first class naming a group, or with none
        local function walked(classes, groups)
            for _, class in ipairs(classes) do
                if next(class.groups) == nil then
                    return class
                end
                for _, g in ipairs(groups) do
                    if class.groups[g] then
                        return class
                    end
                end
            end
            return classes[#classes]
        end
        local classes = insnclass.new("x86_64")
        local names = { "unknown" }
        for _, class in ipairs(classes) do
            for g in pairs(class.groups) do
                names[#names + 1] = g
            end
        end
        table.sort(names)
        local pairs_checked = 0
        for _, a in ipairs(names) do
            for _, b in ipairs(names) do
                for _, groups in ipairs({ { a }, { a, b }, { "mode64", a, b } }) do
                    assert.are.equal(walked(classes, groups).name, insnclass.match(classes, 0, groups).name,
                        table.concat(groups, ","))
                end
                pairs_checked = pairs_checked + 1
            end
        end
        assert.is_true(pairs_checked > 400)
    end)

    it("applies count= to a copy of the table", function()
        local classes = insnclass.new("aarch64")
        assert.are.equal("  Add/Sub (imm)", insnclass.set_count(classes, "asi").name)
        assert.are.equal("    NOP", insnclass.set_count(classes, "nop").name)
        assert.are.equal("  SVE", insnclass.set_count(classes, "!sve").name)
        assert.are.equal("individual", insnclass.match(classes, 0xf1000400).what)
        assert.are.equal("individual", insnclass.match(classes, 0xd503201f).what)
        assert.are.equal("none", insnclass.match(classes, 0x04200000).what)
        assert.are.equal("class", insnclass.match(insnclass.new("aarch64"), 0xf1000400).what)
    end)

    it("refuses an unknown class, naming the known ones", function()
        local classes = insnclass.new("sparc64")
        local class, why = insnclass.set_count(classes, "!bogus")
        assert.is_nil(class)
        assert.are.equal("unknown class bogus (known: op0, op1, op2, op3, unclas)", why)
        assert.are.same({ "int", "priv", "call", "ret", "jump", "avx512", "avx", "sse", "mmx", "fpu", "other" },
            insnclass.opts(insnclass.new("x86_64")))
    end)
end)
