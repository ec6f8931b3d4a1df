-- Every error path of the plugin core on real QEMU: one readable message
-- naming file and line, and a defined exit status. Never a crash or a hang.
local helper = require("helper")

local GUEST = helper.guest("loop", "x86_64")

local function run(source_or_path, args, guest_args)
    local script = source_or_path
    if source_or_path:find("\n", 1, true) then
        script = helper.lua_file(source_or_path)
    end
    local r = helper.qemu("x86_64", { helper.luahost_plugin(script, args) }, GUEST, guest_args or { "2000" })
    r.name = script
    return r
end

local function escape(s)
    return (s:gsub("%p", "%%%0"))
end

-- QEMU refuses the plugin: our message, then QEMU's own, exit status 1.
local function assert_refused(r, pattern)
    assert.are.equal(1, r.status, r.stderr)
    assert.matches("^luahost: " .. pattern, r.stderr)
    assert.matches("Could not load plugin", r.stderr)
    assert.is_nil(r.stdout:match("checksum"), "the guest must not run")
end

describe("load errors make QEMU refuse the plugin", function()
    after_each(helper.cleanup)

    it("missing script", function()
        local r = run("/nonexistent/nope.lua")
        assert_refused(r, "cannot open script /nonexistent/nope%.lua: No such file or directory")
    end)

    it("unreadable script", function()
        local path = helper.lua_file("return 1\n")
        os.execute("chmod 000 " .. path)
        local r = run(path)
        os.execute("chmod 600 " .. path)
        -- root may read any file: then the script simply loads
        if r.status ~= 0 then
            assert_refused(r, "cannot open script .*Permission denied")
        end
    end)

    it("syntax error names file and line", function()
        local r = run("local ok = 1\nlocal x = = 2\n")
        assert_refused(r, escape(r.name) .. ":2: unexpected symbol near '='")
    end)

    it("runtime error while loading gives file, line and traceback", function()
        local r = run("local t\nlocal function f() return t.x end\nf()\n")
        assert_refused(r, escape(r.name) .. ":2: attempt to index")
        assert.matches("stack traceback:\n.*" .. escape(r.name) .. ":3: in main chunk", r.stderr)
        assert.is_nil(r.stderr:find("boot.lua", 1, true), "runtime frames are not shown")
    end)

    it("no script= argument", function()
        local r = helper.qemu("x86_64", { helper.plugin() .. ",inline=on" }, GUEST, { "10" })
        assert_refused(r, "no script given")
    end)

    it("a host argument of the run given twice", function()
        local r = run("return\n", { "on_error=abort", "on_error=disable" })
        assert_refused(r, "on_error= given twice")
    end)

    it("bad on_error=", function()
        local r = run("return\n", { "on_error=ignore" })
        assert_refused(r, "on_error=ignore: expected on_error=abort or on_error=disable")
    end)

    it("unwritable outfile=", function()
        local r = run("return\n", { "outfile=/nonexistent/dir/out.txt" })
        assert_refused(r, "cannot open outfile /nonexistent/dir/out%.txt: No such file or directory\n")
    end)

    it("unknown argument names the script line that parsed it", function()
        local r = run("local x = 1\nlocal opt = luahost.args { inline = false }\n", { "colour=red" })
        assert_refused(r, escape(r.name) .. ":2: option parsing failed: colour=red %(known options: inline%)")
    end)

    it("malformed boolean and integer", function()
        local src = "local opt = luahost.args { inline = false, limit = 20 }\n"
        assert_refused(run(src, { "inline=perhaps" }), ".*:1: boolean argument parsing failed: inline=perhaps")
        assert_refused(run(src, { "limit=12x" }), ".*:1: integer argument parsing failed: limit=12x")
    end)

    it("wrong type given to an API function", function()
        local r = run("luahost.on_exit(42)\n")
        assert_refused(r, escape(r.name) .. ":1: luahost.on_exit expects a function, got number")
    end)
end)

