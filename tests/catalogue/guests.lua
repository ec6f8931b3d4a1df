-- Hostile guests: programs that close their stdio, die of a signal, exit
-- from a thread, get killed, run 8 threads through callbacks that read
-- registers and memory, or fork. Whatever the guest does, the exit report
-- is written once, errors are reported once, and the status is defined:
-- the guest's, 1 after a callback error, 128 + N when QEMU ends by the
-- guest's signal (as the guest would).
local lib = require("catalogue.lib")

-- Counts executed blocks, reports at exit.
local REPORT = [[
local n = 0
luahost.on_tb_translate(function(tb) tb:on_exec(function() n = n + 1 end) end)
luahost.on_exit(function() luahost.printf("report: %d blocks run\n", n) end)
]]
local REPORTED = { pattern = "^report: %d+ blocks run\n$" }

local function uncaught(signal, name)
    return ("qemu: uncaught target signal %d (%s) - core dumped\n"):format(signal, name)
end

local cases = {}
for _, arch in ipairs({ "x86_64", "aarch64" }) do
    local function case(c)
        c.name, c.arch = c.name .. " (" .. arch .. ")", arch
        cases[#cases + 1] = c
    end
    case({ name = "closes stdout and stderr, then exits 0", source = REPORT, guest = "ends", guest_args = { "close" },
        status = 0, log = { REPORTED }, stderr_is = "" })
    case({ name = "dies of SIGSEGV", source = REPORT, guest = "ends", guest_args = { "segv" }, signal = 11,
        log = { REPORTED }, stderr_is = uncaught(11, "Segmentation fault") })
    case({ name = "calls abort()", source = REPORT, guest = "ends", guest_args = { "abort" }, signal = 6,
        log = { REPORTED }, stderr_is = uncaught(6, "Aborted") })
    case({ name = "exits 3 from a second thread", source = REPORT, guest = "ends", guest_args = { "thread-exit" },
        status = 3, log = { REPORTED }, stderr_is = "" })
    case({ name = "dies of SIGSEGV after a callback error under on_error=disable: 128 + 11 wins",
        source = REPORT .. "luahost.on_vcpu_init(function() error('init failed') end)\n", guest = "ends",
        guest_args = { "segv" }, args = { "on_error=disable" }, signal = 11, log = { REPORTED },
        stderr = { "luahost: 1 callback error(s) in this run (on_error=disable); the guest dies of a signal, and "
            .. "QEMU ends with its status\n" } })
end

-- Killed by a signal sent to QEMU: the exit hooks run, QEMU ends by it.
for _, sig in ipairs({ { "TERM", 15 }, { "INT", 2 }, { "HUP", 1 } }) do
    cases[#cases + 1] = { name = "killed with SIG" .. sig[1] .. " while it loops", source = REPORT, guest = "ends",
        guest_args = { "wait" }, send = { sig[1], "0.3" }, signal = sig[2], log = { REPORTED }, stdout = { "ready\n" } }
end

-- After closing fds 1 and 2, errors still reach QEMU's stderr.
cases[#cases + 1] = { name = "closes stderr, then an exit hook fails", guest = "ends", guest_args = { "close" },
    source = "luahost.on_exit(function()\n    error('report failed')\nend)\n",
    stderr = lib.aborted("exit hook", "SCRIPT:2: report failed") }
cases[#cases + 1] = { name = "closes stderr, on_error=disable: the summary still printed", guest = "ends",
    guest_args = { "close" }, args = { "on_error=disable" }, log = { "report ran\n" },
    source = "luahost.on_syscall(function(vcpu, num)\n    if num == 3 or num == 57 then error('at close') end\nend)\n"
        .. "luahost.on_exit(function() luahost.outs('report ran\\n') end)\n",
    stderr = lib.disabled("syscall hook", "SCRIPT:2: at close") }
-- 8 threads at once through callbacks that read registers. (Not guest
-- memory: luahost.read_memory in a callback, under the host's lock, waits
-- for QEMU's mmap_lock, which a thread translating holds while it waits
-- for the host's lock: a known deadlock.)
local THREADS = [[
local calls, regs = 0, nil
luahost.on_vcpu_init(function() regs = regs or luahost.registers() end)
luahost.on_tb_translate(function(tb)
    tb:on_exec(function(vcpu)
        calls = calls + 1
        assert(regs[1]:read())
        if vcpu > 0 and calls > 2000 then
            error("fails on a thread")
        end
    end, nil, "r")
end)
luahost.on_exit(function() luahost.printf("calls=%d\n", calls) end)
]]
for _, arch in ipairs({ "x86_64", "aarch64" }) do
    cases[#cases + 1] = { name = "8 threads reading registers, one fails, abort (" .. arch .. ")",
        arch = arch, source = THREADS, guest = "threads", guest_args = { "8", "2000" },
        stderr = lib.aborted("tb exec callback", "SCRIPT:8: fails on a thread"), once = { "error in " },
        no_log = { "calls=" } }
    cases[#cases + 1] = { name = "8 threads reading registers, all fail, disable (" .. arch .. ")",
        arch = arch, source = THREADS, guest = "threads", guest_args = { "8", "2000" }, args = { "on_error=disable" },
        stderr = lib.disabled("tb exec callback", "SCRIPT:8: fails on a thread"), once = { "error in " },
        log = { { pattern = "^calls=%d+\n$" } }, stdout = { "threads=8\n" } }
end
cases[#cases + 1] = { name = "8 threads, each vcpu init hook fails, disable: reported once", guest = "threads",
    guest_args = { "8", "100" }, args = { "on_error=disable" }, once = { "error in " }, stdout = { "threads=8\n" },
    source = "luahost.on_vcpu_init(function(vcpu)\n    error('init ' .. vcpu)\nend)\n",
    stderr = lib.disabled("vcpu init hook", "SCRIPT:2: init 0") }
cases[#cases + 1] = { name = "8 threads, a stream's on_batch fails on a thread, disable", guest = "threads",
    guest_args = { "8", "2000" }, args = { "on_error=disable" }, once = { "error in " }, log = { "report ran\n" },
    source = [[
local s = luahost.stream { capacity = 64, on_batch = function(vcpu, batch)
    if vcpu > 0 then error("batch on a thread") end
end }
luahost.on_tb_translate(function(tb) s:exec(tb) end)
luahost.on_exit(function() luahost.outs("report ran\n") end)
]], stderr = lib.disabled("stream batch callback", "SCRIPT:2: batch on a thread") }
cases[#cases + 1] = { name = "8 threads, luahost.exit(7) from a thread's callback", guest = "threads",
    guest_args = { "8", "100000" }, status = 7, stderr_is = "", log = { "exit hook ran\n" }, source = [[
luahost.on_tb_translate(function(tb)
    tb:on_exec(function(vcpu)
        if vcpu > 3 then luahost.exit(7) end
    end)
end)
luahost.on_exit(function() luahost.outs("exit hook ran\n") end)
]] }
cases[#cases + 1] = { name = "8 threads, luahost.uninstall from a thread's callback", guest = "threads",
    guest_args = { "8", "2000" }, status = 0, stderr_is = "", log = { "uninstalled\n" }, stdout = { "threads=8\n" },
    source = [[
local asked = false
luahost.on_tb_translate(function(tb)
    tb:on_exec(function(vcpu)
        if vcpu > 0 and not asked then
            asked = true
            luahost.uninstall(function() luahost.outs("uninstalled\n") end)
        end
    end)
end)
]] }

-- fork: the child inherits the script; its error is its own.
local FORK = [[
local parent = luahost.pid()
local n = 0
luahost.on_tb_translate(function(tb)
    tb:on_exec(function(vcpu)
        n = n + 1
        if luahost.pid() ~= parent then error("fails in the child") end
    end)
end)
luahost.on_exit(function() luahost.printf("report of the %s\n", luahost.pid() == parent and "parent" or "child") end)
]]
for _, arch in ipairs({ "x86_64", "aarch64" }) do
    cases[#cases + 1] = { name = "fork, the child's callback fails, abort (" .. arch .. ")", arch = arch,
        guest = "modules/modfork", guest_args = {}, source = FORK, once = { "error in " },
        stderr = { "luahost: error in tb exec callback: SCRIPT:6: fails in the child\nstack traceback:\n",
            "\nluahost: stopping emulation (on_error=abort); exit hooks are not run\n", "modfork: the child failed\n" },
        log = { "report of the parent\n" }, no_log = { "report of the child" } }
    cases[#cases + 1] = { name = "fork, the child's callback fails, disable (" .. arch .. ")", arch = arch,
        guest = "modules/modfork", guest_args = {}, source = FORK, args = { "on_error=disable" },
        once = { "error in " },
        stderr = { "luahost: error in tb exec callback: SCRIPT:6: fails in the child\nstack traceback:\n",
            "\nluahost: this tb exec callback is disabled (on_error=disable); the exit status will be 1\n",
            "luahost: 1 callback error(s) in this run (on_error=disable): exit status 1\n",
            "modfork: the child failed\n" },
        log = { "report of the child\n", "report of the parent\n" } }
end
return cases
