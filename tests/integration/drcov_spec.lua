-- scripts/drcov.lua against QEMU's libdrcov.so in the same run (QEMU
-- 10.2: 10.0's libdrcov.so cannot load, its qemu_plugin_entry_code is
-- never built there), and its modules=all table against the modules the
-- program really maps (/proc/self/maps as the guest reads it).
local helper = require("helper")

local SCRIPT = helper.source_root .. "/scripts/drcov.lua"

-- The file's module table and its blocks as { id, start, size }.
local function parse(text)
    local header, count = text:match("^(.-Module Table: version 2, count (%d+)\n)")
    assert(header, "no module table:\n" .. text:sub(1, 300))
    local pos = #header + 1
    local columns = text:match("^Columns: ([^\n]*)\n", pos)
    assert.are.equal("id, base, end, entry, path", columns)
    pos = pos + #"Columns: " + #columns + 1
    local modules = {}
    for _ = 1, tonumber(count) do
        local line = text:match("^([^\n]*)\n", pos)
        local id, base, stop, path = line:match("^(%d+), 0x(%x+), 0x(%x+), 0x%x+, (.*)$")
        modules[#modules + 1] = { id = tonumber(id), base = tonumber(base, 16), stop = tonumber(stop, 16), path = path }
        pos = pos + #line + 1
    end
    local n = text:match("^BB Table: (%d+) bbs\n", pos)
    pos = pos + #("BB Table: " .. n .. " bbs\n")
    local blocks = {}
    for i = 1, tonumber(n) do
        local start, size, id = string.unpack("<I4I2I2", text, pos + (i - 1) * 8)
        blocks[i] = { start = start, size = size, id = id }
    end
    assert.are.equal(#text, pos + tonumber(n) * 8 - 1, "nothing after the blocks")
    return modules, blocks
end

local function block_set(blocks)
    local set = {}
    for _, b in ipairs(blocks) do
        set[("%d:%x+%d"):format(b.id, b.start, b.size)] = true
    end
    return set
end

describe("drcov.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("writes the file libdrcov.so writes, in the same run (" .. arch .. ")", function()
            if not (os.getenv("QEMU_INCLUDE") or ""):find("qemu%-sid") then
                pending("QEMU 10.0's libdrcov.so cannot load (qemu_plugin_entry_code is never built in 10.0)")
                return
            end
            local c, lua = helper.tmpname(), helper.tmpname()
            local r = helper.qemu(arch, { helper.c_plugin("contrib/plugins/libdrcov.so") .. ",filename=" .. c,
                helper.luahost_plugin(SCRIPT, { "filename=" .. lua }) }, helper.guest("loop", arch), { "100" })
            assert.are.equal(0, r.status, r.stderr)
            local c_text, lua_text = helper.read(c), helper.read(lua)
            local c_modules, c_blocks = parse(c_text)
            local lua_modules, lua_blocks = parse(lua_text)
            assert.are.same(c_modules, lua_modules)
            assert.are.same(block_set(c_blocks), block_set(lua_blocks))
            assert.is_true(#lua_blocks > 50)
            assert.are.equal(c_text, lua_text)      -- and in the same order
        end)
    end

    it("puts every mapped module in the table with modules=all, each block in its own", function()
        local out = helper.tmpname()
        local r = helper.run_dynamic_file("x86_64", SCRIPT, helper.modules_guest("modprog-x86_64"),
            { args = { "filename=" .. out, "modules=all" } })
        assert.are.equal(0, r.status, r.stderr)
        local modules, blocks = parse(helper.read(out))
        local names = {}
        for _, m in ipairs(modules) do
            names[#names + 1] = m.path:match("[^/]*$")
        end
        local listed = table.concat(names, " ")
        assert.matches("modprog%-x86_64", listed)
        assert.matches("ld%-linux%-x86%-64%.so%.2", listed)
        assert.matches("libc%.so%.6", listed)
        assert.matches("libmodlib%-x86_64%.so", listed)
        local used = {}
        for _, b in ipairs(blocks) do
            local m = assert(modules[b.id + 1], "module id " .. b.id)
            assert.is_true(b.start + b.size <= m.stop - m.base, "block inside its module")
            used[b.id] = true
        end
        for i, m in ipairs(modules) do
            if not m.path:find("vdso") then
                assert.is_true(used[i - 1] == true, m.path .. " has executed blocks")
            end
        end
    end)

    it("refuses a file it cannot write, naming it", function()
        local r = helper.run_file("x86_64", SCRIPT, helper.guest("loop", "x86_64"),
            { args = { "filename=/nonexistent/dir/x.drcov" }, status = false })
        assert.are.equal(1, r.status)
        assert.matches("filename=/nonexistent/dir/x%.drcov: /nonexistent/dir/x%.drcov: No such file or directory",
            r.stderr)
    end)
end)
