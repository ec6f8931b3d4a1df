-- inline: blocks, instructions and accesses counted three ways, which must agree.
-- A port of QEMU's tests/tcg/plugins/inline.c: the same counts, the same
-- report, the same checks. Each execution of a block and an instruction,
-- and each memory access, is counted by an inline op, delivered to Lua
-- (through an event stream, in batches, as inline.c's callbacks deliver
-- them to C), and, for blocks and instructions, counted by an inline op
-- that a conditional callback resets each time it reaches 100. At exit
-- the counts must be equal, per vCPU and in total, or the script fails
-- (status 1), as inline.c's assertions abort QEMU. Like inline.c, it
-- ignores its arguments.
local COND_TRIGGER_LIMIT = 100

local counts = luahost.scoreboard {
    "tb", "tb_inline", "insn", "insn_inline", "mem", "mem_inline",
    "tb_cond_num_trigger", "tb_cond_track_count", "insn_cond_num_trigger", "insn_cond_track_count",
}
-- What the last block, instruction and access of each vCPU stored: a
-- number of its own translation, which its callbacks are given too.
local data = luahost.scoreboard { "insn", "tb", "mem" }

local global = { tb = 0, insn = 0, mem = 0 }   -- what the streams delivered
local max_cpu_index = 0

local function check(ok, what)
    if not ok then
        error("inline.lua: check failed: " .. what, 2)
    end
end

-- One stream per kind: each batch's events are all of its kind, so a
-- batch is counted whole, without a loop over its events.
local function stream_counting(kind)
    return luahost.stream { on_batch = function(vcpu, batch)
        counts[kind]:add(vcpu, batch.n)
        global[kind] = global[kind] + batch.n
        if kind == "tb" and vcpu > max_cpu_index then
            max_cpu_index = vcpu
        end
    end }
end
local tb_stream, insn_stream, mem_stream = stream_counting("tb"), stream_counting("insn"), stream_counting("mem")

-- The conditional callbacks: the track count has just reached the limit.
local function on_tb_cond(vcpu, token)
    check(counts.tb_cond_track_count:get(vcpu) == COND_TRIGGER_LIMIT, "tb cond track count == limit")
    check(data.tb:get(vcpu) == token, "data_tb == udata")
    counts.tb_cond_track_count:set(vcpu, 0)
    counts.tb_cond_num_trigger:add(vcpu, 1)
end

local function on_insn_cond(vcpu, token)
    check(counts.insn_cond_track_count:get(vcpu) == COND_TRIGGER_LIMIT, "insn cond track count == limit")
    check(data.insn:get(vcpu) == token, "data_insn == udata")
    counts.insn_cond_track_count:set(vcpu, 0)
    counts.insn_cond_num_trigger:add(vcpu, 1)
end

local tokens = 0    -- inline.c's tokens are its tb and insn handles

luahost.on_tb_translate(function(tb)
    tokens = tokens + 1
    local tb_token = tokens
    tb:inline("store", data.tb, tb_token)
    tb_stream:exec(tb)
    tb:inline("add", counts.tb_inline, 1)
    tb:inline("add", counts.tb_cond_track_count, 1)
    tb:on_exec_if(counts.tb_cond_track_count, "eq", COND_TRIGGER_LIMIT, on_tb_cond, tb_token)

    for _, insn in tb:insns() do
        tokens = tokens + 1
        local insn_token = tokens
        insn:inline("store", data.insn, insn_token)
        insn_stream:exec(insn)
        insn:inline("add", counts.insn_inline, 1)
        insn:inline("add", counts.insn_cond_track_count, 1)
        insn:on_exec_if(counts.insn_cond_track_count, "eq", COND_TRIGGER_LIMIT, on_insn_cond, insn_token)

        insn:mem_inline("store", data.mem, insn_token + 0xff)
        mem_stream:mem(insn)
        insn:mem_inline("add", counts.mem_inline, 1)
    end
end)

-- The totals of one kind: delivered, per vCPU, inline, conditional.
local function stats(kind, cond_label, with_cond)
    local expected = global[kind]
    local per_vcpu = counts[kind]:sum()
    local inl_per_vcpu = counts[kind .. "_inline"]:sum()
    local out = {
        ("%s: %d\n"):format(kind, expected),
        ("%s: %d (per vcpu)\n"):format(kind, per_vcpu),
        ("%s: %d (per vcpu inline)\n"):format(kind, inl_per_vcpu),
    }
    local conditional
    if with_cond then
        conditional = counts[kind .. "_cond_num_trigger"]:sum() * COND_TRIGGER_LIMIT
            + counts[kind .. "_cond_track_count"]:sum()
        out[#out + 1] = ("%s: %d (%s)\n"):format(kind, conditional, cond_label)
    end
    luahost.outs(table.concat(out))
    check(expected > 0, kind .. " expected > 0")
    check(per_vcpu == expected, kind .. " per vcpu == expected")
    check(inl_per_vcpu == expected, kind .. " inline per vcpu == expected")
    check(not with_cond or conditional == expected, kind .. " conditional == expected")
end

luahost.on_exit(function()
    local num_cpus = luahost.num_vcpus()
    check(num_cpus == max_cpu_index + 1, "num_cpus == max_cpu_index + 1")
    for i = 0, num_cpus - 1 do
        local c = {}
        for _, name in ipairs({ "tb", "tb_inline", "insn", "insn_inline", "mem", "mem_inline",
                                "tb_cond_num_trigger", "tb_cond_track_count",
                                "insn_cond_num_trigger", "insn_cond_track_count" }) do
            c[name] = counts[name]:get(i)
        end
        luahost.printf("cpu %d: tb (%d, %d, %d * %d + %d) | insn (%d, %d, %d * %d + %d) | mem (%d, %d)\n",
            i, c.tb, c.tb_inline, c.tb_cond_num_trigger, COND_TRIGGER_LIMIT, c.tb_cond_track_count,
            c.insn, c.insn_inline, c.insn_cond_num_trigger, COND_TRIGGER_LIMIT, c.insn_cond_track_count,
            c.mem, c.mem_inline)
        check(c.tb == c.tb_inline, "tb == tb_inline")
        check(c.insn == c.insn_inline, "insn == insn_inline")
        check(c.mem == c.mem_inline, "mem == mem_inline")
        for _, kind in ipairs({ "tb", "insn" }) do
            check(c[kind .. "_cond_num_trigger"] == math.floor(c[kind] / COND_TRIGGER_LIMIT),
                kind .. "_cond_trigger == " .. kind .. " / limit")
            check(c[kind .. "_cond_track_count"] == c[kind] % COND_TRIGGER_LIMIT,
                kind .. "_cond_left == " .. kind .. " % limit")
        end
    end
    stats("tb", "conditional cb", true)
    stats("insn", "cond cb", true)
    stats("mem", nil, false)
end)
