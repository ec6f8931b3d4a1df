-- insnclass: instruction-class tables, to count executed instructions by
-- kind. The tables of QEMU's contrib/plugins/howvec.c (aarch64, sparc,
-- sparc64, default) match the first 32 bits of an instruction by mask and
-- pattern; our x86_64 table matches capstone's instruction groups
-- (insn:groups()). In both, the first matching class wins, so precise
-- classes come before loose ones, and the last class catches the rest.
--
--     local insnclass = require("insnclass")
--     local classes = insnclass.new(insnclass.table_for(luahost.info.target_name))
--     insnclass.set_count(classes, "!sve")            -- a count= argument
--     local class = insnclass.match(classes, insnclass.opcode(insn:data()),
--                                   classes.uses_groups and insn:groups())
--
-- A class is { name =, opt =, what = "class"|"individual"|"none", and
-- mask =, pattern = or groups = }. Pure Lua: no luahost call.
local insnclass = {}

-- Bitwise and of two 32-bit values, as a non-negative number: LuaJIT's
-- bit library (signed results) or Lua 5.4's operator, loaded as text
-- because LuaJIT cannot parse it.
local band
if rawget(_G, "jit") then
    local bit = require("bit")
    band = function(a, b) return bit.band(a, b) % 2 ^ 32 end
else
    band = load("return function(a, b) return a & b end")()
end

local CLASS, INDIVIDUAL, NONE = "class", "individual", "none"

-- 31..28 27..24 23..20 19..16 15..12 11..8 7..4 3..0
local aarch64 = {
    -- Reserved
    { "  UDEF",              "udef",    0xffff0000, 0x00000000, NONE },
    { "  SVE",               "sve",     0x1e000000, 0x04000000, CLASS },
    { "Reserved",            "res",     0x1e000000, 0x00000000, CLASS },
    -- Data Processing Immediate
    { "  PCrel addr",        "pcrel",   0x1f000000, 0x10000000, CLASS },
    { "  Add/Sub (imm,tags)", "asit",   0x1f800000, 0x11800000, CLASS },
    { "  Add/Sub (imm)",     "asi",     0x1f000000, 0x11000000, CLASS },
    { "  Logical (imm)",     "logi",    0x1f800000, 0x12000000, CLASS },
    { "  Move Wide (imm)",   "movwi",   0x1f800000, 0x12800000, CLASS },
    { "  Bitfield",          "bitf",    0x1f800000, 0x13000000, CLASS },
    { "  Extract",           "extr",    0x1f800000, 0x13800000, CLASS },
    { "Data Proc Imm",       "dpri",    0x1c000000, 0x10000000, CLASS },
    -- Branches
    { "  Cond Branch (imm)", "cndb",    0xfe000000, 0x54000000, CLASS },
    { "  Exception Gen",     "excp",    0xff000000, 0xd4000000, CLASS },
    { "    NOP",             "nop",     0xffffffff, 0xd503201f, NONE },
    { "  Hints",             "hint",    0xfffff000, 0xd5032000, CLASS },
    { "  Barriers",          "barr",    0xfffff000, 0xd5033000, CLASS },
    { "  PSTATE",            "psta",    0xfff8f000, 0xd5004000, CLASS },
    { "  System Insn",       "sins",    0xffd80000, 0xd5080000, CLASS },
    { "  System Reg",        "sreg",    0xffd00000, 0xd5100000, CLASS },
    { "  Branch (reg)",      "breg",    0xfe000000, 0xd6000000, CLASS },
    { "  Branch (imm)",      "bimm",    0x7c000000, 0x14000000, CLASS },
    { "  Cmp & Branch",      "cmpb",    0x7e000000, 0x34000000, CLASS },
    { "  Tst & Branch",      "tstb",    0x7e000000, 0x36000000, CLASS },
    { "Branches",            "branch",  0x1c000000, 0x14000000, CLASS },
    -- Loads and Stores
    { "  AdvSimd ldstmult",  "advlsm",  0xbfbf0000, 0x0c000000, CLASS },
    { "  AdvSimd ldstmult++", "advlsmp", 0xbfb00000, 0x0c800000, CLASS },
    { "  AdvSimd ldst",      "advlss",  0xbf9f0000, 0x0d000000, CLASS },
    { "  AdvSimd ldst++",    "advlssp", 0xbf800000, 0x0d800000, CLASS },
    { "  ldst excl",         "ldstx",   0x3f000000, 0x08000000, CLASS },
    { "    Prefetch",        "prfm",    0xff000000, 0xd8000000, CLASS },
    { "  Load Reg (lit)",    "ldlit",   0x1b000000, 0x18000000, CLASS },
    { "  ldst noalloc pair", "ldstnap", 0x3b800000, 0x28000000, CLASS },
    { "  ldst pair",         "ldstp",   0x38000000, 0x28000000, CLASS },
    { "  ldst reg",          "ldstr",   0x3b200000, 0x38000000, CLASS },
    { "  Atomic ldst",       "atomic",  0x3b200c00, 0x38200000, CLASS },
    { "  ldst reg (reg off)", "ldstro", 0x3b200b00, 0x38200800, CLASS },
    { "  ldst reg (pac)",    "ldstpa",  0x3b200200, 0x38200800, CLASS },
    { "  ldst reg (imm)",    "ldsti",   0x3b000000, 0x39000000, CLASS },
    { "Loads & Stores",      "ldst",    0x0a000000, 0x08000000, CLASS },
    -- Data Processing Register
    { "Data Proc Reg",       "dprr",    0x0e000000, 0x0a000000, CLASS },
    -- Scalar FP
    { "Scalar FP ",          "fpsimd",  0x0e000000, 0x0e000000, CLASS },
    -- Unclassified
    { "Unclassified",        "unclas",  0x00000000, 0x00000000, CLASS },
}

