-- Running out of a resource: a string too large to make, recursion past
-- Lua's limits (through Lua, C functions and metamethods, on the main
-- thread and on a guest thread's small stack), a chunk past the parser's
-- limits, a huge error message, the largest stream buffers. Each is Lua's
-- own error, or the host's limits' (hook_timeout=, memlimit=), at the
-- script's line, never a crash or a hang of QEMU.
local lib = require("catalogue.lib")

local function refused(message, traceback, case)
    return lib.refused_with_traceback(message, traceback, case)
end

-- f recurses through Lua, rec through string.gsub, sorted through a
-- table.sort comparator: each level of the last two is a C function
-- calling Lua again.
local RECURSIONS = [[
local function f(n) return 1 + f(n + 1) end
local function rec(s) return (s:gsub(".", rec)) end
local function sorted() table.sort({ 1, 2, 3 }, function(a, b) sorted() return a < b end) end
]]
local ON_A_THREAD = RECURSIONS .. [[
luahost.on_tb_translate(function(tb)
    tb:on_exec(function(vcpu)
        if vcpu > 0 then
            CALL
        end
    end)
end)
]]

-- An endless loop that calls C (so LuaJIT does not compile it: it could
-- not be interrupted).
local SPIN = [[
luahost.on_syscall(function()
    while true do local _ = luahost.num_vcpus() end
end)
luahost.on_exit(function() luahost.outs("report ran\n") end)
]]

local C_OVERFLOW = { "C stack overflow", "stack overflow" }

