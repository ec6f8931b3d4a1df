-- elf: the guest program's symbol table, so that scripts can take a
-- function name where QEMU's plugin API only gives addresses.
--
--     local elf = require("elf")
--     local addr, size = elf.symbol("main")        -- in the running program
--     local addr = elf.address("0x401000")         -- a number, or a symbol name
--
-- Reads ELF32/ELF64 of either byte order in pure Lua (Lua 5.4 and LuaJIT:
-- values above 2^53 are not exact in LuaJIT, user-mode addresses are
-- below that).
local elf = {}

local MACHINES = {
    [3] = "i386", [8] = "mips", [20] = "ppc", [21] = "ppc64", [22] = "s390x",
    [40] = "arm", [42] = "sh4", [62] = "x86_64", [183] = "aarch64", [243] = "riscv64",
}

local function reader(data, little)
    local function uint(pos, size)
        local v = 0
        if little then
            for i = pos + size - 1, pos, -1 do
                v = v * 256 + data:byte(i)
            end
        else
            for i = pos, pos + size - 1 do
                v = v * 256 + data:byte(i)
            end
        end
        return v
    end
    return uint
end

-- The ELF header of data (a string holding at least its first 64 bytes):
-- { bits = 32|64, little = bool, machine = number, arch = name or nil,
-- entry = address }, or nil and a reason.
function elf.header(data)
    if #data < 52 or data:sub(1, 4) ~= "\127ELF" then
        return nil, "not an ELF file"
    end
    local class, order = data:byte(5), data:byte(6)
    if (class ~= 1 and class ~= 2) or (order ~= 1 and order ~= 2) then
        return nil, "not an ELF file (bad class or byte order)"
    end
    local little = order == 1
    local uint = reader(data, little)
    local bits = class == 2 and 64 or 32
    local machine = uint(19, 2)
    local h = { bits = bits, little = little, machine = machine, arch = MACHINES[machine],
        type = uint(17, 2) }
    if bits == 64 then
        if #data < 64 then
            return nil, "not an ELF file (truncated header)"
        end
        h.entry, h.shoff, h.shentsize, h.shnum = uint(25, 8), uint(41, 8), uint(59, 2), uint(61, 2)
    else
        h.entry, h.shoff, h.shentsize, h.shnum = uint(25, 4), uint(33, 4), uint(47, 2), uint(49, 2)
    end
    return h
end

local function read_file(path)
    local f, err = io.open(path, "rb")
    if not f then
        return nil, err
    end
    local data = f:read("a")
    f:close()
    return data
end

-- Every named symbol of the file at path (.symtab, else .dynsym):
-- a list of { name =, value =, size =, type = "func"|"object"|... } and a
-- map name -> the first such record; or nil and a reason.
function elf.symbols(path)
    local data, err = read_file(path)
    if not data then
        return nil, err
    end
    local h, why = elf.header(data)
    if not h then
        return nil, path .. ": " .. why
    end
    local uint = reader(data, h.little)
    local sections = {}
    for i = 0, h.shnum - 1 do
        local at = h.shoff + i * h.shentsize + 1
        if h.bits == 64 then
            sections[i] = { type = uint(at + 4, 4), offset = uint(at + 24, 8), size = uint(at + 32, 8),
                link = uint(at + 40, 4), entsize = uint(at + 56, 8) }
        else
            sections[i] = { type = uint(at + 4, 4), offset = uint(at + 16, 4), size = uint(at + 20, 4),
                link = uint(at + 24, 4), entsize = uint(at + 36, 4) }
        end
    end
    local SYMTAB, DYNSYM = 2, 11
    local symtab
    for i = 0, h.shnum - 1 do
        if sections[i].type == SYMTAB then
            symtab = sections[i]
        end
    end
    if not symtab then
        for i = 0, h.shnum - 1 do
            if sections[i].type == DYNSYM then
                symtab = sections[i]
            end
        end
    end
    local list, by_name = {}, {}
    if not symtab or symtab.entsize == 0 then
        return list, by_name
    end
    local strtab = sections[symtab.link]
    local TYPES = { [0] = "notype", "object", "func", "section", "file", [6] = "tls", [10] = "ifunc" }
    for i = 1, math.floor(symtab.size / symtab.entsize) - 1 do
        local at = symtab.offset + i * symtab.entsize + 1
        local name_off, value, size, info
        if h.bits == 64 then
            name_off, info, value, size = uint(at, 4), data:byte(at + 4), uint(at + 8, 8), uint(at + 16, 8)
        else
            name_off, value, size, info = uint(at, 4), uint(at + 4, 4), uint(at + 8, 4), data:byte(at + 12)
        end
        if name_off ~= 0 then
            local start = strtab.offset + name_off + 1
            local name = data:sub(start, data:find("\0", start, true) - 1)
            local rec = { name = name, value = value, size = size, type = TYPES[info % 16] or "other" }
            list[#list + 1] = rec
            if not by_name[name] and value ~= 0 then
                by_name[name] = rec
            end
        end
    end
    return list, by_name
end

-- QEMU user mode's options that take a value (linux-user/main.c), to find
-- the guest program in QEMU's own command line.
local QEMU_VALUE_OPTIONS = {}
for name in ("g L s cpu E U 0 r B R t d dfilter D p tb-size seed trace plugin"):gmatch("%S+") do
    QEMU_VALUE_OPTIONS[name] = true
end

-- The path of the guest program: from QEMU if it tells (code_layout),
-- else the first argument of QEMU's command line that is not an option.
-- nil in system mode.
function elf.program()
    local luahost = require("luahost")
    if luahost.info.system_emulation then
        return nil
    end
    if luahost.has("code_layout") then
        local ok, path = pcall(luahost.path_to_binary)
        if ok and path then
            return path
        end
    end
    local cmdline = read_file("/proc/self/cmdline")
    if not cmdline then
        return nil
    end
    local argv = {}
    for arg in cmdline:gmatch("([^%z]*)%z") do
        argv[#argv + 1] = arg
    end
    local i = 2
    while i <= #argv do
        local a = argv[i]
        if a:sub(1, 1) ~= "-" then
            return a
        end
        local name = a:gsub("^%-%-?", "")
        if name == "" then
            return argv[i + 1]
        end
        i = i + (QEMU_VALUE_OPTIONS[name] and 2 or 1)
    end
    return nil
end

local cached

local function program_symbols()
    if not cached then
        local path = elf.program()
        if not path then
            error("elf: cannot tell the guest program (system mode?)", 3)
        end
        local _, by_name = elf.symbols(path)
        cached = by_name or {}
    end
    return cached
end

-- The address and size of a symbol of the running program, or nil.
function elf.symbol(name)
    local rec = program_symbols()[name]
    if rec then
        return rec.value, rec.size
    end
    return nil
end

-- text as an address: decimal, 0x hex, or a symbol of the running
-- program (name or name+offset). Raises a usage error for an unknown name.
function elf.address(text)
    if text:match("^0[xX]%x+$") then
        return tonumber(text:sub(3), 16)
    elseif text:match("^%d+$") then
        return tonumber(text)
    end
    local name, off = text:match("^(.-)%+(.+)$")
    name = name or text
    local addr = elf.symbol(name)
    if not addr then
        require("luahost").usage_error(("no symbol %s in %s"):format(name, tostring(elf.program())), 2)
    end
    return addr + (off and elf.address(off) or 0)
end

return elf
