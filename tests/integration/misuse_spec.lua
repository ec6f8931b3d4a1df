-- Wrong-type and out-of-context calls of every API function: each gets a
-- clear Lua error naming the script's line, and the run goes on (QEMU
-- exits 0: no crash, no assertion inside QEMU).
local helper = require("helper")

-- Each case runs under pcall in its context and prints "name|error".
local SCRIPT = [[
local cases = { main = {}, tb = {}, insn = {}, mem = {}, exec = {}, exit = {} }
local function case(context, name, fn) cases[context][#cases[context] + 1] = { name, fn } end
local function run(context, ...)
    for _, c in ipairs(cases[context]) do
        local ok, err = pcall(c[2], ...)
        luahost.printf("%s|%s\n", c[1], ok and "no error" or tostring(err))
    end
    cases[context] = {}
end
local entry = luahost.scoreboard()
local board = luahost.scoreboard { "a" }
local fn = function() end
local kept = {}

case("main", "on_syscall", function() luahost.on_syscall(42) end)
case("main", "on_syscall_return", function() luahost.on_syscall_return("x") end)
case("main", "on_flush", function() luahost.on_flush() end)
case("main", "on_vcpu_idle", function() luahost.on_vcpu_idle({}) end)
case("main", "on_vcpu_resume", function() luahost.on_vcpu_resume(1) end)
case("main", "on_discontinuity", function() luahost.on_discontinuity(fn, { "bogus" }) end)
case("main", "reset type", function() luahost.reset(42) end)
case("main", "vcpu_for_each type", function() luahost.vcpu_for_each(nil) end)
case("main", "has", function() luahost.has(42) end)
case("main", "read_memory context", function() luahost.read_memory(0x1000, 4) end)
case("main", "path_to_binary context", function() luahost.path_to_binary() end)
case("main", "registers context", function() luahost.registers() end)
case("main", "entry get range", function() entry:get(99) end)
case("main", "entry set type", function() entry:set(0, "x") end)
case("main", "entry huge number", function() entry:add(0, 2^64) end)
case("main", "board find field", function() return board:find(0).nope end)
case("main", "stream method on other type", function()
    luahost.stream({ capacity = 16, on_batch = fn }).flush(luahost.tally {})
end)

case("tb", "tb on_exec type", function(tb) tb:on_exec(42) end)
case("tb", "tb on_exec regs", function(tb) tb:on_exec(fn, nil, "x") end)
case("tb", "tb on_exec_if cond", function(tb) tb:on_exec_if(entry, "bogus", 1, fn) end)
case("tb", "tb on_exec_if entry", function(tb) tb:on_exec_if({}, "eq", 1, fn) end)
case("tb", "tb inline op", function(tb) tb:inline("mul", entry, 1) end)
case("tb", "tb insn range", function(tb) tb:insn(0) end)
case("tb", "tb method on other type", function(tb) tb.vaddr(entry) end)
case("tb", "tb inline on other type", function(tb) tb:inline("add", tb, 1) end)
case("tb", "entry method on other type", function(tb) entry.get(tb, 0) end)
case("tb", "read_memory type", function(tb) luahost.read_memory("x", 4) end)
case("tb", "read_memory length", function(tb) luahost.read_memory(tb:vaddr(), 2^21) end)

case("insn", "insn on_mem rw", function(insn) insn:on_mem(fn, nil, "x") end)
case("insn", "insn on_mem regs", function(insn) insn:on_mem(fn, nil, "r", "w") end)
case("insn", "insn on_access rw", function(insn) insn:on_access(fn, nil, "x") end)
case("insn", "insn on_access pc", function(insn) insn:on_access(fn, nil, "r", "pc") end)
case("insn", "insn mem_inline rw", function(insn) insn:mem_inline("add", entry, 1, "q") end)
case("insn", "insn on_exec_if imm", function(insn) insn:on_exec_if(entry, "eq", "x", fn) end)
case("insn", "insn on_exec type", function(insn) insn:on_exec("f") end)

case("mem", "mem method on other type", function(mem) mem.value(entry) end)
case("exec", "register read without regs", function(vcpu)
    local regs = kept.regs
    regs[1]:read()
end)
case("exec", "register read foreign", function(vcpu) kept.regs[1].read({}) end)

case("exit", "stale tb", function() kept.tb:vaddr() end)
case("exit", "stale insn", function() kept.insn:disas() end)
case("exit", "stale mem", function() kept.mem:size() end)
case("exit", "read_memory in exit", function() luahost.read_memory(0x1000, 4) end)
case("exit", "registers in exit", function() luahost.registers() end)

run("main")
luahost.on_vcpu_init(function() kept.regs = luahost.registers() end)
luahost.on_tb_translate(function(tb)
    kept.tb = kept.tb or tb
    run("tb", tb)
    for _, insn in tb:insns() do
        kept.insn = kept.insn or insn
        run("insn", insn)
        insn:on_mem(function(vcpu, mem)
            kept.mem = kept.mem or mem
            run("mem", mem)
        end)
    end
    tb:on_exec(function(vcpu) run("exec", vcpu) end)
end)
luahost.on_exit(function() run("exit") end)
]]

-- What each error must say (a Lua pattern), after "FILE.lua:LINE: ".
local EXPECTED = {
    ["on_syscall"] = "luahost%.on_syscall expects a function, got number",
    ["on_syscall_return"] = "luahost%.on_syscall_return expects a function, got string",
    ["on_flush"] = "luahost%.on_flush expects a function, got nil",
    ["on_vcpu_idle"] = "luahost%.on_vcpu_idle expects a function, got table",
    ["on_vcpu_resume"] = "luahost%.on_vcpu_resume expects a function, got number",
    ["on_discontinuity"] = "luahost%.on_discontinuity",
    ["reset type"] = "luahost%.reset expects a function, got number",
    ["vcpu_for_each type"] = "luahost%.vcpu_for_each expects a function, got nil",
    ["has"] = "luahost%.has expects a feature name, got number",
    ["read_memory context"] = "luahost%.read_memory needs a vCPU",
    ["path_to_binary context"] = "luahost%.path_to_binary needs a vCPU",
    ["registers context"] = "luahost%.registers%(%) needs a vCPU",
    ["entry get range"] = "vCPU index 99 out of range %(0 vCPUs%)",
    ["entry set type"] = "bad argument #2 to 'set'",
    ["entry huge number"] = "bad argument #2 to 'add'",
    ["board find field"] = "no field nope in this scoreboard",
    ["tb on_exec type"] = "bad argument #1 to 'on_exec' %(function expected, got number%)",
    ["tb on_exec regs"] = "bad argument #3 to 'on_exec' %(invalid option 'x'%)",
    ["tb on_exec_if cond"] = "bad argument #2 to 'on_exec_if' %(invalid option 'bogus'%)",
    ["tb on_exec_if entry"] = "bad argument #1 to 'on_exec_if' %(luahost%.scoreboard expected, got table%)",
    ["tb inline op"] = "bad argument #1 to 'inline' %(invalid option 'mul'%)",
    ["tb insn range"] = "bad argument #1 to 'insn' %(instruction index out of range%)",
    ["tb method on other type"] = "bad argument #1 to 'vaddr' %(luahost%.tb expected, got [%w.]+%)",
    ["tb inline on other type"] = "bad argument #2 to 'inline' %(luahost%.scoreboard expected, got [%w.]+%)",
    ["entry method on other type"] = "bad argument #1 to 'get' %(luahost%.scoreboard expected, got [%w.]+%)",
    ["stream method on other type"] = "bad argument #1 to 'flush' %(luahost%.stream expected, got [%w.]+%)",
    ["read_memory type"] = "bad argument #1 to '[%w.]*read_memory'",
    ["read_memory length"] = "bad argument #2 to '[%w.]*read_memory' %(length must be from 1 to 1048576 bytes%)",
    ["insn on_mem rw"] = "bad argument #3 to 'on_mem' %(invalid option 'x'%)",
    ["insn on_mem regs"] = "bad argument #4 to 'on_mem' %(invalid option 'w'%)",
    ["insn on_access rw"] = "bad argument #3 to 'on_access' %(invalid option 'x'%)",
    ["insn on_access pc"] = "bad argument #4 to 'on_access' %(a memory callback cannot set the PC",
    ["insn mem_inline rw"] = "bad argument #4 to 'mem_inline' %(invalid option 'q'%)",
    ["insn on_exec_if imm"] = "bad argument #3 to 'on_exec_if'",
    ["insn on_exec type"] = "bad argument #1 to 'on_exec' %(function expected, got string%)",
    ["mem method on other type"] = "bad argument #1 to 'value' %(luahost%.mem expected, got [%w.]+%)",
    ["register read without regs"] = "cannot read registers in tb exec callback: register it with regs=\"r\"",
    ["register read foreign"] = "register:read expects a register from luahost%.registers%(%)",
    ["stale tb"] = "attempt to use a tb handle after the callback that provided it returned",
    ["stale insn"] = "attempt to use an insn handle after the callback that provided it returned",
    ["stale mem"] = "attempt to use a mem handle after the callback that provided it returned",
    ["read_memory in exit"] = "luahost%.read_memory needs a vCPU: [^|]* not from exit hook",
    ["registers in exit"] = "luahost%.registers%(%) needs a vCPU",
}

describe("misuse of the API", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("gets a clear error at the script's line, never a crash (" .. arch .. ")", function()
            local r = helper.run_lua(arch, SCRIPT, helper.guest("loop", arch), { guest_args = { "10" } })
            local seen = {}
            for name, err in r.report:gmatch("([^|\n]+)|([^\n]*)\n") do
                seen[name] = seen[name] or err
            end
            for name, pattern in pairs(EXPECTED) do
                local err = seen[name]
                assert.is_truthy(err, "no result for " .. name .. "\n" .. r.report)
                -- LuaJIT names a C function called through pcall '?'
                local located = err:match("^[^\n]*%.lua:%d+: (.*)$")
                assert.is_truthy(located, name .. ": not located at a script line: " .. err)
                local text = located:gsub("to '%?'", "to '" .. (pattern:match("to '([%w_]+)'") or "?") .. "'")
                assert.is_truthy(text:find(pattern), name .. ": " .. err)
            end
        end)
    end
end)
