-- uftrace: a call trace that uftrace replays and reports (uftrace.data).
-- A port of QEMU 10.2's contrib/plugins/uftrace.c: the same argument, the
-- same files (info, task.txt, sid-0.map and one <id>.dat per vCPU, or per
-- vCPU and privilege level), the same records, as "uftrace record" writes.
-- Like uftrace.c it follows the frame pointer (rbp, x29): a change of it
-- is a call, a return, or a jump to another stack that is unwound anew,
-- so the program must keep frame pointers (-fno-omit-frame-pointer
-- -mno-omit-leaf-frame-pointer).
--
--   trace-privilege-level=on|off   one trace per privilege level (x86_64:
--                                  rings and real mode; aarch64: exception
--                                  level and security state); default off
--   dir=DIR                        our extension: the directory to write
--                                  (default uftrace.data, in the current
--                                  directory, as uftrace.c)
--   symfiles=on|off                our extension: also write <module>.sym,
--                                  the symbols of the functions the trace
--                                  enters, in uftrace's format, so that uftrace
--                                  names them without the ELF files (and,
--                                  in system mode, the modules in sid-0.map:
--                                  no uftrace_symbols.py); default on
--
-- uftrace.c reads the frame pointer in a callback before the first
-- instruction of every block and before each instruction that follows one
-- naming the frame pointer; so does this script (a Lua call each time).
local opt = luahost.args {
    ["trace-privilege-level"] = false,
    dir = "uftrace.data",
    symfiles = true,
}

local data = require("uftracedata")

local arch = data.arch(luahost.info.target_name)
if not arch then
    luahost.usage_error(("target %s is not supported (aarch64 and x86_64 are)"):format(luahost.info.target_name))
end

local dir = opt.dir
local function path(name)
    return dir .. "/" .. name
end

-- uftrace.c makes the directory with its parents; refuse one that cannot be.
do
    local probe = path(".uftrace.lua")
    local file = io.open(probe, "w")
    if not file then
        os.execute("mkdir -p -- '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null")
        file = io.open(probe, "w")
    end
    if not file then
        luahost.usage_error("dir=" .. dir .. ": cannot create a file in this directory")
    end
    file:close()
    os.remove(probe)
end

local privilege = opt["trace-privilege-level"]
local time_ns = luahost.time_ns
local read64 = data.read64
local pack = data.pack
local ENTRY, EXIT = data.ENTRY, data.EXIT
local FLUSH = 65536          -- records per trace kept before appending to its file

-- A trace: one .dat file, its records not yet written, its task name.
local function new_trace(id, name)
    local t = { id = id, name = name, path = path(id .. ".dat"), buf = {}, n = 0 }
    local file = assert(io.open(t.path, "wb"))      -- created or truncated, as uftrace.c
    file:close()
    return t
end

local function flush(t)
    if t.n > 0 then
        local file = assert(io.open(t.path, "ab"))
        file:write(table.concat(t.buf, "", 1, t.n))
        file:close()
        t.buf, t.n = {}, 0
    end
end

local entered = {}      -- every pc a record names: the functions to symbolize

local function add(t, ts, pc, depth, kind)
    local n = t.n + 1
    t.buf[n] = pack(ts, pc, depth, kind)
    t.n = n
    if n >= FLUSH then
        flush(t)
    end
end

local cpus = {}         -- by vCPU index: registers, traces, the call stack

-- The stack (fps, pcs, n), outermost first.
local function enter_stack(cpu, ts)
    local t = cpu.trace
    for depth = 1, cpu.n do
        add(t, ts, cpu.pcs[depth], depth, ENTRY)
    end
end

local function exit_stack(cpu, ts)
    local t = cpu.trace
    for depth = cpu.n, 1, -1 do
        add(t, ts, cpu.pcs[depth], depth, EXIT)
    end
end

-- uftrace.c's unwinding: frame records (caller's fp, return address) up
-- to a null fp or return address, at most 1024 frames. (Its check for a
-- loop of frames leaves only its inner loop: no check, as here.)
local function unwind(cpu, fp, pc)
    local fps, pcs = {}, {}
    local depth = 0
    repeat
        depth = depth + 1
        fps[depth], pcs[depth] = fp, pc
        entered[pc] = true
        if fp ~= 0 then
            fp = read64(fp)
        end
        pc = read64(fp + 8)
    until fp == 0 or pc == 0 or depth >= 1024
    for i = 1, depth do
        cpu.fps[i], cpu.pcs[i] = fps[depth + 1 - i], pcs[depth + 1 - i]
    end
    cpu.n = depth
