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
-- virtual one for a device), its virtual address in user mode. A tally
-- counts every access by page, loads and stores apart, in C, one table
-- per vCPU and no lock per access; Lua merges the vCPUs' rows at exit.
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

-- io=on in user mode: no access has a device, nothing to count.
local tally
if system or not opt.io then
    local address = system and (opt.io and "device" or "physical") or "virtual"
    tally = luahost.tally { address = address, block = pagesize }
    luahost.on_tb_translate(function(tb)
        for _, insn in tb:insns() do
            tally:mem(insn)
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
    local rows = tally and tally:rows() or { n = 0 }
    local LOAD = luahost.LOAD
    for i = 1, rows.n do
        local page, vcpu, n = rows.key[i], rows.vcpu[i], rows.count[i]
        local rec = pages[page]
        if not rec then
            rec = { page = page, reads = 0, writes = 0, rcpus = 0, wcpus = 0 }
            pages[page] = rec
            all[#all + 1] = rec
        end
        -- one row per vCPU, page and kind: each vCPU's bit is added once
        if rows.key2[i] == LOAD then
            rec.reads, rec.rcpus = rec.reads + n, rec.rcpus + 2 ^ vcpu
        else
            rec.writes, rec.wcpus = rec.writes + n, rec.wcpus + 2 ^ vcpu
        end
    end
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
