-- callcount: how many times named functions were called: executions of
-- each function's first instruction, counted inline by QEMU. A function
-- is found in whichever module defines it, once that module is mapped (a
-- PIE program, a shared library): fn=main, fn=malloc, fn=libc!free.
--
--   fn=NAME                a function (SYMBOL, MODULE!SYMBOL, an address
--                          or MODULE+0xOFF); repeat for several (fn=a,fn=b)
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local addresses = require("addresses")
local report = require("report")

local opt = luahost.args { fn = luahost.args.list(), format = report.format_arg() }
agg.set_format(opt.format)
if #opt.fn == 0 then
    luahost.usage_error("give fn=NAME (repeat it for several functions)")
end

local calls = agg.count("calls")
local entry = addresses.set(opt.fn, { what = "fn" })
for _, name in ipairs(opt.fn) do
    calls:add(name, 0)      -- listed even if never called
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local name = entry:at(insn:vaddr())
        if name then
            calls:inline(insn, name)
        end
    end
end)