local sparc = {
    { "Call",                "call",    0xc0000000, 0x40000000, CLASS },
    { "Branch ICond",        "bcc",     0xc1c00000, 0x00800000, CLASS },
    { "Branch Fcond",        "fbcc",    0xc1c00000, 0x01800000, CLASS },
    { "SetHi",               "sethi",   0xc1c00000, 0x01000000, CLASS },
    { "FPU ALU",             "fpu",     0xc1f00000, 0x81a00000, CLASS },
    { "ALU",                 "alu",     0xc0000000, 0x80000000, CLASS },
    { "Load/Store",          "ldst",    0xc0000000, 0xc0000000, CLASS },
    { "Unclassified",        "unclas",  0x00000000, 0x00000000, INDIVIDUAL },
}

local sparc64 = {
    { "SetHi & Branches",    "op0",     0xc0000000, 0x00000000, CLASS },
    { "Call",                "op1",     0xc0000000, 0x40000000, CLASS },
    { "Arith/Logical/Move",  "op2",     0xc0000000, 0x80000000, CLASS },
    { "Arith/Logical/Move",  "op3",     0xc0000000, 0xc0000000, CLASS },
    { "Unclassified",        "unclas",  0x00000000, 0x00000000, INDIVIDUAL },
}

-- howvec.c's table for every other guest: each opcode on its own.
local default = {
    { "Unclassified",        "unclas",  0x00000000, 0x00000000, INDIVIDUAL },
}

-- Ours: capstone's x86 groups. Control flow first (a call is not a
-- jump), then the vector extensions, widest first (an AVX-512 encoding
-- of an SSE operation is AVX-512). Scalar SSE counts as SSE: capstone
-- does not tell scalar from packed.
local x86_64 = {
    { "  Interrupt",         "int",     { "int", "iret" } },
    { "  Privileged",        "priv",    { "privilege" } },
    { "  Call",              "call",    { "call" } },
    { "  Return",            "ret",     { "ret" } },
    { "  Jump",              "jump",    { "jump" } },
    { "  AVX-512",           "avx512",  { "avx512", "cdi", "eri", "pfi", "dqi", "bwi", "vlx" } },
    { "  AVX/AVX2/FMA",      "avx",     { "avx", "avx2", "fma", "fma4", "f16c", "xop" } },
    { "  SSE",               "sse",     { "sse1", "sse2", "sse3", "ssse3", "sse41", "sse42",
                                          "sse4a", "aes", "sha", "pclmul" } },
    { "  MMX/3DNow!",        "mmx",     { "mmx", "3dnow" } },
    { "  x87 FPU",           "fpu",     { "fpu" } },
    { "Other",               "other",   {} },
}

