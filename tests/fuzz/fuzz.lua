-- The fuzzer: random and mutated plugin arguments for the host and every
-- port, and scripts made of random API calls in random places, each run
-- under real QEMU on a small guest. A run may fail (a bad argument, an
-- error in a hook): that is the point. What must never happen is a crash
-- (QEMU killed by a signal, "QEMU internal SIGSEGV"), a hang, a failure
-- without a message, or "error in error handling". The first such case
-- is written out as a reproducer (a shell command and its script) and
-- the fuzzer fails; add it to the catalogue once fixed.
--
--     lua5.4 tests/fuzz/fuzz.lua [SECONDS [SEED]]
--
-- Run by the fuzz suite with the environment the specs get (LUAHOST_PLUGIN,
-- QEMU_BUILD, GUEST_DIR, ...); SECONDS (default 60) bounds the time,
-- SEED (default: the time) makes a run repeatable: the seed is printed.
package.path = (os.getenv("LUAHOST_SOURCE_ROOT") or ".") .. "/tests/?.lua;" .. package.path
local helper = require("helper")

local budget = tonumber(arg[1]) or 60
local seed = tonumber(arg[2]) or os.time()
math.randomseed(seed)

local ARCH = "x86_64"
local GUEST = helper.guest("loop", ARCH)
local TIMEOUT = 30        -- seconds for one case: the guest runs in well under one

