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
-- Where drcov.c takes a lock per executed block, each block here has a
-- scoreboard entry QEMU sets inline: no callback while the program runs.
local opt = luahost.args {
    filename = "file.drcov.trace",
    modules = luahost.args.choice({ "one", "all" }, "one"),
}

local file, err = io.open(opt.filename, "wb")
if not file then
    luahost.usage_error("filename=" .. opt.filename .. ": " .. tostring(err))
end

local new_entry = require("entries").new      -- a scoreboard entry per block
local drcovfile = require("drcovfile")
local le = drcovfile.le

local blocks = {}       -- { pc, size, entry } in translation order
local program           -- { path, start, end, entry } of the program (drcov.c's module 0)

luahost.on_tb_translate(function(tb)
    if not program and not luahost.info.system_emulation then
        if luahost.has("code_layout") then
            program = { path = luahost.path_to_binary(), start = luahost.start_code(),
                stop = luahost.end_code(), entry = luahost.entry_code() }
        else
            local main = luahost.modules()[1]
            program = main and { path = main.path, start = main.base, stop = main.limit, entry = 0 } or {}
        end
    end
    -- A block's instructions are contiguous: its size in bytes is where
    -- its last instruction ends (one handle, not one per instruction).
    local last = tb:insn(#tb)
    local size = last:vaddr() + last:size() - tb:vaddr()
    local entry = new_entry()
    tb:inline("store", entry, 1)
    blocks[#blocks + 1] = { pc = tb:vaddr(), size = size, entry = entry }
end)

local TWO32 = 4294967296

-- The blocks that executed, in translation order.
local function executed()
    local list = {}
    for _, b in ipairs(blocks) do
        if b.entry:sum() > 0 then
            list[#list + 1] = b
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
