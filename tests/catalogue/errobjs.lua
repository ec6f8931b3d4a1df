-- Error values of every type raised in a hook: each is reported with the
-- place it was raised at, a message (its __tostring's, else its type)
-- and a traceback, never "error in error handling", even when the script
-- took away the globals a message handler written in Lua would use.
local lib = require("catalogue.lib")

-- error(value): the value, and what follows "SCRIPT:6: " (a pattern), and
-- where it differs, under LuaJIT.
local VALUES = {
    { "nil", "%(error object is a nil value%)" },
    { "true", "%(error object is a boolean value%)" },
    { "42", "42" },
    { "2^53", "9%.007199254741e%+15" },
    { "{}", "%(error object is a table value%)" },
    { "setmetatable({}, { __tostring = function() return 'told' end })", "told" },
    { "setmetatable({}, { __tostring = function() error('inner') end })",
        "%(error object is a table value; its __tostring failed: SCRIPT:6: inner%)" },
    { "setmetatable({}, { __tostring = function() return 7 end })",
        "%(error object is a table value; its __tostring returned a number%)" },
    { "setmetatable({}, { __tostring = function() return {} end })",
        "%(error object is a table value; its __tostring returned a table%)" },
    { "io.stdout", "file %(0x%x+%)" },
    { "coroutine.create(print)", "%(error object is a thread value%)" },
    { "print", "%(error object is a function value%)" },
    { "kept_tb", "tb %(expired%)" },
    -- LuaJIT's type names know no __name
    { "entry", "%(error object is a luahost%.scoreboard value%)", "%(error object is a userdata value%)" },
}

-- Raised in a tb exec callback (abort) and in a syscall hook (disable).
local function source(value, hook)
    return ([[
local kept_tb, entry = nil, luahost.scoreboard()
luahost.on_tb_translate(function(tb) kept_tb = kept_tb or tb end)
luahost.on_exit(function() luahost.outs("report ran\n") end)
debug, tostring, getmetatable, string = nil, nil, nil, nil
%s
    error(%s)
end%s
]]):format(hook == "exec" and "luahost.on_tb_translate(function(tb) tb:on_exec(function()" or
        "luahost.on_syscall(function()", value, hook == "exec" and ") end)" or ")")
end

local function pattern(text)
    return { pattern = text }
end

local function aborted(at)
    return { pattern("^luahost: error in tb exec callback: SCRIPT:6: " .. at .. "\nstack traceback:\n\t%[C%]: in "
        .. "function 'error'\n"), "\nluahost: stopping emulation (on_error=abort); exit hooks are not run\n" }
end

local function disabled(at)
    return { pattern("^luahost: error in syscall hook: SCRIPT:6: " .. at .. "\nstack traceback:\n\t%[C%]: in "
        .. "function 'error'\n"), "\nluahost: this syscall hook is disabled (on_error=disable); the exit status will "
        .. "be 1\n", "luahost: 1 callback error(s) in this run (on_error=disable): exit status 1\n" }
end

local cases = {}
for _, v in ipairs(VALUES) do
    local value, at, jit_at = v[1], v[2], v[3]
    cases[#cases + 1] = { name = "error(" .. value .. ") in a tb exec callback, on_error=abort",
        source = source(value, "exec"), status = 1, once = { "error in " }, no_log = { "report ran" },
        stderr = aborted(at), luajit = jit_at and { stderr = aborted(jit_at) } }
    cases[#cases + 1] = { name = "error(" .. value .. ") in a syscall hook, on_error=disable",
        source = source(value, "syscall"), args = { "on_error=disable" }, status = 1, once = { "error in " },
        log = { "report ran\n" }, stderr = disabled(at), luajit = jit_at and { stderr = disabled(jit_at) } }
end

-- A C function as a hook has no definition of its own: it is named by the
-- line that registered it.
cases[#cases + 1] = { name = "error itself as a vcpu init hook", source = "luahost.on_vcpu_init(error)\n"
    .. "luahost.on_exit(function() luahost.outs('report ran\\n') end)\n", args = { "on_error=disable" },
    log = { "report ran\n" }, stderr = lib.disabled("vcpu init hook (a C function registered at SCRIPT:1)", "0") }
-- usage_error in a hook: its message alone, no traceback
cases[#cases + 1] = { name = "usage_error in an exit hook", source = "luahost.on_exit(function()\n"
    .. "    luahost.usage_error('bad input')\nend)\n",
    stderr_is = "luahost: error in exit hook: SCRIPT:2: bad input\n"
        .. "luahost: stopping emulation (on_error=abort); exit hooks are not run\n" }
-- error with level 2 names the hook's caller: the host, so no place
cases[#cases + 1] = { name = "error at level 2 in a syscall hook", source = "luahost.on_syscall(function()\n"
    .. "    error('up', 2)\nend)\n", stderr = lib.aborted("syscall hook", "up") }
return cases
