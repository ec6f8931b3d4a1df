-- Misuse of the API: wrong types, calls in the wrong place, handles kept
-- past their callback, values out of range. Each is one call, unprotected,
-- in one context: in the main chunk it refuses the plugin, in a hook it
-- is that hook's error (on_error=abort); either way at the script's line.
local lib = require("catalogue.lib")

-- Every script starts with these: handles and values the cases misuse.
local PREAMBLE = [[
local entry = luahost.scoreboard()
local board = luahost.scoreboard { "a" }
local kept = {}
local fn = function() end
local stream = luahost.stream { capacity = 8, on_batch = function(vcpu, batch) kept.batch = batch end }
luahost.on_vcpu_init(function() kept.regs = luahost.registers() end)
luahost.on_tb_translate(function(tb)
    kept.tb = kept.tb or tb
    kept.insn = kept.insn or tb:insn(1)
    kept.insns = kept.insns or tb:insns()
    stream:exec(tb)
    tb:insn(1):on_mem(function(vcpu, mem) kept.mem = kept.mem or mem end)
end)
]]

-- Where the call is made: the hook's name in messages, and the code
-- around it (CODE: the call, on a line of its own).
local CONTEXTS = {
    main = { nil, "CODE\n" },
    tb = { "tb translation hook", "luahost.on_tb_translate(function(tb)\n    CODE\nend)\n" },
    insn = { "tb translation hook",
        "luahost.on_tb_translate(function(tb)\n    local insn = tb:insn(1)\n    CODE\nend)\n" },
    mem = { "memory callback", "luahost.on_tb_translate(function(tb)\n"
        .. "    tb:insn(1):on_mem(function(vcpu, mem, vaddr)\n        CODE\n    end)\nend)\n" },
    exec = { "tb exec callback", "luahost.on_tb_translate(function(tb)\n    tb:on_exec(function(vcpu)\n        CODE\n"
        .. "    end)\nend)\n" },
    syscall = { "syscall hook", "luahost.on_syscall(function(vcpu, num)\n    CODE\nend)\n" },
    batch = { "stream batch callback", "local s2 = luahost.stream { on_batch = function(vcpu, batch)\n    CODE\nend }\n"
        .. "luahost.on_tb_translate(function(tb) s2:exec(tb) end)\n" },
    exit = { "exit hook", "luahost.on_exit(function()\n    CODE\nend)\n" },
    interval = { "interval hook", "luahost.on_interval(0.01, function()\n    CODE\nend)\n" },
}

local cases = {}