describe("runtime errors in callbacks", function()
    after_each(helper.cleanup)

    local failing_tb_hook = "luahost.on_tb_translate(function(tb)\n  local t\n  return t.field\nend)\n"

    it("abort (default): message, traceback, exit status 1, no exit hooks", function()
        local r = run(failing_tb_hook .. "luahost.on_exit(function() luahost.outs('EXIT HOOK RAN') end)\n")
        assert.are.equal(1, r.status)
        assert.matches("luahost: error in tb translation hook: " .. escape(r.name) .. ":3: attempt to index",
            r.stderr)
        assert.matches("stack traceback:", r.stderr)
        assert.matches("stopping emulation %(on_error=abort%)", r.stderr)
        assert.is_nil(r.log:find("EXIT HOOK RAN", 1, true))
    end)

    -- a run whose numbers may be wrong never ends with status 0
    local function assert_disabled_run(r, what)
        assert.are.equal(1, r.status, r.stderr)
        assert.matches("checksum=", r.stdout, "the guest ran to its end")
        local _, reports = r.stderr:gsub("error in " .. what, "")
        assert.are.equal(1, reports, "reported once")
        assert.matches("this " .. what .. " is disabled %(on_error=disable%)", r.stderr)
        assert.matches("1 callback error%(s%) in this run %(on_error=disable%): exit status 1\n$", r.stderr)
    end

    it("disable: reported once, the hook is off, emulation goes on, status 1", function()
        assert_disabled_run(run(failing_tb_hook, { "on_error=disable" }), "tb translation hook")
    end)

    it("disable covers closures made afresh in every translation", function()
        local src = "luahost.on_tb_translate(function(tb)\n  tb:on_exec(function() error('x') end)\nend)\n"
        assert_disabled_run(run(src, { "on_error=disable" }), "tb exec callback")
    end)

    it("disable turns off an exec callback on every block it was registered on", function()
        local src = [[
local calls = 0
local function on_exec(vcpu)
    calls = calls + 1
    if calls == 5 then error("fifth call fails") end
end
luahost.on_tb_translate(function(tb) tb:on_exec(on_exec) end)
luahost.on_exit(function() luahost.outs("calls=" .. calls .. "\n") end)
]]
        local r = run(src, { "on_error=disable" })
        assert_disabled_run(r, "tb exec callback")
        assert.matches(escape(r.name) .. ":4: fifth call fails", r.stderr)
        assert.matches("calls=5\n", r.log)
    end)

    it("an error in an insn exec callback aborts with its location", function()
        local src = "luahost.on_tb_translate(function(tb)\n  tb:insn(1):on_exec(function() error('boom') end)\nend)\n"
        local r = run(src)
        assert.are.equal(1, r.status)
        assert.matches("error in insn exec callback: " .. escape(r.name) .. ":2: boom", r.stderr)
    end)

    it("an error in an exit hook makes the exit status non-zero", function()
        local r = run("luahost.on_exit(function() error('report failed') end)\n")
        assert.are.equal(1, r.status)
        assert.matches("error in exit hook: " .. escape(r.name) .. ":1: report failed", r.stderr)
        assert.matches("checksum=", r.stdout)
    end)

    it("non-string error objects are reported", function()
        local r = run("luahost.on_exit(function() error({}) end)\n")
        assert.are.equal(1, r.status)
        assert.matches("error in exit hook: " .. escape(r.name) .. ":1: %(error object is a table value%)\n"
            .. "stack traceback:\n", r.stderr)
    end)
end)

describe("handles used after their callback", function()
    after_each(helper.cleanup)

    for _, case in ipairs({
        { "tb", "saved = tb", "saved:vaddr()" },
        { "tb", "saved = tb", "saved:on_exec(print)" },
        { "insn", "saved = tb:insn(1)", "saved:disas()" },
        { "insn", "for _, i in tb:insns() do saved = i end", "saved:vaddr()" },
    }) do
        local kind, keep, use = case[1], case[2], case[3]
        it(("%s kept with '%s', then %s"):format(kind, keep, use), function()
            local src = ("local saved\nluahost.on_tb_translate(function(tb) %s end)\n"
                .. "luahost.on_exit(function()\n  local s = tostring(saved)\n  %s\nend)\n"):format(keep, use)
            local r = run(src)
            assert.are.equal(1, r.status)
            assert.matches(escape(r.name) .. ":5: attempt to use a" .. "n? " .. kind
                .. " handle after the callback that provided it returned", r.stderr)
        end)
    end

    it("a handle stored in one translation is refused in the next", function()
        local src = [[
local prev
luahost.on_tb_translate(function(tb)
    if prev then prev:n_insns() end
    prev = tb
end)
]]
        local r = run(src)
        assert.are.equal(1, r.status)
        assert.matches(escape(r.name) .. ":3: attempt to use a tb handle after", r.stderr)
    end)
end)
