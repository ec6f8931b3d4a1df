-- syscount: how many times the program made each syscall, by name.
-- Names come from the guest architecture's table (stdlib/syscalls.lua),
-- so the same script reads x86_64 and aarch64 programs.
--
--   errors=on              also count the calls that failed (ret < 0)
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local report = require("report")
local syscalls = require("syscalls")

local opt = luahost.args { errors = false, format = report.format_arg() }
agg.set_format(opt.format)

local arch = luahost.info.target_name
local calls = agg.count("syscalls")
local failed = opt.errors and agg.count("failed")

-- The number is known only at run time: a Lua table, under the lock.
luahost.on_syscall(function(_, num)
    calls:add(syscalls.name(arch, num))
end)

if failed then
    luahost.on_syscall_return(function(_, num, ret)
        if ret < 0 then
            failed:add(syscalls.name(arch, num))
        end
    end)
end
