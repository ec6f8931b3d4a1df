-- args: plugin arguments (name=value, in order) parsed against a spec,
-- the way QEMU's C plugins parse theirs: booleans as qemu_plugin_bool_parse
-- takes them, integers in decimal or 0x hex, and any unknown name refused.
--
--     local opt = luahost.args { inline = false, limit = 20 }
--     local opt = luahost.args { addr = luahost.args.list(parse_addr) }
--
-- A plain default (false, 20, "lru") stands for bool/int/string with that
-- default. Errors name the script line that called the parser.
local compat = ...
local args = {}

-- Taken now: a script may change the globals, and these run in its errors.
local error, getinfo, getmetatable, setmetatable = error, debug.getinfo, getmetatable, setmetatable

-- __name marks usage errors for the host's message handler (host/call.c).
local UsageError = { __name = "luahost.usage_error" }
UsageError.__index = UsageError
UsageError.__tostring = function(e)
    return e.message
end

function args.is_usage_error(e)
    return getmetatable(e) == UsageError
end

-- Raised for the user's mistakes: shown as one line, without a traceback.
function args.usage_error(message, level)
    if type(message) ~= "string" and type(message) ~= "number" then
        error("luahost.usage_error expects a message, got " .. type(message), 2)
    end
    local where = ""
    local info = getinfo((level or 1) + 1, "Sl")
    if info and info.currentline and info.currentline > 0 then
        where = ("%s:%d: "):format(info.short_src, info.currentline)
    end
    error(setmetatable({ message = where .. message }, UsageError), 0)
end

local BOOLEANS = {
    on = true, yes = true, ["true"] = true,
    off = false, no = false, ["false"] = false,
}

local function parse_bool(text)
    local value = BOOLEANS[text]
    if value == nil then
        return nil, "boolean argument parsing failed"
    end
    return value
end

-- The integers an int argument may be: Lua 5.4's, or under LuaJIT those
-- its numbers (doubles) hold exactly. Magnitudes as digit strings, to be
-- compared before converting: a conversion would round or wrap.
local INT_RANGE, INT_MAX, INT_MIN, INT_MAX_HEX
if jit then
    INT_RANGE, INT_MAX, INT_MIN, INT_MAX_HEX = "-2^53 to 2^53", "9007199254740992",
        "9007199254740992", "20000000000000"
else
    INT_RANGE, INT_MAX, INT_MIN, INT_MAX_HEX = "-2^63 to 2^63 - 1", "9223372036854775807",
        "9223372036854775808", "7fffffffffffffff"
end

-- digits (no sign, no leading zeros) at most limit, both of one base.
local function within(digits, limit)
    return #digits < #limit or (#digits == #limit and digits <= limit)
end

local function parse_int(text)
    local hex = text:match("^0[xX](%x+)$")
    local sign, dec = text:match("^([+-]?)(%d+)$")
    if hex then
        if not within(hex:lower():gsub("^0+", ""), INT_MAX_HEX) then
            return nil, ("integer argument out of range (%s)"):format(INT_RANGE)
        end
        return tonumber(hex, 16)
    elseif dec then
        dec = dec:gsub("^0+", "")
        if not within(dec, sign == "-" and INT_MIN or INT_MAX) then
            return nil, ("integer argument out of range (%s)"):format(INT_RANGE)
        end
        return dec == "" and 0 or tonumber(text, 10)     -- never LuaJIT's -0
    end
    return nil, "integer argument parsing failed"
end

local DIGITS = { [8] = "^[0-7]+$", [10] = "^%d+$", [16] = "^%x+$" }
local TWO32 = 4294967296

