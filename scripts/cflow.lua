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
-- Cost: the bookkeeping of the previous block is inline (QEMU stores, no
-- Lua), as in cflow.c; a block entered off the straight line calls Lua
-- (cflow.c calls C there): a destination is counted per (instruction,
-- destination) pair, which no inline op can index.

local opt = luahost.args {
    sort = luahost.args.choice({ "hottest", "early", "exceptions" }, "hottest"),
}

local TOPN = 10         -- cflow.c's topn, which no argument sets

-- Per vCPU: the previous block's last instruction and the address after
-- it, and the last instruction started.
local state = luahost.scoreboard { "end_block", "pc_after_block", "last_pc" }
local end_block, pc_after_block, last_pc = state.end_block, state.pc_after_block, state.last_pc

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

-- A block was entered at pc, not after the previous one.
local function branched(vcpu, pc)
    local lpc = last_pc:get(vcpu)
    if lpc == 0 then
        return          -- the vCPU's first block
    end
    local node = node_at(lpc)
    local ebpc = end_block:get(vcpu)
    if lpc ~= ebpc then
        io.stderr:write(("vcpu_tb_branched_exec: pc=%x, epbc=%x npc=%x, lpc=%x\n"):format(pc, ebpc,
            pc_after_block:get(vcpu), lpc))
        node.early_exit = node.early_exit + 1
        if node.mid_count == 0 then
            node.mid_count = 1
        end
    end
    local i = node.dest_index[pc]
    if not i then
        i = #node.dests + 1
        node.dests[i] = { addr = pc, count = 0 }
        node.dest_index[pc] = i
    end
    node.dests[i].count = node.dests[i].count + 1
    node.dest_count = node.dest_count + 1
end

luahost.on_tb_translate(function(tb)
    local pc = tb:vaddr()
    local n = tb:n_insns()
    local first, last = tb:insn(1), tb:insn(n)
    tb:on_exec_if(pc_after_block, "ne", pc, branched, pc)
    first:inline("store", end_block, last:vaddr())
    first:inline("store", pc_after_block, last:vaddr() + last:size())
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
