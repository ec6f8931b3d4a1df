-- discons: check the PCs of QEMU's discontinuity events (QEMU 10.2).
-- The program counters QEMU reports with interrupts, exceptions and host
-- calls, against the instructions that really ran. A port of QEMU's
-- tests/tcg/plugins/discons.c (QEMU 10.2, which has those events): the
-- same arguments, the same report.
--
--   abort=on|off      end QEMU at the first mismatch (default on)
--   trace-all=on|off  print every instruction executed (default off)
--
-- A discontinuity's from_pc must be the instruction that would have run
-- next (or, for an exception, may be the one that raised it); its to_pc
-- must be the next instruction that runs. Each instruction stores its
-- address, the address after it and whether its block goes on there into
-- scoreboards, inline; Lua runs only for the first instruction after a
-- discontinuity (a conditional callback), and at each discontinuity.
if not luahost.info.system_emulation then
    luahost.outs("Testing of the disontinuity plugin API is only possible in system emulation mode.")
    return
end

local opt = luahost.args { abort = true, ["trace-all"] = false }
if not luahost.has("discontinuity") then
    luahost.usage_error("discons.lua needs QEMU 10.2 or later (discontinuity events)")
end

local sb = luahost.scoreboard { "last_pc", "from_pc", "has_from", "has_next" }
local next_pc, next_type = {}, {}       -- per vCPU: the last discontinuity's to_pc and kind

-- The same address, or two virtual addresses of the same physical one.
local function addr_eq(a, b)
    if a == b then
        return true
    end
    local a_hw, b_hw = luahost.translate_vaddr(a), luahost.translate_vaddr(b)
    return a_hw ~= nil and b_hw ~= nil and a_hw == b_hw
end

local function report_mismatch(pc_name, vcpu, kind, last, expected, encountered)
    if addr_eq(expected, encountered) then
        return
    end
    local report = ("Discon %s PC mismatch on VCPU %d\nExpected:      %x\nEncountered:   %x\n"
        .. "Executed Last: %x\nEvent type:    %s\n"):format(pc_name, vcpu, expected, encountered, last, kind)
    if opt.abort then
        -- discons.c writes to stderr and aborts (SIGABRT); the nearest a
        -- script has is ending QEMU with the status a shell shows for it.
        io.stderr:write(report)
        io.stderr:flush()
        luahost.exit(134)
    end
    luahost.outs(report)
end

luahost.on_discontinuity(function(vcpu, kind, from_pc, to_pc)
    local last = sb.last_pc:get(vcpu)
    if kind == "exception" and addr_eq(last, from_pc) then -- luacheck: ignore 542
        -- an exception may come after its instruction's own callback
    elseif sb.has_next:get(vcpu) ~= 0 then
        -- a discontinuity right after another, no instruction between
        report_mismatch("source", vcpu, kind, last, next_pc[vcpu], from_pc)
    elseif sb.has_from:get(vcpu) ~= 0 then
        report_mismatch("source", vcpu, kind, last, sb.from_pc:get(vcpu), from_pc)
    end
    sb.has_from:set(vcpu, 0)
    next_pc[vcpu], next_type[vcpu] = to_pc, kind
    sb.has_next:set(vcpu, 1)
end)

-- The first instruction after a discontinuity (with trace-all, every one).
local function insn_exec(vcpu, pc)
    if sb.has_next:get(vcpu) ~= 0 then
        report_mismatch("target", vcpu, next_type[vcpu], pc, next_pc[vcpu], pc)
        sb.has_next:set(vcpu, 0)
    end
    if opt["trace-all"] then
        luahost.outs(("Exec insn at %x on VCPU %d\n"):format(pc, vcpu))
    end
end

luahost.on_tb_translate(function(tb)
    local n = tb:n_insns()
    for i, insn in tb:insns() do
        local pc = insn:vaddr()
        insn:inline("store", sb.last_pc, pc)
        insn:inline("store", sb.from_pc, pc + insn:size())
        insn:inline("store", sb.has_from, i < n and 1 or 0)
        if opt["trace-all"] then
            insn:on_exec(insn_exec, pc)
        else
            insn:on_exec_if(sb.has_next, "ne", 0, insn_exec, pc)
        end
    end
end)
