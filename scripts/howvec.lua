-- howvec: executed instructions by class, and by instruction.
-- How vectorised is this code? Executed instructions counted by class
-- (branches, loads and stores, SIMD, ...), and chosen classes instruction
-- by instruction.
-- A port of QEMU's contrib/plugins/howvec.c: same arguments, same report,
-- same class tables. On x86_64, where howvec.c has no table, the classes
-- come from capstone's instruction groups (docs/scripts/howvec.md).
--
--   inline=on|off  accepted as in howvec.c; counting is always by inline
--                  ops (no Lua runs per executed instruction)
--   verbose=on|off also list the classes that had no hits (default off)
--   count=CLASS    count the class CLASS instruction by instruction;
--                  count=!CLASS: not at all. Repeatable. CLASS is a
--                  class's short name (udef, sve, cndb, ... on aarch64)
--   table=NAME     the class table: the guest's own (default), or
--                  "default", howvec.c's table for other guests (every
--                  instruction counted individually)
--   symbolize=on|off
--                  our extension: end each line of individual
--                  instructions with where its instruction (the first
--                  translated with that opcode, whose text the line
--                  shows) lies: "(first at LOCATION)", luahost.describe's
--                  name (main+0x1c, module+0xOFF), the same from run to
--                  run (default off)
local insnclass = require("insnclass")
local report = require("report")

local LIMIT = 50    -- rows of individual instructions, as howvec.c

local own_table = insnclass.table_for(luahost.info.target_name)
local opt = luahost.args {
    inline = false,
    verbose = false,
    count = luahost.args.list(),
    table = luahost.args.choice(own_table == "default" and { "default" } or { own_table, "default" },
        own_table),
    symbolize = false,
}

local classes = insnclass.new(opt.table)
for _, value in ipairs(opt.count) do
    local _, why = insnclass.set_count(classes, value)
    if why then
        luahost.usage_error(why .. ": count=" .. value)
    end
end
-- A class's hits are kept in SLOTS counters, summed at exit; the mix
-- adds an encoding to the one its opcode picks (opcode % SLOTS). One
-- shared counter per class would chain the inline adds of consecutive
-- instructions through the same memory word, which costs up to twice the
-- time of independent counters. A counter per (class, opcode), as
-- howvec.c keeps its individual counts, made one for nearly every new x86
-- encoding (its first 4 bytes hold displacements): a fifth of the
-- translation hook.
local SLOTS = 61    -- a prime: the counter depends on all 4 bytes

local individual = {}   -- individual[opcode] = { text =, class =, hits = }

-- A new counter: a field of a scoreboard of 64 (stdlib/entries.lua).
-- QEMU makes and sizes a scoreboard for every vCPU, about 2,700
-- instructions each, and a counter is made per individual opcode at
-- translation.
local new_counter = require("entries").new

local function individual_hits(insn, opcode, class)
    local rec = individual[opcode]
    if not rec then
        -- keyed by opcode alone: the first instruction seen names it
        rec = { text = insn:disas(), class = class, hits = new_counter(),
            location = opt.symbolize and luahost.describe(insn:vaddr()) or nil }
        individual[opcode] = rec
    end
    return rec.hits
end

-- A class's counters, made at its first instruction.
local function class_hits(class)
    if not class.parts then
        class.parts = {}
        for i = 1, SLOTS do
            class.parts[i] = new_counter()
        end
    end
    return class.parts
end

-- The scoreboard entries an instruction's executions add to, or false.
-- insn:opcode() is insnclass.opcode(insn:data()) without the string.
local function classify(insn)
    local opcode = insn:opcode()
    local class = insnclass.match(classes, opcode, classes.uses_groups and insn:groups())
    if class.what == "class" then
        return class_hits(class)
    elseif class.what == "individual" then
        return individual_hits(insn, opcode, class)
    end
    return false
end

-- Whether the class of an instruction follows from its capstone groups
-- alone: a group table (x86_64) with no class counted instruction by
-- instruction (count=), whose rows are keyed by opcode.
local function by_groups_alone()
    if not classes.uses_groups then
        return false
    end
    for _, class in ipairs(classes) do
        if class.what == "individual" then
            return false
        end
    end
    return true
end

-- Each encoding is classified once: the same bytes always get the same
-- entries, and classifying (capstone's groups, a walk of the class table)
-- costs microseconds per instruction. The mix keeps the answers in C and
-- registers the adds itself: no Lua runs for an encoding seen before.
-- Where the groups alone decide, Lua runs once per set of groups.
local mix = luahost.insn_mix(classify, { key = by_groups_alone() and "groups" or "encoding" })

luahost.on_tb_translate(function(tb)
    mix:count(tb)
end)

local function class_lines(out)
    for _, class in ipairs(classes) do
        local hits = 0
        for _, part in ipairs(class.parts or {}) do
            hits = hits + part:sum()
        end
        if class.what == "individual" then
            out[#out + 1] = ("Class: %-24s\tcounted individually\n"):format(class.name)
        elseif class.what == "none" then
            out[#out + 1] = ("Class: %-24s\tnot counted\n"):format(class.name)
        elseif hits ~= 0 or opt.verbose then
            out[#out + 1] = ("Class: %-24s\t(%d hits)\n"):format(class.name, hits)
        end
    end
end

local function individual_lines(out)
    local counts, n = {}, 0
    for opcode, rec in pairs(individual) do
        counts[opcode] = rec.hits:sum()
        n = n + 1
    end
    -- howvec.c never prints the last instruction of its sorted list
    if n < 2 then
        return
    end
    out[#out + 1] = "Individual Instructions:\n"
    for _, row in ipairs(report.sorted(counts, { limit = math.min(LIMIT, n - 1) })) do
        local rec = individual[row.key]
        local location = rec.location and ("\t(first at %s)"):format(rec.location) or ""
        out[#out + 1] = ("Instr: %-24s\t(%d hits)\t(op=0x%08x/%s)%s\n")
            :format(rec.text, row.value, row.key, rec.class.name, location)
    end
end

luahost.on_exit(function()
    local out = { "Instruction Classes:\n" }
    class_lines(out)
    individual_lines(out)
    luahost.outs(table.concat(out))
end)
