-- loads: the loads from an address range: how many, of which sizes, by
-- which instructions.
--
--   symbol=NAME            the range of a data symbol of the program
--   from=ADDR to=ADDR      or [from, to), addresses or symbol names
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local elf = require("elf")
local report = require("report")

local opt = luahost.args { symbol = "", from = "", to = "", format = report.format_arg() }
agg.set_format(opt.format)

local lo, hi
if opt.symbol ~= "" then
    local addr, size = elf.symbol(opt.symbol)
    if not addr then
        luahost.usage_error("no symbol " .. opt.symbol .. " in the program")
    end
    lo, hi = addr, addr + math.max(size, 1)
elseif opt.from ~= "" and opt.to ~= "" then
    lo, hi = elf.address(opt.from), elf.address(opt.to)
else
    luahost.usage_error("give symbol=NAME, or from=ADDR and to=ADDR")
end

local sizes = agg.hist("bytes")
local by_insn = agg.count("loads")

-- the address is known only at run time
local function on_load(_, mem, vaddr, where)
    if vaddr >= lo and vaddr < hi then
        sizes:add(mem:size())
        by_insn:add(where)
    end
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local where = ("0x%x %s"):format(insn:vaddr(), insn:symbol() or "?")
        insn:on_mem(on_load, where, "r")
    end
end)