local cases = {
    refused("SCRIPT:1: resulting string too large", { "\tSCRIPT:1: in main chunk\n" },
        { name = "a string of 2^40 bytes in the main chunk", source = "local s = ('x'):rep(2^20):rep(2^20)\n",
            -- LuaJIT's memory error has no place: a known bug
            flavours = { "lua5.4" } }),
    { name = "a string of 2^40 bytes in a syscall hook", flavours = { "lua5.4" },
        source = "luahost.on_syscall(function()\n    local s = ('x'):rep(2^20):rep(2^20)\nend)\n",
        stderr = lib.aborted("syscall hook", "SCRIPT:2: resulting string too large") },
    refused("SCRIPT:1: stack overflow", { "\tSCRIPT:1: in ", "\tSCRIPT:4: in main chunk\n" },
        { name = "recursion in the main chunk", source = RECURSIONS .. "f(1)\n" }),
    { name = "recursion in a translation hook", source = RECURSIONS .. "luahost.on_tb_translate(function(tb)\n"
        .. "    f(1)\nend)\n", stderr = lib.aborted("tb translation hook", "SCRIPT:1: stack overflow") },
    { name = "recursion in an exec callback on a guest thread", guest = "threads", guest_args = { "2", "100" },
        source = ON_A_THREAD:gsub("CALL", "f(1)"), stderr = lib.aborted("tb exec callback", "SCRIPT:1: stack overflow"),
        once = { "error in " } },
    { name = "recursion through string.gsub in a syscall hook",
        source = RECURSIONS .. "luahost.on_syscall(function()\n    rec('x')\nend)\n",
        stderr = { "luahost: error in syscall hook: C stack overflow\nstack traceback:\n", "\tSCRIPT:2: in ",
            "\tSCRIPT:5: in function <SCRIPT:4>\nluahost: stopping emulation (on_error=abort)" },
        luajit = { stderr = { "luahost: error in syscall hook: stack overflow\nstack traceback:\n", "\tSCRIPT:2: in ",
            "\tSCRIPT:5: in function <SCRIPT:4>\nluahost: stopping emulation (on_error=abort)" } } },
    { name = "recursion through string.gsub on a guest thread", guest = "threads", guest_args = { "2", "100" },
        source = ON_A_THREAD:gsub("CALL", "rec('x')"), once = { "error in " },
        stderr = { "luahost: error in tb exec callback: C stack overflow\nstack traceback:\n", "\tSCRIPT:2: in " },
        luajit = { stderr = { "luahost: error in tb exec callback: stack overflow\nstack traceback:\n",
            "\tSCRIPT:2: in " } } },
    { name = "recursion through a table.sort comparator on a guest thread", guest = "threads",
        guest_args = { "2", "100" }, source = ON_A_THREAD:gsub("CALL", "sorted()"), once = { "error in " },
        stderr = { "luahost: error in tb exec callback: ", "stack overflow", "\nstack traceback:\n",
            "\tSCRIPT:3: in " } },
    { name = "recursion through __index in an exit hook", source = "local t = setmetatable({}, {})\n"
        .. "getmetatable(t).__index = function(_, k) return t[k] end\n"
        .. "luahost.on_exit(function()\n    return t.x\nend)\n",
        stderr = lib.aborted("exit hook", "SCRIPT:2: " .. C_OVERFLOW[1]),
        luajit = { stderr = lib.aborted("exit hook", "SCRIPT:2: " .. C_OVERFLOW[2]) } },
    lib.refused({ "SCRIPT:1: too many local variables (limit is 200) in main function near ','",
        "SCRIPT:1: main function has more than 200 local variables" },
        { name = "300 locals in the main chunk", source = (function()
            local names = {}
            for i = 1, 300 do
                names[i] = "v" .. i
            end
            return "local " .. table.concat(names, ", ") .. "\n"
        end)() }),
    { name = "a format wider than string.format takes",
        source = "luahost.on_exit(function()\n    luahost.outs(string.format('%99999d', 1))\nend)\n",
        stderr = lib.aborted("exit hook", "SCRIPT:2: invalid conversion specification: '%99999d'"),
        luajit = { stderr = lib.aborted("exit hook", "SCRIPT:2: invalid option '%999' to 'format'") } },
    { name = "an error message of 100000 bytes", source = "luahost.on_exit(function()\n"
        .. "    error(('x'):rep(100000))\nend)\n",
        stderr = lib.aborted("exit hook", "SCRIPT:2: " .. ("x"):rep(100000)) },
    -- hook_timeout= and memlimit=: a call into Lua that would never end,
    -- and a script whose Lua would take all memory
    refused("SCRIPT:2: interrupted: ran longer than 1 s (hook_timeout=1; 0 turns the limit off)",
        { "\tSCRIPT:2: in main chunk\n" }, { name = "an endless loop in the main chunk", args = { "hook_timeout=1" },
            source = "local n = 0\nwhile true do n = n + #tostring(n) end\n" }),
    { name = "an endless loop in a syscall hook, on_error=disable", args = { "hook_timeout=1", "on_error=disable" },
        source = SPIN, log = { "report ran\n" }, stderr = lib.disabled("syscall hook",
            "SCRIPT:2: interrupted: ran longer than 1 s (hook_timeout=1; 0 turns the limit off)") },
    { name = "SIGINT during an endless loop: the exit hooks run", args = { "hook_timeout=off" }, source = SPIN,
        send = { "INT", "0.5" }, signal = 2, log = { "report ran\n" },
        stderr = { "luahost: error in syscall hook: SCRIPT:2: interrupted! (a signal ends the run: the exit hooks "
            .. "still run)\nstack traceback:\n" } },
    { name = "strings without bound in a translation hook, memlimit=32M, on_error=disable",
        args = { "memlimit=32M", "on_error=disable" }, log = { "report ran\n" }, source = [[
local t = {}
luahost.on_tb_translate(function(tb)
    for i = 1, 1e9 do t[#t + 1] = ("x"):rep(100) .. i end
end)
luahost.on_exit(function() t = nil luahost.outs("report ran\n") end)
]], stderr = lib.disabled("tb translation hook",
            "SCRIPT:3: memory limit reached: the script's Lua holds 32 MiB (memlimit=32M)") },
    { name = "tables without bound in an exit hook, memlimit=32M", args = { "memlimit=32M" },
        -- LuaJIT's memory error has no place: a known bug
        flavours = { "lua5.4" }, source = "local t = {}\nluahost.on_exit(function()\n"
            .. "    for i = 1, 1e9 do t[i] = { i } end\nend)\n",
        stderr = lib.aborted("exit hook", "SCRIPT:3: memory limit reached: the script's Lua holds 32 MiB "
            .. "(memlimit=32M)") },
    { name = "outfile=/dev/full: the write error where the script wrote", args = { "outfile=/dev/full" },
        source = "luahost.on_exit(function()\n    luahost.outs(('x'):rep(20000))\nend)\n",
        stderr = lib.aborted("exit hook", "SCRIPT:2: cannot write outfile /dev/full: No space left on device") },
    { name = "coroutines resumed without end: LuaJIT bounded as Lua 5.4", flavours = { "luajit" }, status = 1,
        source = "local function f() return coroutine.wrap(f)() end\nf()\n",
        stderr = { "luahost: SCRIPT:2: C stack overflow (coroutines resumed more than 200 deep)\n"
            .. "stack traceback:\n" } },
    { name = "a stream of capacity 2^24 on 4 threads", guest = "threads", guest_args = { "4", "1000" }, status = 0,
        stderr_is = "", log = { { pattern = "^batches=%d+ events=%d+\n$" } }, source = [[
local batches, events = 0, 0
local s = luahost.stream { capacity = 2^24, on_batch = function(vcpu, batch)
    batches, events = batches + 1, events + batch.n
end }
luahost.on_tb_translate(function(tb) for _, insn in tb:insns() do s:exec(insn) s:mem(insn) end end)
luahost.on_report(function() luahost.printf("batches=%d events=%d\n", batches, events) end)
]] },
}
return cases
