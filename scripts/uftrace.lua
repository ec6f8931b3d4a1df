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
-- naming the frame pointer; so does this script, with a C callback
-- (luahost.fpcalls, host/fpcalls.c) that makes the records: Lua chooses
-- the instructions, writes the files and, with trace-privilege-level=on,
-- works out the level when its register bits change (watched in C).
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
local FLUSH = 65536          -- records per trace kept before appending to its file

-- A trace: one .dat file and its task name.
local function new_trace(id, name)
    local t = { id = id, name = name, path = path(id .. ".dat") }
    local file = assert(io.open(t.path, "wb"))      -- created or truncated, as uftrace.c
    file:close()
    return t
end

local function append(t, bytes)
    if #bytes > 0 then
        local file = assert(io.open(t.path, "ab"))
        file:write(bytes)
        file:close()
    end
end

local cpus = {}         -- by vCPU index: registers, traces, privilege level
local calls             -- the C tracker (host/fpcalls.c): made at the first vCPU's init

-- A trace's records, 16 bytes each in uftrace's format, come in batches.
local function on_records(vcpu, trace, bytes)
    append(cpus[vcpu].traces[trace], bytes)
end

-- on_level: the level's bits changed (or are read for the first time)
local function track_privilege_change(vcpu, pc)
    local cpu = cpus[vcpu]
    local level = arch.privilege_level(cpu.regs)
    if level == cpu.level then
        return
    end
    cpu.level = level
    calls:switch(level + 1, pc)
end

luahost.on_vcpu_init(function(vcpu)
    local regs, why = arch.registers()
    if not regs then
        error("uftrace.lua: " .. why, 0)
    end
    local n_traces = privilege and #arch.level_names or 1
    calls = calls or luahost.fpcalls { register = regs.fp, traces = n_traces, capacity = FLUSH,
        on_records = on_records, level_fields = privilege and arch.level_fields(regs) or nil,
        on_level = privilege and track_privilege_change or nil }
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
    cpus[vcpu] = { regs = regs, traces = traces, level = level }
    calls:restart(vcpu, privilege and level + 1 or 1)
end)

luahost.on_tb_translate(function(tb)
    -- a callback runs before its instruction: to see what an instruction
    -- did to the frame pointer, watch the next one (and every block's first)
    local modifies = arch.modifies_frame_pointer
    local watch = true
    for i, insn in tb:insns() do
        if i == 1 and privilege then
            calls:watch_level(insn)     -- before the frame pointer, as the level decides the trace
        end
        if watch then
            calls:watch(insn)
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
        for trace, t in ipairs(cpu and cpu.traces or {}) do
            append(t, calls:take(vcpu, trace))
            traces[#traces + 1] = t
        end
    end
    local system = luahost.info.system_emulation
    local modules = opt.symfiles and luahost.modules() or {}
    data.write_map(path("sid-0.map"), system, modules)
    data.write_info(path("info"), traces)
    data.write_task(path("task.txt"), traces)
    if opt.symfiles then
        data.write_symbols(dir, modules, calls and calls:entered() or {})
    end
end)
