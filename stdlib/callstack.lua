-- callstack: who called what. A shadow call stack per vCPU and a
-- calling-context tree (how often each chain of calls was made, and the
-- instructions executed in each), kept by the host at execution with one
-- C callback per block (host/callstack.c); this module decides, at
-- translation, what each block's last instruction is (a call, a return,
-- a jump) and whether the block starts a function, and turns the tree
-- into profiles, call edges and folded stacks.
--
--     local callstack = require("callstack")
--     local cs = callstack.new()            -- follows every block from now on
--     cs:stack()                            -- in a vCPU callback: the frames, outermost first
--     luahost.on_exit(function()
--         for _, line in ipairs(cs:folded()) do luahost.outs(line .. "\n") end
--     end)
--
-- Robust to tail calls (a jump to the start of a function, from as high
-- in the stack as the innermost frame's call, replaces that frame),
-- longjmp and exceptions (frames a call or a function's start finds
-- above the stack pointer are dead), signal handlers (a function entered
-- deeper than a tail call would be runs on top of what it interrupted,
-- until its return), and never deeper than max_depth. Function starts
-- come from the symbols (luahost.symbolize): in code without any, tail
-- calls are counted in their caller.
local luahost = require("luahost")

local callstack = {}

-- A direct call's or jump's target (capstone's group branch_relative:
-- the address ends its text, "callq 0x401c00", "b.ne #0x401c00"), or nil.
local function direct_target(insn)
    for _, group in ipairs(insn:groups()) do
        if group == "branch_relative" then
            local hex = insn:disas():match("0x(%x+)$")
            return hex and (luahost.args.parse_u64(hex, 16))     -- exact under LuaJIT too
        end
    end
    return nil
end

-- The last instruction of a block, per target: "call", "ret", "jump" or
-- "none", and a direct call's or jump's target. capstone's groups name
-- calls and returns on x86; on aarch64 it puts bl and blr among the
-- jumps, so mnemonics decide there.
local AARCH64 = {
    bl = "call", blr = "call", blraa = "call", blrab = "call", blraaz = "call", blrabz = "call",
    ret = "ret", retaa = "ret", retab = "ret",
    b = "jump", br = "jump", braa = "jump", brab = "jump", braaz = "jump", brabz = "jump",
    cbz = "jump", cbnz = "jump", tbz = "jump", tbnz = "jump",
}

-- A kind classifier of capstone's targets, returning a call's or jump's
-- direct target too, as every classifier of CLASSIFY does.
local function with_direct_target(kind_of)
    return function(insn)
        local kind = kind_of(insn)
        if kind == "call" or kind == "jump" then
            return kind, direct_target(insn)
        end
        return kind
    end
end

local CLASSIFY = {
    x86_64 = with_direct_target(function(insn)
        local kind = "none"
        for _, group in ipairs(insn:groups()) do
            if group == "call" or group == "ret" then
                return group
            elseif group == "jump" then
                kind = "jump"
            end
        end
        return kind
    end),
    aarch64 = with_direct_target(function(insn)
        local mnemonic = insn:disas():match("^(%S+)") or ""
        return AARCH64[mnemonic] or (mnemonic:match("^b%.") and "jump") or "none"
    end),
}
CLASSIFY.i386 = CLASSIFY.x86_64

-- riscv64 from the encoding, as capstone 4 has no RISC-V. The calling
-- convention's link registers are ra (x1) and t0 (x5): a jal or jalr that
-- writes one is a call, a jalr through one that writes x0 a return; any
-- other jal, jalr or branch a jump. Also gives a direct jump's target.
local POW2 = {}      -- integers under Lua 5.4
for i = 0, 32 do
    POW2[i] = math.floor(2 ^ i)
end

-- n bits of word from bit lo, as an integer.
local function bits(word, lo, n)
    return math.floor(word / POW2[lo]) % POW2[n]
end

-- The signed value of an nbits-wide two's complement field.
local function signed(value, nbits)
    return value >= POW2[nbits - 1] and value - POW2[nbits] or value
end

local function is_link(reg)
    return reg == 1 or reg == 5
end

-- kind, offset of the target from the instruction (nil if indirect)
local function riscv64_compressed(half)
    local op, funct3 = half % 4, bits(half, 13, 3)
    if op == 1 and funct3 == 5 then                             -- c.j
        return "jump", signed(bits(half, 12, 1) * 2048 + bits(half, 8, 1) * 1024 + bits(half, 9, 2) * 256
            + bits(half, 6, 1) * 128 + bits(half, 7, 1) * 64 + bits(half, 2, 1) * 32
            + bits(half, 11, 1) * 16 + bits(half, 3, 3) * 2, 12)
    elseif op == 1 and funct3 >= 6 then                         -- c.beqz, c.bnez
        return "jump", signed(bits(half, 12, 1) * 256 + bits(half, 5, 2) * 64 + bits(half, 2, 1) * 32
            + bits(half, 10, 2) * 8 + bits(half, 3, 2) * 2, 9)
    elseif op == 2 and funct3 == 4 and bits(half, 2, 5) == 0 and bits(half, 7, 5) ~= 0 then
        if bits(half, 12, 1) == 1 then                          -- c.jalr
            return "call"
        end
        return is_link(bits(half, 7, 5)) and "ret" or "jump"    -- c.jr
    end
    return "none"
end

local function riscv64_kind(insn)
    local b = insn:data()
    local half = b:byte(1) + 256 * b:byte(2)
    if half % 4 ~= 3 then
        return riscv64_compressed(half)
    end
    local word = half + 65536 * (b:byte(3) + 256 * b:byte(4))
    local opcode, rd, rs1 = word % 128, bits(word, 7, 5), bits(word, 15, 5)
    if opcode == 0x6f then                                      -- jal
        return is_link(rd) and "call" or "jump", signed(bits(word, 31, 1) * 1048576
            + bits(word, 12, 8) * 4096 + bits(word, 20, 1) * 2048 + bits(word, 21, 10) * 2, 21)
    elseif opcode == 0x67 then                                  -- jalr
        if is_link(rd) then
            return "call"
        end
        return (rd == 0 and is_link(rs1)) and "ret" or "jump"
    elseif opcode == 0x63 then                                  -- beq, bne, blt, ...
        return "jump", signed(bits(word, 31, 1) * 4096 + bits(word, 7, 1) * 2048
            + bits(word, 25, 6) * 32 + bits(word, 8, 4) * 2, 13)
    end
    return "none"
end

CLASSIFY.riscv64 = function(insn)
    local kind, offset = riscv64_kind(insn)
    return kind, offset and insn:vaddr() + offset
end

-- The bytes a call instruction pushes (its return address), per target:
-- the host compares stack pointers at a function's start with those at
-- call instructions.
local CALL_PUSHES = { x86_64 = 8, i386 = 4, aarch64 = 0, riscv64 = 0 }

-- GCC's cold parts of a function ("f.cold", "f.cold.3", "f.part.0.cold"):
-- symbols of their own, reached by jumps from f (or by the unwinder's
-- jump to a landing pad), never by calls. Their start is not a
-- function's: a jump there stays in f.
local function is_fragment(symbol)
    return symbol:find("%.cold$") ~= nil or symbol:find("%.cold%.%d+$") ~= nil
end

local CallStack = {}
CallStack.__index = CallStack

-- callstack.new{ max_depth = 1024 }: starts following calls at once.
function callstack.new(options)
    options = options or {}
    local max_depth = options.max_depth or 1024
    if type(max_depth) ~= "number" or max_depth < 1 or max_depth > 2 ^ 20 or max_depth % 1 ~= 0 then
        error("callstack.new: max_depth must be an integer from 1 to 2^20", 2)
    end
    local classify = CLASSIFY[luahost.info.target_name]
    if not classify then
        error(("callstack: no call and return instructions known for %s (known: x86_64, i386, aarch64, riscv64)")
            :format(luahost.info.target_name), 2)
    end
    local raw_cs = luahost.callstack(max_depth, CALL_PUSHES[luahost.info.target_name])
    local self = setmetatable({ raw = raw_cs, names = {} }, CallStack)
    luahost.on_tb_translate(function(tb)
        local n = tb:n_insns()
        local last = tb:insn(n)
        local kind, target = classify(last)
        local pc = tb:vaddr()
        local s = luahost.symbolize(pc)
        local entry = s ~= nil and s.symbol ~= nil and s.symbol_offset == 0 and not is_fragment(s.symbol)
        if kind == "call" then
            raw_cs:block(tb, kind, entry, last:vaddr() + last:size(), target)
        elseif kind == "jump" then
            raw_cs:block(tb, kind, entry, nil, target)
        else
            raw_cs:block(tb, kind, entry)
        end
    end)
    return self
end

-- The name of the function starting at pc, as luahost.describe gives it.
function CallStack:name(pc)
    local name = self.names[pc]
    if not name then
        name = pc == 0 and "[outside-calls]" or luahost.describe(pc)
        self.names[pc] = name
    end
    return name
end

-- The current vCPU's stack, outermost first: { pc, name } per frame.
function CallStack:stack()
    local frames = {}
    for i, pc in ipairs(self.raw:frames()) do
        frames[i] = { pc = pc, name = self:name(pc) }
    end
    return frames
end

-- The tree, with each node's inclusive instructions (itself and every
-- callee) and name; at exit.
function CallStack:tree()
    local t = self.raw:tree()
    local inclusive, name = {}, {}
    for id = 1, t.n do
        inclusive[id] = t.insns[id]
        name[id] = self:name(t.pc[id])
    end
    for id = t.n, 1, -1 do      -- children come after their parents
        local p = t.parent[id]
        if p ~= 0 then
            inclusive[p] = inclusive[p] + inclusive[id]
        end
    end
    t.inclusive, t.name = inclusive, name
    return t
