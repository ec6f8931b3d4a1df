-- print_accesses.lua's lines (libmem.so's print-accesses=on) from an event
-- stream: every access with its instruction, addresses, size, kind and
-- value, from the batch columns instead of per-access callbacks.
-- capacity= sets the batch size (small ones cross many batch boundaries).
local opt = luahost.args { track = luahost.args.choice({ "r", "w", "rw" }, "rw"), capacity = 4096 }
local symbols = {}      -- symbols[id] = the instruction's symbol or ""
local STORE = luahost.STORE

local function on_batch(_, batch)
    local kind, ids, pcs, addrs, sizes = batch.kind, batch.id, batch.pc, batch.addr, batch.size
    local values, highs, paddrs, devices = batch.value, batch.value_high, batch.paddr, batch.device
    local out = {}
    for i = 1, batch.n do
        local size = sizes[i]
        local value
        if size == 16 then
            value = ("0x%016x%016x"):format(highs[i], values[i])
        else
            value = ("0x%0" .. (size * 2) .. "x"):format(values[i])
        end
        out[#out + 1] = ("0x%x,%s,0x%x,0x%x,%d,%s,%s\n"):format(pcs[i], symbols[ids[i]], addrs[i],
            devices[i] > 0 and paddrs[i] or 0, size * 8, kind[i] == STORE and "store" or "load", value)
    end
    luahost.outs(table.concat(out))
end

local stream = luahost.stream { on_batch = on_batch, values = true, physical = true,
    capacity = opt.capacity }

luahost.outs("insn_vaddr,insn_symbol,mem_vaddr,mem_hwaddr,access_size,access_type,mem_value\n")
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        symbols[#symbols + 1] = insn:qemu_symbol() or ""   -- as libmem.so prints it
        stream:mem(insn, #symbols, opt.track)
    end
end)
