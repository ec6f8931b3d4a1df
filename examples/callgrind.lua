-- callgrind: a profile in Valgrind's callgrind format, which
-- callgrind_annotate and KCachegrind read: instructions (Ir) per function,
-- self and inclusive, and calls per call edge, from stdlib/callstack.lua.
-- Counts are exact executed guest instructions. A function's position is
-- its entry's file and line where the program has line information, else
-- its module's name (line 0).
--
--   luahost callgrind.lua -o callgrind.out -- ./prog
--   callgrind_annotate callgrind.out        (--inclusive=yes for inclusive)
--
-- As with Valgrind's own files, callgrind_annotate --inclusive=yes adds a
-- recursive function's calls of itself to its inclusive count
-- (KCachegrind shows such cycles as cycles); the callstack module's
-- profile counts a recursion once.
local callstack = require("callstack")

luahost.args {}

local cs = callstack.new()

-- The names callgrind's compression gives an id each: "(N) name" once, "(N)" after.
local function compressor()
    local ids, n = {}, 0
    return function(name)
        local id = ids[name]
        if id then
            return ("(%d)"):format(id)
        end
        n = n + 1
        ids[name] = n
        return ("(%d) %s"):format(n, name)
    end
end

luahost.on_exit(function()
    local profile = cs:profile()
    local pc_of = {}
    for pc, name in pairs(cs.names) do
        pc_of[name] = pc
    end
    -- where each function is: file and line, or its module, or nothing
    local where = {}
    local function place(name)
        local w = where[name]
        if not w then
            local s = pc_of[name] and pc_of[name] ~= 0 and luahost.symbolize(pc_of[name])
            w = { file = (s and (s.file or s.module)) or "???", line = s and s.line or 0 }
            where[name] = w
        end
        return w
    end
    local callees = {}
    for key, e in pairs(profile.edges) do
        local caller, callee = key:match("^(.-)%z(.*)$")
        callees[caller] = callees[caller] or {}
        callees[caller][#callees[caller] + 1] = { name = callee, calls = e.calls, inclusive = e.inclusive }
    end
    local names = {}
    for name in pairs(profile.functions) do
        names[#names + 1] = name
    end
    table.sort(names)
    local fl, fn = compressor(), compressor()
    local out = {
        "# callgrind format",
        "version: 1",
        "creator: luahost callgrind.lua",
        ("pid: %d"):format(luahost.pid()),
        "positions: line",
        "events: Ir",
        ("summary: %d"):format(profile.total),
        "",
    }
    for _, name in ipairs(names) do
        local f = profile.functions[name]
        local w = place(name)
        out[#out + 1] = "fl=" .. fl(w.file)
        out[#out + 1] = "fn=" .. fn(name)
        out[#out + 1] = ("%d %d"):format(w.line, f.self)
        local list = callees[name] or {}
        table.sort(list, function(a, b) return a.name < b.name end)
        for _, c in ipairs(list) do
            local cw = place(c.name)
            out[#out + 1] = "cfl=" .. fl(cw.file)
            out[#out + 1] = "cfn=" .. fn(c.name)
            out[#out + 1] = ("calls=%d %d"):format(c.calls, cw.line)
            out[#out + 1] = ("%d %d"):format(w.line, c.inclusive)
        end
        out[#out + 1] = ""
    end
    out[#out + 1] = ("totals: %d"):format(profile.total)
    luahost.outs(table.concat(out, "\n") .. "\n")
end)
