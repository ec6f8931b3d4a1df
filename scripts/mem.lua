-- mem: the guest's memory accesses: counted, printed, or checked by region.
-- A port of QEMU's tests/tcg/plugins/mem.c: same arguments, same report.
--
--   inline=on|off          count accesses with inline ops (default off)
--   callback=on|off        count them as mem.c does from a callback
--                          (default off; not with inline=on)
--   haddr=on|off           with callback=on (or region-summary=on), count
--                          device (I/O) accesses apart (default off)
--   track=r|w|rw           which accesses: loads, stores or both (rw)
--   print-accesses=on|off  a CSV line per access: instruction, addresses,
--                          size, kind, value (default off)
--   region-summary=on|off  mirror the stores into 16 KiB regions, check
--                          each load against them, and list the regions
--                          at exit (default off)
local args = luahost.args
local opt = args {
    inline = false, callback = false, haddr = false,
    track = args.choice({ "r", "w", "rw" }, "rw"),
    ["print-accesses"] = false, ["region-summary"] = false,
}
local print_accesses, region_summary = opt["print-accesses"], opt["region-summary"]
if opt.inline and opt.callback then
    luahost.usage_error("can't enable inline and callback counting at the same time")
end

local counts = luahost.scoreboard { "mem", "io" }
local mem_count, io_count = counts.mem, counts.io

if print_accesses then
    luahost.outs("insn_vaddr,insn_symbol,mem_vaddr,mem_hwaddr,access_size,access_type,mem_value\n")
end

-- region-summary: a shadow of the stores in 16 KiB regions, each load
-- checked against it, in C (host/shadow.c); the first load of a region
-- that reads a byte the shadow did not see stored is told at once.
local REGION_SIZE = 4096 * 4
local shadow
if region_summary then
    shadow = luahost.shadow { region = REGION_SIZE, on_unseen = function(_, base, offset)
        luahost.printf("Warning: 0x%016x:%d read an un-instrumented value\n", base, offset)
    end }
end

-- print-accesses, and device counting (haddr=on, with callback=on or
-- region-summary=on, as mem.c's callback counts), from a stream: C
-- records each access, Lua reads them in batches. Devices are 2 and up.
-- User mode has no devices (no access has a physical side): there inline
-- ops count them all.
local counts_in_callback = opt.callback or region_summary
local count_devices = counts_in_callback and opt.haddr and luahost.info.system_emulation
local symbols = {}      -- the stream's ids: symbols[id] = the instruction's
-- print-accesses' line for an access of each size: the value in as many
-- hex digits as it has bytes (16 bytes: the high half first)
local LINE = {}
for _, size in ipairs({ 1, 2, 4, 8 }) do
    LINE[size] = "0x%x,%s,0x%x,0x%x,%d,%s,0x%0" .. size * 2 .. "x\n"
end
local LINE_16 = "0x%x,%s,0x%x,0x%x,%d,%s,0x%016x%016x\n"
local STORE = luahost.STORE

local function on_batch(vcpu, batch)
    local n, devices = batch.n, batch.device
    if count_devices then
        local io = 0
        for i = 1, n do
            if devices[i] >= 2 then
                io = io + 1
            end
        end
        io_count:add(vcpu, io)
        if not opt.inline then      -- inline ops count them all
            mem_count:add(vcpu, n - io)
        end
    end
    if not print_accesses then
        return
    end
    local kind, ids, pcs, addrs, sizes = batch.kind, batch.id, batch.pc, batch.addr, batch.size
    local values, highs, paddrs = batch.value, batch.value_high, batch.paddr
    local out = {}
    for i = 1, n do
        local size = sizes[i]
        local paddr = devices[i] > 0 and paddrs[i] or 0
        local what = kind[i] == STORE and "store" or "load"
        if size == 16 then
            out[i] = LINE_16:format(pcs[i], symbols[ids[i]], addrs[i], paddr, 128, what, highs[i], values[i])
        else
            out[i] = LINE[size]:format(pcs[i], symbols[ids[i]], addrs[i], paddr, size * 8, what, values[i])
        end
    end
    luahost.outs(table.concat(out))
end

local stream
if print_accesses or count_devices then
    stream = luahost.stream { on_batch = on_batch, values = print_accesses, physical = true, unchecked = true }
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        if opt.inline or (counts_in_callback and not count_devices) then
            insn:mem_inline("add", mem_count, 1, opt.track)
        end
        if shadow then
            shadow:mem(insn, opt.track)
        end
        if stream then
            local id = 0
            if print_accesses then
                symbols[#symbols + 1] = insn:qemu_symbol() or ""   -- as mem.c prints it
                id = #symbols
            end
            stream:mem(insn, id, opt.track)
        end
    end
end)

luahost.on_exit(function()
    local out = {}
    if opt.inline or opt.callback then
        out[#out + 1] = ("mem accesses: %d\n"):format(mem_count:sum())
    end
    if opt.haddr then
        out[#out + 1] = ("io accesses: %d\n"):format(io_count:sum())
    end
    if region_summary then
        out[#out + 1] = "Region Base, Reads, Writes, Seen all\n"
        local list = shadow:regions()
        if #list > 1 then   -- mem.c lists them only when there are several
            for _, ri in ipairs(list) do
                out[#out + 1] = ("0x%016x, %d, %d, %s\n"):format(ri.base, ri.reads, ri.writes, tostring(ri.seen_all))
            end
        end
    end
    luahost.outs(table.concat(out))
end)
