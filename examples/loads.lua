-- loads: the loads from an address range: how many, of which sizes, by
-- which instructions.
--
--   symbol=NAME            the range of a data symbol (of any module:
--                          MODULE!NAME names one module's)
--   from=ADDR to=ADDR      or [from, to), addresses or symbol names
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local addresses = require("addresses")
local report = require("report")

local opt = luahost.args { symbol = "", from = "", to = "", format = report.format_arg() }
agg.set_format(opt.format)

-- The range [lo, hi) as of the last translation: looked up again as
-- modules come and go; loads before it is known are not counted.
local range, lo, hi
if opt.symbol ~= "" then
    range = addresses.set({ opt.symbol }, { what = "symbol" })
elseif opt.from ~= "" and opt.to ~= "" then
    range = addresses.set({ opt.from, opt.to }, { what = "from/to" })
else
    luahost.usage_error("give symbol=NAME, or from=ADDR and to=ADDR")
end

local function update_range()
    range:refresh()
    local first, last = range:list()[1], range:list()[2]
    if last then
        lo, hi = first.addr, last.addr
    else
        lo, hi = first.addr, first.addr and first.addr + math.max(first.size, 1)
    end
end

local sizes = agg.hist("bytes")
local by_insn = agg.count("loads")

-- the address is known only at run time
local function on_load(_, vaddr, size, _, where)
    if lo and hi and vaddr >= lo and vaddr < hi then
        sizes:add(size)
        by_insn:add(where)
    end
end

luahost.on_tb_translate(function(tb)
    update_range()
    for _, insn in tb:insns() do
        local where = ("0x%x %s"):format(insn:vaddr(), luahost.describe(insn:vaddr()))
        insn:on_access(on_load, where, "r")
    end
end)
