-- luahost: the public API scripts see, as the global `luahost` and as
-- require("luahost"). Built here on the host's private raw table, which
-- scripts never reach. See docs/api.md.
local raw, args = ...

local luahost = {}

local function check_function(fn, what)
    if type(fn) ~= "function" then
        error(("%s expects a function, got %s"):format(what, type(fn)), 3)
    end
end

local function hook(event, api_name)
    return function(fn)
        check_function(fn, api_name)
        raw.register(event, fn)
    end
end

-- Lifecycle and translation events. Each may be given several functions;
-- they run in the order given.
luahost.on_exit = hook("atexit", "luahost.on_exit")
luahost.on_vcpu_init = hook("vcpu_init", "luahost.on_vcpu_init")
luahost.on_vcpu_exit = hook("vcpu_exit", "luahost.on_vcpu_exit")
luahost.on_tb_translate = hook("tb_trans", "luahost.on_tb_translate")

-- What QEMU told the plugin at install time.
luahost.info = {}
for k, v in pairs(raw.info) do
    luahost.info[k] = v
end

luahost.num_vcpus = raw.num_vcpus

-- Where luahost.outs writes: QEMU's plugin log (shown with -d plugin, or
-- -d plugin -D FILE), or the file of the host argument outfile=.
local write = raw.outs

-- Called by boot for outfile=FILE: opened now, so a bad path is refused
-- at load time; flushed by the host at exit and before any stop.
function luahost._set_outfile(path)
    local f, err = io.open(path, "w")
    if not f then
        return nil, "cannot open outfile " .. err
    end
    f:setvbuf("full")
    raw.flush_at_exit()
    write = function(text)
        f:write(text)
    end
    return true
end

function luahost.outs(text)
    if type(text) ~= "string" then
        error("luahost.outs expects a string, got " .. type(text), 2)
    end
    write(text)
end

function luahost.printf(fmt, ...)
    local ok, text = pcall(string.format, fmt, ...)
    if not ok then
        error("luahost.printf: " .. text, 2)
    end
    write(text)
end

-- luahost.scoreboard(): one u64 per vCPU.
-- luahost.scoreboard{"hits", "misses"}: a per-vCPU struct; returns a
-- table of its fields by name. Each entry has get/set/add/sum and can be
-- the target of inline ops (tb:inline, insn:inline).
function luahost.scoreboard(fields)
    if fields == nil then
        return (raw.scoreboard_new(1))
    end
    if type(fields) ~= "table" or #fields == 0 or #fields > 64 then
        error("luahost.scoreboard expects nothing or a list of 1 to 64 field names", 2)
    end
    local entries = { raw.scoreboard_new(#fields) }
    local board = {}
    for i, name in ipairs(fields) do
        board[name] = entries[i]
    end
    return board
end

-- Plugin arguments other than the host's own (script=, on_error=, outfile=), as
-- "name=value" strings in the order given; filled in by boot.
luahost.argv = {}

-- luahost.args(spec) parses luahost.argv; luahost.args.bool etc. make specs.
luahost.args = setmetatable({}, {
    __index = args,
    __call = function(_, spec)
        -- not a tail call: the error level counts this frame
        local opt = args.parse(spec, luahost.argv, 2)
        return opt
    end,
})

luahost.usage_error = args.usage_error

return luahost