end

local function track_callstack(vcpu, pc)
    local cpu = cpus[vcpu]
    local fp = cpu.fp:read()
    local n = cpu.n
    local fps = cpu.fps
    if fp == 0 and n == 0 then
        -- no frame: the pc stands for the function until a real call
        cpu.n, fps[1], cpu.pcs[1] = 1, fp, pc
        entered[pc] = true
        add(cpu.trace, time_ns(), pc, 1, ENTRY)
        return
    end
    local top = n >= 1 and fps[n] or 0
    if fp == top then
        return                                          -- the same function
    end
    if fp == (n >= 2 and fps[n - 1] or 0) then          -- a return
        cpu.n = n - 1
        add(cpu.trace, time_ns(), cpu.pcs[n], n - 1, EXIT)
        return
    end
    if (fp ~= 0 and read64(fp) or 0) == top then        -- a call
        cpu.n, fps[n + 1], cpu.pcs[n + 1] = n + 1, fp, pc
        entered[pc] = true
        add(cpu.trace, time_ns(), pc, n + 1, ENTRY)
        return
    end
    -- another stack (longjmp, a context switch): leave this one, enter that
    local ts = time_ns()
    exit_stack(cpu, ts)
    unwind(cpu, fp, pc)
    enter_stack(cpu, ts)
end

local function track_privilege_change(vcpu, pc)
    local cpu = cpus[vcpu]
    local level = arch.privilege_level(cpu.regs)
    if level == cpu.level then
        return
    end
    local ts = time_ns()
    exit_stack(cpu, ts)
    cpu.n = 0
    cpu.level = level
    cpu.trace = cpu.traces[level + 1]
    unwind(cpu, cpu.fp:read(), pc)
    enter_stack(cpu, ts)
end

luahost.on_vcpu_init(function(vcpu)
    local regs, why = arch.registers()
    if not regs then
        error("uftrace.lua: " .. why, 0)
    end
    local old = cpus[vcpu]
    -- trace id: (vCPU + 1) * 100 + privilege level
    local id = (vcpu + 1) * 100
    local traces = {}
    if privilege then
        for level = 0, #arch.level_names - 1 do
            traces[level + 1] = new_trace(id + level, ("cpu%d %s"):format(vcpu, arch.level_names[level + 1]))
        end
    else
        traces[1] = new_trace(id, ("cpu%d"):format(vcpu))
    end
    -- a reused index (user mode: a thread after an ended one) starts over,
    -- at the level it had, as uftrace.c's per-vCPU struct does
    local level = old and old.level or 0
    cpus[vcpu] = { fp = regs.fp, regs = regs, traces = traces, level = level,
        trace = traces[level + 1], fps = {}, pcs = {}, n = 0 }
end)

luahost.on_tb_translate(function(tb)
    if privilege then
        tb:on_exec(track_privilege_change, tb:vaddr(), "r")
    end
    -- a callback runs before its instruction: to see what an instruction
    -- did to the frame pointer, watch the next one (and every block's first)
    local modifies = arch.modifies_frame_pointer
    local watch = true
    for _, insn in tb:insns() do
        if watch then
            insn:on_exec(track_callstack, insn:vaddr(), "r")
            watch = false
        end
        if modifies(insn:disas()) then
            watch = true
        end
    end
end)

luahost.on_exit(function()
    local traces = {}
    for vcpu = 0, luahost.num_vcpus() - 1 do
        local cpu = cpus[vcpu]
        for _, t in ipairs(cpu and cpu.traces or {}) do
            flush(t)
            traces[#traces + 1] = t
        end
    end
    local system = luahost.info.system_emulation
    local modules = opt.symfiles and luahost.modules() or {}
    data.write_map(path("sid-0.map"), system, modules)
    data.write_info(path("info"), traces)
    data.write_task(path("task.txt"), traces)
    if opt.symfiles then
        data.write_symbols(dir, modules, entered)
    end
end)
