-- stdlib/cachesim.lua is pure Lua: tested here without QEMU, on cases
-- worked by hand and against a line-by-line transliteration of cache.c.
local helper = require("helper")
local cachesim = assert(loadfile(helper.source_root .. "/stdlib/cachesim.lua"))()

-- hits (true) and misses (false) of a sequence of addresses
local function run(cache, addrs)
    local out = {}
    for i, a in ipairs(addrs) do
        out[i] = cache.access(a)
    end
    return out
end

-- cache.c's access_cache, kept close to the C: tag and set masks, a valid
-- bit per block, per-set LRU generation counters and FIFO queues.
local function reference_cache(size, blksize, assoc, policy)
    local nsets = size / (blksize * assoc)
    local sets = {}
    for s = 0, nsets - 1 do
        local set = { blocks = {}, prio = {}, gen = 0, queue = {} }
        for b = 0, assoc - 1 do
            set.blocks[b] = { tag = 0, valid = false }
            set.prio[b] = 0
        end
        sets[s] = set
    end
    local function lru_update(set, b)
        set.prio[b] = set.gen
        set.gen = set.gen + 1
    end
    return function(addr)
        local set_index = math.floor(addr / blksize) % nsets         -- (addr & set_mask) >> shift
        local tag = addr - addr % (blksize * nsets)                   -- addr & tag_mask
        local set = sets[set_index]
        for b = 0, assoc - 1 do
            if set.blocks[b].valid and set.blocks[b].tag == tag then
                if policy == "lru" then
                    lru_update(set, b)
                end
                return true
            end
        end
        local replaced = -1
        for b = 0, assoc - 1 do
            if not set.blocks[b].valid then
                replaced = b
                break
            end
        end
        if replaced == -1 then
            if policy == "lru" then
                replaced = 0
                for b = 1, assoc - 1 do
                    if set.prio[b] < set.prio[replaced] then
                        replaced = b
                    end
                end
            else
                replaced = table.remove(set.queue)            -- g_queue_pop_tail
            end
        end
        if policy == "lru" then
            lru_update(set, replaced)
        else
            table.insert(set.queue, 1, replaced)              -- g_queue_push_head
        end
        set.blocks[replaced].tag, set.blocks[replaced].valid = tag, true
        return false
    end
end

