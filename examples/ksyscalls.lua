-- ksyscalls: the syscalls a Linux kernel ran, counted from the kernel's
-- side (system mode): each entry into one of its syscall functions,
-- __arm64_sys_NAME (arm64) or __x64_sys_NAME (x86_64), as the kernel's
-- symbols name them. Give them with symbols= (its System.map, or vmlinux)
-- and boot it with nokaslr, so that its code lies at those addresses.
-- QEMU counts with inline ops: no Lua runs while the guest does.
--
--   limit=N                syscalls in the report (default 20)
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local report = require("report")

local opt = luahost.args {
    limit = 20,
    format = report.format_arg(),
}
if opt.limit < 0 then
    luahost.usage_error(("limit must be at least 0: limit=%d"):format(opt.limit))
end
if not luahost.info.system_emulation then
    luahost.usage_error("ksyscalls.lua counts a kernel's syscalls in system mode; in user mode, syscount.lua")
end
agg.set_format(opt.format)

local syscalls = agg.count("syscalls", { limit = opt.limit })
local PREFIXES = { "^__arm64_sys_(.+)", "^__x64_sys_(.+)" }

-- The syscall whose function starts at addr, or nil.
local function syscall_at(addr)
    local s = luahost.symbolize(addr)
    if not (s and s.symbol and s.symbol_offset == 0) then
        return nil
    end
    for _, prefix in ipairs(PREFIXES) do
        local name = s.symbol:match(prefix)
        if name then
            return name
        end
    end
end

luahost.on_tb_translate(function(tb)
    local name = syscall_at(tb:vaddr())
    if name then
        syscalls:inline(tb, name)
    end
end)
