-- callcount: how many times named functions were called: executions of
-- each function's first instruction (its address from the program's
-- symbol table), counted inline by QEMU.
--
--   fn=NAME                a function; repeat for several (fn=a,fn=b)
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local elf = require("elf")
local report = require("report")

local opt = luahost.args { fn = luahost.args.list(), format = report.format_arg() }
agg.set_format(opt.format)
if #opt.fn == 0 then
    luahost.usage_error("give fn=NAME (repeat it for several functions)")
end

local calls = agg.count("calls")
local entry = {}            -- address -> function name
for _, name in ipairs(opt.fn) do
    entry[elf.address(name)] = name
    calls:add(name, 0)      -- listed even if never called
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local name = entry[insn:vaddr()]
        if name then
            calls:inline(insn, name)
        end
    end
end)
