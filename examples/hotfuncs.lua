-- hotfuncs: the functions that executed the most instructions.
-- Keyed by module and symbol, MODULE!SYMBOL (libc.so.6!memcpy), which
-- stay the same from run to run; code of a module that no symbol covers
-- (a stripped library's internal functions) counts as MODULE!(no symbol),
-- code in no module as QEMU's symbol or "(no module)". QEMU counts with
-- inline ops, no Lua runs while the program does.
--
--   by=function|module     key by function (default) or by module alone
--                          (per-module totals)
--   limit=N                keys in the report (default 10)
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local report = require("report")

local opt = luahost.args {
    by = luahost.args.choice({ "function", "module" }, "function"),
    limit = 10,
    format = report.format_arg(),
}
if opt.limit < 0 then
    luahost.usage_error(("limit must be at least 0: limit=%d"):format(opt.limit))
end
agg.set_format(opt.format)

local NO_SYMBOL = "(no symbol)"
local NO_MODULE = "(no module)"

local insns = agg.count("insns", { limit = opt.limit })

-- The key of one instruction of a block in module (nil: in none).
local function key_of(insn, module)
    if opt.by == "module" then
        return module and module.name or NO_MODULE
    end
    local symbol = insn:symbol()
    if module then
        return module.name .. "!" .. (symbol or NO_SYMBOL)
    end
    return symbol or NO_MODULE
end

luahost.on_tb_translate(function(tb)
    -- a block lies in one module: code does not run from one into the next
    local module = luahost.module_at(tb:vaddr())
    for _, insn in tb:insns() do
        insns:inline(insn, key_of(insn, module))
    end
end)