-- An unsigned 64-bit number, exact in both Lua builds (lua/compat.lua):
-- base 0 (the default) reads 0x hex, 0 octal or decimal, as strtoull
-- base 0 does; base 16 reads hex, 0x optional, as strtoull base 16.
-- Returns the value, or nil and why.
function args.parse_u64(text, base)
    local digits, b = text, base or 0
    if text:match("^0[xX]") and (b == 0 or b == 16) then
        digits, b = text:sub(3), 16
    elseif b == 0 then
        b = text:match("^0.") and 8 or 10
    end
    if not DIGITS[b] or not digits:match(DIGITS[b]) then
        if base == 16 then
            return nil, "not a hex address"
        end
        return nil, "not a number (decimal, 0x hex or 0 octal)"
    end
    local hi, lo = 0, 0
    for i = 1, #digits do
        lo = lo * b + tonumber(digits:sub(i, i), 16)
        local carry = math.floor(lo / TWO32)
        lo = lo % TWO32
        hi = hi * b + carry
        if hi >= TWO32 then
            return nil, "wider than 64 bits"
        end
    end
    return compat.u64(hi, lo)
end

local function parse_string(text)
    return text
end

local function kind(parse, default, name)
    return { parse = parse, default = default, kind = name }
end

function args.bool(default)
    return kind(parse_bool, default, "bool")
end

function args.int(default)
    return kind(parse_int, default, "int")
end

-- An unsigned 64-bit number (an address, a count): see args.parse_u64.
function args.u64(default, base)
    return kind(function(text)
        local value, why = args.parse_u64(text, base)
        if value == nil then
            return nil, ("unsigned 64-bit argument parsing failed (%s)"):format(why)
        end
        return value
    end, default, "u64")
end

function args.string(default)
    return kind(parse_string, default, "string")
end

function args.choice(options, default)
    local allowed = {}
    for _, o in ipairs(options) do
        allowed[o] = true
    end
    return kind(function(text)
        if allowed[text] then
            return text
        end
        return nil, "expected one of " .. table.concat(options, ", ")
    end, default, "choice")
end

-- A parser of your own: parse(text) returns the value, or nil and why.
function args.custom(parse, default)
    return kind(parse, default, "custom")
end

-- A name that may be repeated; the values come back in order, as a list.
function args.list(item)
    local spec = args.spec_of(item or args.string(), 2)
    return { parse = spec.parse, default = {}, kind = "list", many = true }
end

-- level: the caller's, as for error(); the message names its caller's line.
function args.spec_of(v, level)
    local t = type(v)
    if t == "table" and v.parse then
        return v
    elseif t == "boolean" then
        return args.bool(v)
    elseif t == "number" then
        return args.int(v)
    elseif t == "string" then
        return args.string(v)
    end
    error("argument spec must be a default value or an args.* kind, got " .. t, (level or 1) + 1)
end

-- Parses argv (a list of "name=value" strings) against spec; the result
-- has every name of the spec, with its default where not given.
function args.parse(spec, argv, level)
    level = (level or 1) + 1
    if type(spec) ~= "table" then
        error("luahost.args expects a table of argument specs, got " .. type(spec), level)
    end
    local specs, result = {}, {}
    for name, v in pairs(spec) do
        specs[name] = args.spec_of(v, level)
        local default = specs[name].default
        result[name] = specs[name].many and {} or default
    end
    for _, arg in ipairs(argv) do
        local name, text = arg:match("^([^=]*)=(.*)$")
        local s = specs[name or arg]
        if not s then
            local known = {}
            for n in pairs(specs) do
                known[#known + 1] = n
            end
            table.sort(known)
            args.usage_error(("option parsing failed: %s (known options: %s)")
                :format(arg, #known > 0 and table.concat(known, ", ") or "none"), level)
        end
        if not name then
            args.usage_error(("option parsing failed: %s (expected %s=VALUE)"):format(arg, arg), level)
        end
        local value, why = s.parse(text)
        if value == nil then
            args.usage_error(("%s: %s"):format(why or "argument parsing failed", arg), level)
        end
        if s.many then
            table.insert(result[name], value)
        else
            result[name] = value
        end
    end
    return result
end

return args
