-- regs: picking registers by name pattern, printing their values, and
-- noticing which changed, for scripts that log registers.
--
--     local regs = require("regs")
--     luahost.on_vcpu_init(function(vcpu)
--         local picked = regs.select(luahost.registers(), { "r?x", "xmm*" })
--         watch[vcpu] = regs.watcher(picked)         -- remembers the values now
--     end)
--     -- later, in a callback registered with regs = "r":
--     for _, reg, value, size in watch[vcpu]:changed() do
--         luahost.printf("%s -> %s\n", reg.name, regs.hex(value, size))
--     end
--
-- Values are what register:read() returns: a u64 for up to 8 bytes (with
-- the size as second value), else a string of the bytes in target order.
-- Only the watcher reads registers; the rest is pure Lua.
local glob = require("glob")

local regs = {}

-- The registers whose name, or its lower-case form, matches one of the
-- glob patterns (see glob.lua), in the order of `registers`. Also a list
-- of how many patterns each matched: execlog.c tracks a register once per
-- matching pattern.
function regs.select(registers, patterns)
    local matchers = {}
    for i, pattern in ipairs(patterns) do
        matchers[i] = glob.compile(pattern)
    end
    local picked, hits = {}, {}
    for _, reg in ipairs(registers) do
        local n = 0
        for _, matches in ipairs(matchers) do
            if matches(reg.name) or matches(reg.name:lower()) then
                n = n + 1
            end
        end
        if n > 0 then
            picked[#picked + 1] = reg
            hits[#picked] = n
        end
    end
    return picked, hits
end

local function byte_hex(c)
    return ("%02x"):format(c:byte())
end

-- A register value as `0x` and hex digits, most significant first: an
-- integer with 2 * size digits; a byte string last byte first (the value
-- of a little-endian register, as execlog.c prints every register).
function regs.hex(value, size)
    if type(value) == "string" then
        return "0x" .. value:reverse():gsub(".", byte_hex)
    end
    return ("0x%0" .. (2 * size) .. "x"):format(value)
end

local Watcher = {}
Watcher.__index = Watcher

-- Remembers the current values of `registers` (a list, a register may be
-- listed twice); valid where registers can be read.
function regs.watcher(registers)
    local self = setmetatable({ registers = registers, last = {} }, Watcher)
    for i, reg in ipairs(registers) do
        self.last[i] = reg:read()
    end
    return self
end

local function next_change(self, i)
    local registers, last = self.registers, self.last
    for j = i + 1, #registers do
        local value, size = registers[j]:read()
        if value ~= last[j] then
            last[j] = value
            return j, registers[j], value, size
        end
    end
end

-- Iterates over the registers whose value differs from the last one seen,
-- in list order, remembering the new value: `for i, reg, value, size in
-- w:changed() do ... end`. Valid where registers can be read; allocates
-- nothing when no value changed.
function Watcher:changed()
    return next_change, self, 0
end

return regs
