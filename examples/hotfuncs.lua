-- hotfuncs: the functions that executed the most instructions.
-- Keyed by the guest symbol of each instruction ("?" outside any symbol);
-- QEMU counts with inline ops, no Lua runs while the program does.
--
--   limit=N                functions in the report (default 10)
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local report = require("report")

local opt = luahost.args { limit = 10, format = report.format_arg() }
agg.set_format(opt.format)

local insns = agg.count("insns", { limit = opt.limit })

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        insns:inline(insn, insn:symbol() or "?")
    end
end)
