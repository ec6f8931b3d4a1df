-- cflow: where control flow leaves the straight line. A port of QEMU's
-- contrib/plugins/cflow.c (the same in QEMU 10.0 and 10.2): the same
-- argument and the same report. Each time a vCPU starts a block at
-- another address than the one after its previous block, the last
-- instruction it executed is a branch point (a "node") and the new block
-- a destination of it; if that instruction was not the last of its block
-- (a fault in mid-block), it is also an "early exit". At exit: how many
-- instructions were seen (every translated instruction is a node), then
-- the 10 nodes that branched, sorted by
--
--   sort=hottest      (default) times they branched
--   sort=early        early exits
--   sort=exceptions   number of destinations (cflow.c's name for it)
--
-- each with its destinations in order of first use. Nodes that tie are
-- listed as cflow.c lists them: its hash table's order (ghashorder.lua).
-- An early exit is also told on stderr, as cflow.c does.
--
-- Cost: a destination is counted per (instruction, destination) pair, a
-- key no inline op can index. As cflow.c, C runs only for a block not
-- entered by falling through (a conditional callback), and counts the
-- pair in a tally, with no lock. Inline stores keep the last instruction
-- started, the address after the block once its last one started (0
-- before) and the block's translation; only a block entered after one
-- that did not reach its last instruction (a fault) calls Lua.

local opt = luahost.args {
    sort = luahost.args.choice({ "hottest", "early", "exceptions" }, "hottest"),
}

local TOPN = 10         -- cflow.c's topn, which no argument sets

local last_pc = luahost.scoreboard()        -- per vCPU: the last instruction started
local after = luahost.scoreboard()          -- the address after the block once its last
                                            -- instruction started, 0 before
local current = luahost.scoreboard()        -- the translation that started last
local dests = luahost.tally()               -- (instruction, destination) -> times

local nodes = {}        -- address -> node
local created = {}      -- the nodes' addresses, in order of creation

local function node_at(addr)
    local node = nodes[addr]
    if not node then
        node = { addr = addr, dests = {}, dest_index = {}, dest_count = 0, early_exit = 0, mid_count = 0 }
        nodes[addr] = node
        created[#created + 1] = addr
    end
    return node
end

local function count_dest(node, pc, n)
    local i = node.dest_index[pc]
    if not i then
        i = #node.dests + 1
        node.dests[i] = { addr = pc, count = 0 }
        node.dest_index[pc] = i
    end
    node.dests[i].count = node.dests[i].count + n
    node.dest_count = node.dest_count + n
end

-- Blocks are told apart by their translation (QEMU may translate an
-- address again, into another block): its number, from 1.
local block_end, block_after = {}, {}  -- translation -> its last instruction, the address after

-- The previous block did not reach its last instruction (or this is the
-- vCPU's first). Runs before the tally's callback of the block, which it
-- turns off for this entry by setting after to pc: an early exit is
-- counted here, in the tally too, so that destinations keep their order.
local function early(vcpu, pc)
    after:set(vcpu, pc)
    local lpc = last_pc:get(vcpu)
    local prev = current:get(vcpu)
    if lpc == 0 or prev == 0 or block_after[prev] == pc then
        return
    end
    local node = node_at(lpc)
    io.stderr:write(("vcpu_tb_branched_exec: pc=%x, epbc=%x npc=%x, lpc=%x\n"):format(pc, block_end[prev],
        block_after[prev], lpc))
    node.early_exit = node.early_exit + 1
    if node.mid_count == 0 then
        node.mid_count = 1
    end
    dests:add(vcpu, lpc, pc)
end

local translations = 0

luahost.on_tb_translate(function(tb)
    local pc = tb:vaddr()
    local n = tb:n_insns()
    local first, last = tb:insn(1), tb:insn(n)
    translations = translations + 1
    local id = translations
    block_end[id], block_after[id] = last:vaddr(), last:vaddr() + last:size()
    -- in this order: early() first, so that it can turn off the tally's count
    tb:on_exec_if(after, "eq", 0, early, pc)
    dests:exec(tb, last_pc, after, "ne", pc)
    first:inline("store", current, id)
    if n > 1 then
        first:inline("store", after, 0)
    end
    last:inline("store", after, block_after[id])
    for i, insn in tb:insns() do
        local ipc = insn:vaddr()
        local node = node_at(ipc)
        if not node.disas then
            node.disas = insn:disas()
        end
        if not node.symbol then
            node.symbol = insn:qemu_symbol()
        end
        if i < n then
            node.mid_count = node.mid_count + 1
        end
        insn:inline("store", last_pc, ipc)
    end
end)

-- The destinations, in the order each pair was first counted.
local function count_all()
    local rows = dests:rows()
    local lpcs, pcs, counts = rows.key, rows.key2, rows.count
    for i = 1, rows.n do
        count_dest(nodes[lpcs[i]], pcs[i], counts[i])
    end
end

local KEYS = { hottest = "dest_count", early = "early_exit", exceptions = "ndests" }

-- The nodes that branched, in cflow.c's order: its hash table's, then
-- sorted stably by the key, largest first.
local function ranked()
    local table_ = require("ghashorder").new()
    for _, addr in ipairs(created) do
        table_:insert(addr)
    end
    table_:remove_if(function(addr)
        return nodes[addr].dest_count == 0
    end)
    local key = KEYS[opt.sort]
    local list = {}
    for i, addr in ipairs(table_:values()) do
        local node = nodes[addr]
        node.ndests = #node.dests
        list[i] = { node = node, position = i }
    end
    table.sort(list, function(a, b)
        local ka, kb = a.node[key], b.node[key]
        if ka ~= kb then
            return ka > kb
        end
        return a.position < b.position
    end)
    return list
end

luahost.on_exit(function()
    count_all()
    local out = { ("collected %d control flow nodes in the hash table\n"):format(#created) }
    for i, entry in ipairs(ranked()) do
        if i > TOPN then
            break
        end
        local node = entry.node
        out[#out + 1] = ("  addr: 0x%x %s: %s (%s)\n"):format(node.addr, node.symbol or "(null)", node.disas,
            node.mid_count ~= 0 and "sync fault" or "branch")
        if node.early_exit ~= 0 then
            out[#out + 1] = ("    early exits %d\n"):format(node.early_exit)
        end
        out[#out + 1] = ("    branches %d\n"):format(node.dest_count)
        for _, dest in ipairs(node.dests) do
            out[#out + 1] = ("      to 0x%x (%d)\n"):format(dest.addr, dest.count)
        end
    end
    luahost.outs(table.concat(out))
end)
