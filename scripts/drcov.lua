-- drcov: block coverage in DynamoRIO's drcov format, which Lighthouse,
-- bncov and Cartographer load. A port of QEMU's contrib/plugins/drcov.c
-- (QEMU 10.0 and 10.2): the same argument and, by default, the same file:
-- a module table of one module (the program), and every translated block
-- that executed, by its address (truncated to 32 bits, as drcov.c writes
-- it) and size in bytes, in translation order.
--
--   filename=FILE      the file to write (default file.drcov.trace)
--   modules=one|all    our extension: all writes a module table of every
--                      module mapped at exit (the program, the dynamic
--                      loader, each library, the vDSO), each block as an
--                      offset in its module, so that coverage of shared
--                      libraries loads too; blocks in no module are left
--                      out (default one: as drcov.c)
--
-- Where drcov.c takes a lock per executed block, the host records each
-- block as QEMU translates it and QEMU counts its executions inline
-- (luahost.count_blocks): no Lua per block, none while the program runs.
local opt = luahost.args {
    filename = "file.drcov.trace",
    modules = luahost.args.choice({ "one", "all" }, "one"),
}

local file, err = io.open(opt.filename, "wb")
if not file then
    luahost.usage_error("filename=" .. opt.filename .. ": " .. tostring(err))
end

local drcovfile = require("drcovfile")
local le = drcovfile.le

luahost.count_blocks()

-- The program (drcov.c's module 0): { path, start, stop, entry }, read on
-- a vCPU (QEMU answers there only), at the first syscall, when the
-- loader has mapped it. Every program makes one: exit_group at the least.
local program
if not luahost.info.system_emulation then
    luahost.on_syscall(function()
        if program then
            return
        end
        if luahost.has("code_layout") then
            program = { path = luahost.path_to_binary(), start = luahost.start_code(),
                stop = luahost.end_code(), entry = luahost.entry_code() }
        else
            local main = luahost.modules()[1]
            program = main and { path = main.path, start = main.base, stop = main.limit, entry = 0 } or {}
        end
    end)
end

local TWO32 = 4294967296

-- The blocks that executed, { pc, size } in translation order.
local function executed()
    local list = {}
    local counted = assert(luahost.block_counts())
    for i = 1, #counted.pc do
        if counted.executions[i] > 0 then
            list[#list + 1] = { pc = counted.pc[i], size = counted.size[i] }
        end
    end
    return list
end

local function write_one()
    local p = program or {}
    local records = {}
    for i, b in ipairs(executed()) do
        records[i] = le(b.pc % TWO32, 4) .. le(b.size % 65536, 2) .. le(0, 2)
    end
    file:write(drcovfile.header({ { base = p.start or 0, limit = p.stop or 0, entry = p.entry or 0,
        path = p.path or "(null)" } }, #records), table.concat(records))
end

local function write_all()
    file:write(drcovfile.all_modules(luahost.modules(), executed()))
end

luahost.on_exit(function()
    if opt.modules == "all" then
        write_all()
    else
        write_one()
    end
    file:close()
end)
