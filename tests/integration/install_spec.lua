-- meson install puts the plugin, the launcher, its man page, scripts/,
-- examples/ and stdlib/ in standard places; the installed plugin finds a
-- shipped script by its bare name, and the installed launcher finds QEMU
-- (-Dqemu_bindir, then PATH, then QEMU_BUILD) or says what to do.
local helper = require("helper")

-- One build and install for the whole file: meson setup, then install.
local dir, prefix, build

local function sh_ok(cmd)
    local status, out, err = helper.sh(cmd)
    assert(status == 0, cmd .. "\n" .. (out or "") .. (err or ""))
    return out
end

local function install()
    sh_ok(("meson install -C %s"):format(helper.quote(build)))
end

-- The installed launcher with env (a list of NAME=VALUE, QEMU_BUILD unset
-- unless given) and words; returns status, stdout, stderr.
local function installed_luahost(env, words)
    local cmd = { "cd / && env -u QEMU_BUILD -u LUAHOST_PLUGIN" }
    for _, e in ipairs(env) do
        cmd[#cmd + 1] = helper.quote(e)
    end
    cmd[#cmd + 1] = helper.quote(prefix .. "/bin/luahost")
    for _, w in ipairs(words) do
        cmd[#cmd + 1] = helper.quote(w)
    end
    return helper.sh(table.concat(cmd, " ") .. " </dev/null")
end

-- The QEMU the installed launcher picks, from --dry-run.
local function picked(env)
    local status, out, err = installed_luahost(env, { "--dry-run", "hotblocks.lua", "--",
        helper.guest("loop", "x86_64"), "100" })
    assert.are.equal(0, status, err)
    return (out:match("^(%S+) %-plugin "))
end

-- A directory holding only qemu-x86_64, a copy of a dynamically linked
-- program (which the launcher takes for a QEMU; --dry-run never runs it).
local function fake_qemu_dir()
    local fake = helper.tmpname() .. ".d"
    sh_ok(("mkdir -p %s && cp /bin/true %s/qemu-x86_64"):format(helper.quote(fake), helper.quote(fake)))
    return fake
end

describe("an installed luahost", function()
    setup(function()
        dir = os.tmpname() .. ".d"
        prefix, build = dir .. "/prefix", dir .. "/build"
        sh_ok(("meson setup %s %s --prefix=%s -Dlua=%s -Dqemu_include=%s -Dtests=disabled")
            :format(helper.quote(build), helper.quote(helper.source_root), helper.quote(prefix),
                helper.quote(os.getenv("LUAHOST_FLAVOUR")), helper.quote(os.getenv("QEMU_INCLUDE"))))
        install()
    end)

    teardown(function()
        os.execute("rm -rf " .. helper.quote(dir))
    end)

    after_each(helper.cleanup)

    it("has the plugin, the launcher, scripts, examples, stdlib and the man page in their places", function()
        local found = sh_ok("find " .. helper.quote(prefix) .. " -name libluahost.so")
        assert.matches("^" .. prefix:gsub("%p", "%%%0") .. "/lib/[^\n]*luahost/libluahost%.so\n$", found)
        for _, file in ipairs({ "share/luahost/scripts/hotblocks.lua", "share/luahost/examples/syscount.lua",
                                "share/luahost/stdlib/agg.lua", "share/man/man1/luahost.1" }) do
            assert.is_truthy(helper.read(prefix .. "/" .. file), file .. " not installed")
        end
        sh_ok("test -x " .. helper.quote(prefix .. "/bin/luahost"))
    end)

    it("has a man page that is the launcher's manual", function()
        local page = helper.read(prefix .. "/share/man/man1/luahost.1")
        assert.matches('^%.TH LUAHOST 1 "" "luahost [%d.]+" "User Commands"\n%.SH NAME\n'
            .. "luahost \\%- run a Lua analysis on a program emulated by QEMU\n", page)
        for _, section in ipairs({ "SYNOPSIS", "DESCRIPTION", "OPTIONS", "QEMU", "ENVIRONMENT", "QUOTING",
                                   "EXIT STATUS", "EXAMPLES", "FILES" }) do
            assert.matches("\n%.SH " .. section .. "\n", page)
        end
        -- FILES names where this install put the scripts
        assert.matches(prefix:gsub("%-", "\\-"):gsub("%p", "%%%0") .. "/share/luahost/scripts", page)
        local status, text = helper.sh("command -v man >/dev/null && MANWIDTH=80 man -l "
            .. helper.quote(prefix .. "/share/man/man1/luahost.1") .. " 2>/dev/null")
        if status == 0 then
            assert.matches("\nNAME\n +luahost %- run a Lua analysis", text)
        end
    end)

    it("lists the installed scripts and examples", function()
        local status, out, err = installed_luahost({}, { "--list" })
        assert.are.equal(0, status, err)
        assert.matches("Scripts %(ports of QEMU's plugins%) in " .. prefix:gsub("%p", "%%%0")
            .. "/share/luahost/scripts:\n", out)
        assert.matches("\n  syscount%.lua +how many times", out)
    end)

    it("runs script=hotblocks.lua by name from any directory, with QEMU directly", function()
        local plugin = sh_ok("find " .. helper.quote(prefix) .. " -name libluahost.so"):match("[^\n]+")
        local cmd = ("cd / && %s -plugin %s,script=hotblocks.lua,limit=3 -d plugin %s 100")
            :format(helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(plugin),
                helper.quote(helper.guest("loop", "x86_64")))
        local status, _, err = helper.sh(cmd)
        assert.are.equal(0, status, err)
        assert.matches("collected %d+ entries in the hash table\npc, tcount, icount, ecount\n", err)
    end)

    it("runs a script with QEMU found through QEMU_BUILD", function()
        local out = helper.tmpname()
        local status, stdout, err = installed_luahost({ "PATH=/usr/bin:/bin", "QEMU_BUILD=" .. helper.qemu_build() },
            { "-o", out, "syscount.lua", "--", helper.guest("loop", "x86_64"), "100" })
        assert.are.equal(0, status, err)
        assert.matches("checksum=", stdout)
        assert.matches("@syscalls%[exit_group%]: 1\n", helper.read(out))
    end)

    it("finds QEMU in PATH before QEMU_BUILD, and says what to do when there is none", function()
        local fake = fake_qemu_dir()
        assert.are.equal(fake .. "/qemu-x86_64",
            picked({ "PATH=" .. fake .. ":/usr/bin:/bin", "QEMU_BUILD=" .. helper.qemu_build() }))
        assert.are.equal(helper.qemu_build() .. "/qemu-x86_64",
            picked({ "PATH=/usr/bin:/bin", "QEMU_BUILD=" .. helper.qemu_build() }))
        local status, out, err = installed_luahost({ "PATH=/usr/bin:/bin" },
            { "hotblocks.lua", "--", helper.guest("loop", "x86_64") })
        assert.are.equal(2, status)
        assert.are.equal("", out)
        -- no mention of tools/setup: an installed luahost has no source tree
        assert.are.equal("luahost: no qemu-x86_64 that can load plugins (none in PATH; QEMU_BUILD not set):"
            .. " give --qemu DIR, or set QEMU_BUILD=DIR, DIR holding a qemu-x86_64 built with --enable-plugins"
            .. " (tools/build-qemu builds one; see luahost --help, QEMU)\n", err)
    end)

    it("refuses --luajit, which only a source tree has", function()
        local status, _, err = installed_luahost({}, { "--luajit", "-e", "", "--", "/bin/true" })
        assert.are.equal(2, status)
        assert.matches("^luahost: %-%-luajit: this luahost is installed with one plugin, "
            .. prefix:gsub("%p", "%%%0") .. "/lib/[^ ]*libluahost%.so; give %-%-plugin PATH for another\n$", err)
    end)

    it("runs the QEMU of -Dqemu_bindir before PATH's", function()
        sh_ok(("meson configure %s -Dqemu_bindir=%s"):format(helper.quote(build), helper.quote(helper.qemu_build())))
        install()
        local fake = fake_qemu_dir()
        assert.are.equal(helper.qemu_build() .. "/qemu-x86_64", picked({ "PATH=" .. fake .. ":/usr/bin:/bin" }))
        local status, _, err = installed_luahost({ "PATH=" .. fake .. ":/usr/bin:/bin" },
            { "hotblocks.lua", "limit=2", "--", helper.guest("loop", "x86_64"), "100" })
        assert.are.equal(0, status, err)
        assert.matches("pc, tcount, icount, ecount\n", err)
    end)
end)
