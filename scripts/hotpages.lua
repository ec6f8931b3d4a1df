-- hotpages: the pages that saw the most memory accesses.
-- A port of QEMU's contrib/plugins/hotpages.c: same arguments, same
-- report (one row more where hotpages.c drops the last page: see
-- docs/scripts/hotpages.md).
--
--   sortby=reads|writes|address
--                  order of the rows: most reads, most writes, highest
--                  address first (default: most reads + writes)
--   io=on|off      count only device (MMIO) accesses, by virtual address
--                  (system emulation; user mode has none) (default off)
--   pagesize=N     bytes per page, a power of two (default 4096)
--   limit=N        rows in the report (default 50, as hotpages.c)
--
-- A page is the access's physical address in system emulation (its
-- virtual one for a device), its virtual address in user mode. Every
-- access goes into an event stream: C records it, Lua counts it by page
-- per vCPU a batch at a time, without a lock per access.
local opt = luahost.args {
    sortby = luahost.args.choice({ "reads", "writes", "address" }),
    io = false,
    pagesize = 4096,
    limit = 50,
}
local pagesize = opt.pagesize
local power = 1
while power < pagesize and power < 2 ^ 52 do
    power = power * 2
end
if power ~= pagesize then
    luahost.usage_error(("pagesize must be a power of two from 1 to 2^52: pagesize=%d"):format(pagesize))
end
if opt.limit < 0 then
    luahost.usage_error(("limit must be at least 0: limit=%d"):format(opt.limit))
end

local system = luahost.info.system_emulation
local LOAD, RAM = luahost.LOAD, 1

-- reads[vcpu][page], writes[vcpu][page]: accesses of each vCPU. A page of
-- 2^53 or more is cdata in LuaJIT, a new object each time it is computed:
-- intern() gives the first one made for that value, so it keys one entry.
local reads, writes, big = {}, {}, {}
local luajit = jit ~= nil

local function intern(page)
    local key = tostring(page)
    local first = big[key]
    if not first then
        first = page
        big[key] = page
    end
    return first
end

local function on_batch(vcpu, batch)
    local r, w = reads[vcpu], writes[vcpu]
    if not r then
        r, w = {}, {}
        reads[vcpu], writes[vcpu] = r, w
    end
    local kind, vaddr = batch.kind, batch.addr
    local paddr, device = system and batch.paddr, system and batch.device
    local io = opt.io
    for i = 1, batch.n do
        local addr = vaddr[i]
        if device then
            if io then
                addr = device[i] > RAM and addr
            elseif device[i] == RAM then
                addr = paddr[i]
            end
        end
        if addr then
            local page = addr - addr % pagesize
            if luajit and type(page) == "cdata" then
                page = intern(page)
            end
            if kind[i] == LOAD then
                r[page] = (r[page] or 0) + 1
            else
                w[page] = (w[page] or 0) + 1
            end
        end
    end
end

-- io=on in user mode: no access has a device, nothing to count.
if system or not opt.io then
    -- unchecked: on_batch reads columns for i = 1, batch.n only
    local stream = luahost.stream { on_batch = on_batch, physical = system, unchecked = true }
    luahost.on_tb_translate(function(tb)
        for _, insn in tb:insns() do
            stream:mem(insn)
        end
    end)
end

-- Unsigned order: Lua 5.4 shows addresses of 2^63 and more as negative.
local function ult(a, b)
    if (a < 0) ~= (b < 0) then
        return b < 0
    end
    return a < b
end

local ORDER = {
    reads = function(a, b) return a.reads > b.reads end,
    writes = function(a, b) return a.writes > b.writes end,
    address = function(a, b) return ult(b.page, a.page) end,
}
local by_total = function(a, b) return a.reads + a.writes > b.reads + b.writes end

-- Rows with equal counts come lowest address first (hotpages.c leaves
-- their order to its hash table).
local function sorted(all)
    local first = ORDER[opt.sortby] or by_total
    table.sort(all, function(a, b)
        if first(a, b) then
            return true
        elseif first(b, a) then
            return false
        end
        return ult(a.page, b.page)
    end)
    return all
end

luahost.on_exit(function()
    local pages, all = {}, {}
    local function merge(counts, field, cpus)
        for vcpu, by_page in pairs(counts) do
            for page, n in pairs(by_page) do
                local rec = pages[page]
                if not rec then
                    rec = { page = page, reads = 0, writes = 0, rcpus = 0, wcpus = 0 }
                    pages[page] = rec
                    all[#all + 1] = rec
                end
                rec[field] = rec[field] + n
                rec[cpus] = rec[cpus] + 2 ^ vcpu
            end
        end
    end
    merge(reads, "reads", "rcpus")
    merge(writes, "writes", "wcpus")
    local out = { "Addr, RCPUs, Reads, WCPUs, Writes\n" }
    for i, rec in ipairs(sorted(all)) do
        if i > opt.limit then
            break
        end
        out[#out + 1] = ("0x%016x, 0x%04x, %d, 0x%04x, %d\n"):format(rec.page, rec.rcpus, rec.reads,
            rec.wcpus, rec.writes)
    end
    luahost.outs(table.concat(out))
end)