describe("cachesim", function()
    -- 128 bytes, 32-byte blocks, 2 ways: 2 sets. 0, 64, 128 share set 0.
    local small = { size = 128, blksize = 32, assoc = 2 }
    local function cache(policy, extra)
        local g = { size = small.size, blksize = small.blksize, assoc = small.assoc, policy = policy }
        for k, v in pairs(extra or {}) do
            g[k] = v
        end
        return cachesim.new(g)
    end

    it("maps addresses to blocks and sets", function()
        local c = cache("lru")
        assert.are.equal(2, c.sets)
        -- 0 and 31 are one block; 32 is set 1; 96 is set 1 again
        assert.are.same({ false, true, false, true, false, true, true },
            run(c, { 0, 31, 32, 63, 96, 127, 0 }))
        assert.are.same({ accesses = 7, misses = 3 }, c.stats())
    end)

    it("evicts the least recently used block under lru", function()
        -- A B A C: C replaces B (A was used after B), so A still hits, B misses
        assert.are.same({ false, false, true, false, true, false },
            run(cache("lru"), { 0, 64, 0, 128, 0, 64 }))
    end)

    it("evicts the first block filled under fifo, whatever the hits", function()
        -- A B A C: C replaces A (first in) even though A was just hit
        assert.are.same({ false, false, true, false, false, true },
            run(cache("fifo"), { 0, 64, 0, 128, 0, 128 }))
    end)

    it("goes round the ways under fifo", function()
        -- 4 ways, one set: fill A B C D, then E replaces A, F replaces B ...
        local c = cachesim.new { size = 128, blksize = 32, assoc = 4, policy = "fifo" }
        assert.are.same({ false, false, false, false, false, true, true, true, false, false },
            run(c, { 0, 32, 64, 96, 128, 32, 64, 96, 0, 32 }))
    end)

    it("fills empty ways before evicting, whatever the policy", function()
        for _, policy in ipairs(cachesim.POLICIES) do
            local c = cache(policy)
            assert.are.same({ false, false, true, true }, run(c, { 0, 64, 0, 64 }), policy)
        end
    end)

    it("keeps sets apart", function()
        -- set 1 traffic does not disturb set 0
        assert.are.same({ false, false, false, false, false, true, true },
            run(cache("lru"), { 0, 64, 32, 96, 160, 0, 64 }))
    end)

    it("replaces at random under rand, repeatably for a seed", function()
        -- A B C cycled in a 2-way set: lru and fifo miss every time; rand
        -- keeps a block now and then
        local cycle = {}
        for i = 1, 300 do
            cycle[i] = ((i - 1) % 3) * 64
        end
        local function misses(c)
            run(c, cycle)
            return c.stats().misses
        end
        assert.are.equal(300, misses(cache("lru")))
        assert.are.equal(300, misses(cache("fifo")))
        local r1 = misses(cache("rand", { random = cachesim.lcg(7) }))
        assert.is_true(r1 < 250, "rand misses: " .. r1)
        assert.are.equal(r1, misses(cache("rand", { random = cachesim.lcg(7) })))
    end)

    it("draws from the minimal standard generator (as C++'s minstd_rand)", function()
        -- seed 0 starts the state at 1; with n = 2^31 - 1 a draw is x + 1
        local random = cachesim.lcg(0)
        local draws = {}
        for i = 1, 10000 do
            draws[i] = random(2147483647) - 1
        end
        assert.are.same({ 48271, 182605794, 1291394886 }, { draws[1], draws[2], draws[3] })
        assert.are.equal(399268537, draws[10000])   -- required by the C++ standard
        local r = cachesim.lcg(5)
        for _ = 1, 1000 do
            local w = r(8)
            assert.is_true(w >= 1 and w <= 8 and w == math.floor(w))
        end
    end)

    for _, policy in ipairs({ "lru", "fifo" }) do
        it("agrees with a transliteration of cache.c under " .. policy, function()
            local random = cachesim.lcg(42)
            for _, g in ipairs({ { 1024, 64, 2 }, { 4096, 32, 8 }, { 512, 16, 1 }, { 256, 64, 4 } }) do
                local ours = cachesim.new { size = g[1], blksize = g[2], assoc = g[3], policy = policy }
                local theirs = reference_cache(g[1], g[2], g[3], policy)
                -- a few hot blocks and a wider random spread
                for i = 1, 20000 do
                    local addr = random(2) == 1 and random(8) * 64 or random(65536)
                    assert.are.equal(theirs(addr), ours.access(addr), ("access %d to %d"):format(i, addr))
                end
            end
        end)
    end

    it("rejects geometries cache.c cannot build, with its messages", function()
        local cases = {
            { { 1000, 64, 2 }, "cache size must be divisible by block size" },
            { { 192, 64, 2 }, "cache size must be divisible by set size (assoc * block size)" },
            { { 4096, 48, 2 }, "block size must be a power of two" },
            { { 4096, 0, 2 }, "block size must be a power of two" },
            { { 4096, 64, 0 }, "associativity must be a positive integer" },
            { { 0, 64, 2 }, "cache size must be a positive integer" },
            { { -128, 64, 2 }, "cache size must be a positive integer" },
            -- too large to simulate: 2^62 bytes took minutes and all memory
            { { 2 ^ 62, 64, 8 },
                "cache size / block size is 72057594037927936 blocks, more than the 16777216 (2^24) simulated" },
            { { 2 ^ 24 * 64 * 2, 64, 8 },
                "cache size / block size is 33554432 blocks, more than the 16777216 (2^24) simulated" },
            -- more ways than blocks; blksize * assoc would wrap around in Lua 5.4
            { { 4096, 4, math.tointeger(2 ^ 62) }, "cache size must be divisible by set size (assoc * block size)" },
            { { 384, 64, 2 }, "the number of sets (cache size / (assoc * block size)) must be a power of two" },
        }
        for _, case in ipairs(cases) do
            local g = case[1]
            assert.are.equal(case[2], cachesim.check(g[1], g[2], g[3]))
            assert.has_error(function()
                cachesim.new { size = g[1], blksize = g[2], assoc = g[3] }
            end, "cachesim: " .. case[2])
        end
        assert.is_nil(cachesim.check(16384, 64, 8))
        assert.is_nil(cachesim.check(64, 64, 1))
        assert.is_nil(cachesim.check(2 ^ 24 * 64, 64, 8))
        assert.has_error(function() cachesim.new { size = 128, blksize = 32, assoc = 2, policy = "mru" } end)
    end)
end)