end

-- Per function (by name) and per call edge ("caller\0callee"): calls,
-- self and inclusive instructions. Inclusive counts a recursion once: a
-- context whose function (or edge) is already on the path above it adds
-- nothing. total: every instruction counted.
function CallStack:profile()
    local t = self:tree()
    local functions, edges = {}, {}
    local total = 0
    local function get(map, key)
        local e = map[key]
        if not e then
            e = { calls = 0, self = 0, inclusive = 0 }
            map[key] = e
        end
        return e
    end
    -- The path from a root to the node at hand (nodes come in depth-first
    -- order), with how many times each function and edge is on it.
    local path, keys, on_path = {}, {}, {}
    for id = 1, t.n do
        local p = t.parent[id]
        while #path > 0 and path[#path] ~= p do
            local k = keys[#path]
            on_path[k.name] = on_path[k.name] - 1
            if k.edge then
                on_path[k.edge] = on_path[k.edge] - 1
            end
            path[#path], keys[#path] = nil, nil
        end
        local name = t.name[id]
        local edge = p ~= 0 and (t.name[p] .. "\0" .. name) or nil
        total = total + t.insns[id]
        local f = get(functions, name)
        f.calls = f.calls + t.calls[id]
        f.self = f.self + t.insns[id]
        if (on_path[name] or 0) == 0 then
            f.inclusive = f.inclusive + t.inclusive[id]
        end
        if edge then
            local e = get(edges, edge)
            e.calls = e.calls + t.calls[id]
            e.self = e.self + t.insns[id]
            if (on_path[edge] or 0) == 0 then
                e.inclusive = e.inclusive + t.inclusive[id]
            end
            on_path[edge] = (on_path[edge] or 0) + 1
        end
        on_path[name] = (on_path[name] or 0) + 1
        path[#path + 1], keys[#path + 1] = id, { name = name, edge = edge }
    end
    return { functions = functions, edges = edges, total = total, truncated = t.truncated }
end

-- Folded stacks, as flamegraph.pl, inferno and speedscope read them: one
-- line per chain of calls that executed instructions, "a;b;c N", sorted;
-- the same chain on several vCPUs is one line. With per_vcpu = true,
-- each line starts with its vCPU ("vcpu 1;a;b N").
function CallStack:folded(per_vcpu)
    local t = self:tree()
    local path, counts = {}, {}
    for id = 1, t.n do
        local p = t.parent[id]
        if p == 0 then
            path[id] = per_vcpu and ("vcpu " .. t.vcpu[id]) or nil
            if t.insns[id] > 0 then
                local key = path[id] and (path[id] .. ";" .. t.name[id]) or t.name[id]
                counts[key] = (counts[key] or 0) + t.insns[id]
            end
        else
            path[id] = path[p] and (path[p] .. ";" .. t.name[id]) or t.name[id]
            if t.insns[id] > 0 then
                counts[path[id]] = (counts[path[id]] or 0) + t.insns[id]
            end
        end
    end
    local lines = {}
    for key, n in pairs(counts) do
        lines[#lines + 1] = ("%s %d"):format(key, n)
    end
    table.sort(lines)
    return lines
end

return callstack
