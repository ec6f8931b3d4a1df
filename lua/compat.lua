-- compat_jit: under LuaJIT, unsigned 64-bit values at and above 2^53 cannot be
-- numbers; the host builds and reads them as uint64_t cdata through these.
local raw = ...
local ffi = require("ffi")

local u64 = ffi.typeof("uint64_t")
local i64 = ffi.typeof("int64_t")
local TWO32 = 4294967296

local function new(hi, lo, signed)
    local v = u64(hi) * TWO32 + lo
    if signed then
        return i64(v)
    end
    return v
end

local function parts(x)
    if type(x) ~= "cdata" or not (ffi.istype(u64, x) or ffi.istype(i64, x)) then
        return nil
    end
    local v = u64(x)
    return tonumber(v / TWO32), tonumber(v % TWO32)
end

raw.set_u64_converters(new, parts)
