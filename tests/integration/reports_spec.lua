-- The exit report is written exactly once however the run ends: when the
-- guest closes its stdout and stderr, exits from another thread, crashes,
-- or QEMU is sent SIGINT, SIGTERM or SIGHUP (also by timeout(1)); and the
-- process ends with the status a shell expects. The guest is
-- tests/guests/ends.c; its output "ready" says it is running.
local helper = require("helper")

local SCRIPT = [[
local blocks = luahost.scoreboard()
luahost.on_tb_translate(function(tb) tb:inline("add", blocks, 1) end)
luahost.on_exit(function() luahost.printf("report: %d blocks\n", blocks:sum()) end)
]]

-- The shell command running QEMU on ends in MODE with the script; log
-- "plugin" means -d plugin with no -D (QEMU's log is its stderr).
local function qemu_cmd(arch, mode, extra)
    return ("%s -plugin %s -d plugin %s %s"):format(
        helper.quote(helper.qemu_build() .. "/qemu-" .. arch),
        helper.quote(helper.luahost_plugin(helper.lua_file(SCRIPT), extra)),
        helper.quote(helper.guest("ends", arch)), mode)
end

local function reports(text)
    local n = 0
    for _ in text:gmatch("report: %d+ blocks\n") do
        n = n + 1
    end
    return n
end

-- Starts QEMU on the waiting guest, sends sig once it runs; returns the
-- shell's status for it and what QEMU wrote on stderr.
local function killed_by(sig, arch)
    local out = helper.tmpname()
    -- env --default-signal: a background job of a non-interactive shell
    -- starts with SIGINT ignored, a suite started under nohup with SIGHUP
    -- ignored, and an ignored signal stays ignored (the test would hang).
    local status, _, stderr = helper.sh(([[
env --default-signal=INT,TERM,HUP %s >%s &
pid=$!
for i in $(seq 200); do grep -q ready %s && break; sleep 0.05; done
kill -%s $pid
wait $pid
]]):format(qemu_cmd(arch, "wait"), out, out, sig))
    return status, stderr
end

describe("the exit report", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("reaches QEMU's stderr log when the guest closed fds 1 and 2 (" .. arch .. ")", function()
            local status, _, stderr = helper.sh(qemu_cmd(arch, "close"))
            assert.are.equal(0, status, stderr)
            assert.are.equal(1, reports(stderr), stderr)
        end)

        it("reaches outfile= when the guest closed fds 1 and 2 (" .. arch .. ")", function()
            local outfile = helper.tmpname()
            local status, _, stderr = helper.sh(qemu_cmd(arch, "close", { "outfile=" .. outfile }))
            assert.are.equal(0, status, stderr)
            assert.are.equal(1, reports(helper.read(outfile)), helper.read(outfile))
        end)
    end

    it("is written once when the guest exits from a second thread #threads", function()
        local status, _, stderr = helper.sh(qemu_cmd("x86_64", "thread-exit"))
        assert.are.equal(3, status, stderr)
        assert.are.equal(1, reports(stderr), stderr)
    end)

    for _, case in ipairs({ { "segv", 128 + 11 }, { "abort", 128 + 6 } }) do
        it("is written when the guest dies of " .. case[1] .. ", and QEMU dies as the guest did", function()
            local status, _, stderr = helper.sh(qemu_cmd("x86_64", case[1]))
            assert.are.equal(case[2], status, stderr)
            assert.are.equal(1, reports(stderr), stderr)
        end)
    end

    for _, case in ipairs({ { "INT", 2 }, { "TERM", 15 }, { "HUP", 1 } }) do
        it("is written when QEMU is sent SIG" .. case[1] .. ", which then ends it", function()
            local status, stderr = killed_by(case[1], "x86_64")
            assert.are.equal(128 + case[2], status, stderr)
            assert.are.equal(1, reports(stderr), stderr)
        end)
    end

    it("is written when timeout(1) ends the run", function()
        local status, _, stderr = helper.sh("timeout 2 " .. qemu_cmd("aarch64", "wait"))
        assert.are.equal(124, status, stderr)
        assert.are.equal(1, reports(stderr), stderr)
    end)
end)

describe("exit hooks and reports", function()
    after_each(helper.cleanup)

    it("print an aggregation that an exit hook registered after it fills", function()
        local r = helper.run_lua("x86_64", [[
local agg = require("agg")
local late = agg.count("late")
luahost.on_exit(function() late:add("filled", 5) end)
]], helper.guest("ends", "x86_64"), { guest_args = { "none" }, status = 1 })
        assert.matches("@late[filled]: 5\n", r.report, 1, true)
    end)

    it("do not run for a script that failed to load", function()
        local script = helper.lua_file([[
luahost.on_exit(function() luahost.warn("exit hook ran") end)
luahost.on_report(function() luahost.warn("report hook ran") end)
error("refused")
]])
        local status, _, stderr = helper.sh(("%s -plugin %s %s"):format(
            helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(helper.luahost_plugin(script)),
            helper.quote(helper.guest("ends", "x86_64"))))
        assert.are_not.equal(0, status)
        assert.matches("refused", stderr, 1, true)
        assert.is_falsy(stderr:find("hook ran", 1, true), stderr)
    end)
end)

-- A forked child and an exec. modfork prints the pids of both processes.
describe("a process's report", function()
    after_each(helper.cleanup)

    local SCRIPT_PIDS = [[
luahost.printf("start\n")
luahost.on_exit(function() luahost.printf("exit pid=%d\n", luahost.pid()) end)
]]

    local function pids(stdout)
        local child, parent = stdout:match("child pid=(%d+)"), stdout:match("parent pid=(%d+)")
        assert.is_truthy(child and parent, stdout)
        return tonumber(child), tonumber(parent)
    end

    it("is written by the parent and the forked child once each, what came before the fork once", function()
        local outfile = helper.tmpname()
        local plugin = helper.luahost_plugin(helper.lua_file(SCRIPT_PIDS), { "outfile=" .. outfile })
        local r = helper.qemu("x86_64", { plugin }, helper.modules_guest("modfork-x86_64"), { "10" })
        assert.are.equal(0, r.status, r.stderr)
        local child, parent = pids(r.stdout)
        local report = helper.read(outfile)
        local _, starts = report:gsub("start\n", "")
        assert.are.equal(1, starts, report)
        assert.matches(("exit pid=%d\n"):format(child), report, 1, true)
        assert.matches(("exit pid=%d\n"):format(parent), report, 1, true)
    end)

    it("goes to a file per process with outfile=NAME.%p", function()
        local base = helper.tmpname()
        local r = helper.qemu("x86_64", { helper.luahost_plugin(helper.lua_file(SCRIPT_PIDS),
            { "outfile=" .. base .. ".%p" }) }, helper.modules_guest("modfork-x86_64"), { "10" })
        assert.are.equal(0, r.status, r.stderr)
        local child, parent = pids(r.stdout)
        local of_parent, of_child = helper.read(base .. "." .. parent), helper.read(base .. "." .. child)
        os.remove(base .. "." .. parent)
        os.remove(base .. "." .. child)
        assert.are.equal(("start\nexit pid=%d\n"):format(parent), of_parent)
        assert.are.equal(("exit pid=%d\n"):format(child), of_child)
    end)

    it("is written at the exec by a process that execs another program, which a notice says", function()
        local script = helper.lua_file('luahost.on_exit(function() luahost.warn("exit hook ran") end)')
        local status, _, stderr = helper.sh(("%s -plugin %s /bin/sh -c 'exec /bin/true'"):format(
            helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(helper.luahost_plugin(script))))
        assert.are.equal(0, status, stderr)
        local _, ran = stderr:gsub("luahost: warning: exit hook ran\n", "")
        assert.are.equal(1, ran, stderr)
        local _, notices = stderr:gsub("execs /bin/true, which runs without luahost", "")
        assert.are.equal(1, notices, stderr)
        assert.is_truthy(stderr:find("exit hook ran\n.*execs /bin/true"),
            "the notice comes after the report: " .. stderr)
    end)
end)

describe("interval hooks", function()
    after_each(helper.cleanup)

    -- Not tagged #threads, though the interval thread is one: these end
    -- QEMU with a signal while it runs guest code, and ThreadSanitizer
    -- holds a signal back until the thread next calls a function it
    -- wraps, which translated code never does (the run would hang).
    it("run every N seconds while the guest runs, and not after the exit hooks start", function()
        local script = helper.lua_file([[
local n = 0
luahost.on_interval(0.1, function() n = n + 1; luahost.printf("tick %d\n", n) end)
luahost.on_exit(function() luahost.printf("ticks %d\n", n) end)
]])
        local status, _, stderr = helper.sh(("timeout 1.5 %s -plugin %s -d plugin %s wait"):format(
            helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(helper.luahost_plugin(script)),
            helper.quote(helper.guest("ends", "x86_64"))))
        assert.are.equal(124, status, stderr)
        local ticks = tonumber(stderr:match("ticks (%d+)\n"))
        assert.is_truthy(ticks, stderr)
        -- about 14 in 1.5 s; a loaded machine may run fewer, never none
        assert.is_true(ticks >= 2, stderr)
        local _, printed = stderr:gsub("tick %d+\n", "")
        assert.are.equal(ticks, printed, "each tick printed once, none after the exit hooks: " .. stderr)
        assert.is_truthy(stderr:find(("tick %d\nticks %d\n"):format(ticks, ticks), 1, true), stderr)
    end)

    it("run on a thread that takes no signal: one sent to it stays pending", function()
        -- A signal the kernel gave the interval thread ran QEMU's handler
        -- there, with no vCPU: a null dereference, and no report. tgkill
        -- sends SIGTERM to that thread alone; then kill to the process.
        local script = helper.lua_file([[
luahost.on_interval(0.05, function() end)
luahost.on_exit(function() luahost.printf("report\n") end)
]])
        local out = helper.tmpname()
        local status, _, stderr = helper.sh(([[
env --default-signal=INT,TERM,HUP %s -plugin %s -d plugin %s wait >%s &
pid=$!
for i in $(seq 200); do grep -q ready %s && break; sleep 0.05; done
for t in /proc/$pid/task/*; do
    if [ "$(cat $t/comm)" = luahost-ticks ]; then
        python3 -c 'import ctypes, sys; ctypes.CDLL(None).syscall(234, int(sys.argv[1]), int(sys.argv[2]), 15)' \
            $pid "${t##*/}"
    fi
done
sleep 0.3
kill -TERM $pid
wait $pid
]]):format(helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(helper.luahost_plugin(script)),
            helper.quote(helper.guest("ends", "x86_64")), out, out))
        assert.are.equal(128 + 15, status, stderr)
        assert.are.equal(1, select(2, stderr:gsub("report\n", "")), stderr)
    end)

    it("refuse a period out of range, naming the line", function()
        local r = helper.run_lua("x86_64", "luahost.on_interval(0, function() end)", helper.guest("ends", "x86_64"),
            { guest_args = { "none" }, status = false })
        assert.are_not.equal(0, r.status)
        assert.matches(":1: bad argument #1 to 'on_interval' %(interval must be 0.01 to 86400 seconds%)", r.stderr)
    end)
end)
