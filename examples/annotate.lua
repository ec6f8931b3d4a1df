-- annotate: a function's instructions, each with how many times it ran.
-- An annotated listing, as perf annotate's: for each function named, its
-- instructions by address with their disassembly and execution count,
-- summed over all vCPUs. QEMU counts with one inline op per instruction:
-- no Lua runs while the program does.
--
--   fn=NAME    the function, a symbol of any module (main, memcpy);
--              may be given several times; at least once
--
-- Only instructions QEMU translated are known: code between them that
-- was never translated (the side of a branch never taken) shows as a
-- line "...". A function none of whose instructions ran is said so.
--
--   luahost annotate.lua fn=main -- ./prog
local opt = luahost.args { fn = luahost.args.list() }
if #opt.fn == 0 then
    luahost.usage_error("give the function to annotate: fn=NAME (e.g. fn=main)")
end

local wanted = {}   -- wanted[name] = { insns by address, ... }
for _, name in ipairs(opt.fn) do
    wanted[name] = {}
end

-- A record per instruction address: the first translation's text, one
-- scoreboard entry however often QEMU translates it again.
local records = {}

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local pc = insn:vaddr()
        local rec = records[pc]
        if rec == nil then
            local fn = wanted[insn:symbol() or ""]
            rec = false
            if fn then
                rec = { pc = pc, size = insn:size(), disas = insn:disas(), count = luahost.scoreboard() }
                fn[#fn + 1] = rec
            end
            records[pc] = rec
        end
        if rec then
            insn:inline("add", rec.count, 1)
        end
    end
end)

-- Unsigned order: Lua 5.4 shows addresses of 2^63 and more as negative.
local function ult(a, b)
    if (a < 0) ~= (b < 0) then
        return b < 0
    end
    return a < b
end

luahost.on_exit(function()
    local out = {}
    for _, name in ipairs(opt.fn) do
        local insns = wanted[name]
        if #insns == 0 then
            out[#out + 1] = ("%s: no instruction of it ran\n"):format(name)
        else
            table.sort(insns, function(a, b) return ult(a.pc, b.pc) end)
            local where = luahost.symbolize(insns[1].pc)
            out[#out + 1] = ("%s (%s):\n"):format(name, where and where.module or "no module")
            local total, next_pc = 0, nil
            for _, rec in ipairs(insns) do
                if next_pc and rec.pc ~= next_pc then
                    out[#out + 1] = ("%12s  ...\n"):format("")
                end
                local n = rec.count:sum()
                total = total + n
                out[#out + 1] = ("%12d  0x%x  %s\n"):format(n, rec.pc, rec.disas)
                next_pc = rec.pc + rec.size
            end
            out[#out + 1] = ("%12d  instructions executed in %s\n"):format(total, name)
        end
    end
    luahost.outs(table.concat(out))
end)
