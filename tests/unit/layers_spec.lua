-- The host's files form layers (host/luahost.h): a file may call its own
-- layer and those below it, never one above. Read from the C sources: a
-- call is an lh_ name followed by "(", a definition one at the start of a
-- line; static functions are private to their file and not looked at.
local helper = require("helper")

local LAYERS = {
    ["compat.h"] = 1, ["tsan.h"] = 1, ["runtime.c"] = 1, ["call.c"] = 1, ["scope.c"] = 1, ["limits.c"] = 1,
    ["qemu_api.h"] = 1, ["qemu_api.c"] = 1,
    ["tb.c"] = 2, ["insn.c"] = 2, ["mem.c"] = 2, ["scoreboard.c"] = 2, ["stream.c"] = 2, ["callstack.c"] = 2,
    ["fpcalls.c"] = 2,
    ["blocks.c"] = 2, ["shadow.c"] = 2, ["tally.c"] = 2, ["lockstep.c"] = 2, ["insnmix.c"] = 2,
    ["registers.c"] = 2, ["guest.c"] = 2, ["clock.c"] = 2, ["disas.c"] = 2,
    ["modules.c"] = 2, ["symtab.c"] = 2, ["maps.c"] = 2, ["exec.c"] = 2, ["process.c"] = 2,
    ["threadexit.c"] = 2,
    ["hooks.c"] = 3, ["interval.c"] = 3,
    ["lifecycle.c"] = 4,
    ["plugin.c"] = 5,
}

local function read(name)
    local f = assert(io.open(helper.source_root .. "/host/" .. name, "r"))
    local text = f:read("a")
    f:close()
    -- comments say "lh_foo()" too: only code counts
    return (text:gsub("/%*.-%*/", ""):gsub("//[^\n]*", ""))
end

local function host_files()
    local names = {}
    local p = assert(io.popen("ls " .. helper.source_root .. "/host"))
    for name in p:lines() do
        if name:match("%.[ch]$") and name ~= "luahost.h" then
            names[#names + 1] = name
        end
    end
    p:close()
    return names
end

-- Where each lh_ function is defined, and what each file calls.
local function call_graph()
    local defined_in, calls = {}, {}
    for _, name in ipairs(host_files()) do
        local text = read(name)
        calls[name] = {}
        for line in text:gmatch("[^\n]+") do
            local fn = line:match("^[%w_][^;=(]-[%s%*](lh_[%w_]+)%(")
            if fn and not line:match("^static%f[%W]") then
                defined_in[fn] = name
            end
        end
        for fn in text:gmatch("(lh_[%w_]+)%s*%(") do
            calls[name][fn] = true
        end
    end
    return defined_in, calls
end

describe("host layers", function()
    it("give every host file a layer", function()
        for _, name in ipairs(host_files()) do
            assert.is_not_nil(LAYERS[name], name .. " has no layer in this spec and host/luahost.h")
        end
    end)

    it("find the definitions they check", function()
        local defined_in = call_graph()
        assert.are.equal("call.c", defined_in.lh_dispatch)
        assert.are.equal("scope.c", defined_in.lh_error)
        assert.are.equal("hooks.c", defined_in.lh_hooks_start)
    end)

    it("have no file call a layer above its own", function()
        local defined_in, calls = call_graph()
        local upward = {}
        for caller, fns in pairs(calls) do
            for fn in pairs(fns) do
                local callee = defined_in[fn]
                if callee and LAYERS[callee] > LAYERS[caller] then
                    upward[#upward + 1] = ("%s (layer %d) calls %s of %s (layer %d)")
                        :format(caller, LAYERS[caller], fn, callee, LAYERS[callee])
                end
            end
        end
        table.sort(upward)
        assert.are.same({}, upward)
    end)
end)
