-- bb: executed blocks and instructions, per vCPU and in total.
-- A port of QEMU's tests/tcg/plugins/bb.c: same arguments, same report.
--
--   inline=on|off  accepted as bb.c takes it (default off). bb.c counts
--                  with inline ops when on and with a callback per block
--                  when off; both count the same, so the port always
--                  counts with inline ops (no Lua runs per block)
--   idle=on|off    when a vCPU goes idle (system mode), print its running
--                  totals (default off)
local opt = luahost.args { inline = false, idle = false }

local counts = luahost.scoreboard { "bbs", "insns" }
local bbs, insns = counts.bbs, counts.insns

-- "CPUn: bb's: B, insns: I\n", or "" for a vCPU that ran no block.
local function cpu_report(vcpu)
    local n = bbs:get(vcpu)
    if n == 0 then
        return ""
    end
    return ("CPU%d: bb's: %d, insns: %d\n"):format(vcpu, n, insns:get(vcpu))
end

luahost.on_tb_translate(function(tb)
    tb:inline("add", bbs, 1)
    tb:inline("add", insns, tb:n_insns())
end)

if opt.idle then
    luahost.on_vcpu_idle(function(vcpu)
        local line = cpu_report(vcpu)
        if line ~= "" then
            luahost.outs("Idling " .. line)
        end
    end)
end

luahost.on_exit(function()
    local out = {}
    for vcpu = 0, luahost.num_vcpus() - 1 do
        out[#out + 1] = cpu_report(vcpu)
    end
    out[#out + 1] = ("Total: bb's: %d, insns: %d\n"):format(bbs:sum(), insns:sum())
    luahost.outs(table.concat(out))
end)
