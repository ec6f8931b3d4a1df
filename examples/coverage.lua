-- coverage: source-line coverage as an lcov tracefile, which genhtml
-- (lcov) renders as HTML, for programs built with -g: every line that has
-- code in the DWARF line tables (luahost.line_table), with how often it
-- ran, and every function with how often it was entered.
--
--   luahost coverage.lua -o prog.info -- ./prog
--   genhtml prog.info -o html
--   luahost coverage.lua format=drcov -o prog.drcov -- ./prog
--
--   format=lcov|drcov    an lcov tracefile (default), or block coverage in
--                        DynamoRIO's drcov format with every module mapped
--                        at exit in its table (what Lighthouse, bncov and
--                        Cartographer load; scripts/drcov.lua modules=all
--                        writes the same file). drcov is binary: it needs
--                        -o FILE (outfile=FILE)
--   modules=all|program  every module with line information, or the
--                        program's alone (user mode; default all; lcov)
--
-- A line's count is how often its most executed instruction ran: each
-- executed instruction counts the executions of the translated blocks
-- holding it (a scoreboard entry per block, set inline by QEMU: no Lua
-- while the program runs). A function's count is how often its first
-- instruction ran. docs/coverage.md says how this compares with gcov.
local new_entry = require("entries").new

local opt = luahost.args {
    format = luahost.args.choice({ "lcov", "drcov" }, "lcov"),
    modules = luahost.args.choice({ "all", "program" }, "all"),
}
if opt.format == "drcov" and not luahost.outfile then
    luahost.usage_error("format=drcov writes a binary file: give one with -o FILE (outfile=FILE)")
end

local blocks = {}       -- { pc, size, pcs = { instruction addresses }, entry } per translated block
local program           -- the program's module (user mode), from its first block

luahost.on_tb_translate(function(tb)
    if program == nil then
        if luahost.info.system_emulation then
            program = false
        elseif luahost.has("code_layout") then
            program = luahost.module_at(luahost.start_code()) or false
        else
            program = luahost.modules()[1] or false     -- QEMU 10.0: the lowest, as drcov.lua takes it
        end
    end
    local pcs, last = {}, nil
    for i, insn in tb:insns() do
        pcs[i], last = insn:vaddr(), insn
    end
    local entry = new_entry()
    tb:inline("add", entry, 1)
    blocks[#blocks + 1] = { pc = pcs[1], size = pcs[#pcs] + last:size() - pcs[1], pcs = pcs, entry = entry }
end)

-- Executions of each executed instruction, by address.
local function executions()
    local runs = {}
    for _, b in ipairs(blocks) do
        local n = b.entry:sum()
        if n > 0 then
            for _, pc in ipairs(b.pcs) do
                runs[pc] = (runs[pc] or 0) + n
            end
        end
    end
    return runs
end

-- The source file called path in files (path -> { lines, functions }), made if new.
local function file_of(files, path)
    local f = files[path]
    if not f then
        f = { lines = {}, functions = {} }
        files[path] = f
    end
    return f
end

-- Adds module m's lines and functions, with their counts, to files.
local function add_module(files, t, runs, m)
    local order = {}
    for i = 1, #t.start do
        order[i] = i
        local f = file_of(files, t.files[t.file[i]])
        f.lines[t.line[i]] = f.lines[t.line[i]] or 0
    end
    table.sort(order, function(a, b) return t.start[a] < t.start[b] end)
    for pc, n in pairs(runs) do
        if pc >= m.base and pc < m.limit then
            -- the last range starting at or below pc
            local lo, hi = 1, #order
            while lo < hi do
                local mid = math.floor((lo + hi + 1) / 2)
                if t.start[order[mid]] <= pc then
                    lo = mid
                else
                    hi = mid - 1
                end
            end
            local i = order[lo]
            if i and t.start[i] <= pc and pc < t.stop[i] then
                local lines = files[t.files[t.file[i]]].lines
                lines[t.line[i]] = math.max(lines[t.line[i]], n)
            end
        end
    end
    local fns = t.functions
    for i = 1, #fns.name do
        -- one function in several places (a static inline in a header): calls added up
        local f = file_of(files, fns.file[i])
        local key = fns.name[i] .. "\0" .. fns.line[i]
        local fn = f.functions[key] or { name = fns.name[i], line = fns.line[i], count = 0 }
        fn.count = fn.count + (runs[fns.entry[i]] or 0)
        f.functions[key] = fn
    end
end

local function sorted_keys(t, less)
    local keys = {}
    for k in pairs(t) do
        keys[#keys + 1] = k
    end
    table.sort(keys, less)
    return keys
end

local function tracefile(files)
    local out = {}
    local function put(fmt, ...)
        out[#out + 1] = fmt:format(...)
    end
    for _, path in ipairs(sorted_keys(files)) do
        local f = files[path]
        put("TN:")
        put("SF:%s", path)
        local fns = {}
        for _, fn in pairs(f.functions) do
            fns[#fns + 1] = fn
        end
        table.sort(fns, function(a, b) return a.line < b.line or (a.line == b.line and a.name < b.name) end)
        local hit = 0
        for _, fn in ipairs(fns) do
            put("FN:%d,%s", fn.line, fn.name)
        end
        for _, fn in ipairs(fns) do
            put("FNDA:%d,%s", fn.count, fn.name)
            hit = hit + (fn.count > 0 and 1 or 0)
        end
        put("FNF:%d", #fns)
        put("FNH:%d", hit)
        local lines, executed = sorted_keys(f.lines), 0
        for _, line in ipairs(lines) do
            put("DA:%d,%d", line, f.lines[line])
            executed = executed + (f.lines[line] > 0 and 1 or 0)
        end
        put("LF:%d", #lines)
        put("LH:%d", executed)
        put("end_of_record")
    end
    return #out > 0 and table.concat(out, "\n") .. "\n" or ""
end

-- The blocks that executed, in translation order, for drcov.
local function executed_blocks()
    local list = {}
    for _, b in ipairs(blocks) do
        if b.entry:sum() > 0 then
            list[#list + 1] = b
        end
    end
    return list
end

luahost.on_exit(function()
    if opt.format == "drcov" then
        luahost.outs(require("drcovfile").all_modules(luahost.modules(), executed_blocks()))
        return
    end
    local runs, files, read = executions(), {}, 0
    for _, m in ipairs(luahost.modules()) do
        if opt.modules == "all" or not program or m.id == program.id then
            local t = luahost.line_table(m)
            if t then
                add_module(files, t, runs, m)
                read = read + 1
            end
        end
    end
    if read == 0 then
        luahost.warn(("no %s has line information: build it with -g"):format(
            opt.modules == "all" and "module" or "program"))
    end
    luahost.outs(tracefile(files))
end)
