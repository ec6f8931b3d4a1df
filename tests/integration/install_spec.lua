-- meson install puts the plugin, scripts/ and stdlib/ in standard places,
-- and the installed plugin finds a shipped script by its bare name.
local helper = require("helper")

describe("an installed plugin", function()
    after_each(helper.cleanup)

    it("runs script=hotblocks.lua by name from any directory", function()
        local dir = helper.tmpname() .. ".d"
        local prefix, build = dir .. "/prefix", dir .. "/build"
        local setup = ("meson setup %s %s --prefix=%s -Dlua=%s -Dqemu_include=%s -Dtests=disabled"
            .. " && meson install -C %s")
            :format(helper.quote(build), helper.quote(helper.source_root), helper.quote(prefix),
                helper.quote(os.getenv("LUAHOST_FLAVOUR")), helper.quote(os.getenv("QEMU_INCLUDE")),
                helper.quote(build))
        local status, out, err = helper.sh(setup)
        assert.are.equal(0, status, out .. err)

        local _, found = helper.sh("find " .. helper.quote(prefix) .. " -name libluahost.so")
        local plugin = found:match("[^\n]+")
        assert.is_truthy(plugin, "libluahost.so not installed")
        assert.matches("/luahost/libluahost%.so$", plugin)
        assert.is_truthy(helper.read(prefix .. "/share/luahost/scripts/hotblocks.lua"))

        local cmd = ("cd / && %s -plugin %s,script=hotblocks.lua,limit=3 -d plugin %s 100")
            :format(helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(plugin),
                helper.quote(helper.guest("loop", "x86_64")))
        status, _, err = helper.sh(cmd)
        assert.are.equal(0, status, err)
        assert.matches("collected %d+ entries in the hash table\npc, tcount, icount, ecount\n", err)
        os.execute("rm -rf " .. helper.quote(dir))
    end)
end)
