-- hwprofile: a system guest's device (MMIO) accesses, by device.
-- Which devices the guest reads and writes, how often and from which
-- vCPUs. A port of QEMU's contrib/plugins/hwprofile.c (QEMU 10.0 and
-- 10.2): the same arguments and the same report.
--
--   track=read|write  count only reads or only writes (default both)
--   pattern=on        per device, the accesses by offset (physical address)
--   source=on         per device, the accesses by the instruction making them
--   match=DEVICE      print each access to DEVICE as it happens, with the
--                     device's counts so far; count only those devices.
--                     May be given many times, or as a list: match=a,b
--
-- The report lists devices by their number of accesses, most first; the
-- CPU columns are masks of the vCPUs that read or wrote (bit N = vCPU N).
-- Unlike hwprofile.c, a guest that touched one device alone gets its line
-- (hwprofile.c prints devices only when there are two or more).
--
-- hwprofile.c takes a callback on every memory access, RAM included, and a
-- lock at each device access. Here tallies count device accesses in C with
-- no lock (reads and writes apart), so Lua runs at exit alone. match=
-- prints at each access: it takes an event stream of device accesses
-- alone (RAM ones leave its C callback at once), so Lua runs per device
-- access alone.
local args = luahost.args
local opt = args {
    track = args.custom(function(text)
        if text == "read" or text == "write" then
            return text
        end
        return nil, "invalid value for track"
    end),
    pattern = false,
    source = false,
    match = args.list(),
}

if opt.source and opt.pattern then
    luahost.usage_error("can only currently track either source or pattern.")
end
if not luahost.info.system_emulation then
    luahost.usage_error("hwprofile: plugin only useful for system emulation")
end

local track_reads = opt.track ~= "write"
local track_writes = opt.track ~= "read"
local detailed = opt.pattern or opt.source

local matches       -- set of device names, with match=
if #opt.match > 0 then
    matches = {}
    for _, list in ipairs(opt.match) do
        for name in list:gmatch("[^,]+") do
            matches[name] = true
        end
    end
end

-- rmask and wmask: the vCPUs that read and wrote, as hwprofile.c's masks
-- (bit N = vCPU N), kept up to date as they count (match= prints them at
-- each access).
local function new_counts()
    return { reads = 0, writes = 0, rmask = 0, wmask = 0 }
end

-- mask with vCPU's bit set
local function with_cpu(mask, vcpu)
    return math.floor(mask / 2 ^ vcpu) % 2 == 1 and mask or mask + 2 ^ vcpu
end

local devices, order = {}, {}     -- devices[name] = { name, base, totals, detail }

local function fmt_counts(c)
    if not track_writes then
        return (", %x, %d"):format(c.rmask, c.reads)
    elseif not track_reads then
        return (", %x, %d"):format(c.wmask, c.writes)
    end
    return (", %x, %d, %x, %d"):format(c.rmask, c.reads, c.wmask, c.writes)
end

local function fmt_device(d)
    return ("%s, 0x%x%s\n"):format(d.name, d.base, fmt_counts(d.totals))
end

local function count(c, is_write, vcpu, n)
    if is_write then
        c.writes = c.writes + (n or 1)
        c.wmask = with_cpu(c.wmask, vcpu)
    else
        c.reads = c.reads + (n or 1)
        c.rmask = with_cpu(c.rmask, vcpu)
    end
end

