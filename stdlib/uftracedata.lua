-- uftracedata: the pieces of a uftrace.data directory as QEMU 10.2's
-- contrib/plugins/uftrace.c writes them (for scripts/uftrace.lua), and
-- the registers it follows on each target.
--
--   local data = require("uftracedata")
--   data.pack(ts, pc, depth, data.ENTRY)   -- one 16-byte record of a <tid>.dat
--   data.arch("x86_64")                    -- registers, privilege levels
--   data.write_info(path, traces), data.write_task(path, traces),
--   data.write_map(path, system, modules), data.write_symbols(dir, modules, pcs)
--
-- A record is uftrace's (libmcount/record.c): the timestamp in ns, then
-- a word of type (2 bits), more (1), magic 0b101 (3), depth (10) and the
-- address (48), little-endian. Written the same in Lua 5.4 (integers) and
-- LuaJIT (numbers below 2^53, uint64_t cdata above).
local luahost = require("luahost")

local data = { ENTRY = 0, EXIT = 1 }

local TWO32 = 4294967296
local TWO48 = 281474976710656           -- uftrace keeps 48 bits of an address
local MAGIC = 5 * 8

local function le32(v)
    local b1 = v % 256
    v = (v - b1) / 256
    local b2 = v % 256
    v = (v - b2) / 256
    local b3 = v % 256
    return string.char(b1, b2, b3, (v - b3) / 256)
end

-- The 32-bit halves of a u64, high first: a Lua 5.4 integer (negative
-- from 2^63 on), or under LuaJIT a number or a uint64_t cdata.
local function halves(v)
    if type(v) == "number" then
        local lo = v % TWO32
        return ((v - lo) / TWO32) % TWO32, lo
    end
    return tonumber(v / TWO32), tonumber(v % TWO32)
end
data.halves = halves

