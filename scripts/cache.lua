-- cache: cache misses per core and the instructions that miss most.
-- How would this program fare on a given cache hierarchy? Per-core
-- L1 instruction and data caches (and a unified L2 if asked) are simulated
-- on every instruction fetch and memory access; the report gives each
-- core's accesses, misses and miss rates, then the instructions that miss
-- most. A port of QEMU's contrib/plugins/cache.c: same arguments, same
-- report, same numbers (the model is stdlib/cachesim.lua, fed in batches
-- from an event stream).
--
--   dcachesize=, dblksize=, dassoc=     L1 data cache: bytes, block bytes,
--                                       ways (default 16384, 64, 8)
--   icachesize=, iblksize=, iassoc=     L1 instruction cache (the same)
--   l2=on|off                           a unified L2, reached on L1 misses
--                                       (default off)
--   l2cachesize=, l2blksize=, l2assoc=  its geometry (default 2097152, 64,
--                                       16); any of them turns L2 on
--   evict=lru|fifo|rand                 replacement policy (default lru)
--   cores=N                             caches per level; vCPU i uses
--                                       cache i % N (default 1; in system
--                                       mode the number of vCPUs)
--   limit=N                             rows in each top list (default 32)
--   seed=N                              our extension: the seed of
--                                       evict=rand (default 1; cache.c
--                                       seeds from /dev/urandom)
--   symbolize=on|off                    our extension: end each line of
--                                       the top lists with the
--                                       instruction's location
--                                       (luahost.describe: memcpy+0x1c,
--                                       module+0xOFF, or the address
--                                       outside every module), the same
--                                       from run to run (default off)
local cachesim = require("cachesim")
local report = require("report")

local system = luahost.info.system_emulation

local opt = luahost.args {
    dcachesize = 64 * 8 * 32, dblksize = 64, dassoc = 8,
    icachesize = 64 * 8 * 32, iblksize = 64, iassoc = 8,
    l2 = false,
    l2cachesize = 64 * 16 * 2048, l2blksize = 64, l2assoc = 16,
    evict = luahost.args.custom(function(text)
        for _, policy in ipairs(cachesim.POLICIES) do
            if text == policy then
                return text
            end
        end
        return nil, "invalid eviction policy"
    end, "lru"),
    cores = system and luahost.info.smp_vcpus or 1,
    limit = 32,
    seed = 1,
    symbolize = false,
}

-- As in cache.c, l2=on|off and the L2 geometry arguments (which turn L2
-- on) are read in order: the last of them decides.
local use_l2 = false
for _, arg in ipairs(luahost.argv) do
    local name = arg:match("^[^=]*")
    if name == "l2" then
        use_l2 = opt.l2
    elseif name:match("^l2%l") then
        use_l2 = true
    end
end

if opt.cores < 1 then
    luahost.usage_error(("cores must be at least 1: cores=%d"):format(opt.cores))
end

local random = cachesim.lcg(opt.seed)

-- The geometry arguments of each cache, by cache.c's name for it.
local GEOMETRY = {
    dcache = { "dcachesize", "dblksize", "dassoc" },
    icache = { "icachesize", "iblksize", "iassoc" },
    ["L2 cache"] = { "l2cachesize", "l2blksize", "l2assoc" },
}

-- A cache's blocks, or cache.c's error on one line, with the arguments
-- that made the geometry.
local function blocks_of(what)
    local names = GEOMETRY[what]
    local size, blksize, assoc = opt[names[1]], opt[names[2]], opt[names[3]]
    local why = cachesim.check(size, blksize, assoc)
    if why then
        luahost.usage_error(("%s cannot be constructed from given parameters: %s (%s=%d, %s=%d, %s=%d)")
            :format(what, why, names[1], size, names[2], blksize, names[3], assoc), 2)
    end
    return size / blksize
end

-- Every geometry is checked before any cache is built, and all the
-- caches of all the cores together hold at most 2^25 blocks (about 1 GiB
-- of memory under Lua 5.4; cachesim.MAX_BLOCKS bounds one cache).
local MAX_BLOCKS = 2 * cachesim.MAX_BLOCKS
local blocks = blocks_of("dcache") + blocks_of("icache") + (use_l2 and blocks_of("L2 cache") or 0)
if blocks * opt.cores > MAX_BLOCKS then
    luahost.usage_error(("cores=%d: %d cores of these caches hold %.0f blocks, more than the %d (2^25) simulated")
        :format(opt.cores, opt.cores, blocks * opt.cores, MAX_BLOCKS))