-- code called in context fails with message (after "SCRIPT:LINE: "), or
-- { Lua 5.4's, LuaJIT's }.
local function misuse(context, code, message, name)
    local what, template = CONTEXTS[context][1], CONTEXTS[context][2]
    local source = PREAMBLE .. template:gsub("CODE", function() return code end)
    local line = select(2, PREAMBLE:gsub("\n", "")) + select(2, template:match("^(.-)CODE"):gsub("\n", "")) + 1
    local case = { name = context .. ": " .. (name or code), source = source,
        guest_args = context == "interval" and { "5000000" } or nil }
    local function expect(c, text)
        text = "SCRIPT:" .. line .. ": " .. text
        if what then
            c.status, c.stderr, c.once = 1, lib.aborted(what, text), { "error in " }
        else
            lib.refused_with_traceback(text, { "\tSCRIPT:" .. line .. ": in main chunk\n" }, c)
        end
        return c
    end
    if type(message) == "table" then
        case.luajit = expect({}, message[2])
        message = message[1]
    end
    cases[#cases + 1] = expect(case, message)
end

local INT = { "number expected", "integer expected" }
local function int_expected(head, tail)
    return { head .. INT[1] .. tail, head .. INT[2] .. tail }
end
local NOT_INT = { "number has no integer representation", "number is not an exact unsigned 64-bit integer" }
local function not_int(head)
    return { head .. NOT_INT[1] .. ")", head .. NOT_INT[2] .. ")" }
end
local function foreign(head, expected, given)
    return { head .. expected .. " expected, got " .. given .. ")", head .. expected .. " expected, got userdata)" }
end
local NEEDS_VCPU = " needs a vCPU: call it from a callback that runs on a vCPU (translation, execution, memory, "
    .. "syscall or vcpu init), not from "
local OLDER = " or later; this luahost was built against an older qemu-plugin.h (API 4)"

-- What the qemu-plugin.h of this build has (QEMU 10.0's, or 10.2's).
local function header_has(symbol)
    local f = io.open((os.getenv("QEMU_INCLUDE") or "") .. "/qemu-plugin.h")
    local text = f and f:read("a") or ""
    if f then
        f:close()
    end
    return text:find(symbol, 1, true) ~= nil
end
local API5 = header_has("qemu_plugin_write_register")
local DISCON = header_has("qemu_plugin_register_vcpu_discon_cb")

-- hooks and the API's functions, given what they do not take
misuse("main", "luahost.on_syscall(42)", "luahost.on_syscall expects a function, got number")
misuse("main", "luahost.on_syscall_return('x')", "luahost.on_syscall_return expects a function, got string")
misuse("main", "luahost.on_tb_translate({})", "luahost.on_tb_translate expects a function, got table")
misuse("main", "luahost.on_vcpu_init(true)", "luahost.on_vcpu_init expects a function, got boolean")
misuse("main", "luahost.on_flush()", "luahost.on_flush expects a function, got nil")
misuse("main", "luahost.on_module(42)", "luahost.on_module expects a function, got number")
misuse("main", "luahost.on_interval('x', fn)", "luahost.on_interval expects a number of seconds, got string")
misuse("main", "luahost.on_interval(1, nil)", "luahost.on_interval expects a function, got nil")
misuse("main", "luahost.on_interval(0, fn)",
    "bad argument #1 to 'on_interval' (interval must be 0.01 to 86400 seconds)")
misuse("main", "luahost.on_interval(1e9, fn)",
    "bad argument #1 to 'on_interval' (interval must be 0.01 to 86400 seconds)")
-- functions of newer QEMUs: refused by a build for 10.0, in the wrong place on 10.2
if not DISCON then
    misuse("main", "luahost.on_discontinuity(fn)", "luahost.on_discontinuity needs QEMU 10.2" .. OLDER)
end
for _, call in ipairs({ "write_memory(0, 'x')", "translate_vaddr(0)", "read_memory_hwaddr(0, 4)" }) do
    local name = call:match("^[%w_]+")
    misuse("main", "luahost." .. call, API5 and ("luahost." .. name .. NEEDS_VCPU .. "the main chunk")
        or ("luahost." .. name .. " needs QEMU 10.1" .. OLDER))
end
misuse("main", "luahost.vcpu_for_each(nil)", "luahost.vcpu_for_each expects a function, got nil")
misuse("main", "luahost.has(42)", "luahost.has expects a feature name, got number")
misuse("main", "luahost.outs(42)", "luahost.outs expects a string, got number")
misuse("main", "luahost.printf('%d', 'x')", { "luahost.printf: bad argument #2 to 'string.format' (number expected, "
    .. "got string)", "luahost.printf: bad argument #2 to '?' (number expected, got string)" })
misuse("main", "luahost.symbolize(nil)", int_expected("bad argument #1 to 'symbolize' (", ", got nil)"))
misuse("main", "luahost.module_at('x')", int_expected("bad argument #1 to 'module_at' (", ", got string)"))
misuse("main", "luahost.line_table(42)", "bad argument #1 to 'line_table' (module or module name expected, got number)")
misuse("exit", "luahost.count_blocks()", "luahost.count_blocks must be called in the script's main chunk")
-- scoreboards
misuse("main", "luahost.scoreboard {}", "luahost.scoreboard expects nothing or a list of 1 to 64 field names")
misuse("main", "luahost.scoreboard(42)", "luahost.scoreboard expects nothing or a list of 1 to 64 field names")
misuse("main", "local t = {} for i = 1, 65 do t[i] = 'f' .. i end luahost.scoreboard(t)",
    "luahost.scoreboard expects nothing or a list of 1 to 64 field names", "a scoreboard of 65 fields")
misuse("main", "luahost.scoreboard { 'a', 'a' }",
    "luahost.scoreboard: field name a is not a string, reserved or repeated")
misuse("main", "luahost.scoreboard { 'find' }",
    "luahost.scoreboard: field name find is not a string, reserved or repeated")
misuse("main", "luahost.scoreboard { 1 }", "luahost.scoreboard: field name 1 is not a string, reserved or repeated")
misuse("main", "entry:get(99)", "vCPU index 99 out of range (0 vCPUs)")
misuse("main", "entry:get(-1)", "vCPU index -1 out of range (0 vCPUs)")
misuse("main", "entry:set(0, 1.5)", not_int("bad argument #2 to 'set' ("))
misuse("main", "entry:add(0, 2^64)", not_int("bad argument #2 to 'add' ("))
misuse("main", "local x = board:find(0).nope", "no field nope in this scoreboard")
misuse("exit", "entry:get(99)", "vCPU index 99 out of range (1 vCPUs)")
-- streams
misuse("main", "luahost.stream(42)", "luahost.stream expects a table of options, got number")
misuse("main", "luahost.stream {}", "luahost.stream: option on_batch (a function) is required")
misuse("main", "luahost.stream { on_batch = fn, capacity = 0 }",
    "luahost.stream: capacity must be an integer from 1 to 2^24, got 0")
misuse("main", "luahost.stream { on_batch = fn, capacity = 2^24 + 1 }",
    { "luahost.stream: capacity must be an integer from 1 to 2^24, got 16777217.0",
        "luahost.stream: capacity must be an integer from 1 to 2^24, got 16777217" })
misuse("main", "luahost.stream { on_batch = fn, bogus = 1 }", "luahost.stream: unknown option bogus (expected "
    .. "on_batch, capacity, values, physical, coalesce, unchecked)")
misuse("main", "luahost.stream { on_batch = fn, coalesce = { exec = 3 } }",
    "luahost.stream: coalesce takes exec = and mem = block sizes, powers of two, and exec_sets = and "
    .. "mem_sets = counts; got exec = 3")
misuse("tb", "stream:exec(42)", "bad argument #1 to 'exec' (tb or insn expected, got number)")
misuse("tb", "stream:exec(tb, -1)", "bad argument #2 to 'exec' (id must be an integer from 0 to 2^32 - 1)")
misuse("tb", "stream:exec(tb, 2^32)", "bad argument #2 to 'exec' (id must be an integer from 0 to 2^32 - 1)")
misuse("tb", "stream:mem(tb)", foreign("bad argument #1 to 'mem' (", "luahost.insn", "luahost.tb"))
misuse("tb", "stream:mem(tb:insn(1), 0, 'x')", "bad argument #3 to 'mem' (invalid option 'x')")
misuse("tb", "stream:flush()", "stream:flush() delivers the running vCPU's events: call it from a callback with a "
    .. "vCPU index (execution, memory, syscall), not from tb translation hook")
misuse("exit", "stream:flush()", "stream:flush() delivers the running vCPU's events: call it from a callback with a "
    .. "vCPU index (execution, memory, syscall), not from exit hook")
misuse("batch", "local x = batch.pcs", "a stream batch has no column 'pcs'")
misuse("batch", "local x = batch.value",
    "this stream does not record value: make it with luahost.stream{ values = true, ... }")
misuse("exit", "local n = kept.batch.n",
    "attempt to use a stream batch after the on_batch call that received it returned")
-- translation blocks and instructions
misuse("tb", "tb:on_exec(42)", "bad argument #1 to 'on_exec' (function expected, got number)")
misuse("tb", "tb:on_exec(fn, nil, 'x')", "bad argument #3 to 'on_exec' (invalid option 'x')")
misuse("tb", "tb:on_exec_if(entry, 'bogus', 1, fn)", "bad argument #2 to 'on_exec_if' (invalid option 'bogus')")
misuse("tb", "tb:on_exec_if({}, 'eq', 1, fn)",
    "bad argument #1 to 'on_exec_if' (luahost.scoreboard expected, got table)")
misuse("tb", "tb:inline('mul', entry, 1)", "bad argument #1 to 'inline' (invalid option 'mul')")
misuse("tb", "tb:inline('add', 42, 1)", "bad argument #2 to 'inline' (luahost.scoreboard expected, got number)")
misuse("tb", "tb:inline('add', entry, -1.5)", not_int("bad argument #3 to 'inline' ("))
misuse("tb", "tb:insn(0)", "bad argument #1 to 'insn' (instruction index out of range)")
misuse("tb", "tb:insn(#tb + 1)", "bad argument #1 to 'insn' (instruction index out of range)")
misuse("tb", "tb.vaddr(entry)", foreign("bad argument #1 to 'vaddr' (", "luahost.tb", "luahost.scoreboard"))
misuse("insn", "insn:on_mem(fn, nil, 'x')", "bad argument #3 to 'on_mem' (invalid option 'x')")
misuse("insn", "insn:on_mem(fn, nil, 'r', 'w')", "bad argument #4 to 'on_mem' (invalid option 'w')")
misuse("insn", "insn:mem_inline('add', entry, 1, 'q')", "bad argument #4 to 'mem_inline' (invalid option 'q')")
misuse("insn", "insn:on_exec_if(entry, 'eq', 'x', fn)", int_expected("bad argument #3 to 'on_exec_if' (",
    ", got string)"))
misuse("insn", "insn:on_exec('f')", "bad argument #1 to 'on_exec' (function expected, got string)")
misuse("insn", "insn:inline('add', entry, 2^64)", not_int("bad argument #3 to 'inline' ("))
misuse("insn", "insn.disas(tb)", foreign("bad argument #1 to 'disas' (", "luahost.insn", "luahost.tb"))
misuse("mem", "mem.value(entry)", foreign("bad argument #1 to 'value' (", "luahost.mem", "luahost.scoreboard"))
-- guest memory and registers
misuse("tb", "luahost.read_memory('x', 4)", int_expected("bad argument #1 to 'read_memory' (", ", got string)"))
misuse("tb", "luahost.read_memory(tb:vaddr(), 2^21)",
    "bad argument #2 to 'read_memory' (length must be from 1 to 1048576 bytes)")
misuse("tb", "luahost.read_memory(tb:vaddr(), 0)",
    "bad argument #2 to 'read_memory' (length must be from 1 to 1048576 bytes)")
misuse("syscall", "luahost.read_memory(0, 2^20 + 1)",
    "bad argument #2 to 'read_memory' (length must be from 1 to 1048576 bytes)")
misuse("main", "luahost.read_memory(0x1000, 4)", "luahost.read_memory" .. NEEDS_VCPU .. "the main chunk")
misuse("main", "luahost.registers()", "luahost.registers()" .. NEEDS_VCPU .. "the main chunk")
misuse("main", "luahost.path_to_binary()", "luahost.path_to_binary" .. NEEDS_VCPU .. "the main chunk")
misuse("exit", "luahost.read_memory(0x1000, 4)", "luahost.read_memory" .. NEEDS_VCPU .. "exit hook")
misuse("exit", "luahost.registers()", "luahost.registers()" .. NEEDS_VCPU .. "exit hook")
misuse("exit", "luahost.path_to_binary()", "luahost.path_to_binary" .. NEEDS_VCPU .. "exit hook")
misuse("interval", "luahost.read_memory(0x1000, 4)", "luahost.read_memory" .. NEEDS_VCPU .. "interval hook")
misuse("exec", "kept.regs[1]:read()", "cannot read registers in tb exec callback: register it with regs=\"r\" "
    .. "(or use a vcpu init, syscall or discontinuity hook)")
misuse("exec", "kept.regs[1].read({})", "register:read expects a register from luahost.registers()")
misuse("exec", "kept.regs[1]:write(0)", API5
    and "cannot write registers in tb exec callback: register it with regs=\"rw\" (or use a vcpu init, syscall or "
        .. "discontinuity hook)"
    or "register:write needs QEMU 10.1" .. OLDER)
-- handles kept past their callback
misuse("exec", "kept.tb:vaddr()", "attempt to use a tb handle after the callback that provided it returned")
misuse("exit", "kept.tb:vaddr()", "attempt to use a tb handle after the callback that provided it returned")
misuse("exit", "kept.tb:on_exec(fn)", "attempt to use a tb handle after the callback that provided it returned")
misuse("exit", "kept.insn:disas()", "attempt to use an insn handle after the callback that provided it returned")
misuse("exit", "kept.insns(nil, 0)", "attempt to use a tb handle after the callback that provided it returned")
misuse("exit", "kept.mem:size()", "attempt to use a mem handle after the callback that provided it returned")
-- the lifecycle
misuse("tb", "luahost.uninstall() tb:on_exec(fn)",
    "no tb exec callback can be registered after luahost.uninstall (the plugin is being unloaded)")
misuse("tb", "luahost.uninstall() luahost.uninstall()", "luahost.uninstall: the plugin is already being uninstalled")
misuse("tb", "luahost.reset() luahost.reset()", "luahost.reset: a reset is already pending")
misuse("tb", "luahost.reset() luahost.uninstall()",
    "luahost.uninstall: a reset is pending (call it from the reset's completion function)")
misuse("interval", "luahost.reset()",
    "luahost.reset cannot be called from an interval hook: QEMU completes it on a vCPU (call it from a callback that "
    .. "runs on one)")
misuse("exit", "luahost.vcpu_for_each(42)", "luahost.vcpu_for_each expects a function, got number")
-- wrong values, located at the script's line (not inside luahost's own files)
misuse("exit", "luahost.exit(300)", "bad argument #1 to 'exit' (exit status must be 0 to 255)")
misuse("exit", "luahost.exit(-1)", "bad argument #1 to 'exit' (exit status must be 0 to 255)")
misuse("exit", "luahost.exit(1.5)", "bad argument #1 to 'exit' (exit status must be 0 to 255)")
misuse("exit", "luahost.exit('x')", "bad argument #1 to 'exit' (exit status must be 0 to 255)")
misuse("exit", "luahost.resolve(42)", "luahost.resolve expects a string, got number")
misuse("exit", "luahost.describe('x')", "luahost.describe expects an address, got string")
misuse("main", "luahost.usage_error()", "luahost.usage_error expects a message, got nil")
misuse("main", "luahost.args(42)", "luahost.args expects a table of argument specs, got number")

return cases
