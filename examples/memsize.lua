-- memsize: a histogram of memory access sizes in bytes, loads and stores
-- apart. The size of an access is known only when it happens: one Lua
-- callback per access.
--
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local report = require("report")

local opt = luahost.args { format = report.format_arg() }
agg.set_format(opt.format)

local sizes = agg.hist("bytes")

local function on_access(_, _, size, is_store)
    sizes:add(size, is_store and "store" or "load")
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        insn:on_access(on_access)
    end
end)
