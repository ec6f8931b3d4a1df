-- ksyscalls: the syscalls a Linux kernel ran, counted from the kernel's
-- side (system mode): at the entry of its syscall dispatcher, which holds
-- the syscall's number in a register (x86_64: do_syscall_64(regs, nr),
-- nr in rsi; aarch64: invoke_syscall(regs, scno, ...), scno in x1), named
-- from the kernel's own headers (stdlib/syscalls.lua). The functions that
-- implement the syscalls (__x64_sys_getpid) cannot be counted instead:
-- x86_64 kernels inline many into their dispatcher. Give the kernel's
-- symbols with symbols= (its System.map, or vmlinux) and boot it with
-- nokaslr, so that its code lies at those addresses. One Lua call per
-- syscall.
--
--   limit=N                syscalls in the report (default 20)
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local report = require("report")
local syscalls = require("syscalls")

local opt = luahost.args {
    limit = 20,
    format = report.format_arg(),
}
if opt.limit < 0 then
    luahost.usage_error(("limit must be at least 0: limit=%d"):format(opt.limit))
end
local arch = luahost.info.target_name
if not luahost.info.system_emulation then
    luahost.usage_error("ksyscalls.lua counts a kernel's syscalls in system mode; in user mode, syscount.lua")
end
-- the dispatcher, and the register with the number at its entry
local DISPATCH = {
    x86_64 = { "do_syscall_64", "rsi" },
    aarch64 = { "invoke_syscall", "x1" },
}
if not DISPATCH[arch] then
    luahost.usage_error(("target %s is not supported (aarch64 and x86_64 are)"):format(arch))
end
local entry, why = luahost.resolve(DISPATCH[arch][1])
if not entry then
    luahost.usage_error(("cannot find the kernel's syscall dispatcher (%s): give the kernel's symbols "
        .. "with symbols=System.map"):format(why))
end
agg.set_format(opt.format)

local counts = agg.count("syscalls", { limit = opt.limit })
local number_reg = {}   -- by vCPU

luahost.on_vcpu_init(function(vcpu)
    for _, reg in ipairs(luahost.registers()) do
        if reg.name == DISPATCH[arch][2] then
            number_reg[vcpu] = reg
        end
    end
end)

local function on_syscall(vcpu)
    -- the number is an int: the register's low 32 bits
    local num = tonumber(number_reg[vcpu]:read() % 2 ^ 32)
    counts:add(syscalls.name(arch, num))
end

luahost.on_tb_translate(function(tb)
    if tb:vaddr() == entry then
        tb:on_exec(on_syscall, nil, "r")
    end
end)