-- The record: uftrace.c's uint64_t sum, kind + magic + depth << 6 + pc << 16
-- (pc's top 16 bits dropped), put together from 32-bit halves.
function data.pack(ts, pc, depth, kind)
    local ts_hi, ts_lo = halves(ts)
    local pc_hi, pc_lo = halves(pc)
    local low16 = pc_lo % 65536
    local lo = kind + MAGIC + depth * 64 + low16 * 65536
    local carry = lo % TWO32
    local hi = (pc_hi * 65536 + (pc_lo - low16) / 65536 + (lo - carry) / TWO32) % TWO32
    return le32(ts_lo) .. le32(ts_hi) .. le32(carry) .. le32(hi)
end

local parse_u64 = luahost.args.parse_u64
local EXACT_HI = jit and 2097152 or TWO32      -- LuaJIT's numbers are exact below 2^53

-- 8 bytes of guest memory as a little-endian u64; 0 if unreadable.
function data.read64(addr)
    local bytes = luahost.read_memory(addr, 8)
    if not bytes then
        return 0
    end
    local b1, b2, b3, b4, b5, b6, b7, b8 = bytes:byte(1, 8)
    local lo = b1 + b2 * 256 + b3 * 65536 + b4 * 16777216
    local hi = b5 + b6 * 256 + b7 * 65536 + b8 * 16777216
    if hi < EXACT_HI then
        return hi * TWO32 + lo       -- Lua 5.4: integers, wrapping from 2^63
    end
    return (parse_u64(("%08x%08x"):format(hi, lo), 16))
end

-- The registers a target needs, by name, from luahost.registers().
local function find(names)
    local by_name = {}
    for _, reg in ipairs(luahost.registers()) do
        by_name[reg.name] = reg
    end
    local found = {}
    for key, name in pairs(names) do
        found[key] = by_name[name]
    end
    return found
end

local arches = {}

-- x86_64: rbp; the ring is cs's low bits, real mode when cr0.PE is clear.
arches.x86_64 = {
    level_names = { "Ring0", "Ring1", "Ring2", "Ring3", "RealMode" },
    registers = function()
        local regs = find { fp = "rbp", cs = "cs", cr0 = "cr0" }
        if not (regs.fp and regs.cs and regs.cr0) then
            return nil, "registers rbp, cs and cr0 are not all available"
        end
        return regs
    end,
    privilege_level = function(regs)
        local _, cr0 = halves(regs.cr0:read())
        if cr0 % 2 == 0 then
            return 4
        end
        return regs.cs:read() % 4
    end,
    -- the bits privilege_level reads, watched in C (luahost.fpcalls)
    level_fields = function(regs)
        return { { regs.cr0, 0, 1 }, { regs.cs, 0, 2 } }
    end,
    modifies_frame_pointer = function(disas)
        return disas:find("rbp", 1, true) ~= nil
    end,
}

-- aarch64: x29; the exception level from cpsr, the security state from
-- SCR_EL3 (NS, NSE), read as 0 (secure) where the CPU has none, as
-- uftrace.c does (it means non-secure, but reads a register that is not
-- there and gets 0).
arches.aarch64 = {
    level_names = { "S-EL0", "NS-EL0", "R-EL0", "S-EL1", "NS-EL1", "R-EL1",
                    "S-EL2", "NS-EL2", "R-EL2", "EL3" },
    registers = function()
        local regs = find { fp = "x29", cpsr = "cpsr", scr = "SCR_EL3" }
        if not regs.fp then
            return nil, "frame pointer register (x29) is not available. Please use an AArch64 cpu (or -cpu max)."
        elseif not regs.cpsr then
            return nil, "register cpsr is not available"
        end
        return regs
    end,
    privilege_level = function(regs)
        local el = math.floor(regs.cpsr:read() / 4) % 4
        if el == 3 then
            return 9
        end
        -- no SCR_EL3 (user mode): uftrace.c reads 0 there, the secure state
        local hi, lo = 0, 0
        if regs.scr then
            hi, lo = halves(regs.scr:read())
        end
        local ns, nse = lo % 2, math.floor(hi / 1073741824) % 2
        if nse == 1 and ns == 0 then
            error("SCR_EL3 has NSE set and NS clear (a reserved security state)")
        end
        local state = nse == 1 and 2 or ns
        return el * 3 + state
    end,
    level_fields = function(regs)
        local fields = { { regs.cpsr, 2, 2 } }
        if regs.scr then
            fields[2] = { regs.scr, 0, 1 }      -- NS
            fields[3] = { regs.scr, 62, 1 }     -- NSE
        end
        return fields
    end,
    modifies_frame_pointer = function(disas)
        -- a space first: not the digits of an address
        return disas:find(" x29", 1, true) ~= nil
    end,
}

function data.arch(target_name)
    return arches[target_name]
end

local function write_file(path, text)
    local file, err = io.open(path, "wb")
    if not file then
        error(err, 0)
    end
    file:write(text)
    file:close()
end

-- info: uftrace's file header (version 4, 64-bit little-endian, the
-- features and info bits uftrace.c sets), then its info lines, most empty.
local HEADER = string.char(
    0x46, 0x74, 0x72, 0x61, 0x63, 0x65, 0x21, 0x00, 0x04, 0x00, 0x00, 0x00, 0x28, 0x00, 0x01, 0x02,
    0x63, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x7b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00)

function data.write_info(path, traces)
    local ids = {}
    for i, t in ipairs(traces) do
        ids[i] = tostring(t.id)
    end
    write_file(path, HEADER .. table.concat({
        "exename:",
        "build_id:0000000000000000000000000000000000000000",
        "exit_status:",
        "cmdline:",
        "cpuinfo:lines=2",
        "cpuinfo:nr_cpus=",
        "cpuinfo:desc=",
        "meminfo:",
        "osinfo:lines=3",
        "osinfo:kernel=",
        "osinfo:hostname=",
        "osinfo:distro=",
        "taskinfo:lines=2",
        "taskinfo:nr_tid=" .. #traces,
        "taskinfo:tids=" .. table.concat(ids, ","),
        "usageinfo:lines=6",
        "usageinfo:systime=",
        "usageinfo:usrtime=",
        "usageinfo:ctxsw=",
        "usageinfo:maxrss=",
        "usageinfo:pagefault=",
        "usageinfo:iops=",
        "loadinfo:",
        "record_date:",
        "elapsed_time:",
        "pattern_type:regex",
        "uftrace_version:",
        "utc_offset:",
        "",
    }, "\n"))
end