-- Tables by QEMU target name, as howvec.c selects them.
insnclass.tables = {
    aarch64 = aarch64, sparc = sparc, sparc64 = sparc64, x86_64 = x86_64, default = default,
}

-- The name of the table for a guest architecture.
function insnclass.table_for(target)
    return insnclass.tables[target] and target or "default"
end

local function set_of(list)
    local set = {}
    for _, v in ipairs(list) do
        set[v] = true
    end
    return set
end

-- For a table of group classes alone: the index of the first class
-- naming each group, and of the first catch-all (the last class if there
-- is none). The first class matching a list of groups is then the least
-- of these, found in a lookup per group instead of a walk of the table
-- (a group table is walked for every new encoding, most of howvec.lua's
-- translation under Lua 5.4).
local function group_index(classes)
    local first, catch_all = {}, #classes
    for i = #classes, 1, -1 do
        local class = classes[i]
        if not class.groups then
            return nil
        end
        if next(class.groups) == nil then
            catch_all = i
        end
        for group in pairs(class.groups) do
            first[group] = i
        end
    end
    return { first = first, catch_all = catch_all }
end

-- A fresh copy of a table (count= changes a copy, never the module's).
function insnclass.new(name)
    local rows = assert(insnclass.tables[name], "no instruction-class table " .. tostring(name))
    local classes = {}
    for i, row in ipairs(rows) do
        local class = { name = row[1], opt = row[2] }
        if type(row[3]) == "table" then
            class.groups, class.what = set_of(row[3]), CLASS
            classes.uses_groups = true
        else
            class.mask, class.pattern, class.what = row[3], row[4], row[5]
        end
        classes[i] = class
    end
    classes.by_group = classes.uses_groups and group_index(classes) or nil
    return classes
end

-- The short names of the classes, in table order, each once.
function insnclass.opts(classes)
    local opts, seen = {}, {}
    for _, class in ipairs(classes) do
        if not seen[class.opt] then
            seen[class.opt] = true
            opts[#opts + 1] = class.opt
        end
    end
    return opts
end

-- A count= value: "OPT" counts the first class named OPT instruction by
-- instruction, "!OPT" not at all. Returns the class, or nil and why.
function insnclass.set_count(classes, value)
    local what, opt = INDIVIDUAL, value
    if value:sub(1, 1) == "!" then
        what, opt = NONE, value:sub(2)
    end
    for _, class in ipairs(classes) do
        if class.opt == opt then
            class.what = what
            return class
        end
    end
    return nil, ("unknown class %s (known: %s)"):format(opt, table.concat(insnclass.opts(classes), ", "))
end

-- The first 32 bits of an instruction as howvec.c reads them on a
-- little-endian host: bytes as a little-endian word, zero-padded.
function insnclass.opcode(bytes)
    local b1, b2, b3, b4 = bytes:byte(1, 4)
    return (b1 or 0) + (b2 or 0) * 256 + (b3 or 0) * 65536 + (b4 or 0) * 16777216
end

local function matches(class, opcode, groups)
    if class.groups then
        for _, g in ipairs(groups) do
            if class.groups[g] then
                return true
            end
        end
        return next(class.groups) == nil        -- the catch-all
    end
    return band(opcode, class.mask) == class.pattern
end

-- The first class matching the opcode (mask tables) or one of the
-- capstone group names in the list groups (group tables); the last class
-- if none does, as in howvec.c.
function insnclass.match(classes, opcode, groups)
    local index = classes.by_group
    if index then
        local best = index.catch_all
        for _, group in ipairs(groups) do
            local i = index.first[group]
            if i and i < best then
                best = i
            end
        end
        return classes[best]
    end
    for _, class in ipairs(classes) do
        if matches(class, opcode, groups) then
            return class
        end
    end
    return classes[#classes]
end

return insnclass
