-- Errors while a script loads (its main chunk): QEMU refuses the plugin
-- with the message at the script's line, a traceback for runtime errors,
-- and the guest never runs.
local lib = require("catalogue.lib")
local refused, traced = lib.refused, lib.refused_with_traceback

local JIT = os.getenv("LUAHOST_FLAVOUR") == "luajit"

local write = lib.write

-- Compiles source into ctx.tmp/name with this build's Lua (or the other's).
local function compiled(name, source, other)
    return function(ctx)
        write("source.lua", source)(ctx)
        local src, out = ctx.tmp .. "/source.lua", ctx.tmp .. "/" .. name
        if JIT ~= (other == true) then
            assert(os.execute(("luajit -b %s %s"):format(src, out)))
        else
            assert(os.execute(("luac5.4 -o %s %s"):format(out, src)))
        end
    end
end

local PRECOMPILED = "TMP/%s is precompiled Lua, which Lua does not check: a bad chunk can crash QEMU. "
    .. "Load it with bytecode=on, or give the source"
local HOOKED = "luahost.on_exit(function() luahost.outs('exit hook ran\\n') end)\n"

return {
    refused("SCRIPT:2: unexpected symbol near '='",
        { name = "syntax error", source = "local ok = 1\nlocal x = = 2\n" }),
    refused("SCRIPT:1: unfinished string near '\"abc'",
        { name = "unfinished string", source = "local s = \"abc\n" }),
    refused({ "SCRIPT:1: unexpected symbol near '<\\1>'", "SCRIPT:1: unexpected symbol near 'char(1)'" },
        { name = "control characters", source = "\1\2\3\n" }),
    refused({ "SCRIPT:1: <eof> expected near 'end'", "SCRIPT:1: '<eof>' expected near 'end'" },
        { name = "an end too many", source = "end\n" }),
    refused({ "SCRIPT:2: no visible label 'nowhere' for <goto> at line 1", "SCRIPT:1: undefined label 'nowhere'" },
        { name = "goto no label", source = "goto nowhere\n" }),
    traced("SCRIPT:2: load failed", { "\tSCRIPT:2: in ", "\tSCRIPT:3: in main chunk\n" },
        { name = "error() in a function of the main chunk",
            source = "local t\nlocal function f() error(\"load failed\") end\nf()\n", no_stderr = { "boot.lua" } }),
    traced("SCRIPT:2: second thoughts", { "\tSCRIPT:2: in main chunk\n" },
        { name = "error after registering a hook: the hook never runs", source = HOOKED .. "error('second thoughts')\n",
            no_log = { "exit hook ran" } }),
    traced("SCRIPT:2: (error object is a table value)", { "\tSCRIPT:2: in main chunk\n" },
        { name = "error(table)", source = "local t = { code = 1 }\nerror(t)\n" }),
    traced("SCRIPT:1: (error object is a nil value)", { "\tSCRIPT:1: in main chunk\n" },
        { name = "error(nil)", source = "error(nil)\n" }),
    traced("SCRIPT:1: told", { "\tSCRIPT:1: in main chunk\n" },
        { name = "error of a table with __tostring",
            source = "error(setmetatable({}, { __tostring = function() return 'told' end }))\n" }),
    traced("SCRIPT:2: (error object is a table value; its __tostring failed: SCRIPT:1: inner)",
        { "\tSCRIPT:2: in main chunk\n" },
        { name = "error of a table whose __tostring fails",
            source = "local mt = { __tostring = function() error('inner') end }\nerror(setmetatable({}, mt))\n" }),
    traced("SCRIPT:2: (error object is a table value; its __tostring returned a number)",
        { "\tSCRIPT:2: in main chunk\n" },
        { name = "error of a table whose __tostring returns a number",
            source = "debug, tostring = nil, nil\n"
                .. "error(setmetatable({}, { __tostring = function() return 7 end }))\n" }),
    traced("SCRIPT:1: attempt to call a nil value (global 'undefined_fn')", { "\tSCRIPT:1: in main chunk\n" },
        { name = "call of an undefined global", source = "undefined_fn()\n",
            luajit = traced("SCRIPT:1: attempt to call global 'undefined_fn' (a nil value)",
                { "\tSCRIPT:1: in main chunk\n" }, {}) }),
    traced("SCRIPT:2: attempt to index a nil value (local 't')", { "\tSCRIPT:2: in main chunk\n" },
        { name = "index of nil", source = "local t\nlocal x = t.field\nreturn x\n", luajit = traced(
            "SCRIPT:2: attempt to index local 't' (a nil value)", { "\tSCRIPT:2: in main chunk\n" }, {}) }),
    traced("SCRIPT:1: attempt to add a 'string' with a 'number'", { "\tSCRIPT:1: in main chunk\n" },
        { name = "arithmetic on a string", source = "local x = 'a' + 1\n", luajit = traced(
            "SCRIPT:1: attempt to perform arithmetic on a string value", { "\tSCRIPT:1: in main chunk\n" }, {}) }),
    traced("SCRIPT:2: SCRIPT:1: in coroutine", { "\tSCRIPT:2: in main chunk\n" },
        { name = "error in a coroutine.wrap",
            source = "local f = coroutine.wrap(function() error('in coroutine') end)\n"
            .. "f()\n" }),
    { name = "require of a missing module", source = "require('no_such_module')\n", status = 1, stdout_is = "",
        stderr = { { pattern = "^luahost: SCRIPT:1: module 'no_such_module' not found:\n\tno field "
            .. "package%.preload%['no_such_module'%]\n\tno file 'TMP/no_such_module%.lua'\n" },
            "\nstack traceback:\n", "\tSCRIPT:1: in main chunk\n", lib.REFUSED } },
    traced("SCRIPT:1: error loading module 'badmod' from file 'TMP/badmod.lua':\n"
        .. "\tTMP/badmod.lua:2: unexpected symbol near '='", { "\tSCRIPT:1: in main chunk\n" },
        { name = "require of a module with a syntax error", source = "local m = require('badmod')\n",
            setup = write("badmod.lua", "local ok = 1\nlocal x = = 1\n") }),
    traced("TMP/rtmod.lua:2: module failed", { "\tTMP/rtmod.lua:2: in ", "\tSCRIPT:1: in main chunk\n" },
        { name = "require of a module that raises", source = "local m = require('rtmod')\n",
            setup = write("rtmod.lua", "local x = 1\nerror('module failed')\n") }),
    traced("SCRIPT:1: bad argument #1 to 'require' (string expected, got number)", { "\tSCRIPT:1: in main chunk\n" },
        { name = "require of a number", source = "require(42)\n" }),
    traced("SCRIPT:1: cannot open TMP/nope.lua: No such file or directory", { "\tSCRIPT:1: in main chunk\n" },
        { name = "dofile of a missing file", source = "dofile('TMP/nope.lua')\n" }),
    refused("SCRIPT:2: give n=N",
        { name = "usage_error", source = "local x = 1\nluahost.usage_error('give n=N')\n" }),
    refused("SCRIPT:4: bad n",
        { name = "usage_error at level 2",
            source = "local function check()\n    luahost.usage_error('bad n', 2)\nend\ncheck()\n" }),
    refused("SCRIPT:1: 42", { name = "usage_error of a number", source = "luahost.usage_error(42)\n" }),
    traced("SCRIPT:1: luahost.reset cannot be called while the script loads (call it from a hook; to refuse to run, "
        .. "raise an error)", { "\tSCRIPT:1: in main chunk\n" },
        { name = "luahost.reset in the main chunk", source = "luahost.reset()\n" }),
    traced("SCRIPT:1: luahost.uninstall cannot be called while the script loads (call it from a hook; to refuse to "
        .. "run, raise an error)", { "\tSCRIPT:1: in main chunk\n" },
        { name = "luahost.uninstall in the main chunk", source = "luahost.uninstall()\n" }),
    traced("SCRIPT:1: luahost.exit cannot be called while the script loads (to refuse to run, raise an error)",
        { "\tSCRIPT:1: in main chunk\n" }, { name = "luahost.exit in the main chunk", source = "luahost.exit(3)\n" }),
    traced("SCRIPT:1: luahost.on_exit expects a function, got number", { "\tSCRIPT:1: in main chunk\n" },
        { name = "a hook that is not a function", source = "luahost.on_exit(42)\n" }),
    traced("SCRIPT:1: argument spec must be a default value or an args.* kind, got function",
        { "\tSCRIPT:1: in main chunk\n" },
        { name = "args spec of a function", source = "luahost.args { x = print }\n" }),
    traced("SCRIPT:1: parser broke", { "\tSCRIPT:1: in main chunk\n" },
        { name = "args.custom parser that raises", args = { "x=1" },
            source = "luahost.args { x = luahost.args.custom(function() error('parser broke') end) }\n" }),
    refused("SCRIPT:1: x must be even: x=3",
        { name = "args.custom that refuses", args = { "x=3" },
            source = "luahost.args { x = luahost.args.custom(function() return nil, 'x must be even' end) }\n" }),
    refused("SCRIPT:1: integer argument parsing failed: n=x",
        { name = "args.list of int, one bad", args = { "n=1", "n=x" },
            source = "luahost.args { n = luahost.args.list(luahost.args.int()) }\n" }),
    refused("SCRIPT:1: unsigned 64-bit argument parsing failed (not a number (decimal, 0x hex or 0 octal)): a=zz",
        { name = "args.u64 not a number", args = { "a=zz" }, source = "luahost.args { a = luahost.args.u64(0) }\n" }),
    refused("SCRIPT:1: unsigned 64-bit argument parsing failed (wider than 64 bits): a=0x1ffffffffffffffff",
        { name = "args.u64 beyond 64 bits", args = { "a=0x1ffffffffffffffff" },
            source = "luahost.args { a = luahost.args.u64(0) }\n" }),
    refused("SCRIPT:1: expected one of lru, fifo: mode=mru",
        { name = "args.choice not a choice", args = { "mode=mru" },
            source = "luahost.args { mode = luahost.args.choice({ 'lru', 'fifo' }, 'lru') }\n" }),
    traced("(e):1: boom", { "\t(e):1: in main chunk\n" },
        { name = "e= that raises", plugin = { "e=error('boom',, 1)" } }),
    refused(PRECOMPILED:format("script.luac"),
        { name = "a precompiled script", plugin = { "script=TMP/script.luac" },
            setup = compiled("script.luac", HOOKED) }),
    traced("SCRIPT:2: error loading module 'bcmod' from file 'TMP/bcmod.luac':\n\tit is precompiled Lua, which "
        .. "Lua does not check: a bad chunk can crash QEMU. Load it with bytecode=on, or give the source",
        { "\tSCRIPT:2: in main chunk\n" },
        { name = "a precompiled module", setup = compiled("bcmod.luac", "return {}\n"),
            source = "package.path = 'TMP/?.luac;' .. package.path\nrequire('bcmod')\n" }),
    refused({ "TMP/script.luac: bad binary format (not a binary chunk)",
        "TMP/script.luac: cannot load incompatible bytecode" },
        { name = "bytecode=on, the other Lua's bytecode", plugin = { "script=TMP/script.luac", "bytecode=on" },
            setup = compiled("script.luac", HOOKED, true) }),
    refused({ "TMP/script.luac: bad binary format (truncated chunk)",
        "TMP/script.luac: cannot load malformed bytecode" },
        { name = "bytecode=on, truncated bytecode", plugin = { "script=TMP/script.luac", "bytecode=on" },
            setup = function(ctx)
                compiled("full.luac", HOOKED)(ctx)
                local f = assert(io.open(ctx.tmp .. "/full.luac", "rb"))
                write("script.luac", f:read(JIT and 12 or 20))(ctx)
                f:close()
            end }),
    refused("cannot open script TMP/nope.lua: No such file or directory",
        { name = "several scripts, the second fails: no hook of the first runs",
            source = HOOKED, plugin = { "script=SCRIPT", "script=TMP/nope.lua" }, no_log = { "exit hook ran" } }),
    traced("TMP/second.lua:1: second fails", { "\tTMP/second.lua:1: in main chunk\n" },
        { name = "several scripts, the second raises: no hook of the first runs",
            source = HOOKED, plugin = { "script=SCRIPT", "script=TMP/second.lua" }, no_log = { "exit hook ran" },
            setup = write("second.lua", "error('second fails')\n") }),
}