end
if opt.limit < 0 then
    luahost.usage_error(("limit must be at least 0: limit=%d"):format(opt.limit))
end

-- One cache per core, and their access functions (so the hot path
-- indexes a plain array).
local function caches(what)
    local names = GEOMETRY[what]
    local list, access = {}, {}
    for core = 1, opt.cores do
        list[core] = cachesim.new { size = opt[names[1]], blksize = opt[names[2]], assoc = opt[names[3]],
            policy = opt.evict, random = random }
        access[core] = list[core].access
    end
    return list, access
end

local l1d, dcache = caches("dcache")
local l1i, icache = caches("icache")
local l2, l2cache = {}, {}
if use_l2 then
    l2, l2cache = caches("L2 cache")
end

local cores = opt.cores

-- One record per instruction address, kept in columns indexed by the id
-- the stream gives it and its events carry: a table per instruction took
-- twice the memory (65,000 instructions on the sqlite workload). The
-- stream keeps each instruction's address, bytes and symbol itself
-- (stream:insn). In user mode a fetch's address is its event's.
local addr_of = {}          -- the address it is keyed and fetched by: in
                            -- system mode from its first fetch, else at exit
local text_of = {}          -- its text, where it cannot be disassembled at exit
local location_of = {}      -- symbolize=on: luahost.describe's
local dmisses, imisses, l2misses = {}, {}, {}   -- nil: none

local INSN = luahost.INSN
local stream

-- The address of instruction id, asked of the stream at its first fetch
-- (system mode: its host address, which no column holds).
local function fetch_addr(id)
    local addr = stream:insn(id)
    addr_of[id] = addr
    return addr
end

-- After an L1 miss: charge it to instruction id (misses is the column of
-- the kind) and go on to the core's L2.
local function l1_missed(core, addr, id, misses)
    misses[id] = (misses[id] or 0) + 1
    if use_l2 and not l2cache[core](addr) then
        l2misses[id] = (l2misses[id] or 0) + 1
    end
end

-- Every other fetch and every data access reach the model through one
-- stream, in the order each vCPU made them. In system mode data addresses
-- are physical and device (MMIO) accesses are skipped, as in cache.c.
local function on_batch(vcpu, batch)
    local core = vcpu % cores + 1
    local fetch, data = icache[core], dcache[core]
    local kind, ids = batch.kind, batch.id
    local addrs = system and batch.paddr or batch.addr
    local device = system and batch.device
    for i = 1, batch.n do
        local id = ids[i]
        if kind[i] == INSN then
            local addr = system and (addr_of[id] or fetch_addr(id)) or addrs[i]
            if not fetch(addr) then
                l1_missed(core, addr, id, imisses)
            end
        elseif not (device and device[i] > 1) then
            local addr = addrs[i]
            if not data(addr) then
                l1_missed(core, addr, id, dmisses)
            end
        end
    end
end

-- An access to the block the same vCPU touched last among the blocks of
-- its cache set is a hit that changes nothing (the block is already the
-- most recent of its set): the stream only counts it. Two thirds of the
-- events that reach on_batch otherwise. Fetches are left alone in system
-- mode, where one guest address can map to another host address from one
-- access to the next. unchecked: on_batch reads the columns for i = 1,
-- batch.n only, so the bounds checks (LuaJIT) would only cost.
local function sets_of(list)   -- the stream remembers blocks of up to 65536 sets; else one
    return list[1].sets <= 65536 and list[1].sets or 1
end
stream = luahost.stream { on_batch = on_batch, physical = system, unchecked = true,
    coalesce = { mem = opt.dblksize, mem_sets = sets_of(l1d),
        exec = not system and opt.iblksize or nil, exec_sets = not system and sets_of(l1i) or nil } }

-- Instructions are disassembled when a report shows them, where that
-- gives insn:disas()'s text (user mode, at addr: the guest address): it
-- was a quarter of the translation hook's time.
local disassemble_later = not system and luahost.disassemble("", 0) ~= nil

