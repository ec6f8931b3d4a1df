-- traps: interrupts, exceptions and host calls per vCPU.
-- A port of QEMU's contrib/plugins/traps.c (QEMU 10.2): the same count,
-- the same report. It takes no arguments (traps.c ignores any; this
-- port refuses them).
--
-- QEMU calls the host once per discontinuity (as it calls traps.c); the
-- host adds 1 to the vCPU's slot of the scoreboard field named after the
-- kind, without calling Lua (luahost.on_discontinuity(board)). In user
-- mode QEMU reports no interrupts, which the first line says (traps.c prints it
-- without its newline; here it ends its own line).
luahost.args {}

if not luahost.has("discontinuity") then
    luahost.usage_error(("traps.lua needs QEMU 10.2 or later (discontinuity callbacks); this luahost was "
        .. "built against plugin API %d"):format(luahost.info.plugin_version))
end

if not luahost.info.system_emulation then
    luahost.outs("Note: interrupts are only reported in system emulation mode.\n")
end

local counts = luahost.scoreboard { "interrupt", "exception", "hostcall" }

luahost.on_discontinuity(counts)

luahost.on_exit(function()
    local out = { "VCPU, interrupts, exceptions, hostcalls\n" }
    for vcpu = 0, luahost.num_vcpus() - 1 do
        out[#out + 1] = ("% 4d, % 10d, % 10d, % 10d\n"):format(vcpu, counts.interrupt:get(vcpu),
            counts.exception:get(vcpu), counts.hostcall:get(vcpu))
    end
    luahost.outs(table.concat(out))
end)
