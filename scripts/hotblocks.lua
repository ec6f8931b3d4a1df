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
local report = require("report")

local opt = luahost.args {
    inline = false,
    limit = 20,
    format = report.format_arg(),
}

local blocks = {}   -- blocks[pc][insns] = record
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
        rec = { pc = pc, insns = insns, tcount = 1, exec = luahost.scoreboard() }
        by_size[insns] = rec
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
        local rows = {}
        for i, rec in ipairs(sorted) do
            rows[i] = { ("0x%016x"):format(rec.pc), rec.tcount, rec.insns, rec.ecount }
        end
        luahost.outs(report.render(opt.format, { "pc", "tcount", "icount", "ecount" }, rows))
        return
    end
    local out = { ("collected %d entries in the hash table\n"):format(entries) }
    if entries > 0 then
        out[#out + 1] = "pc, tcount, icount, ecount\n"
        for _, rec in ipairs(sorted) do
            out[#out + 1] = ("0x%016x, %d, %d, %d\n"):format(rec.pc, rec.tcount, rec.insns, rec.ecount)
        end
    end
    luahost.outs(table.concat(out))
end)
