-- stoptrigger: stop the guest after N instructions or at an address.
-- End the emulation after N instructions, or when the guest reaches an
-- address. A port of QEMU's contrib/plugins/stoptrigger.c: same
-- arguments, same messages, same exit codes.
--
--   icount=N[:CODE]  exit with CODE (default 0) when a vCPU is about to
--                    execute its instruction N+1 (its first N have run)
--   addr=A[:CODE]    exit with CODE (default 0) when any vCPU is about to
--                    execute the instruction at A; may be given many times
--
-- Numbers are decimal, 0x hex or 0 octal, as strtoull reads them; CODE is
-- 0 to 255. A may also name code, found when its module is mapped (a PIE
-- program, a library): SYMBOL[+0xOFF], MODULE!SYMBOL[+0xOFF] or
-- MODULE+0xOFF (stdlib/addresses.lua). No Lua runs per executed instruction: each instruction adds 1
-- to its vCPU's count inline, and QEMU calls back only when the count
-- reaches N+1, or when an instruction at a trigger address runs.
local addresses = require("addresses")
local args = luahost.args
local opt = args { icount = args.string(), addr = args.list() }

-- A number as strtoull base 0 reads it (exact for 64-bit addresses).
local function number(text, what)
    local value, why = args.parse_u64(text)
    if value == nil then
        args.usage_error(("%s parsing failed: '%s' is %s"):format(what, text, why))
    end
    return value
end

-- "N" or "N:CODE", as stoptrigger.c splits it.
local function split(text, what)
    local n, code = text:match("^([^:]*):?(.*)$")
    if code == "" then
        return n, 0
    end
    local value = number(code, what .. " exit code")
    if value < 0 or value > 255 then   -- < 0: Lua 5.4 shows u64 >= 2^63 so
        args.usage_error(("%s parsing failed: exit code '%s' is not 0 to 255"):format(what, code))
    end
    return n, value
end

local icount, icount_code
if opt.icount then
    local n
    n, icount_code = split(opt.icount, "icount")
    icount = n:match("^%d") and args.parse_u64(n)
    if not icount or icount < 1 or icount >= 2 ^ 53 then
        args.usage_error(("icount parsing failed: '%s' must be a positive integer"):format(n))
    end
end

local code_of, places = {}, {}   -- code_of[A] = CODE
for _, text in ipairs(opt.addr) do
    local place, code = split(text, "addr")
    local loc, why = luahost.parse_location(place)
    if not loc then
        args.usage_error(("addr parsing failed: '%s': %s"):format(place, why))
    end
    code_of[place] = code
    places[#places + 1] = place
end
local trigger = addresses.set(places, { what = "addr" })
if not icount and #places == 0 then
    args.usage_error("'icount' or 'addr' argument missing")
end

local function stop(code, message)
    luahost.outs(message)
    luahost.exit(code)
end

local function icount_reached(_, pc)
    stop(icount_code, ("icount reached at 0x%x, exiting\n"):format(pc))
end

local function address_reached(_, at)
    stop(at.code, ("0x%x reached, exiting\n"):format(at.pc))
end

local executed = luahost.scoreboard()   -- instructions started, per vCPU

local stop_at = icount and icount + 1
local any_place = #places > 0

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local pc = insn:vaddr()
        if stop_at then
            insn:inline("add", executed, 1)
            insn:on_exec_if(executed, "eq", stop_at, icount_reached, pc)
        end
        local place = any_place and trigger:at(pc)
        if place then
            insn:on_exec(address_reached, { pc = pc, code = code_of[place] })
        end
    end
end)
