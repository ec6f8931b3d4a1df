-- compat: the differences between Lua 5.4 and LuaJIT on the Lua side, in
-- one place (host/compat.h is the C side). Guest values are unsigned
-- 64-bit. Lua 5.4 holds them exactly in its integers (values >= 2^63 read
-- as negative and print right with %x). LuaJIT's numbers are doubles:
-- values below 2^53 are plain numbers, larger ones uint64_t cdata. Those
-- are interned, so that the same value is the same object and indexes a
-- table as a number does, wherever it came from (the host, an argument,
-- a stream column).
--
-- compat.u64(hi, lo): the value with these 32-bit halves.
-- compat.u64_column(pointer [, count]): LuaJIT only, a uint64_t * stream
--     column read as numbers where they fit, indexes checked against
--     count[0] when given (nil under Lua 5.4).
local raw = ...
local compat = {}

if not jit then
    function compat.u64(hi, lo)
        return hi * 4294967296 + lo     -- integers: exact, wrapping at 2^64
    end
    return compat
end

local ffi = require("ffi")

local u64 = ffi.typeof("uint64_t")
local i64 = ffi.typeof("int64_t")
local TWO32 = 4294967296
local EXACT = 2 ^ 53
local EXACT_U64 = u64(EXACT)

local interned = setmetatable({}, { __mode = "v" })

-- Values that are not exact doubles, as interned cdata.
local function big(hi, lo, signed)
    local key = (signed and "i" or "u") .. hi .. ":" .. lo
    local v = interned[key]
    if v == nil then
        v = u64(hi) * TWO32 + lo
        if signed then
            v = i64(v)
        end
        interned[key] = v
    end
    return v
end

function compat.u64(hi, lo)
    if hi < EXACT / TWO32 then
        return hi * TWO32 + lo
    end
    return big(hi, lo, false)
end

-- A cdata's halves, or nil for anything but a 64-bit integer cdata.
local function parts(x)
    if type(x) ~= "cdata" or not (ffi.istype(u64, x) or ffi.istype(i64, x)) then
        return nil
    end
    local v = u64(x)
    return tonumber(v / TWO32), tonumber(v % TWO32)
end

-- The host builds values >= 2^53 (and signed ones beyond +-2^53) here.
raw.set_u64_converters(big, parts)

-- Not const: LuaJIT's string.format takes uint64_t values for %x and %d,
-- but not const uint64_t ones.
-- n, when not NULL, points to the batch's count: reads outside 1..n are
-- an error instead of a wild read (lua/stream.lua).
ffi.cdef("typedef struct { uint64_t *p; int32_t *n; } luahost_u64_column;")

function compat.column_range_error(i, n)
    error(("stream batch column: index %s out of range 1..%d (batch.n)"):format(tostring(i), n), 3)
end
local range_error = compat.column_range_error

local U64Column = ffi.metatype("luahost_u64_column", {
    __index = function(column, i)
        local n = column.n
        if n ~= nil and not (type(i) == "number" and i >= 1 and i <= n[0]) then
            range_error(i, n[0])
        end
        local v = column.p[i]
        if v < EXACT_U64 then
            return tonumber(v)
        end
        return big(tonumber(v / TWO32), tonumber(v % TWO32), false)
    end,
})

function compat.u64_column(pointer, count)
    return U64Column(pointer, count)
end

return compat
