-- Several scripts in one run: script= (or e=) given more than once in
-- one -plugin, or several -plugin naming this plugin, or both. Each
-- script has its own arguments, globals, modules and report; what would
-- act on the others (reset, uninstall) is refused; a script that fails
-- to load leaves no hook of any script to run.
local helper = require("helper")

local ARCH = "x86_64"
local GUEST = helper.guest("loop", ARCH)

-- Runs qemu-x86_64 on the loop guest with these -plugin arguments;
-- returns what helper.qemu returns.
local function run(plugins, guest_args)
    return helper.qemu(ARCH, plugins, GUEST, guest_args or { "10" })
end

-- A -plugin argument: this plugin and the pieces given.
local function plugin(...)
    return table.concat({ helper.plugin(), ... }, ",")
end

local function lines_matching(text, pattern)
    local found = {}
    for line in text:gmatch("[^\n]+") do
        if line:find(pattern) then
            found[#found + 1] = line
        end
    end
    return found
end

-- A script printing, at exit, its name, a global both scripts set, and
-- its own arguments.
local function reporter(name)
    return helper.lua_file(([[
shared_name = %q
luahost.on_exit(function()
    luahost.printf("%%s: global=%%s args=%%s\n", %q, shared_name, table.concat(luahost.argv, " "))
end)
]]):format(name, name))
end

describe("several scripts in one run", function()
    after_each(helper.cleanup)

    it("each has its own arguments, globals and report (script= repeated)", function()
        local r = run({ plugin("script=" .. reporter("A"), "x=1", "y=2", "script=" .. reporter("B"), "x=3") })
        assert.are.equal(0, r.status, r.stderr)
        assert.are.same({ "A: global=A args=x=1 y=2", "B: global=B args=x=3" },
            lines_matching(r.log, "^[AB]: "))
    end)

    it("each has its own copy of a module it requires", function()
        local dir = helper.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir " .. helper.quote(dir)))
        helper.write(dir .. "/counter.lua", "local n = 0\nreturn { next = function() n = n + 1 return n end }\n")
        local function user(name)
            return helper.write(dir .. "/" .. name .. ".lua", ([[
local counter = require("counter")
counter.next()
luahost.on_exit(function() luahost.printf("%s: %%d\n", counter.next()) end)
]]):format(name))
        end
        local r = run({ plugin("script=" .. user("one"), "script=" .. user("two")) })
        os.execute("rm -rf " .. helper.quote(dir))
        assert.are.equal(0, r.status, r.stderr)
        assert.are.same({ "one: 2", "two: 2" }, lines_matching(r.log, "^%a+: %d"))
    end)

    it("prints each script's aggregations after its own exit hooks", function()
        local function counting(name)
            return helper.lua_file(([[
local agg = require("agg")
local seen = agg.count("seen")
luahost.on_exit(function() seen:add(%q) end)
]]):format(name))
        end
        local r = run({ plugin("script=" .. counting("first"), "script=" .. counting("second")) })
        assert.are.equal(0, r.status, r.stderr)
        local _, first = r.log:find("@seen[first]: 1", 1, true)
        local second = r.log:find("@seen[second]: 1", 1, true)
        assert.truthy(first and second and first < second, r.log)
        assert.are.equal(2, select(2, r.log:gsub("@seen%[", "")), r.log)
    end)

    it("writes each script's report where its outfile= says", function()
        local a, shared = helper.tmpname(), helper.tmpname()
        local r = run({ plugin("outfile=" .. shared, "script=" .. reporter("A"), "outfile=" .. a,
            "script=" .. reporter("B"), "e=luahost.on_exit(function() luahost.outs('C done\\n') end)") })
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal("A: global=A args=\n", helper.read(a))
        assert.are.equal("B: global=B args=\nC done\n", helper.read(shared))
    end)

    it("runs stoptrigger.lua then execlog.lua: the first N instructions, as the C plugins log them", function()
        -- QEMU runs the translation callbacks of the plugin loaded last
        -- first, ours in the order the scripts are given: so the C
        -- plugins are loaded in the opposite order.
        local n = 50
        local c = run({ helper.c_plugin("contrib/plugins/libexeclog.so"),
            helper.c_plugin("contrib/plugins/libstoptrigger.so") .. ",icount=" .. n })
        local lua = run({ plugin("script=" .. helper.script("stoptrigger.lua"), "icount=" .. n,
            "script=" .. helper.script("execlog.lua")) })
        assert.are.equal(0, c.status, c.stderr)
        assert.are.equal(c.status, lua.status, lua.stderr)
        -- the guest's stack is somewhere else in each run: high in the
        -- 47-bit user address space, 0x7f... or, now and then, 0x7e...
        local function trace(log)
            return lines_matching(log:gsub("0x7%x%x%x%x%x%x%x%x%x%x%x%f[%X]", "0x7..."), "^0, 0x")
        end
        local c_trace, lua_trace = trace(c.log), trace(lua.log)
        assert.are.equal(n, #c_trace)
        assert.are.same(c_trace, lua_trace)
        assert.are.same(lines_matching(c.log, "^icount reached"), lines_matching(lua.log, "^icount reached"))
    end)

    -- QEMU merges the arguments of several -plugin with the same path
    -- into one install; through another path (a symlink) it installs the
    -- plugin again: both give each script its own arguments.
    for _, how in ipairs({ "the same path", "a symlink" }) do
        it("runs the scripts of two -plugin naming this plugin by " .. how, function()
            local second = helper.plugin()
            if how == "a symlink" then
                second = helper.tmpname()
                os.remove(second)
                assert(os.execute(("ln -s %s %s"):format(helper.quote(helper.plugin()), helper.quote(second))))
            end
            local r = run({ plugin("script=" .. reporter("A"), "x=1"),
                second .. ",script=" .. reporter("B") .. ",x=2" })
            assert.are.equal(0, r.status, r.stderr)
            assert.are.same({ "A: global=A args=x=1", "B: global=B args=x=2" }, lines_matching(r.log, "^[AB]"))
        end)
    end

    it("keeps a C plugin's output beside the scripts'", function()
        local r = run({ helper.c_plugin("contrib/plugins/libhotblocks.so"),
            plugin("script=" .. reporter("A"), "script=" .. reporter("B")) })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("collected %d+ entries in the hash table", r.log)
        assert.are.equal(2, #lines_matching(r.log, "^[AB]: global"), r.log)
    end)

    it("refuses arguments before the first script= when there are several", function()
        local r = run({ plugin("x=1", "script=" .. reporter("A"), "script=" .. reporter("B")) })
        assert.are.equal(1, r.status)
        assert.matches("x=1 comes before the first script=: with several scripts, each script's arguments "
            .. "follow its script= %(or e=%)", r.stderr)
    end)

    it("still takes a single script's arguments before its script=", function()
        local r = run({ plugin("x=1", "script=" .. reporter("A"), "y=2") })
        assert.are.equal(0, r.status, r.stderr)
        assert.are.same({ "A: global=A args=x=1 y=2" }, lines_matching(r.log, "^A: "))
    end)

    it("refuses outfile= twice for one script", function()
        local r = run({ plugin("script=" .. reporter("A"), "outfile=/dev/null", "outfile=/dev/null") })
        assert.are.equal(1, r.status)
        assert.matches("outfile= given twice for script=", r.stderr)
    end)

    for _, call in ipairs({ "reset", "uninstall" }) do
        it(("refuses luahost.%s when several scripts share the run"):format(call), function()
            local script = helper.lua_file(([[
luahost.on_vcpu_init(function() luahost.%s() end)
]]):format(call))
            local r = run({ plugin("script=" .. script, "script=" .. reporter("B")) })
            assert.are.equal(1, r.status)
            assert.matches(("luahost%%.%s: not available when several scripts share the run"):format(call),
                r.stderr)
            assert.matches(helper.quote(script):sub(2, -2):gsub("%p", "%%%0") .. ":1:", r.stderr)
            assert.is_nil(r.stderr:find("SIGSEGV", 1, true))
        end)
    end

    it("runs no hook of any script when one fails to load", function()
        local broken = helper.lua_file("luahost.on_exit(function() luahost.outs('broken ran\\n') end)\nerror('no')\n")
        local r = run({ plugin("script=" .. reporter("A"), "script=" .. broken) })
        assert.are.equal(1, r.status)
        assert.matches(":2: no", r.stderr)
        assert.are.same({}, lines_matching(r.log .. r.stderr, "global=A"))
        assert.is_nil((r.log .. r.stderr):find("broken ran", 1, true))
    end)

    it("runs no hook of an earlier -plugin's scripts when a later one is refused", function()
        local link = helper.tmpname()
        os.remove(link)
        assert(os.execute(("ln -s %s %s"):format(helper.quote(helper.plugin()), helper.quote(link))))
        local r = run({ plugin("script=" .. reporter("A")), link .. ",script=/nonexistent/nope.lua" })
        assert.are.equal(1, r.status)
        assert.matches("cannot open script /nonexistent/nope%.lua", r.stderr)
        assert.are.same({}, lines_matching(r.log .. r.stderr, "global=A"))
    end)

    it("refuses a script= that is a FIFO at once, without opening it", function()
        local fifo = helper.tmpname()
        os.remove(fifo)
        assert(os.execute("mkfifo " .. helper.quote(fifo)))
        local status, _, stderr = helper.sh(("timeout 20 %s -plugin %s %s 10"):format(
            helper.quote(helper.qemu_build() .. "/qemu-" .. ARCH),
            helper.quote(plugin("script=" .. fifo)), helper.quote(GUEST)))
        assert.are.equal(1, status, stderr)
        assert.matches("cannot open script " .. fifo:gsub("%p", "%%%0") .. ": a fifo, not a file", stderr)
    end)
end)

describe("precompiled scripts and modules", function()
    after_each(helper.cleanup)

    -- Compiles source with the Lua of this build: luac5.4, or luajit -b.
    local function compile(source)
        local src, out = helper.lua_file(source), helper.tmpname() .. ".luac"
        local cmd = os.getenv("LUAHOST_FLAVOUR") == "luajit" and "luajit -b %s %s" or "luac5.4 -o %2$s %1$s"
        cmd = cmd:gsub("%%2%$s", helper.quote(out)):gsub("%%1%$s", helper.quote(src))
        assert(os.execute(cmd:format(helper.quote(src), helper.quote(out))))
        return out
    end

    it("refuses a precompiled script unless bytecode=on", function()
        local script = compile("luahost.on_exit(function() luahost.outs('ran\\n') end)")
        local r = run({ plugin("script=" .. script) })
        assert.are.equal(1, r.status)
        assert.matches(script:gsub("%p", "%%%0") .. " is precompiled Lua, which Lua does not check: a bad chunk "
            .. "can crash QEMU%. Load it with bytecode=on, or give the source", r.stderr)
        r = run({ plugin("script=" .. script, "bytecode=on") })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("ran\n", r.log)
    end)

    it("refuses a precompiled module unless bytecode=on", function()
        local module = compile("return { answer = 42 }")
        local dir = module:match("^(.*)/")
        local name = module:match("([^/]*)%.luac$")
        local script = helper.write(dir .. "/" .. name .. "-user.lua", ([[
package.path = %q .. "/?.luac;" .. package.path
luahost.on_exit(function() luahost.printf("answer %%d\n", require(%q).answer) end)
]]):format(dir, name))
        local r = run({ plugin("script=" .. script) })
        assert.are.equal(1, r.status)
        assert.matches("error loading module '" .. name:gsub("%p", "%%%0") .. "'", r.stderr)
        r = run({ plugin("script=" .. script, "bytecode=on") })
        os.remove(script)
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("answer 42\n", r.log)
    end)
end)

describe("the launcher with several scripts", function()
    after_each(helper.cleanup)

    local function launcher(args)
        local quoted = {}
        for i, a in ipairs(args) do
            quoted[i] = helper.quote(a)
        end
        return helper.sh(helper.quote(helper.build_launcher()) .. " " .. table.concat(quoted, " "))
    end

    it("runs SCRIPT ARGS + SCRIPT ARGS, each with its own arguments", function()
        local status, _, stderr = launcher({ reporter("A"), "x=1,y=2", "+", reporter("B"), "x=3",
            "-e", "luahost.on_exit(function() luahost.outs('C\\n') end)", "--", GUEST, "10" })
        assert.are.equal(0, status, stderr)
        assert.are.same({ "A: global=A args=x=1 y=2", "B: global=B args=x=3", "C" },
            lines_matching(stderr, "^[ABC]"))
    end)

    it("logs the first 50 instructions with stoptrigger icount=50 + execlog", function()
        local status, _, stderr = launcher({ "stoptrigger.lua", "icount=50", "+", "execlog.lua", "--", GUEST })
        assert.are.equal(0, status, stderr)
        assert.are.equal(50, #lines_matching(stderr, "^0, 0x"))
    end)

    for _, args in ipairs({ { "+", "execlog.lua" }, { "execlog.lua", "+", "--" }, { "execlog.lua", "+", "+" } }) do
        it("refuses a misplaced +: " .. table.concat(args, " "), function()
            local cmd = { table.unpack(args) }
            cmd[#cmd + 1] = GUEST
            local status, _, stderr = launcher(cmd)
            assert.are.equal(2, status)
            assert.matches("luahost: %+ must", stderr)
        end)
    end
end)
