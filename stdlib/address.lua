-- address: guest addresses as keys and as arguments. A key is the address
-- in lower-case hex digits, without 0x or leading zeros, as
-- ("%x"):format(vaddr) prints it: exact for all 64 bits in both Lua
-- builds (LuaJIT's numbers are doubles; its 64-bit values are cdata,
-- which do not index tables by value).
--
--     local address = require("address")
--     local key = address.parse("0x401000")          -- "401000"
--     if wanted[address.key(insn:vaddr())] then ... end
--
-- Pure Lua: no luahost call, so it also runs (and is tested) outside QEMU.
local address = {}

function address.key(vaddr)
    return ("%x"):format(vaddr)
end

local function from_hex(digits)
    digits = digits:lower():match("^0*(%x-)$")
    if #digits > 16 then
        return nil
    end
    return digits == "" and "0" or digits
end

-- text as a key, or nil and why ("not a hex address"). base 16: hex digits, 0x optional (as the
-- C plugins' g_ascii_strtoull(text, NULL, 16)); base 0 (the default):
-- 0x hex, 0 octal or decimal, as strtoull base 0 reads them. Decimal and
-- octal must stay below 2^53, where doubles are exact.
function address.parse(text, base)
    local hex = text:match("^0[xX](%x+)$")
    if base == 16 then
        hex = hex or text:match("^%x+$")
    end
    if hex then
        local key = from_hex(hex)
        if key then
            return key
        end
        return nil, "wider than 64 bits"
    elseif base ~= 16 then
        local value = text:match("^0[0-7]*$") and tonumber(text, 8) or text:match("^[1-9]%d*$") and tonumber(text, 10)
        if value and value < 2 ^ 53 then
            return address.key(value)
        end
    end
    if base == 16 then
        return nil, "not a hex address"
    end
    return nil, "not a number (decimal below 2^53, 0x hex or 0 octal)"
end

return address
