-- execlog: a trace of executed instructions, memory accesses, registers.
-- Which instructions ran, in order, what memory each touched and which
-- registers each changed. A port of QEMU's contrib/plugins/execlog.c
-- (QEMU 10.0): same arguments, same trace lines.
--
--   ifilter=TEXT  log only instructions whose disassembly starts with TEXT
--                 (ifilter=mov); repeatable
--   afilter=ADDR  log only the instruction at ADDR, in hex (0x optional);
--                 repeatable. With both filters an instruction matching
--                 either is logged. ADDR may also name code, found when
--                 its module is mapped: SYMBOL[+0xOFF],
--                 MODULE!SYMBOL[+0xOFF], MODULE+0xOFF (a name made of hex
--                 digits only, such as add, reads as an address: write
--                 add+0)
--   reg=GLOB      log changes of the registers whose name matches GLOB
--                 (`*` and `?`: reg=rax, reg=xmm*, reg=x?); repeatable
--   rdisas=on|off read registers only after instructions whose operands
--                 name a tracked register, and log those too (default off)
--   symbolize=on|off
--                 our extension: end each line with the instruction's
--                 location (luahost.describe: main+0x14, memcpy,
--                 module+0xOFF, or the address outside every module),
--                 the same from run to run (default off)
--
-- A line: vCPU, address, the instruction's first 4 bytes as a
-- little-endian number, "disassembly", then each memory access
-- (", load, 0x<vaddr>"), then each register change (", rax -> 0x<value>"),
-- then with symbolize=on the location (", main+0x14"):
--   0, 0x402914, 0x24848b48, "movq 0x100(%rsp), %rax", load, 0x7f6f449e7680, rax -> 0x00007f6f449e7688
-- It is printed when the vCPU's next instruction executes, which is when
-- the registers show what the instruction did; at exit, each vCPU's last.
local regs = require("regs")
local addresses = require("addresses")

local opt = luahost.args {
    ifilter = luahost.args.list(),
    afilter = luahost.args.list(),
    reg = luahost.args.list(),
    rdisas = false,
    symbolize = false,
}

local filtering = #opt.ifilter > 0 or #opt.afilter > 0
local tracking = #opt.reg > 0             -- even if no register matches, as execlog.c
local rdisas = opt.rdisas and tracking
local afilter = addresses.set(opt.afilter, { what = "afilter", base = 16 })    -- hex as execlog.c

-- Chosen at the first vCPU's start (the registers are the same for all).
local tracked           -- registers to watch; one matched twice is listed twice
local change_label = {} -- register -> ", name -> "
local tracked_names = {}    -- lower case, what rdisas looks for

