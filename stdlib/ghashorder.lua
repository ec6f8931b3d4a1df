-- ghashorder: the order in which a glib GHashTable keyed by 64-bit
-- integers (g_int64_hash, g_int64_equal) lists its values, for ports of
-- QEMU plugins whose reports keep that order (cflow.c lists its nodes as
-- g_hash_table_get_values gives them, and sorts them stably). The table's
-- layout depends only on the keys and the order they were inserted, so it
-- can be replayed: this follows glib 2.74's ghash.c (Debian 12), its
-- probing, its resizes and its tombstones. (Later glibs hash the high 32
-- bits of a key too: the same for keys below 2^32.)
--
--     local ghashorder = require("ghashorder")
--     local t = ghashorder.new()
--     t:insert(key) ...                -- in the C plugin's insertion order
--     t:remove_if(function(key) ... end)   -- g_hash_table_foreach_remove
--     local keys = t:values()          -- g_hash_table_get_values' order
local ghashorder = {}

local MIN_SHIFT = 3
local UNUSED, TOMBSTONE = 0, 1
local TWO32 = 4294967296

-- glib's prime_mod[]: the modulus of a table of 2^shift buckets.
local PRIME_MOD = { [0] = 1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521,
    131071, 262139, 524287, 1048573, 2097143, 4194301, 8388593, 16777213, 33554393, 67108859, 134217689,
    268435399, 536870909, 1073741789, 2147483647 }

local Table = {}
Table.__index = Table

-- g_int64_hash: the key's low 32 bits; 0 and 1 mark free buckets, so
-- glib makes them 2.
local function hash_of(key)
    local h = tonumber(key % TWO32)
    if h < 2 then
        h = 2
    end
    return h
end

local function set_shift(t, shift)
    local size = 1
    for _ = 1, shift do
        size = size * 2
    end
    t.size, t.mod = size, PRIME_MOD[shift]
end

-- (hash * 11) % mod, the multiplication in 32-bit unsigned arithmetic.
local function index_of(t, hash)
    return (hash * 11) % TWO32 % t.mod
end

function ghashorder.new()
    local t = setmetatable({ hashes = {}, keys = {}, nnodes = 0, noccupied = 0 }, Table)
    set_shift(t, MIN_SHIFT)
    for i = 0, t.size - 1 do
        t.hashes[i] = UNUSED
    end
    return t
end

-- g_hash_table_resize: rehash in place into the size nnodes * 1.333 asks
-- for, moving each entry to its bucket and the one there onward, as glib
-- does (the order of the result depends on it).
local function resize(t)
    local old_size = t.size
    local n = math.floor(t.nnodes * 1.333)
    local shift = 0
    while n > 0 do
        n = math.floor(n / 2)
        shift = shift + 1
    end
    set_shift(t, math.max(shift, MIN_SHIFT))
    local hashes, keys = t.hashes, t.keys
    for i = old_size, t.size - 1 do
        hashes[i] = UNUSED
    end
    local moved = {}
    for i = 0, old_size - 1 do
        local hash = hashes[i]
        if hash < 2 then
            hashes[i] = UNUSED
        elseif not moved[i] then
            hashes[i] = UNUSED
            local key = keys[i]
            keys[i] = nil
            while true do
                local j = index_of(t, hash)
                local step = 0
                while moved[j] do
                    step = step + 1
                    j = (j + step) % t.size
                end
                moved[j] = true
                local replaced, replaced_key = hashes[j], keys[j]
                hashes[j], keys[j] = hash, key
                if replaced < 2 then
                    break
                end
                hash, key = replaced, replaced_key
            end
        end
    end
    for i = t.size, old_size - 1 do
        hashes[i], keys[i] = nil, nil
    end
    t.noccupied = t.nnodes
end

local function maybe_resize(t)
    local size, noccupied = t.size, t.noccupied
    local too_big = size > t.nnodes * 4 and size > 8      -- 8: the smallest size
    if too_big or size <= noccupied + math.floor(noccupied / 16) then
        resize(t)
    end
end

-- g_hash_table_insert of a key not yet in the table (the caller knows).
function Table:insert(key)
    local hash = hash_of(key)
    local hashes = self.hashes
    local i = index_of(self, hash)
    local step = 0
    local tombstone
    while hashes[i] ~= UNUSED do
        if hashes[i] == TOMBSTONE and not tombstone then
            tombstone = i
        end
        step = step + 1
        i = (i + step) % self.size
    end
    i = tombstone or i
    local old = hashes[i]
    hashes[i], self.keys[i] = hash, key
    self.nnodes = self.nnodes + 1
    if old == UNUSED then
        self.noccupied = self.noccupied + 1
        maybe_resize(self)
    end
end

-- g_hash_table_foreach_remove: drops the keys for which fn(key) is true.
function Table:remove_if(fn)
    for i = 0, self.size - 1 do
        if self.hashes[i] >= 2 and fn(self.keys[i]) then
            self.hashes[i], self.keys[i] = TOMBSTONE, nil
            self.nnodes = self.nnodes - 1
        end
    end
    maybe_resize(self)
end

-- g_hash_table_get_values: the keys, last bucket first (glib prepends
-- each to its list).
function Table:values()
    local out = {}
    for i = self.size - 1, 0, -1 do
        if self.hashes[i] >= 2 then
            out[#out + 1] = self.keys[i]
        end
    end
    return out
end

return ghashorder
