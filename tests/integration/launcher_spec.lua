-- The luahost launcher and one-liners, driven the way a user types them:
-- scripts by name, -e and e= code, -o, QEMU options, exit statuses, and
-- each usage error as one line and a non-zero status. Numbers come from
-- QEMU's C plugins loaded into the same run, or from the guests' source.
local helper = require("helper")

local LAUNCHER = helper.source_root .. "/tools/luahost"

-- Runs the launcher with the given words (each shell-quoted).
local function luahost(words)
    local cmd = { helper.quote(LAUNCHER) }
    for _, w in ipairs(words) do
        cmd[#cmd + 1] = helper.quote(w)
    end
    local status, stdout, stderr = helper.sh(table.concat(cmd, " "))
    return { status = status, stdout = stdout, stderr = stderr }
end

local function lines(text)
    local out = {}
    for line in text:gmatch("[^\n]+") do
        out[#out + 1] = line
    end
    return out
end

-- A usage error: exactly one line on stderr, status 2, the guest never ran.
local function assert_usage_error(r, pattern)
    assert.are.equal(2, r.status, r.stderr)
    assert.are.equal(1, #lines(r.stderr), r.stderr)
    assert.matches("^luahost: " .. pattern, r.stderr)
    assert.are.equal("", r.stdout)
end

-- libsyscall.so's table "syscall no.  calls  errors" as { [num] = calls }.
local function libsyscall_counts(text)
    local counts = {}
    local table_text = assert(text:match("syscall no%.%s+calls%s+errors\n(.*)$"), text)
    for num, calls in table_text:gmatch("(%d+)%s+(%d+)%s+%d+\n") do
        counts[tonumber(num)] = tonumber(calls)
    end
    return counts
end

describe("the luahost launcher", function()
    after_each(helper.cleanup)

    it("runs a shipped script by name and shows its report on stderr", function()
        local r = luahost({ "hotblocks.lua", "limit=3", "--", helper.guest("loop", "x86_64"), "100" })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("checksum=", r.stdout)
        assert.matches("collected %d+ entries in the hash table\npc, tcount, icount, ecount\n", r.stderr)
        local _, rows = r.stderr:gsub("\n0x%x+, %d+, %d+, %d+", "")
        assert.are.equal(3, rows)
    end)

    it("keeps the report when stderr is a pipe and the guest closes its stderr", function()
        -- coreutils' echo closes stdout and stderr before exiting; 3 bytes to fd 1
        local status, out = helper.sh(("%s -e %s -- /bin/echo hi 2>&1 | cat"):format(helper.quote(LAUNCHER),
            helper.quote('local s = require("agg").sum("bytes") '
                .. 'luahost.on_syscall(function(_, n, fd, _, len) if n == 1 then s:add(fd, len) end end)')))
        assert.are.equal(0, status)
        assert.are.equal("hi\n@bytes[1]: 3\n", out)
    end)

    it("writes the report to -o FILE, and stderr stays clean", function()
        local out = helper.tmpname()
        local r = luahost({ "-o", out, "hotblocks", "--", helper.guest("loop", "x86_64"), "100" })
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal("", r.stderr)
        assert.matches("^collected %d+ entries", helper.read(out))
    end)

    for _, arch in ipairs(helper.arches) do
        it("picks qemu-" .. arch .. " from the ELF header; -e counts syscalls as libsyscall.so does"
            .. " #threads", function()
            local out = helper.tmpname()
            local r = luahost({ "-o", out, "-plugin", helper.c_plugin("tests/tcg/plugins/libsyscall.so"),
                "-D", out .. ".log", "-d", "plugin",
                "-e", [[
local calls = require("agg").count("calls")
luahost.on_syscall(function(_, num) calls:add(num) end)
luahost.on_exit(function() luahost.printf("target=%s\n", luahost.info.target_name) end)]],
                "--", helper.guest("threads", arch), "3", "100" })
            assert.are.equal(0, r.status, r.stderr)
            local report = helper.read(out)
            assert.matches("target=" .. arch .. "\n", report)
            local ours = {}
            for num, n in report:gmatch("@calls%[(%d+)%]: (%d+)\n") do
                ours[tonumber(num)] = tonumber(n)
            end
            local theirs = libsyscall_counts(helper.read(out .. ".log") or "")
            assert.is_truthy(next(theirs))
            assert.are.same(theirs, ours)
            os.remove(out .. ".log")
        end)
    end

    it("-e counts executed blocks by symbol, in total as libbb.so does", function()
        local out = helper.tmpname()
        local r = luahost({ "-o", out, "-plugin", helper.c_plugin("tests/tcg/plugins/libbb.so"),
            "-d", "plugin", "-D", out .. ".log",
            "-e", 'local b = require("agg").count("blocks") '
                .. 'luahost.on_tb_translate(function(tb) b:inline(tb, tb:insn(1):symbol() or "?") end)',
            "--", helper.guest("loop", "x86_64"), "1000" })
        assert.are.equal(0, r.status, r.stderr)
        local total = 0
        for _, n in helper.read(out):gmatch("@blocks%[([^%]]+)%]: (%d+)\n") do
            total = total + tonumber(n)
        end
        local theirs = tonumber((helper.read(out .. ".log") or ""):match("Total: bb's: (%d+),"))
        os.remove(out .. ".log")
        assert.are.equal(theirs, total)
        -- counted_loop.h: one entry block, the loop head 1000 times, the ret block
        assert.matches("@blocks%[counted_loop%]: 1002\n", helper.read(out))
    end)

    it("passes commas in -e code through QEMU, and splits NAME=VALUE at commas as QEMU does", function()
        local r = luahost({ "-e", 'luahost.printf("%s|%s\\n", "a,b", table.concat(luahost.argv, "|"))',
            "x=1,,2", "y=3,z=4", "--", helper.guest("loop", "x86_64"), "10" })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("a,b|x=1,2|y=3|z=4\n", r.stderr)
    end)

    it("gives execlog ifilter=call,reg=rax as two arguments, as QEMU's -plugin would", function()
        local out = helper.tmpname()
        local r = luahost({ "execlog", "ifilter=call,reg=rax", "-o", out, "--", helper.guest("loop", "x86_64"), "10" })
        assert.are.equal(0, r.status, r.stderr)
        local trace = helper.read(out)
        local n = 0
        for line in trace:gmatch("[^\n]+") do
            assert.matches('^0, 0x%x+, 0x%x+, "call', line)
            n = n + 1
        end
        assert.is_true(n > 10, trace)
        assert.matches(", rax %-> 0x%x+\n", trace)
    end)

    it("refuses a comma-separated piece that is not NAME=VALUE, naming the ,, escape", function()
        assert_usage_error(luahost({ "-e", "", "x=1,2", "--", helper.guest("loop", "x86_64") }),
            'x=1,2: "2" is not NAME=VALUE: a comma separates script arguments, as in QEMU\'s %-plugin '
            .. "%(write ,, for a comma inside a value%)\n$")
    end)

    it("exits with the guest's exit status", function()
        -- threads.c returns 2 for THREADS < 1
        local r = luahost({ "-e", "", "--", helper.guest("threads", "aarch64"), "0" })
        assert.are.equal(2, r.status)
        assert.matches("usage: threads", r.stderr)
        r = luahost({ "-e", "", "--", "/bin/sh", "-c", "exit 7" })
        assert.are.equal(7, r.status)
        r = luahost({ "-e", "", "--", "/bin/sh", "-c", "kill -TERM $$" })
        assert.are.equal(128 + 15, r.status)
    end)

    it("with -f runs the programs the guest execs under luahost too, each report naming its process", function()
        if os.getenv("LUAHOST_SANITIZE") then      -- see processes_spec.lua
            pending("a QEMU started by follow=on gets the guest's environment, without the sanitizer runtime")
            return
        end
        local script = 'luahost.on_exit(function() luahost.outs("report of " .. luahost.info.target_name .. "\\n") end)'
        local r = luahost({ "-f", "-e", script, "--", "/bin/sh", "-c", "/bin/true; exit 3" })
        -- the shell, its child up to the exec, and the program it exec'd
        assert.are.equal(3, r.status, r.stderr)
        assert.are.equal(3, select(2, r.stderr:gsub("report of x86_64\n", "")), r.stderr)
        assert.matches("== luahost: process %d+ %(/usr/bin/true%), forked from %d+", r.stderr)
        r = luahost({ "-e", script, "--", "/bin/sh", "-c", "/bin/true; exit 3" })
        assert.are.equal(2, select(2, r.stderr:gsub("report of x86_64\n", "")), r.stderr)
        assert.matches("which runs without luahost %(follow=on would run it under luahost too%)", r.stderr)
    end)

    it("passes QEMU options through (-E to the guest's environment)", function()
        local r = luahost({ "-E", "LUAHOST_TEST=passed", "-e", "", "--", "/usr/bin/env" })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("\nLUAHOST_TEST=passed\n", "\n" .. r.stdout)
    end)

    it("runs a system-mode QEMU command given after --", function()
        local system_qemu = os.getenv("QEMU_SYSTEM_AARCH64")
        local cmd = { "-e", [[
local n = luahost.scoreboard()
luahost.on_tb_translate(function(tb) tb:inline("add", n, 1) end)
luahost.on_exit(function() luahost.printf("system=%s blocks>0=%s\n",
    tostring(luahost.info.system_emulation), tostring(n:sum() > 0)) end)]], "--",
            system_qemu }
        for _, a in ipairs(helper.system_args) do
            cmd[#cmd + 1] = a
        end
        cmd[#cmd + 1] = "-kernel"
        cmd[#cmd + 1] = helper.system_guest("sys", "aarch64")
        local r = luahost(cmd)
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("system=true blocks>0=true\n", r.stderr)
    end)

    it("runs e= code given to QEMU directly, commas doubled", function()
        local r = helper.qemu("x86_64", { helper.plugin()
            .. ',e=local n = 0 luahost.on_syscall(function() n = n + 1 end) '
            .. 'luahost.on_exit(function() luahost.printf("%s %d\\n",, "calls",, n) end)' },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("calls %d+\n", r.log)
    end)

    it("names e= code (e) in errors", function()
        local r = luahost({ "-e", "local x = nil\nx.y = 1", "--", helper.guest("loop", "x86_64") })
        assert.are.equal(1, r.status)
        assert.matches("^luahost: %(e%):2: attempt to index", r.stderr)
        assert.is_nil(r.stdout:match("checksum"), "the guest must not run")
    end)

    it("refuses bad -e code: the message first, status 1", function()
        local r = luahost({ "-e", "local x = = 1", "--", helper.guest("loop", "x86_64") })
        assert.are.equal(1, r.status)
        assert.matches("^luahost: %(e%):1: unexpected symbol near '='\n", r.stderr)
        assert.are.equal("", r.stdout)
    end)

    it("refuses an unknown script", function()
        assert_usage_error(luahost({ "nope.lua", "--", helper.guest("loop", "x86_64") }),
            "no script nope%.lua %(looked in the current directory")
    end)

    it("refuses a missing program", function()
        assert_usage_error(luahost({ "hotblocks.lua", "--", "/nonexistent/prog" }),
            "cannot run /nonexistent/prog: No such file or directory\n")
        assert_usage_error(luahost({ "hotblocks.lua" }), "no program given")
    end)

    it("refuses a file that is not an ELF program", function()
        local text = helper.write(helper.tmpname(), "#!/bin/sh\necho hi\n")
        assert_usage_error(luahost({ "hotblocks.lua", "--", text }), ".* is not an ELF program")
    end)

    it("tells a 32-bit RISC-V program from a 64-bit one by its ELF class", function()
        -- an ELF header alone: class 1 (32-bit), little-endian, ET_EXEC, EM_RISCV (243)
        local path = helper.write(helper.tmpname(), "\127ELF\1\1\1" .. ("\0"):rep(9) .. "\2\0\243\0"
            .. ("\0"):rep(44))
        assert(os.execute("chmod +x " .. helper.quote(path)))
        assert_usage_error(luahost({ "hotblocks.lua", "--", path }), "no qemu%-riscv32 that can load plugins")
    end)

    it("refuses an unknown option and no script", function()
        assert_usage_error(luahost({ "--frobnicate", "hotblocks.lua", "--", "x" }), "unknown option %-%-frobnicate")
        assert_usage_error(luahost({}), "no script given")
    end)

    it("lists the scripts and examples with their descriptions", function()
        local r = luahost({ "--list" })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("\n  hotblocks%.lua +the most executed translation blocks%.\n", r.stdout)
        assert.matches("\n  syscount%.lua +how many times the program made each syscall, by name%.\n", r.stdout)
    end)

    it("shows a script's usage from its header comment, and its own manual", function()
        local r = luahost({ "hotblocks.lua", "--help" })
        assert.are.equal(0, r.status)
        assert.matches("^hotblocks: the most executed translation blocks%.\n.*limit=N", r.stdout)
        r = luahost({ "--help" })
        assert.are.equal(0, r.status)
        for _, section in ipairs({ "NAME", "SYNOPSIS", "OPTIONS", "QUOTING", "EXIT STATUS", "EXAMPLES" }) do
            assert.matches("\n" .. section .. "\n", "\n" .. r.stdout)
        end
    end)
end)

describe("the luahost launcher, finding QEMU and the other plugins", function()
    after_each(helper.cleanup)

    it("shows another plugin's output (QEMU's plugin log) beside the script's", function()
        local status, out = helper.sh(("%s -plugin %s -e %s -- %s 10 2>&1 | cat"):format(
            helper.quote(LAUNCHER), helper.quote(helper.c_plugin("tests/tcg/plugins/libinsn.so")),
            helper.quote('luahost.on_exit(function() luahost.printf("ours\\n") end)'),
            helper.quote(helper.guest("loop", "x86_64"))))
        assert.are.equal(0, status, out)
        assert.matches("\ntotal insns: %d+\n", out)
        assert.matches("\nours\n", out)
    end)

    it("finds qemu-system-ARCH given by name as it finds qemu-ARCH", function()
        local cmd = { "-e", 'luahost.on_exit(function() luahost.printf("system=%s\\n", '
            .. "tostring(luahost.info.system_emulation)) end)", "--", "qemu-system-aarch64" }
        for _, a in ipairs(helper.system_args) do
            cmd[#cmd + 1] = a
        end
        cmd[#cmd + 1] = "-kernel"
        cmd[#cmd + 1] = helper.system_guest("sys", "aarch64")
        local r = luahost(cmd)   -- not in PATH: found in QEMU_BUILD
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("system=true\n", r.stderr)
    end)

    -- The QEMU the launcher picks, from --dry-run, with PATH set to dir.
    local function picked(launcher, env, extra)
        local words = { "--dry-run", "-e", "" }
        for _, w in ipairs(extra or {}) do
            words[#words + 1] = w
        end
        words[#words + 1] = "--"
        words[#words + 1] = helper.guest("loop", "x86_64")
        local cmd = { "env", "-u", "QEMU_BUILD" }
        for _, e in ipairs(env) do
            cmd[#cmd + 1] = helper.quote(e)
        end
        cmd[#cmd + 1] = helper.quote(launcher)
        for _, w in ipairs(words) do
            cmd[#cmd + 1] = helper.quote(w)
        end
        local status, out, err = helper.sh(table.concat(cmd, " ") .. " </dev/null")
        return status, out:match("^(%S+) %-plugin "), err
    end

    -- A directory holding only qemu-x86_64, a copy of file.
    local function fake_qemu_dir(file)
        local dir = helper.tmpname() .. ".d"
        assert.are.equal(0, (helper.sh(("mkdir -p %s && cp %s %s/qemu-x86_64"):format(
            helper.quote(dir), helper.quote(file), helper.quote(dir)))))
        return dir
    end

    it("takes qemu-ARCH from PATH before QEMU_BUILD, and skips a statically linked one", function()
        local dynamic = fake_qemu_dir("/bin/true")
        local static = fake_qemu_dir(helper.guest("loop", "x86_64"))   -- a static x86_64 program
        local base = "/usr/bin:/bin"
        local build_env = "QEMU_BUILD=" .. helper.qemu_build()
        local status, qemu, err = picked(LAUNCHER, { "PATH=" .. dynamic .. ":" .. base, build_env })
        assert.are.equal(0, status, err)
        assert.are.equal(dynamic .. "/qemu-x86_64", qemu)
        status, qemu, err = picked(LAUNCHER, { "PATH=" .. static .. ":" .. base, build_env })
        assert.are.equal(0, status, err)
        assert.are.equal(helper.qemu_build() .. "/qemu-x86_64", qemu)
        status, qemu = picked(LAUNCHER, { "PATH=" .. static .. ":" .. dynamic .. ":" .. base })
        assert.are.equal(0, status)
        assert.are.equal(dynamic .. "/qemu-x86_64", qemu)
        -- --qemu wins over all
        status, qemu = picked(LAUNCHER, { "PATH=" .. dynamic .. ":" .. base },
            { "--qemu", helper.qemu_build() })
        assert.are.equal(0, status)
        assert.are.equal(helper.qemu_build() .. "/qemu-x86_64", qemu)
        os.execute("rm -rf " .. helper.quote(dynamic) .. " " .. helper.quote(static))
    end)

    it("says in one line what was tried and what to do when it finds no QEMU", function()
        local static = fake_qemu_dir(helper.guest("loop", "x86_64"))
        local status, qemu, err = picked(LAUNCHER, { "PATH=" .. static .. ":/usr/bin:/bin",
            "HOME=/nonexistent", "XDG_CACHE_HOME=", "LUAHOST_CACHE=" })
        assert.are.equal(2, status)
        assert.is_nil(qemu)
        assert.are.equal(("luahost: no qemu-x86_64 that can load plugins (%s/qemu-x86_64 in PATH is statically"
            .. " linked: it cannot load plugins; QEMU_BUILD not set; tools/setup has not built one): give --qemu"
            .. " DIR, or set QEMU_BUILD=DIR, DIR holding a qemu-x86_64 built with --enable-plugins"
            .. " (tools/build-qemu builds one; see luahost --help, QEMU)\n"):format(static), err)
        os.execute("rm -rf " .. helper.quote(static))
    end)

    it("in a build directory, runs the QEMU it was configured with before PATH's", function()
        local dynamic = fake_qemu_dir("/bin/true")
        local status, qemu, err = picked(helper.build_launcher(), { "PATH=" .. dynamic .. ":/usr/bin:/bin" })
        assert.are.equal(0, status, err)
        assert.are.equal(helper.qemu_build() .. "/qemu-x86_64", qemu)
        os.execute("rm -rf " .. helper.quote(dynamic))
    end)
end)

describe("the luahost launcher, signalled", function()
    after_each(helper.cleanup)

    -- Starts the launcher in the background on a guest that runs for
    -- minutes, waits until QEMU runs it, sends sig to the launcher's
    -- process (or runs it under `timeout`), and returns the status the
    -- shell saw and the processes still running the guest (QEMU: none
    -- may be left). Job control (set -m) keeps SIGINT from being ignored,
    -- as it is in a background job otherwise, and env --default-signal
    -- SIGHUP, ignored when the suite runs under nohup. The processes are found
    -- with shell builtins alone: a tr and a grep per process took
    -- seconds a scan on a loaded machine, long enough for timeout(1) to
    -- end QEMU unseen. A launcher that outlives its signal has its state
    -- and signal masks, and each thread's, shown in the failure.
    local function signalled(sig, guest_cmd, timeout)
        local token = tostring(math.random(10 ^ 8, 10 ^ 9 - 1))
        local guest = guest_cmd:gsub("TOKEN", token)
        local script = ([=[
set -m
%s env --default-signal=INT,TERM,HUP %s -e '' -- %s </dev/null >/dev/null 2>&1 &
pid=$!
running() {   # the processes running QEMU on the guest
    local f args
    for f in /proc/[0-9]*/cmdline; do
        mapfile -d '' args <"$f" 2>/dev/null || continue
        if [[ ${args[0]##*/} == qemu-* && "${args[*]:1}" == *%s* ]]; then
            f=${f#/proc/}
            echo "${f%%/cmdline}"
        fi
    done
}
for i in $(seq 200); do [ -n "$(running)" ] && break; sleep 0.05; done
[ -n "$(running)" ] || echo "never ran"
%s
# at most 60 s: a launcher that outlives its signal fails the test, never hangs it
for i in $(seq 600); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then
    echo "hung: $(tr '\0' ' ' </proc/$pid/cmdline)"
    grep -E '^(State|SigQ|SigPnd|ShdPnd|SigBlk|SigIgn|SigCgt):' /proc/$pid/status
    for t in /proc/$pid/task/*; do
        echo "thread ${t##*/} $(cat $t/comm) wchan=$(cat $t/wchan)" $(grep -E '^(State|SigPnd|SigBlk):' $t/status)
    done
    kill -KILL $pid
fi
wait $pid
echo "status=$?"
echo "left=$(running | tr '\n' ' ')"
]=]):format(timeout and "timeout -s " .. sig .. " 1" or "", helper.quote(LAUNCHER), guest,
            token,
            timeout and "" or "kill -" .. sig .. " $pid")
        local path = helper.write(helper.tmpname(), script)
        local _, out = helper.sh("bash " .. helper.quote(path))
        local left = out:match("left=([%d ]*)") or ""
        for pid in left:gmatch("%d+") do     -- not left behind by the test either
            os.execute("kill -KILL " .. pid)
        end
        return tonumber(out:match("status=(%d+)")), left:match("%d") and left or nil, out
    end

    local loop = helper.guest("loop", "x86_64") .. " 9TOKEN"   -- billions of iterations: minutes

    for sig, n in pairs({ TERM = 15, INT = 2, HUP = 1, KILL = 9 }) do
        it("SIG" .. sig .. " to luahost ends QEMU, status 128+" .. n .. ", nothing left running", function()
            local status, left, out = signalled(sig, loop)
            assert.is_nil(out:match("never ran"), out)
            assert.are.equal(128 + n, status, out)
            assert.is_nil(left, out)
        end)
    end

    it("SIGTERM reaches a guest blocked in a syscall (sleep)", function()
        local status, left, out = signalled("TERM", "/bin/sleep 3600.TOKEN")
        assert.is_nil(out:match("never ran"), out)
        assert.are.equal(128 + 15, status, out)
        assert.is_nil(left, out)
    end)

    it("timeout(1) ends QEMU: status 124, nothing left running", function()
        local status, left, out = signalled("TERM", loop, true)
        assert.are.equal(124, status, out)
        assert.is_nil(left, out)
    end)
end)

describe("the luahost launcher without lua5.4", function()
    after_each(helper.cleanup)

    it("says it needs the lua5.4 interpreter and how to install it", function()
        local status, out, err = helper.sh("env PATH=/nonexistent /bin/sh " .. helper.quote(LAUNCHER) .. " --help")
        assert.are.equal(2, status)
        assert.are.equal("", out)
        assert.are.equal("luahost: needs the Lua 5.4 interpreter, lua5.4, which is not installed"
            .. " (Debian: apt-get install lua5.4)\n", err)
    end)
end)
