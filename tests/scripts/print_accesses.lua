-- The lines of QEMU's libmem.so with print-accesses=on, from luahost: one
-- per memory access, with its instruction, addresses, size, kind and value.
-- Shared by the memory and system-mode specs, which compare the two.
local opt = luahost.args { track = luahost.args.choice({ "r", "w", "rw" }, "rw") }
luahost.outs("insn_vaddr,insn_symbol,mem_vaddr,mem_hwaddr,access_size,access_type,mem_value\n")
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local prefix = ("0x%x,%s,"):format(insn:vaddr(), insn:qemu_symbol() or "")  -- as libmem.so prints it
        insn:on_mem(function(_, mem, vaddr)
            local hw = mem:hwaddr()
            local size = mem:size()
            local value
            if size == 16 then
                local lo, hi = mem:value()
                value = ("0x%016x%016x"):format(hi, lo)
            else
                value = ("0x%0" .. (size * 2) .. "x"):format(mem:value())
            end
            luahost.printf("%s0x%x,0x%x,%d,%s,%s\n", prefix, vaddr, hw and hw:phys_addr() or 0,
                size * 8, mem:is_store() and "store" or "load", value)
        end, nil, opt.track)
    end
end)
