-- Processes: the report of a program that execs another is written at
-- the exec, once; an exec that fails changes nothing; follow=on runs the
-- exec'd program under luahost too, each report with a line naming its
-- process. The guest tests/guests/execs.c execs, forks and fails to exec
-- on request, and prints its pid.
local helper = require("helper")

-- The script of these runs: its argument, its pid and the execve calls
-- its syscall hook saw, at exit.
local SCRIPT = [[
local execs, tag = 0, (luahost.argv[1] or "tag=-"):match("^tag=(.*)")
local execve = ({ x86_64 = 59, aarch64 = 221, riscv64 = 221 })[luahost.info.target_name]
luahost.on_syscall(function(_, num) if num == execve then execs = execs + 1 end end)
luahost.on_exit(function()
    luahost.printf("exit pid=%d tag=%s execve=%d\n", luahost.pid(), tag, execs)
end)
]]

local function execs(arch)
    return helper.guest("execs", arch)
end

-- Runs qemu-ARCH on guest with the script (args: its plugin arguments)
-- and QEMU's plugin log on stderr (-d plugin, no -D: a QEMU that
-- follow=on starts would empty a -D file). Returns status, stdout, stderr.
local function run(arch, args, guest, guest_args)
    local plugin = helper.luahost_plugin(helper.lua_file(SCRIPT), args)
    local cmd = { helper.quote(helper.qemu_build() .. "/qemu-" .. arch), "-plugin", helper.quote(plugin),
        "-d plugin", helper.quote(guest) }
    for _, a in ipairs(guest_args or {}) do
        cmd[#cmd + 1] = helper.quote(a)
    end
    return helper.sh(table.concat(cmd, " "))
end

-- The "exit pid=P tag=T execve=N" lines, in order, as { pid, tag, execve }.
local function reports(text)
    local list = {}
    for pid, tag, n in text:gmatch("exit pid=(%d+) tag=(%S+) execve=(%d+)\n") do
        list[#list + 1] = { pid = tonumber(pid), tag = tag, execve = tonumber(n) }
    end
    return list
end

-- The host's own messages ("luahost: ..." lines), as a list.
local function host_messages(text)
    local list = {}
    for line in text:gmatch("[^\n]+") do
        if line:find("^luahost:") then
            list[#list + 1] = line
        end
    end
    return list
end

local function count(text, plain)
    local n, at = 0, 1
    while true do
        local s, e = text:find(plain, at, true)
        if not s then
            return n
        end
        n, at = n + 1, e + 1
    end
end

-- The lines naming the process a report describes: "== luahost:
-- process P (PROGRAM)[, ...] ==", as { pid, program, rest }.
local function process_lines(text)
    local list = {}
    for pid, program, rest in text:gmatch("== luahost: process (%d+) %(([^)]*)%)(.-) ==\n") do
        list[#list + 1] = { pid = tonumber(pid), program = program, rest = rest }
    end
    return list
end

describe("a program that execs another", function()
    after_each(helper.cleanup)

    -- The new program is the host's own (x86_64): QEMU's execve hands it to the kernel.
    for _, arch in ipairs(helper.arches) do
        it("has its report written at the exec, once, and one notice (" .. arch .. ")", function()
            local r = helper.run_lua(arch, SCRIPT, execs(arch), { args = { "tag=one" }, status = 7,
                guest_args = { "-p", "first", execs("x86_64"), "-p", "second", "-s", "7" } })
            local pid = tonumber(r.stdout:match("first pid=(%d+)"))
            assert.is_truthy(pid, r.stdout)
            assert.matches(("second pid=%d"):format(pid), r.stdout, 1, true)
            -- the execve that succeeded is in the report: the exit path runs after the syscall hooks
            assert.are.equal(("exit pid=%d tag=one execve=1\n"):format(pid), r.report)
            local notice = ("luahost: process %d execs %s, which runs without luahost"):format(pid, execs("x86_64"))
            local messages = host_messages(r.stderr)
            assert.are.equal(1, #messages, r.stderr)
            assert.are.equal(1, count(messages[1], notice), r.stderr)
        end)
    end

    it("is not reported on at an exec of a program the host's kernel refuses (ENOEXEC)", function()
        if helper.read("/proc/sys/fs/binfmt_misc/qemu-aarch64") then
            pending("binfmt_misc runs aarch64 programs on this host")
            return
        end
        local r = helper.run_lua("aarch64", SCRIPT, execs("aarch64"), { status = 127,
            guest_args = { "-p", "first", execs("aarch64"), "-p", "second" } })
        assert.matches("cannot exec .*Exec format error", r.stderr)
        assert.are.equal(1, #reports(r.report), r.report)
        assert.are.same({}, host_messages(r.stderr))
    end)

    it("is not reported on at execs that fail, and reports at its exit", function()
        for _, arch in ipairs(helper.arches) do
            local r = helper.run_lua(arch, SCRIPT, execs(arch), { status = 3, guest_args = { "-f", "-s", "3" } })
            assert.matches("failed execs: 6\n", r.stdout, 1, true)
            local pid = tonumber(r.stdout:match("pid=(%d+)")) or tonumber(r.report:match("pid=(%d+)"))
            assert.are.equal(("exit pid=%d tag=- execve=6\n"):format(pid), r.report)
            assert.are.same({}, host_messages(r.stderr))
        end
    end)

    it("is reported on once when it looks along PATH for a command that is not there", function()
        -- glibc's execvp (env) tries each directory of PATH
        local r = helper.run_lua("x86_64", SCRIPT, "/usr/bin/env", { status = 127,
            guest_args = { "PATH=/nonexistent/1:/nonexistent/2:/bin", "luahost-no-such-command" } })
        assert.are.equal(1, #reports(r.report), r.report)
        assert.matches(" execve=3\n", r.report)
        assert.are.same({}, host_messages(r.stderr))
        -- a shell forks a child that fails to exec, which reports at its exit
        r = helper.run_lua("x86_64", SCRIPT, "/bin/sh", { status = 4,
            guest_args = { "-c", "/nonexistent/program; exit 4" } })
        local list = reports(r.report)
        assert.are.equal(2, #list, r.report)
        assert.are_not.equal(list[1].pid, list[2].pid)
        assert.are.same({ 1, 0 }, { list[1].execve, list[2].execve })
        assert.are.same({}, host_messages(r.stderr))
    end)

    it("has its report written at a fork's child's exec, and the parent's at its exit", function()
        local r = helper.run_lua("x86_64", SCRIPT, execs("x86_64"), { status = 6,
            guest_args = { "-k", "-p", "parent", execs("x86_64"), "-p", "child", "-s", "6" } })
        local parent, child = tonumber(r.stdout:match("parent pid=(%d+)")), tonumber(r.stdout:match("child pid=(%d+)"))
        assert.is_truthy(parent and child, r.stdout)
        assert.matches("child status=6\n", r.stdout, 1, true)
        local list = reports(r.report)
        assert.are.equal(2, #list, r.report)
        assert.are.same({ child, parent }, { list[1].pid, list[2].pid })
        assert.are.equal(1, count(r.stderr, ("luahost: process %d execs"):format(child)), r.stderr)
    end)
end)

-- Under the sanitizer builds QEMU runs with the sanitizer's runtime
-- preloaded (tests/sanitizers), which QEMU_UNSET_ENV keeps from guests:
-- the QEMU follow=on starts gets the guest's environment, without it,
-- and cannot load the instrumented plugin. What follow=on does is tested
-- in the other builds.
local function it_follow(name, fn)
    it(name, function()
        if os.getenv("LUAHOST_SANITIZE") then
            pending("a QEMU started by follow=on gets the guest's environment, without the sanitizer runtime")
            return
        end
        fn()
    end)
end

describe("follow=on", function()
    after_each(helper.cleanup)

    local pairs_of_arches = { { "x86_64", "x86_64" }, { "aarch64", "aarch64" }, { "x86_64", "aarch64" } }
    for _, pair in ipairs(pairs_of_arches) do
        local from, to = pair[1], pair[2]
        it_follow(("runs the exec'd program under luahost with the same scripts and arguments (%s to %s)")
            :format(from, to), function()
            local status, stdout, stderr = run(from, { "follow=on", "tag=tagged" }, execs(from),
                { "-p", "first", "-E", "ONLY=this", "-0", "zero", execs(to),
                  "-p", "second", "-v", "ONLY", "-v", "PATH", "-v", "LUAHOST_EXEC", "-s", "5" })
            assert.are.equal(5, status, stderr)
            local pid = tonumber(stdout:match("first pid=(%d+)"))
            assert.is_truthy(pid, stdout)
            -- the new program's pid, argv[0] and environment are those the guest passed
            assert.matches(("second pid=%d argv0=zero\nONLY=this\nPATH unset\nLUAHOST_EXEC unset\n"):format(pid),
                stdout, 1, true)
            local list = reports(stderr)
            assert.are.equal(2, #list, stderr)
            assert.are.same({ pid, "tagged", 1 }, { list[1].pid, list[1].tag, list[1].execve })
            assert.are.same({ pid, "tagged", 0 }, { list[2].pid, list[2].tag, list[2].execve })
            assert.are.same({}, host_messages(stderr))
        end)
    end

    it_follow("names the process each report describes", function()
        local status, _, stderr = run("x86_64", { "follow=on" }, execs("x86_64"),
            { "-k", execs("x86_64"), "-p", "x", execs("aarch64") })
        assert.are.equal(0, status, stderr)
        local lines = process_lines(stderr)
        assert.are.equal(#reports(stderr), #lines, stderr)
        assert.are.equal(4, #lines, stderr)
        -- the forked child before its exec, then the program it exec'd,
        -- which execs a third, then the parent
        local child, parent = lines[1].pid, lines[4].pid
        assert.are_not.equal(child, parent)
        assert.are.same({ child, child, child }, { lines[1].pid, lines[2].pid, lines[3].pid })
        assert.are.same(execs("x86_64"), lines[1].program)
        assert.matches(", forked from " .. parent, lines[1].rest, 1, true)
        assert.matches("exec'd by " .. execs("x86_64"), lines[2].rest, 1, true)
        assert.are.same(execs("aarch64"), lines[3].program)
        assert.are.same(execs("x86_64"), lines[4].program)
        -- each line comes before its report
        for pid, report_pid in stderr:gmatch("== luahost: process (%d+) .-\nexit pid=(%d+)") do
            assert.are.equal(pid, report_pid)
        end
    end)

    it_follow("runs a \"#!\" script's interpreter under luahost, as the kernel runs it", function()
        local script = helper.write(helper.tmpname(), ("#!/bin/sh -e\necho \"script $0 $*\"\nexec %s -p last\n")
            :format(execs("x86_64")))
        os.execute("chmod +x " .. helper.quote(script))
        local status, stdout, stderr = run("x86_64", { "follow=on" }, execs("x86_64"),
            { "-p", "first", script, "a", "b" })
        assert.are.equal(0, status, stderr)
        assert.matches(("script %s a b\n"):format(script), stdout, 1, true)
        assert.matches("last pid=", stdout, 1, true)
        -- execs, the shell running the script, execs again
        assert.are.equal(3, #reports(stderr), stderr)
        assert.are.same({}, host_messages(stderr))
    end)

    it_follow("follows /bin/sh -c into its commands, forked or exec'd, and keeps the exit status", function()
        local status, stdout, stderr = run("x86_64", { "follow=on" }, "/bin/sh",
            { "-c", ("%s -p one; exec %s -p two -s 9"):format(execs("x86_64"), execs("aarch64")) })
        assert.are.equal(9, status, stderr)
        assert.matches("one pid=", stdout, 1, true)
        assert.matches("two pid=", stdout, 1, true)
        -- the shell (up to its exec), its child (up to its exec), the two programs
        local list = reports(stderr)
        assert.are.equal(4, #list, stderr)
        assert.are.same({}, host_messages(stderr))
    end)

    it_follow("follows an exec of /proc/self/exe into the program itself", function()
        for _, arch in ipairs(helper.arches) do
            local status, stdout, stderr = run(arch, { "follow=on" }, execs(arch),
                { "-p", "first", "/proc/self/exe", "-p", "again", "-s", "2" })
            assert.are.equal(2, status, stderr)
            assert.matches("again pid=", stdout, 1, true)
            assert.are.equal(2, #reports(stderr), stderr)
        end
    end)

    it_follow("keeps reports of every program in outfile=NAME.%p", function()
        local base = helper.tmpname()
        local plugin = helper.luahost_plugin(helper.lua_file(SCRIPT), { "follow=on", "outfile=" .. base .. ".%p" })
        local status, stdout, stderr = helper.sh(("%s -plugin %s %s -p first %s -p second"):format(
            helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(plugin),
            helper.quote(execs("x86_64")), helper.quote(execs("aarch64"))))
        assert.are.equal(0, status, stderr)
        local pid = tonumber(stdout:match("first pid=(%d+)"))
        local text = helper.read(base .. "." .. pid) or ""
        os.remove(base .. "." .. pid)
        assert.are.equal(2, #reports(text), text)
        assert.are.equal(2, #process_lines(text), text)
    end)

    it("refuses a value other than on and off", function()
        local status, _, stderr = run("x86_64", { "follow=yes" }, execs("x86_64"))
        assert.are_not.equal(0, status)
        assert.matches("follow=yes: expected follow=on or follow=off", stderr, 1, true)
    end)
end)
