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

-- region-summary: regions[base] = { base, reads, writes, data (offset ->
-- byte, absent: 0), seen_all }. An access's bytes go to the region of
-- their own address: mem.c asserts that an access stays in one region.
local REGION_SIZE = 4096 * 4
local TWO32 = 4294967296
local regions = {}
local last_base, last_region    -- most accesses fall in the previous one's

local function region_at(base)
    if base == last_base then
        return last_region
    end
    -- (LuaJIT: an address of 2^53 or more is a cdata, new from arithmetic)
    local key = type(base) == "cdata" and ("%x"):format(base) or base
    local ri = regions[key]
    if not ri then
        ri = { base = base, reads = 0, writes = 0, data = {}, seen_all = true }
        regions[key] = ri
    end
    last_base, last_region = base, ri
    return ri
end

-- Byte i (0 = the lowest) of an access of size bytes at offset: where it
-- is in memory, and its region, the next one when the access crosses.
local function byte_place(ri, offset, i, size, big_endian)
    local at = big_endian and offset + size - 1 - i or offset + i
    if at >= REGION_SIZE then
        return region_at(ri.base + REGION_SIZE).data, at - REGION_SIZE
    end
    return ri.data, at
end

local function region_access(vaddr, mem)
    local offset = tonumber(vaddr % REGION_SIZE)
    local ri = region_at(vaddr - offset)
    local store = mem:is_store()
    if store then
        ri.writes = ri.writes + 1
    else
        ri.reads = ri.reads + 1
    end
    local size = mem:size()
    if size == 16 then  -- mem.c leaves 16-byte values out
        return
    end
    -- the value's bytes, lowest first, from its two 32-bit halves: exact
    -- in Lua 5.4 (any integer) and LuaJIT (a number or a uint64_t cdata)
    local value, big_endian = mem:value(), mem:is_big_endian()
    local low, high = value, 0
    if size == 8 then
        low = value % TWO32
        high = tonumber((value - low) / TWO32) % TWO32
        low = tonumber(low)
    end
    local unseen = false
    local within = offset + size <= REGION_SIZE
    local data = ri.data
    for i = 0, size - 1 do
        local b
        if i < 4 then
            b = low % 256
            low = (low - b) / 256
        else
            b = high % 256
            high = (high - b) / 256
        end
        local at
        if within then
            at = big_endian and offset + size - 1 - i or offset + i
        else
            data, at = byte_place(ri, offset, i, size, big_endian)
        end
        if store then
            data[at] = b
        elseif (data[at] or 0) ~= b then
            unseen = true
        end
    end
    if unseen and ri.seen_all then
        luahost.printf("Warning: 0x%016x:%d read an un-instrumented value\n", ri.base, offset)
        ri.seen_all = false
    end
end

-- mem.c's callback: the count (devices apart with haddr=on; not again
-- when inline ops count) and the region check.
local function on_access(vcpu, mem, vaddr)
    if opt.haddr then
        local hw = mem:hwaddr()
        if hw and hw:is_io() then
            io_count:add(vcpu, 1)
        elseif not opt.inline then
            mem_count:add(vcpu, 1)
        end
    elseif not opt.inline then
        mem_count:add(vcpu, 1)
    end
    region_access(vaddr, mem)
end

-- print-accesses, and callback=on with haddr=on, from a stream: C records
-- each access, Lua reads them in batches. Devices are 2 and up. User
-- mode has no devices (no access has a physical side): there inline ops
-- count them all.
local count_devices = opt.callback and opt.haddr and not region_summary and luahost.info.system_emulation
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
        mem_count:add(vcpu, n - io)
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
        if opt.inline or (opt.callback and not count_devices and not region_summary) then
            insn:mem_inline("add", mem_count, 1, opt.track)
        end
        if region_summary then
            insn:on_mem(on_access, nil, opt.track)
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
        local list = {}
        for _, ri in pairs(regions) do
            list[#list + 1] = ri
        end
        table.sort(list, function(a, b) return ("%016x"):format(a.base) < ("%016x"):format(b.base) end)
        if #list > 1 then   -- mem.c lists them only when there are several
            for _, ri in ipairs(list) do
                out[#out + 1] = ("0x%016x, %d, %d, %s\n"):format(ri.base, ri.reads, ri.writes, tostring(ri.seen_all))
            end
        end
    end
    luahost.outs(table.concat(out))
end)