local function track_registers()
    tracked = {}
    local picked, hits = regs.select(luahost.registers(), opt.reg)
    for i, reg in ipairs(picked) do
        local name = reg.name:lower()
        change_label[reg] = ", " .. name .. " -> "
        tracked_names[#tracked_names + 1] = name
        for _ = 1, hits[i] do
            tracked[#tracked + 1] = reg
        end
    end
end

-- Per vCPU: line (the last logged instruction's, kept after printing, as
-- execlog.c keeps its buffer), pending (not printed yet), ending (what
-- ends the line: "\n", or with symbolize=on its location and "\n"), and
-- the watcher of the tracked registers' values.
local cpus = {}

-- Each logged instruction has an id: texts[id] is its part of its line,
-- endings[id] (symbolize=on) what ends the line.
local texts = {}
local endings = opt.symbolize and {} or nil

luahost.on_vcpu_init(function(vcpu)
    if not tracked then
        track_registers()
    end
    -- a reused vCPU index drops the old thread's pending line, as execlog.c
    cpus[vcpu] = { prefix = vcpu .. ", ", line = "", pending = false, ending = "\n",
        watcher = regs.watcher(tracked) }
end)

local function append_changes(cpu)
    local line = cpu.line
    for _, reg, value, size in cpu.watcher:changed() do
        line = line .. change_label[reg] .. regs.hex(value, size)
    end
    cpu.line = line
end

local function finish_line(cpu, with_changes)
    if cpu.pending then
        if with_changes then
            append_changes(cpu)
        end
        luahost.outs(cpu.line .. cpu.ending)
        cpu.pending = false
    end
end

local function start_line(cpu, id)
    cpu.line, cpu.pending = cpu.prefix .. texts[id], true
    if endings then
        cpu.ending = endings[id]
    end
end

-- Exec callbacks. `id` is the instruction's.
local function log_insn(vcpu, id)
    local cpu = cpus[vcpu]
    finish_line(cpu, false)
    start_line(cpu, id)
end

local function log_insn_after_changes(vcpu, id)
    local cpu = cpus[vcpu]
    finish_line(cpu, true)
    start_line(cpu, id)
end

local function log_changes(vcpu)     -- on an instruction not logged
    finish_line(cpus[vcpu], true)
end

-- An access's part of its line: the physical address and device in
-- system mode (device is nil in user mode).
local function access_text(is_store, addr, device)
    local kind = is_store and ", store" or ", load"
    if device then
        return ("%s, 0x%08x, %s"):format(kind, addr, device)
    end
    return ("%s, 0x%08x"):format(kind, addr)
end

local function log_access(vcpu, mem, vaddr)
    local cpu = cpus[vcpu]
    local hw = mem:hwaddr()
    cpu.line = cpu.line .. access_text(mem:is_store(), hw and hw:phys_addr() or vaddr, hw and hw:device_name())
end

-- A new id for an instruction about to be logged.
local function insn_id(insn, vaddr, disas)
    local id = #texts + 1
    texts[id] = ('0x%x, 0x%x, "%s"'):format(vaddr, insn:opcode(), disas)
    if endings then
        endings[id] = ", " .. luahost.describe(vaddr) .. "\n"
    end
    return id
end

local function selected(vaddr, disas)
    if afilter:at(vaddr) then
        return true
    end
    for _, prefix in ipairs(opt.ifilter) do
        if disas:sub(1, #prefix) == prefix then
            return true
        end
    end
    return false
end

-- rdisas: do the operands name a tracked register? As in QEMU 10.0, the
-- operands are the text from the first space (capstone's text always has
-- one: "ret " too).
local function names_tracked_register(disas)
    local space = disas:find(" ", 1, true)
    if space then
        for _, name in ipairs(tracked_names) do
            if disas:find(name, space, true) then
                return true
            end
        end
    end
    return false
end

-- Without register tracking, instructions and their accesses reach the
-- log through an event stream and are formatted a batch at a time. A
-- batch holds one vCPU's events in order: its lines come out whole, and
-- lines of different vCPUs interleave by batch rather than by line.
local INSN, STORE = luahost.INSN, luahost.STORE
local system = luahost.info.system_emulation

-- The batch's text is built as a list of pieces, written with one
-- luahost.outs; the vCPU's last line stays pending (its next batch may add
-- accesses to it) as the pieces in cpu.tail, and becomes cpu.line when
-- the stream's last batch has come (exit).
local function on_batch(vcpu, batch)
    local cpu = cpus[vcpu]
    local out = cpu.tail or { cpu.line }
    local n = #out
    local start = 1         -- where the pending line begins in out
    local prefix, ending = cpu.prefix, cpu.ending
    local kind, ids = batch.kind, batch.id
    local addrs = system and batch.paddr or batch.addr
    local device = system and batch.device
    for i = 1, batch.n do
        local k = kind[i]
        if k == INSN then
            if cpu.pending then
                n = n + 1
                out[n] = ending
            end
            cpu.pending = true
            start = n + 1
            out[n + 1], out[n + 2] = prefix, texts[ids[i]]
            n = n + 2
            if endings then
                ending = endings[ids[i]]
            end
        else
            local dev = device and device[i] or 0
            n = n + 1
            out[n] = access_text(k == STORE, addrs[i], dev > 0 and luahost.device_name(dev) or nil)
        end
    end
    cpu.tail, cpu.ending = table.move(out, start, n, 1, {}), ending
    if start > 1 then
        luahost.outs(table.concat(out, "", 1, start - 1))
    end
end

-- unchecked: on_batch reads the columns for i = 1, batch.n only.
local stream = not tracking and luahost.stream { on_batch = on_batch, physical = system, unchecked = true }

local function stream_insn(insn, vaddr, disas)
    local id = insn_id(insn, vaddr, disas)
    stream:exec(insn, id)
    stream:mem(insn, id)
end

luahost.on_tb_translate(function(tb)
    -- a block's first instruction checks registers even under rdisas:
    -- whatever ran before it is not known here
    local check_regs = tracking
    for _, insn in tb:insns() do
        local vaddr, disas = insn:vaddr(), insn:disas()
        local names_reg = rdisas and names_tracked_register(disas)
        if not filtering or names_reg or selected(vaddr, disas) then
            if stream then
                stream_insn(insn, vaddr, disas)
            else
                insn:on_mem(log_access)
                if check_regs then
                    insn:on_exec(log_insn_after_changes, insn_id(insn, vaddr, disas), "r")
                else
                    insn:on_exec(log_insn, insn_id(insn, vaddr, disas))
                end
            end
        elseif check_regs then
            insn:on_exec(log_changes, nil, "r")
        end
        if rdisas then
            check_regs = names_reg
        end
    end
end)

luahost.on_exit(function()
    for vcpu = 0, luahost.num_vcpus() - 1 do
        local cpu = cpus[vcpu]
        if cpu then
            luahost.outs((cpu.tail and table.concat(cpu.tail) or cpu.line) .. cpu.ending)
        end
    end
end)
