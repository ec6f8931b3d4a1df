-- stdlib/glob.lua is pure Lua: tested here without QEMU.
local helper = require("helper")
local glob = assert(loadfile(helper.source_root .. "/stdlib/glob.lua"))()

describe("glob", function()
    it("matches as g_pattern_match_simple: * any text, ? one character, the whole string", function()
        local cases = {
            { "rax", "rax", true }, { "rax", "raxx", false }, { "rax", "ra", false },
            { "r?x", "rbx", true }, { "r?x", "rx", false }, { "r?x", "r10x", false },
            { "xmm*", "xmm", true }, { "xmm*", "xmm15", true }, { "xmm*", "ymm0", false },
            { "*", "", true }, { "?", "", false }, { "*s", "fs", true }, { "*s", "fs_base", false },
            { "*_*", "fs_base", true }, { "x**1", "x1", true }, { "?*?", "ab", true }, { "?*?", "a", false },
            { "", "", true }, { "", "x", false },
        }
        for _, c in ipairs(cases) do
            assert.are.equal(c[3], glob.match(c[1], c[2]), ("%q against %q"):format(c[1], c[2]))
        end
    end)

    it("takes Lua's pattern characters literally", function()
        assert.is_true(glob.match("a.b%c[d]-e+^$(", "a.b%c[d]-e+^$("))
        assert.is_false(glob.match("a.b", "axb"))
        assert.is_false(glob.match("x[0]", "x0"))
    end)

    it("matches ? to one UTF-8 character, as GLib does", function()
        assert.is_true(glob.match("r?x", "r\195\169x"))        -- é: two bytes
        assert.is_false(glob.match("r??x", "r\195\169x"))
    end)

    it("compiles once into a function, and refuses what is not a string", function()
        local is_vector = glob.compile("xmm*")
        assert.is_true(is_vector("xmm10"))
        assert.is_false(is_vector("rax"))
        assert.has_error(function() glob.compile(nil) end, "glob pattern must be a string, got nil")
    end)
end)