local function pick(list)
    return list[math.random(#list)]
end

-- What no run may show, whatever its input.
local FORBIDDEN = {
    "QEMU internal SIG", "Segmentation fault", "core dumped", "Aborted", "error in error handling",
    "stack smashing", "AddressSanitizer", "runtime error:", "double free", "malloc(): ", "free(): ",
    "Assertion", "GLib-CRITICAL", "GLib-ERROR",
}

-- nil if the outcome of a case is acceptable, else what is wrong.
local function judge(status, stderr)
    if status == 124 or status == 137 then
        return ("hang: no end within %d seconds"):format(TIMEOUT)
    elseif status > 128 then
        return ("QEMU killed by signal %d"):format(status - 128)
    end
    for _, text in ipairs(FORBIDDEN) do
        if stderr:find(text, 1, true) then
            return "stderr shows " .. text
        end
    end
    if status ~= 0 and not stderr:find("luahost: ", 1, true) and not stderr:find("qemu%-x86_64: ") then
        return ("exit status %d without a message"):format(status)
    end
    return nil
end

-- Runs QEMU with one -plugin argument; returns status, stderr.
local function run(plugin_arg)
    local cmd = ("timeout -k 5 %d %s -plugin %s -d plugin %s 20 </dev/null"):format(TIMEOUT,
        helper.quote(helper.qemu_build() .. "/qemu-" .. ARCH), helper.quote(plugin_arg), helper.quote(GUEST))
    local status, _, stderr = helper.sh(cmd)
    return status, stderr or "", cmd
end

-- Argument values: typical, boundary and hostile.
local VALUES = {
    "", "0", "1", "-1", "7", "64", "0x10", "0x", "010", "1e3", "1.5", "nan", "inf", "-0",
    "9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
    "99999999999999999999", "-9223372036854775809", "0xffffffffffffffff", "0x10000000000000000",
    "on", "off", "yes", "no", "true", "false", "maybe", "x", "rax", "*", "?", "[", "%", "%p", "%s%s%s",
    "main", "main+0x10", "libc.so.6!malloc", "nope!nope", "+", "!", "a=b", "==", ("A"):rep(5000),
    "\1\2\3", "é", "/dev/null", "/nonexistent/x", "/proc/self/mem", ".", "..", "/",
}

local HOST_NAMES = { "script", "e", "outfile", "on_error", "stats", "symbols", "follow" }

-- The option names a port knows, from its own refusal of an unknown one.
local function port_options(script)
    local _, stderr = run(helper.plugin() .. ",script=" .. script .. ",fuzz_no_such_option=1")
    local names = {}
    for name in (stderr:match("known options: ([^)\n]*)") or ""):gmatch("[%w_]+") do
        names[#names + 1] = name
    end
    return names
end

local function mutate(text)
    local ops = {
        function(s)
            local i = math.random(#s + 1)
            return s:sub(1, i - 1) .. string.char(math.random(32, 126)) .. s:sub(i)
        end,
        function(s)
            local i = math.random(math.max(#s, 1))
            return s:sub(1, i - 1) .. s:sub(i + 1)
        end,
        function(s) return s .. s end,
        function(s) return s:gsub("%d", function() return tostring(math.random(0, 9)) end) end,
        function(s) return s .. "," .. pick(VALUES) end,
    }
    for _ = 1, math.random(3) do
        text = pick(ops)(text)
    end
    return text
end

-- One plugin argument string for a port (or e= code) with random pieces.
local function argument_case(ports)
    local port = pick(ports)
    local pieces = { helper.plugin(), "script=" .. port.path }
    for _ = 1, math.random(0, 4) do
        local names = math.random() < 0.8 and port.options or HOST_NAMES
        local name = #names > 0 and pick(names) or pick(HOST_NAMES)
        local value = pick(VALUES)
        if name == "script" or name == "e" then
            value = pick({ port.path, "", "/dev/null", "/nonexistent", "luahost.on_exit(print)" })
        elseif name == "outfile" then
            value = pick({ "/dev/null", "/nonexistent/x", "", "/dev/full" })
        end
        pieces[#pieces + 1] = name .. "=" .. value
    end
    local text = table.concat(pieces, ",", 2)
    if math.random() < 0.3 then
        text = mutate(text)
    end
    return pieces[1] .. "," .. text
end

-- Lua expressions for API arguments; H holds handles saved in hooks.
local EXPRS = {
    "nil", "true", "false", "0", "1", "-1", "7", "64", "65", "4096", "math.maxinteger", "math.mininteger",
    "2^63", "2^64", "1/0", "-1/0", "0/0", "0.5", "''", "'x'", "'rax'", "'main'", "'add'", "'r'", "'rw'",
    "('a'):rep(70000)", "{}", "{1, 2}", "{'a', 'b'}", "{ 'f' }", "function() end",
    "function() error('fuzz') end", "function() error({}) end", "function() error(io.stdout) end",
    "io.stdout", "coroutine.create(function() end)", "print", "string.rep",
    "setmetatable({}, { __tostring = function() error('x') end })",
    "setmetatable({}, { __index = function() error('idx') end })",
    "H.tb", "H.insn", "H.mem", "H.board", "H.entry", "H.stream", "H.reg", "H.hwaddr", "H.mix",
}

local API = {
    "on_exit", "on_report", "on_interval", "on_vcpu_init", "on_vcpu_exit", "on_vcpu_idle", "on_vcpu_resume",
    "on_tb_translate", "on_flush", "on_syscall", "on_syscall_return", "on_discontinuity", "on_module",
    "has", "scoreboard", "stream", "outs", "printf", "warn", "pid", "num_vcpus", "read_memory",
    "write_memory", "read_memory_hwaddr", "write_memory_hwaddr", "translate_vaddr", "path_to_binary",
    "start_code", "end_code", "entry_code", "modules", "module_at", "symbolize", "resolve", "describe",
    "parse_location", "modules_generation", "line_table", "count_blocks", "block_counts",
    "registers", "request_time_control", "vcpu_for_each", "insn_mix",
    "usage_error", "args", "reset", "uninstall",
}

local METHODS = {
    tb = { "vaddr", "n_insns", "insn", "insns", "inline", "on_exec", "on_exec_if" },
    insn = { "vaddr", "size", "data", "opcode", "disas", "symbol", "qemu_symbol", "haddr", "groups", "inline",
             "mem_inline", "on_exec", "on_exec_if", "on_mem", "on_access" },
    mem = { "size", "size_shift", "is_store", "is_big_endian", "is_sign_extended", "vaddr", "value", "hwaddr" },
    board = { "find", "get", "set", "add", "sum" },
    entry = { "get", "set", "add", "sum" },
    stream = { "exec", "mem", "insns", "insn", "numbered", "flush", "coalesced" },
    reg = { "read", "write" },
    hwaddr = { "is_io", "phys_addr", "device_name" },
    mix = { "count", "encodings" },
}

local function args_list()
    local n = math.random(0, 4)
    local list = {}
    for i = 1, n do
        list[i] = pick(EXPRS)
    end
    return table.concat(list, ", ")
end

-- One random statement, maybe saving what it gets as a handle.
local function statement(context)
    local r = math.random()
    local call
    if r < 0.45 then
        local fn = pick(API)
        call = ("luahost.%s(%s)"):format(fn, args_list())
        if fn == "scoreboard" then
            call = "H.board = " .. call .. "; H.entry = H.board and (H.board.f or H.board)"
        elseif fn == "registers" then
            call = "local regs = " .. call .. "; H.reg = regs and regs[1]"
        elseif fn == "insn_mix" then
            call = "H.mix = " .. call
        end
    elseif r < 0.85 then
        local kind = pick({ "tb", "insn", "mem", "board", "entry", "stream", "reg", "hwaddr", "mix" })
        local target = "H." .. kind
        if context == "tb" and kind == "tb" then
            target = "tb"
        end
        call = ("if %s then %s:%s(%s) end"):format(target, target, pick(METHODS[kind]), args_list())
    else
        call = pick({
            "H.tb = tb", "H.insn = tb and tb:insn(1)", "H.mem = mem", "H.hwaddr = mem and mem:hwaddr()",
            "collectgarbage()", "H.stream = luahost.stream({ capacity = 16, on_batch = function() end })",
            "H.mix = luahost.insn_mix(function(insn) return H.entry end)",
            "H.mix = luahost.insn_mix(function(insn) return { H.entry, H.entry } end, { key = 'groups' })",
            "local s = ('x'):rep(1000):gsub('x', function(c) return c end)",
        })
        if context ~= "tb" and call:find("tb", 1, true) and not call:find("H.tb", 1, true) then
            call = "H.tb = H.tb"
        end
    end
    if math.random() < 0.85 then      -- most errors caught: later calls run too
        return "pcall(function() " .. call .. " end)"
    end
    return call
end

local function block(context, n)
    local lines = {}
    for i = 1, n do
        lines[i] = "    " .. statement(context)
    end
    return table.concat(lines, "\n")
end

-- A script: statements in the main chunk, a translation hook, an exec
-- and a memory callback it registers, and the exit hook. The hook runs
-- its statements for the first 40 blocks, the callbacks for their first
-- 1,000 calls: a statement that costs milliseconds (a 70,000-byte
-- argument parsed) on every event took a case past the time that marks
-- a hang on a loaded machine, with nothing wrong.
local function api_script()
    return table.concat({
        "H = {}",
        block("main", math.random(0, 3)),
        "local done, calls = 0, 0",
        "luahost.on_tb_translate(function(tb)",
        "    done = done + 1",
        "    if done > 40 then return end",
        block("tb", math.random(1, 4)),
        "    local insn = tb:insn(1)",
        "    insn:on_exec(function(vcpu)",
        "        calls = calls + 1",
        "        if calls > 1000 then return end",
        block("exec", math.random(0, 2)),
        "    end)",
        "    insn:on_mem(function(vcpu, mem, addr)",
        "        H.mem = mem",
        "        calls = calls + 1",
        "        if calls > 1000 then return end",
        block("mem", math.random(0, 2)),
        "    end)",
        "end)",
        "luahost.on_exit(function()",
        block("exit", math.random(0, 3)),
        "end)",
    }, "\n") .. "\n"
end

-- Scripts whose right behaviour, on some arguments, is to wait: a hang
-- there is no bug (their own specs test them).
local WAITS = {
    ["lockstep.lua"] = "with a free sockpath= it listens for its peer QEMU, as lockstep.c does",
}

local function ports()
    local list = {}
    for _, dir in ipairs({ "scripts", "examples" }) do
        local p = io.popen("ls " .. helper.quote(helper.source_root .. "/" .. dir) .. "/*.lua")
        for path in p:lines() do
            local name = path:match("[^/]*$")
            if WAITS[name] then
                print(("fuzz: %s left out: %s"):format(name, WAITS[name]))
            else
                list[#list + 1] = { path = path }
            end
        end
        p:close()
    end
    for _, port in ipairs(list) do
        port.options = port_options(port.path)
    end
    return list
end

-- Where a failing case is written: FUZZ_OUT (default .)/fuzz-failure-SEED.
local base = ("%s/fuzz-failure-%d"):format(os.getenv("FUZZ_OUT") or ".", seed)

local function report_failure(kind, what, cmd, script)
    if script then
        helper.write(base .. ".lua", script)
    end
    helper.write(base .. ".sh", cmd .. "\n")
    print(("FAIL (%s case, seed %d): %s"):format(kind, seed, what))
    print("  reproduce: sh " .. base .. ".sh" .. (script and ("  (script " .. base .. ".lua)") or ""))
end

print(("fuzz: seed %d, %d seconds"):format(seed, budget))
local started = os.time()
local port_list = ports()
local counts = { args = 0, api = 0 }
local statuses = {}
while os.time() - started < budget do
    local kind = math.random() < 0.4 and "args" or "api"
    local plugin_arg, script
    if kind == "args" then
        plugin_arg = argument_case(port_list)
    else
        script = api_script()
        local path = helper.lua_file(script)
        plugin_arg = helper.plugin() .. ",script=" .. path .. "," .. pick({ "on_error=abort", "on_error=disable" })
    end
    local status, stderr, cmd = run(plugin_arg)
    counts[kind] = counts[kind] + 1
    statuses[status] = (statuses[status] or 0) + 1
    local wrong = judge(status, stderr)
    if wrong then
        if script then
            local path = plugin_arg:match("script=([^,]*)")
            cmd = cmd:gsub(path:gsub("%p", "%%%0"), (base .. ".lua"):gsub("%%", "%%%%"))
        end
        report_failure(kind, wrong .. "\n" .. stderr:sub(1, 2000), cmd, script)
        helper.cleanup()
        os.exit(1)
    end
    helper.cleanup()
end
local seen = {}
for status, n in pairs(statuses) do
    seen[#seen + 1] = ("%d x%d"):format(status, n)
end
table.sort(seen)
print(("fuzz: %d argument cases, %d API scripts, no crash, hang or silent failure (exit statuses: %s)")
    :format(counts.args, counts.api, table.concat(seen, ", ")))
