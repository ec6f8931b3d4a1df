-- scripts/bbv.lua against QEMU's libbbv.so in the same run: the same
-- files, each line the same vector (bbv.c lists a vector's blocks in its
-- hash table's order, the port in index order: compared as sets).
local helper = require("helper")

local SCRIPT = helper.source_root .. "/scripts/bbv.lua"

-- Each line of a .bb file as its sorted ":INDEX:COUNT" pieces.
local function vectors(path)
    local out = {}
    for line in io.lines(path) do
        local pieces = {}
        for piece in line:gmatch(":%d+:%d+") do
            pieces[#pieces + 1] = piece
        end
        table.sort(pieces)
        assert.matches("^T", line)
        out[#out + 1] = table.concat(pieces, " ")
    end
    return out
end

describe("bbv.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("writes the vectors libbbv.so writes, per vCPU, in the same run (" .. arch .. ")", function()
            local c, lua = helper.tmpname(), helper.tmpname()
            local r = helper.qemu(arch, { helper.c_plugin("contrib/plugins/libbbv.so") .. ",outfile=" .. c
                .. ",interval=10000", helper.luahost_plugin(SCRIPT, { "outfile=" .. lua, "interval=10000" }) },
                helper.guest("threads", arch), { "1", "50000" })   -- no vCPU index reused: see bbv.md
            assert.are.equal(0, r.status, r.stderr)
            local files = 0
            for vcpu = 0, 16 do
                local c_file = ("%s.%d.bb"):format(c, vcpu)
                if helper.read(c_file) then
                    local lua_file = ("%s.%d.bb"):format(lua, vcpu)
                    local c_vectors = vectors(c_file)
                    assert.is_true(#c_vectors > 0)
                    assert.are.same(c_vectors, vectors(lua_file))
                    os.remove(c_file)
                    os.remove(lua_file)
                    files = files + 1
                end
            end
            assert.is_true(files >= 2, "vCPU files")
        end)
    end

    it("refuses to run without outfile=, as bbv.c", function()
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT) }, helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(1, r.status)
        assert.matches("bbv%.lua:%d+: outfile unspecified", r.stderr)
    end)
end)
