-- insn: executed instructions per vCPU, and the executions of chosen ones.
-- A port of QEMU's tests/tcg/plugins/insn.c: same arguments, same report.
--
--   inline=on|off  accepted as insn.c takes it (default off): insn.c
--                  counts with inline ops when on and with a callback per
--                  instruction when off; the port always counts inline
--   sizes=on|off   instead of the counts, how many instructions of each
--                  length in bytes were translated (default off)
--   match=PREFIX   count the executions of each instruction whose
--                  disassembly starts with PREFIX, and list them; may be
--                  given many times
--   trace=on|off   with match=, a line for each execution of a matched
--                  instruction (default off)
local args = luahost.args
local opt = args { inline = false, sizes = false, trace = false, match = args.list() }

local insn_count = luahost.scoreboard()
local sizes = {}        -- sizes[length in bytes] = instructions translated

-- One per match=: its prefix, its records by "vaddr disas" (as insn.c
-- keys them) and, per vCPU, its hits, the instruction count at its last
-- hit and the sum of the counts between hits (for trace=on).
local matches = {}
for i, prefix in ipairs(opt.match) do
    matches[i] = { prefix = prefix, records = {},
        counts = luahost.scoreboard { "hits", "last_hit", "total_delta" } }
end

-- Each register read once per vCPU, as insn.c does to check the API.
luahost.on_vcpu_init(function()
    for _, reg in ipairs(luahost.registers()) do
        local value, err = reg:read()
        if value == nil then
            error(("cannot read register %s: %s"):format(reg.name, err))
        end
    end
end)

-- The record of a matched instruction, made (and announced) at its first
-- translation. insn.c shares one record between all the matches of an
-- instruction, so that a second match's hits go to the first: here each
-- match has its own.
local function record_for(match, vaddr, disas)
    local key = ("%x %s"):format(vaddr, disas)
    local rec = match.records[key]
    if not rec then
        rec = { vaddr = vaddr, disas = disas, hits = luahost.scoreboard(), traced_hits = 0,
            order = ("%016x %s"):format(vaddr, disas) }
        match.records[key] = rec
        luahost.outs("Created record for: " .. key .. "\n")
    end
    return rec
end

-- trace=on: a matched instruction is about to execute.
local function on_match(vcpu, hit)
    local rec, counts = hit.rec, hit.match.counts
    rec.traced_hits = rec.traced_hits + 1
    local icount = insn_count:get(vcpu)
    local delta = icount - counts.last_hit:get(vcpu)
    counts.hits:add(vcpu, 1)
    counts.total_delta:add(vcpu, delta)
    counts.last_hit:set(vcpu, icount)
    local hits = counts.hits:get(vcpu)
    luahost.printf("0x%x, '%s', %d hits , cpu %d, %d match hits, Δ+%d since last match, %d avg insns/match\n",
        rec.vaddr, rec.disas, rec.traced_hits, vcpu, hits, delta, math.floor(counts.total_delta:get(vcpu) / hits))
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        insn:inline("add", insn_count, 1)
        if opt.sizes then
            local size = insn:size()
            sizes[size] = (sizes[size] or 0) + 1
        end
        if #matches > 0 then
            local disas = insn:disas()
            for _, match in ipairs(matches) do
                if disas:sub(1, #match.prefix) == match.prefix then
                    local rec = record_for(match, insn:vaddr(), disas)
                    if opt.trace then
                        insn:on_exec(on_match, { rec = rec, match = match })
                    else
                        insn:inline("add", rec.hits, 1)
                        insn:inline("add", match.counts.hits, 1)
                    end
                end
            end
        end
    end
end)

luahost.on_exit(function()
    local out = {}
    if opt.sizes then
        local longest = 0
        for size in pairs(sizes) do
            longest = math.max(longest, size)
        end
        for size = 0, longest do
            if sizes[size] then
                out[#out + 1] = ("len %d bytes: %d insns\n"):format(size, sizes[size])
            end
        end
    else
        for vcpu = 0, luahost.num_vcpus() - 1 do
            out[#out + 1] = ("cpu %d insns: %d\n"):format(vcpu, insn_count:get(vcpu))
        end
        out[#out + 1] = ("total insns: %d\n"):format(insn_count:sum())
    end
    for _, match in ipairs(matches) do
        out[#out + 1] = ("Match: %s, hits %d\n"):format(match.prefix, match.counts.hits:sum())
        local recs = {}
        for _, rec in pairs(match.records) do
            recs[#recs + 1] = rec
        end
        table.sort(recs, function(a, b) return a.order < b.order end)
        for _, rec in ipairs(recs) do
            local hits = opt.trace and rec.traced_hits or rec.hits:sum()
            out[#out + 1] = ("  %x: %s (hits %d)\n"):format(rec.vaddr, rec.disas, hits)
        end
    end
    luahost.outs(table.concat(out))
end)
