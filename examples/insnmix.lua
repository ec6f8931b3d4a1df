-- insnmix: the instruction mix: executed instructions by mnemonic.
-- The mnemonic is the first word of QEMU's disassembly, taken once per
-- encoding (luahost.insn_mix); QEMU counts the executions inline.
--
--   limit=N                mnemonics in the report (default 20)
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local report = require("report")

local opt = luahost.args { limit = 20, format = report.format_arg() }
if opt.limit < 0 then
    luahost.usage_error(("limit must be at least 0: limit=%d"):format(opt.limit))
end
agg.set_format(opt.format)

local counts = agg.count("insns", { limit = opt.limit })
local mix = luahost.insn_mix(function(insn)
    return counts:entry(insn:disas():match("^(%S+)") or "?")
end)

luahost.on_tb_translate(function(tb)
    mix:count(tb)
end)
