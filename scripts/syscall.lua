-- syscall: the guest's syscalls by number: calls and errors, or each one.
-- A port of QEMU's tests/tcg/plugins/syscall.c: same arguments, same
-- report (user mode). For counts by name, see the example syscount.lua.
--
--   print=on|off       print each syscall and its return value as it
--                      happens instead of the table at exit (default off)
--   log_writes=on|off  hex-dump the buffer of every write(2) (default off)
local opt = luahost.args { print = false, log_writes = false }

-- write(2)'s number on each target QEMU runs, as syscall.c lists them
-- (-1: none).
local WRITE_SYSNO = {
    aarch64 = 64, aarch64_be = 64, alpha = 4, arm = 4, armeb = 4, avr = -1,
    hexagon = 64, hppa = -1, i386 = 4, loongarch64 = -1, m68k = 4,
    microblaze = 4, microblazeel = 4, mips = 1, mips64 = 1, mips64el = 1,
    mipsel = 1, mipsn32 = 1, mipsn32el = 1, or1k = -1, ppc = 4, ppc64 = 4,
    ppc64le = 4, riscv32 = 64, riscv64 = 64, rx = -1, s390x = -1, sh4 = -1,
    sh4eb = -1, sparc = 4, sparc32plus = 4, sparc64 = 4, tricore = -1,
    x86_64 = 1, xtensa = 13, xtensaeb = 13,
}

local write_sysno = -1
if opt.log_writes then
    write_sysno = WRITE_SYSNO[luahost.info.target_name] or -1
    if write_sysno == -1 then
        luahost.usage_error("write syscall number not found")
    end
end

local MAX_READ = 1048576    -- luahost.read_memory reads at most this at once

-- The len bytes at vaddr, or nil when any of them cannot be read.
local function read_buffer(vaddr, len)
    if len <= 0 or len >= 2 ^ 40 then   -- 0, or what no guest buffer holds
        return nil
    end
    local parts, done = {}, 0
    while done < len do
        local n = math.min(len - done, MAX_READ)
        local part = luahost.read_memory(vaddr + done, n)
        if part == nil then
            return nil
        end
        parts[#parts + 1] = part
        done = done + n
    end
    return table.concat(parts)
end

-- 16 bytes a line: their hex, then " | " and the printable ones.
local function hexdump(data)
    local out = {}
    for row = 1, #data, 16 do
        local chunk = data:sub(row, row + 15)
        local hex = chunk:gsub(".", function(c) return ("%02x "):format(c:byte()) end)
        out[#out + 1] = hex .. ("   "):rep(16 - #chunk) .. " | "
            .. chunk:gsub("[^\33-\126]", ".") .. "\n"
    end
    luahost.outs(table.concat(out))
end

local stats = {}    -- stats[num] = { num, calls, errors }

local function entry_for(num)
    local entry = stats[num]
    if not entry then
        entry = { num = num, calls = 0, errors = 0 }
        stats[num] = entry
    end
    return entry
end

luahost.on_syscall(function(_, num, _, buf, len)
    if opt.print then
        luahost.printf("syscall #%d\n", num)
    else
        local entry = entry_for(num)
        entry.calls = entry.calls + 1
    end
    if num == write_sysno then
        local data = read_buffer(buf, tonumber(len))
        if data then
            hexdump(data)
        else
            luahost.warn(("Error reading memory from vaddr %d"):format(buf))
        end
    end
end)

luahost.on_syscall_return(function(_, num, ret)
    if opt.print then
        luahost.printf("syscall #%d returned -> %d\n", num, ret)
        return
    end
    local entry = entry_for(num)    -- as syscall.c, even for a call not seen
    if ret < 0 then
        entry.errors = entry.errors + 1
    end
end)

luahost.on_exit(function()
    if opt.print then
        return
    end
    local entries = {}
    for _, entry in pairs(stats) do
        entries[#entries + 1] = entry
    end
    -- most calls first; syscall.c leaves ties in its hash table's order
    table.sort(entries, function(a, b)
        if a.calls ~= b.calls then
            return a.calls > b.calls
        end
        return a.num < b.num
    end)
    local out = { "syscall no.  calls  errors\n" }
    for _, e in ipairs(entries) do
        out[#out + 1] = ("%-13d%-6d %d\n"):format(e.num, e.calls, e.errors)
    end
    luahost.outs(table.concat(out))
end)
