-- hotblocks: the most executed translation blocks.
-- A port of QEMU's contrib/plugins/hotblocks.c: same arguments, same
-- report. Blocks are keyed by (pc, instruction count), as in the C plugin.
--
--   inline=on|off  count with inline ops (QEMU adds, no Lua per block
--                  execution) or with an exec callback (default off)
--   limit=N        rows in the report (default 20, as hotblocks.c)
--   format=text|csv|json
--                  text (default) is hotblocks.c's report; csv and json
--                  give the same rows (pc as hex) for merging many runs
--   symbolize=on|off
--                  also name each block's code (default off): text adds
--                  a column "location" (luahost.describe: symbol+0xOFF,
--                  module+0xOFF, or the address outside every module);
--                  csv and json add location, module and offset (the
--                  ELF address in the module, as hex): the same from run
--                  to run under ASLR, so runs merge by (module, offset,
--                  icount)
local entry_pool = require("entries")
local report = require("report")

local opt = luahost.args {
    inline = false,
    limit = 20,
    format = report.format_arg(),
    symbolize = false,
}
if opt.limit < 0 then
    luahost.usage_error(("limit must be at least 0: limit=%d"):format(opt.limit))
end

-- blocks[pc][insns] = record. Each record's counter is a field of a
-- scoreboard of 64 (stdlib/entries.lua): a scoreboard of its own took
-- 1 KiB, as QEMU sizes one for 16 vCPUs and luahost pads each vCPU's
-- fields to a cache line (22-24 MB over libhotblocks.so on bench's
-- sqlite workload).
local blocks = {}
local entries = 0

local function count_exec(vcpu, rec)
    rec.exec:add(vcpu, 1)
end

local function record_for(pc, insns)
    local by_size = blocks[pc]
    if not by_size then
        by_size = {}
        blocks[pc] = by_size
    end
    local rec = by_size[insns]
    if rec then
        rec.tcount = rec.tcount + 1
    else
        rec = { pc = pc, insns = insns, tcount = 1, exec = entry_pool.new() }
        by_size[insns] = rec
        if opt.symbolize then   -- what the first translation at pc was
            local where = luahost.symbolize(pc)
            rec.location = luahost.describe(pc)
            rec.module = where and where.module
            rec.offset = where and ("0x%x"):format(where.offset)
        end
        entries = entries + 1
    end
    return rec
end

luahost.on_tb_translate(function(tb)
    local rec = record_for(tb:vaddr(), tb:n_insns())
    if opt.inline then
        tb:inline("add", rec.exec, 1)
    else
        tb:on_exec(count_exec, rec)
    end
end)

luahost.on_exit(function()
    local all = {}
    for _, by_size in pairs(blocks) do
        for _, rec in pairs(by_size) do
            rec.ecount = rec.exec:sum()
            all[#all + 1] = rec
        end
    end
    local sorted = report.top(all, "ecount", opt.limit)

    if opt.format ~= "text" then
        local columns = { "pc", "tcount", "icount", "ecount" }
        if opt.symbolize then
            table.move({ "location", "module", "offset" }, 1, 3, 5, columns)
        end
        local rows = {}
        for i, rec in ipairs(sorted) do
            rows[i] = { ("0x%016x"):format(rec.pc), rec.tcount, rec.insns, rec.ecount,
                rec.location, rec.module, rec.offset }
        end
        luahost.outs(report.render(opt.format, columns, rows))
        return
    end
    local out = { ("collected %d entries in the hash table\n"):format(entries) }
    if entries > 0 then
        out[#out + 1] = opt.symbolize and "pc, tcount, icount, ecount, location\n" or "pc, tcount, icount, ecount\n"
        for _, rec in ipairs(sorted) do
            local line = ("0x%016x, %d, %d, %d"):format(rec.pc, rec.tcount, rec.insns, rec.ecount)
            out[#out + 1] = opt.symbolize and line .. ", " .. rec.location .. "\n" or line .. "\n"
        end
    end
    luahost.outs(table.concat(out))
end)