-- The device named, made at its first access (at base).
local function device_named(name, base)
    local d = devices[name]
    if not d then
        d = { name = name, base = base, totals = new_counts(), detail = detailed and {} or nil }
        devices[name] = d
        order[#order + 1] = d
    end
    return d
end

-- A device's counts at an offset or instruction.
local function location(d, at)
    local c = d.detail[at]
    if not c then
        c = new_counts()
        c.at = at
        d.detail[at] = c
    end
    return c
end

-- match= lines of the batch being read: written once at its end (a write
-- per line costs more than the rest of the line's work)
local pending = {}

local function device_access(vcpu, name, vaddr, paddr, is_write)
    local d = device_named(name, vaddr - paddr)
    if matches then
        if not matches[name] then
            return          -- hwprofile.c still counts its detail; see below
        end
        pending[#pending + 1] = ("hwprofile: match @ offset%x, previous hits\n"):format(paddr) .. fmt_device(d)
    end
    count(d.totals, is_write, vcpu)
end

-- hwprofile.c counts pattern= and source= detail of every device, matched
-- or not; so does this.
local function detail_access(vcpu, name, paddr, pc, is_write)
    count(location(devices[name], opt.source and pc or paddr), is_write, vcpu)
end

-- match=: Lua at each device access, from a stream.
local function stream_accesses(rw)
    local STORE = luahost.STORE
    local names = setmetatable({}, { __index = function(t, k)    -- device numbers never change names
        local name = luahost.device_name(k)
        t[k] = name
        return name
    end })
    local stream = luahost.stream {
        physical = "devices",   -- RAM accesses left in C, as hwprofile.c leaves them
        on_batch = function(vcpu, batch)
            local device, kind, addr, paddr, pc = batch.device, batch.kind, batch.addr, batch.paddr, batch.pc
            for i = 1, batch.n do
                local name = names[device[i]]
                device_access(vcpu, name, addr[i], paddr[i], kind[i] == STORE)
                if detailed then
                    detail_access(vcpu, name, paddr[i], pc[i], kind[i] == STORE)
                end
            end
            if #pending > 0 then
                luahost.outs(table.concat(pending))
                pending = {}
            end
        end,
    }
    luahost.on_tb_translate(function(tb)
        for _, insn in tb:insns() do
            stream:mem(insn, 0, rw)
        end
    end)
end

-- Otherwise: a tally per kind of access, counting device accesses by device
-- (with pattern=/source=, and offset or instruction) and base, in C.
local function tally_accesses()
    local key2 = (opt.pattern and "paddr") or (opt.source and "pc") or "none"
    local function new_tally()
        return luahost.tally { address = "device", key = "device", key2 = key2, key3 = "base" }
    end
    local reads = track_reads and new_tally()
    local writes = track_writes and new_tally()
    luahost.on_tb_translate(function(tb)
        for _, insn in tb:insns() do
            if reads then
                reads:mem(insn, "r")
            end
            if writes then
                writes:mem(insn, "w")
            end
        end
    end)
    -- Into devices, as device_access and detail_access count them: a
    -- device's base is its first access's, in the order of both tallies'
    -- first counts.
    return function()
        local all = {}
        for _, t in ipairs({ reads or false, writes or false }) do
            if t then
                local rows = t:rows()
                for i = 1, rows.n do
                    all[#all + 1] = { vcpu = rows.vcpu[i], device = rows.key[i], at = rows.key2[i],
                        base = rows.key3[i], count = rows.count[i], first = rows.first[i], is_write = t == writes }
                end
            end
        end
        table.sort(all, function(a, b) return a.first < b.first end)
        for _, r in ipairs(all) do
            local d = device_named(luahost.device_name(r.device), r.base)
            count(d.totals, r.is_write, r.vcpu, r.count)
            if detailed then
                count(location(d, r.at), r.is_write, r.vcpu, r.count)
            end
        end
    end
end

local rw = (opt.track == "read" and "r") or (opt.track == "write" and "w") or "rw"
local collect = function() end
if matches then
    stream_accesses(rw)
else
    collect = tally_accesses()
end

local function total(d)
    return d.totals.reads + d.totals.writes
end

luahost.on_exit(function()
    collect()
    local out = {}
    if not detailed then
        out[1] = "Device, Address" .. (track_reads and ", RCPUs, Reads" or "")
            .. (track_writes and ",  WCPUs, Writes" or "") .. "\n"
    end
    local sorted = {}
    for i, d in ipairs(order) do
        sorted[i] = d
    end
    table.sort(sorted, function(a, b) return total(a) > total(b) end)
    for _, d in ipairs(sorted) do
        if d.detail then
            out[#out + 1] = ("%s @ 0x%x\n"):format(d.name, d.base)
            local locs = {}
            for _, c in pairs(d.detail) do
                locs[#locs + 1] = c
            end
            table.sort(locs, function(a, b) return a.at < b.at end)
            for _, c in ipairs(locs) do
                out[#out + 1] = ("  %s:%08x%s\n"):format(opt.pattern and "off" or "pc", c.at, fmt_counts(c))
            end
        else
            out[#out + 1] = fmt_device(d)
        end
    end
    luahost.outs(table.concat(out))
end)