-- task.txt: each trace is a session and a task of its own.
function data.write_task(path, traces)
    local lines = {}
    for _, t in ipairs(traces) do
        lines[#lines + 1] = ('SESS timestamp=0.0 pid=%d sid=0 exename="%s"\n'):format(t.id, t.name)
        lines[#lines + 1] = ("TASK timestamp=0.0 tid=%d pid=%d\n"):format(t.id, t.id)
    end
    write_file(path, table.concat(lines))
end

-- sid-0.map. User mode: a copy of QEMU's own /proc/self/maps, which holds
-- the guest's files at their guest addresses when QEMU's guest base is 0.
-- System mode: the stack put out of the way (so that uftrace takes no
-- address for the kernel's), and, our extension, a line per module (as
-- uftrace_symbols.py writes them); a map already there is kept, as
-- uftrace.c keeps one that uftrace_symbols.py wrote.
function data.write_map(path, system, modules)
    if not system then
        local maps = assert(io.open("/proc/self/maps", "rb"))
        local text = maps:read("a")
        maps:close()
        write_file(path, text)
        return
    end
    local existing = io.open(path, "rb")
    if existing then
        existing:close()
        return
    end
    local lines = {
        "# map stack on highest address possible, to prevent uftrace\n",
        "# from considering any kernel address\n",
        "ffffffffffff-ffffffffffff rw-p 00000000 00:00 0 [stack]\n",
    }
    for _, m in ipairs(modules) do
        if m.path and not m.path:find("^%[") then
            lines[#lines + 1] = ("%012x-%012x r--p 00000000 00:00 0 %s\n"):format(
                m.base % TWO48, m.limit % TWO48, m.path)
        end
    end
    write_file(path, table.concat(lines))
end

-- Where uftrace puts each file of a map: the start of its first line of a
-- run of lines of that file (uftrace's symbols are relative to it).
local function map_starts(path)
    local starts, last = {}, nil
    local file = io.open(path, "rb")
    if not file then
        return starts
    end
    for line in file:lines() do
        local start, name = line:match("^(%x+)%-%x+ %S+ %x+ %x+:%x+ %d+%s+(%S.*)$")
        if start and name ~= last and not name:find("^%[") then
            starts[name] = starts[name] or start
        end
        last = name
    end
    file:close()
    return starts
end

-- Our extension: for each module, <module>.sym naming the functions the
-- trace enters, in the format uftrace 0.13 reads and writes ("ADDR T
-- NAME", ADDR relative to the module's start in the map, each function's
-- end marked "ADDR ? __func_end"). uftrace reads these before the ELF
-- files, so names do not need the files, nor the same addresses in the
-- map as in the guest.
function data.write_symbols(dir, modules, pcs)
    local starts = map_starts(dir .. "/sid-0.map")
    local by_path = {}
    for pc in pairs(pcs) do
        local s = luahost.symbolize(pc)
        if s and s.symbol and s.path and starts[s.path] then
            local funcs = by_path[s.path] or {}
            by_path[s.path] = funcs
            local start = pc - s.symbol_offset
            local key = tostring(start)
            local f = funcs[key]
            if not f then
                f = { start = start, name = s.symbol, stop = pc + 1 }
                local found, _, size = luahost.resolve(("%s!%s"):format(s.path, s.symbol))
                if found == start and size and size > 0 then
                    f.stop = start + size
                end
                funcs[key] = f
                funcs[#funcs + 1] = f
            end
            if pc >= f.stop then
                f.stop = pc + 1
            end
        end
    end
    for _, m in ipairs(modules) do
        local funcs = m.path and by_path[m.path]
        if funcs then
            local base = luahost.args.parse_u64(starts[m.path], 16)
            table.sort(funcs, function(a, b) return a.start - base < b.start - base end)
            local lines = { ("# symbols: %d\n# path name: %s\n"):format(#funcs, m.path) }
            for i, f in ipairs(funcs) do
                local stop = f.stop
                local after = funcs[i + 1]
                if after and after.start - base < stop - base then
                    stop = after.start
                end
                lines[#lines + 1] = ("%016x T %s\n"):format(f.start - base, f.name)
                if not after or after.start ~= stop then
                    lines[#lines + 1] = ("%016x ? %s\n"):format(stop - base, after and "__func_end" or "__sym_end")
                end
            end
            write_file(("%s/%s.sym"):format(dir, m.path:match("[^/]*$")), table.concat(lines))
            by_path[m.path] = nil
        end
    end
end

return data
