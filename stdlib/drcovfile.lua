-- drcovfile: DynamoRIO's drcov format (version 2, flavour drcov-64),
-- which Lighthouse, bncov and Cartographer load: a module table and the
-- executed blocks, each as (offset in its module, size, module id), 8
-- little-endian bytes.
--
--     local drcovfile = require("drcovfile")
--     file:write(drcovfile.all_modules(luahost.modules(), blocks))   -- blocks: { pc, size } each
local drcovfile = {}

-- Little-endian bytes of an unsigned value below 2^(8 * n), in Lua 5.4
-- and LuaJIT alike (string.pack is 5.3+).
function drcovfile.le(value, n)
    local bytes = {}
    for i = 1, n do
        bytes[i] = string.char(value % 256)
        value = math.floor(value / 256)
    end
    return table.concat(bytes)
end
local le = drcovfile.le

-- The file's text before its blocks: the module table of rows { base,
-- limit, entry, path } and the count of blocks.
function drcovfile.header(rows, n_blocks)
    local lines = { "DRCOV VERSION: 2\nDRCOV FLAVOR: drcov-64\n",
        ("Module Table: version 2, count %d\n"):format(#rows), "Columns: id, base, end, entry, path\n" }
    for i, r in ipairs(rows) do
        lines[#lines + 1] = ("%d, 0x%x, 0x%x, 0x%x, %s\n"):format(i - 1, r.base, r.limit, r.entry, r.path)
    end
    lines[#lines + 1] = ("BB Table: %d bbs\n"):format(n_blocks)
    return table.concat(lines)
end

-- The whole file for every module in modules (luahost.modules()) and the
-- blocks (in the order given) that lie in one of them, as offsets in it.
function drcovfile.all_modules(modules, blocks)
    local rows, executed = {}, {}
    for i, m in ipairs(modules) do
        rows[i] = { base = m.base, limit = m.limit, entry = 0, path = m.path or m.name }
    end
    for _, b in ipairs(blocks) do
        for i, m in ipairs(modules) do
            if b.pc >= m.base and b.pc < m.limit then
                executed[#executed + 1] = le(b.pc - m.base, 4) .. le(b.size % 65536, 2) .. le(i - 1, 2)
                break
            end
        end
    end
    return drcovfile.header(rows, #executed) .. table.concat(executed)
end

return drcovfile