-- The stream records every instruction's fetch and accesses, with ids it
-- keys as cache.c keys instructions (by host address in system mode, by
-- guest address in user mode), and keeps what the report shows of each
-- as at its first translation: its address, bytes and symbol. The loop
-- sees each instruction once, for what the stream does not keep. A fetch
-- of the same cache block as the instruction before it in its
-- translation block is sure to hit: the stream only counts it, inline.
local note_each = opt.symbolize or not disassemble_later
luahost.on_tb_translate(function(tb)
    if not note_each then
        stream:insns(tb, opt.iblksize)
        return
    end
    for id, insn in stream:insns(tb, opt.iblksize) do
        if not disassemble_later then
            text_of[id] = insn:disas()
        end
        if opt.symbolize then
            location_of[id] = luahost.describe(insn:vaddr())
        end
    end
end)

local function rate(misses, accesses)
    return accesses > 0 and misses / accesses * 100 or 0
end

-- One row of the table; the L2 columns only when it has accesses and
-- misses (cache.c's rule).
local function stats_line(d, i, l)
    local line = ("%-14d %-12d %9.4f%%  %-14d %-12d %9.4f%%"):format(
        d.accesses, d.misses, rate(d.misses, d.accesses),
        i.accesses, i.misses, rate(i.misses, i.accesses))
    if l.accesses > 0 and l.misses > 0 then
        line = line .. ("  %-12d %-11d %10.4f%%"):format(l.accesses, l.misses, rate(l.misses, l.accesses))
    end
    return line .. "\n"
end

-- Accesses and misses of the caches of a level, cores from..to, summed.
local function counts(list, from, to)
    local sum = { accesses = 0, misses = 0 }
    for core = from, to do
        if list[core] then
            local s = list[core].stats()
            sum.accesses, sum.misses = sum.accesses + s.accesses, sum.misses + s.misses
        end
    end
    return sum
end

-- The hits counted outside the model: inline, and coalesced by the stream.
local function stats_row(label, from, to)
    local data, fetches = counts(l1d, from, to), counts(l1i, from, to)
    for vcpu = 0, luahost.num_vcpus() - 1 do
        if vcpu % cores + 1 >= from and vcpu % cores + 1 <= to then
            local exec, mem = stream:coalesced(vcpu)
            fetches.accesses = fetches.accesses + exec
            data.accesses = data.accesses + mem
        end
    end
    return label .. stats_line(data, fetches, counts(l2, from, to))
end

local function stats_table()
    local out = { "core #, data accesses, data misses, dmiss rate, insn accesses, insn misses, imiss rate",
        use_l2 and ", l2 accesses, l2 misses, l2 miss rate\n" or "\n" }
    for core = 1, cores do
        out[#out + 1] = stats_row(("%-8d"):format(core - 1), core, core)
    end
    if cores > 1 then
        out[#out + 1] = stats_row(("%-8s"):format("sum"), 1, cores)
    end
    return table.concat(out) .. "\n"
end

-- The limit instructions with most misses of a kind; ties (in no defined
-- order in cache.c, which walks a hash table) by address. symbolize=on
-- adds a last field to cache.c's lines.
local function top_list(title, misses)
    local out = { ("address, %s misses, instruction%s\n"):format(title, opt.symbolize and ", location" or "") }
    for _, id in ipairs(report.top_ids(#addr_of, misses, opt.limit, addr_of)) do
        local addr, data, symbol = stream:insn(id)
        symbol = symbol and (" (%s)"):format(symbol) or ""
        local location = location_of[id] and ", " .. location_of[id] or ""
        local text = disassemble_later and luahost.disassemble(data, addr) or text_of[id]
        out[#out + 1] = ("0x%x%s, %d, %s%s\n"):format(addr, symbol, misses[id], text, location)
    end
    return table.concat(out)
end

luahost.on_exit(function()
    -- every instruction numbered, with its address and its misses
    for id = 1, stream:numbered() do
        addr_of[id] = addr_of[id] or stream:insn(id)
        dmisses[id], imisses[id], l2misses[id] = dmisses[id] or 0, imisses[id] or 0, l2misses[id] or 0
    end
    local lists = { top_list("data", dmisses), top_list("fetch", imisses) }
    if use_l2 then
        lists[#lists + 1] = top_list("L2", l2misses)
    end
    luahost.outs(stats_table() .. table.concat(lists, "\n"))
end)
