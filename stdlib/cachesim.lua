-- cachesim: a set-associative cache, as QEMU's contrib/plugins/cache.c
-- models one: blocks of blksize bytes, sets of assoc blocks, and on a miss
-- the block goes to the first empty way of its set, else replaces the
-- one the policy picks (lru, fifo or rand). Hits and misses only: no data.
--
--     local cachesim = require("cachesim")
--     local why = cachesim.check(16384, 64, 8)      -- nil, or what is wrong
--     local l1 = cachesim.new { size = 16384, blksize = 64, assoc = 8, policy = "lru" }
--     if not l1.access(addr) then ... end              -- true on a hit
--     l1.stats()                                       -- { accesses =, misses = }
--
-- Pure Lua, the same under Lua 5.4 and LuaJIT; addresses are exact below
-- 2^53 (user-mode virtual and physical addresses are).
local cachesim = {}

cachesim.POLICIES = { "lru", "fifo", "rand" }

local floor = math.floor

local function is_power_of_two(n)
    while n > 1 and n % 2 == 0 do
        n = n / 2
    end
    return n == 1
end

local function is_positive_integer(n)
    return type(n) == "number" and n >= 1 and n == floor(n)
end

-- The most blocks a cache may have: 2^24, a 1 GiB cache of 64-byte
-- blocks. Building one takes about 1 s and 0.5 GiB under Lua 5.4 (0.3 s
-- and 0.3 GiB under LuaJIT); a geometry of 2^62 bytes would run for
-- minutes before running out of memory.
cachesim.MAX_BLOCKS = 16777216

-- Why a geometry (sizes in bytes) cannot be built, or nil. The two
-- divisibility messages are cache.c's; it also needs a power-of-two block
-- size (an assertion there). A number of sets that is not a power of two
-- cache.c takes, but then uses only the sets its index mask reaches.
function cachesim.check(size, blksize, assoc)
    if not is_positive_integer(blksize) or not is_power_of_two(blksize) then
        return "block size must be a power of two"
    elseif not is_positive_integer(assoc) then
        return "associativity must be a positive integer"
    elseif not is_positive_integer(size) then
        return "cache size must be a positive integer"
    elseif size % blksize ~= 0 then
        return "cache size must be divisible by block size"
    elseif size / blksize > cachesim.MAX_BLOCKS then
        return ("cache size / block size is %.0f blocks, more than the %d (2^24) simulated")
            :format(size / blksize, cachesim.MAX_BLOCKS)
    elseif assoc > size / blksize or size % (blksize * assoc) ~= 0 then
        return "cache size must be divisible by set size (assoc * block size)"
    elseif not is_power_of_two(size / (blksize * assoc)) then
        return "the number of sets (cache size / (assoc * block size)) must be a power of two"
    end
    return nil
end

-- A generator for evict=rand: random(n) gives a way from 1 to n. Park and
-- Miller's minimal standard LCG (multiplier 48271, modulus 2^31 - 1):
-- every product is below 2^53, so it runs the same in both Lua flavours.
function cachesim.lcg(seed)
    local state = (seed or 1) % 2147483646 + 1
    return function(n)
        state = state * 48271 % 2147483647
        return state % n + 1
    end
end

-- Way 1..assoc to replace in a full set (its ways are base+1..base+assoc).
-- last_use[i] is when way i was last hit or filled: lru takes the oldest,
-- which is what cache.c's per-set generation counters pick. cache.c's fifo
-- queue, filled in way order and never emptied, is a round robin.
local function victim_chooser(policy, assoc, nsets, last_use, random)
    if policy == "lru" then
        return function(_, base)
            local way, oldest = 1, last_use[base + 1]
            for w = 2, assoc do
                if last_use[base + w] < oldest then
                    way, oldest = w, last_use[base + w]
                end
            end
            return way
        end
    elseif policy == "fifo" then
        local next_out = {}
        for s = 1, nsets do
            next_out[s] = 1
        end
        return function(set)
            local way = next_out[set]
            next_out[set] = way % assoc + 1
            return way
        end
    elseif policy == "rand" then
        random = random or cachesim.lcg(1)
        return function()
            return random(assoc)
        end
    end
    error(("cachesim: unknown policy %s (expected lru, fifo or rand)"):format(tostring(policy)), 3)
end

-- A cache of geometry { size =, blksize =, assoc = } (bytes, bytes, ways)
-- and policy ("lru" by default); random is the generator of "rand" (shared
-- between caches, as cache.c shares one).
function cachesim.new(g)
    local why = cachesim.check(g.size, g.blksize, g.assoc)
    if why then
        error("cachesim: " .. why, 2)
    end
    local blksize, assoc = g.blksize, g.assoc
    local nsets = floor(g.size / (blksize * assoc))   -- an integer in Lua 5.4: % stays integral
    -- Set s (from 0) holds its blocks (their first address) in
    -- block[s*assoc + 1 .. s*assoc + filled[s+1]]: a set fills in way order
    -- and never empties. Same hits as cache.c's (tag, set) compare.
    local block, last_use, filled = {}, {}, {}
    for i = 1, nsets * assoc do
        block[i], last_use[i] = false, 0
    end
    for s = 1, nsets do
        filled[s] = 0
    end
    local victim = victim_chooser(g.policy or "lru", assoc, nsets, last_use, g.random)
    local accesses, misses = 0, 0

    -- How a hit is found. LuaJIT compiles the scan of a set's few ways into
    -- straight compares; Lua 5.4 interprets it, and one lookup in a table of
    -- the present blocks (where[first address] = slot) is faster. An
    -- evicted block's entry is set to false, not removed: removing keys
    -- makes Lua rehash the whole table on a later insert, an O(size) cost
    -- per miss once it is full. Left-over entries are dropped in one
    -- rebuild when they outnumber the cache's blocks four to one.
    local where = not jit and {} or nil
    local stale, limit = 0, 4 * nsets * assoc
    local function forget(evicted)
        where[evicted] = false
        stale = stale + 1
        if stale > limit then
            where, stale = {}, 0
            for j = 1, nsets * assoc do
                if block[j] then
                    where[block[j]] = j
                end
            end
        end
    end

    local function miss(addr, first)
        misses = misses + 1
        local set = floor(addr / blksize) % nsets + 1
        local base = (set - 1) * assoc
        local n = filled[set]
        local i
        if n < assoc then
            n = n + 1
            filled[set] = n
            i = base + n
        else
            i = base + victim(set, base)
        end
        local evicted = block[i]
        block[i], last_use[i] = first, accesses
        if where then
            where[first] = i
            if evicted then
                forget(evicted)
            end
        end
        return false
    end

    local access
    if where then
        access = function(addr)
            accesses = accesses + 1
            local first = addr - addr % blksize
            local i = where[first]
            if i then
                last_use[i] = accesses
                return true
            end
            return miss(addr, first)
        end
    else
        access = function(addr)
            accesses = accesses + 1
            local first = addr - addr % blksize
            local base = (floor(addr / blksize) % nsets) * assoc
            for i = base + 1, base + filled[base / assoc + 1] do
                if block[i] == first then
                    last_use[i] = accesses
                    return true
                end
            end
            return miss(addr, first)
        end
    end

    local function stats()
        return { accesses = accesses, misses = misses }
    end

    return { access = access, stats = stats, sets = nsets }
end

return cachesim
