-- examples/coverage.lua against gcov. tests/guests/coverage.c is built
-- -g -O0 for QEMU (tests/guests/meson.build) and here, natively, with
-- --coverage -O0; the gcov build runs on the host and lcov --capture
-- turns its counts into a tracefile of the format ours is in. gcov's own
-- instrumentation changes the code, so both cannot run in one QEMU run;
-- the guest is deterministic (its output is compared too). Every line
-- where the two differ must be explained by one of the rules in
-- expected_from_gcov, each derived from the source text, with the count
-- it must have; the other lines must have gcov's counts. genhtml renders
-- our file; luahost.line_table agrees with symbolize.
local helper = require("helper")

local SCRIPT = helper.source_root .. "/examples/coverage.lua"
local GUESTS = helper.source_root .. "/tests/guests"
local GUEST_ARGS = { "10" }

local dirs = {}

local function tmpdir()
    local status, out = helper.sh("mktemp -d")
    assert(status == 0)
    dirs[#dirs + 1] = out:match("%S+")
    return dirs[#dirs]
end

local function cleanup()
    for _, d in ipairs(dirs) do
        os.execute("rm -rf " .. helper.quote(d))
    end
    dirs = {}
    helper.cleanup()
end

-- An lcov tracefile: files[base name] = { path, lines = { [line] = count },
-- fns = { [name] = { line, count } } }; its LF/LH/FNF/FNH checked.
local function parse(text)
    local files, f = {}, nil
    for line in text:gmatch("[^\n]+") do
        local key, value = line:match("^(%u+):(.*)$")
        if key == "SF" then
            f = { path = value, lines = {}, fns = {}, n = {} }
            files[value:match("[^/]*$")] = f
        elseif key == "FN" then
            local l, name = value:match("^(%d+),(.+)$")
            f.fns[name] = { line = tonumber(l), count = f.fns[name] and f.fns[name].count }
        elseif key == "FNDA" then
            local count, name = value:match("^(%d+),(.+)$")
            f.fns[name].count = tonumber(count)
        elseif key == "DA" then
            local l, count = value:match("^(%d+),(%d+)")
            f.lines[tonumber(l)] = tonumber(count)
        elseif key == "LF" or key == "LH" or key == "FNF" or key == "FNH" then
            f.n[key] = tonumber(value)
        elseif line == "end_of_record" then
            f = nil
        end
    end
    return files
end

-- Our own totals must be what our lines and functions say.
local function assert_totals(f)
    local lf, lh, fnf, fnh = 0, 0, 0, 0
    for _, count in pairs(f.lines) do
        lf, lh = lf + 1, lh + (count > 0 and 1 or 0)
    end
    for _, fn in pairs(f.fns) do
        fnf, fnh = fnf + 1, fnh + (fn.count > 0 and 1 or 0)
    end
    assert.are.same({ LF = lf, LH = lh, FNF = fnf, FNH = fnh }, f.n, f.path)
end

local function source_lines(path)
    local lines = {}
    for line in (assert(helper.read(path)) .. "\n"):gmatch("([^\n]*)\n") do
        lines[#lines + 1] = line
    end
    return lines
end

-- gcov's tracefile for the guest run natively with args, and its stdout.
local function gcov_reference(args)
    local dir = tmpdir()
    local status, out, err = helper.sh(("cd %s && gcc --coverage -O0 -I %s -o prog %s && ./prog %s && "
        .. "lcov --quiet --capture --directory . --output-file ref.info"):format(helper.quote(dir),
        helper.quote(GUESTS), helper.quote(GUESTS .. "/coverage.c"), table.concat(args, " ")))
    assert(status == 0, err)
    return parse(assert(helper.read(dir .. "/ref.info"))), out
end

-- The lines we must report for file, from gcov's, where DWARF and gcov
-- put code on different lines (as GCC 12 does at -O0). Each rule is
-- derived from the source text.
local function expected_from_gcov(gcov, src)
    local lines = {}
    for l, count in pairs(gcov.lines) do
        lines[l] = count
    end
    local fns = {}
    for _, fn in pairs(gcov.fns) do
        fns[#fns + 1] = fn
    end
    table.sort(fns, function(a, b) return a.line < b.line end)
    for i, fn in ipairs(fns) do
        -- 1. gcov counts a function's entry on the line of its name (FN's
        -- line); DWARF puts the prologue on the line of its opening brace.
        local brace = fn.line
        while not src[brace]:find("{", 1, true) do
            brace = brace + 1
        end
        if brace ~= fn.line then
            assert.are.equal(fn.count, lines[fn.line], "gcov counts the entry on the name's line")
            lines[fn.line], lines[brace] = nil, fn.count
        end
        -- 2. DWARF puts the epilogue (leave; ret) on the function's closing
        -- brace, which gcov does not count: it runs once per call that
        -- returns, here every call.
        local stop = fns[i + 1] and fns[i + 1].line or #src
        for l = brace + 1, stop do
            if src[l] == "}" then
                assert.is_nil(lines[l], "gcov counts no closing brace")
                lines[l] = fn.count
                break
            end
        end
    end
    -- 3. A case label has no code of its own in DWARF; gcov counts the
    -- label's line where a block starts (the jump's target).
    for l, text in ipairs(src) do
        if text:match("^%s*case [^:]+:%s*$") or text:match("^%s*default:%s*$") then
            lines[l] = nil
        end
    end
    return lines
end

local function run_coverage(arch, args, guest, opts)
    local run = opts and opts.dynamic and helper.run_dynamic_file or helper.run_file
    return run(arch, SCRIPT, guest, { args = args, guest_args = opts and opts.guest_args or GUEST_ARGS })
end

describe("coverage.lua", function()
    after_each(cleanup)

    for _, arch in ipairs(helper.arches) do
        it("reports the lines gcov reports, with gcov's counts, but where a rule says why (" .. arch .. ")",
            function()
                local gcov, native_out = gcov_reference(GUEST_ARGS)
                local r = run_coverage(arch, {}, helper.guest("coverage", arch))
                assert.are.equal(native_out, r.stdout, "the guest did what the gcov build did")
                local ours = parse(r.report)
                for _, name in ipairs({ "coverage.c", "coverage.h" }) do
                    assert.is_truthy(ours[name], name .. " in our tracefile")
                    assert.is_truthy(gcov[name], name .. " in gcov's tracefile")
                    assert_totals(ours[name])
                    assert.are.same(gcov[name].fns, ours[name].fns, name .. ": functions")
                    local expected = expected_from_gcov(gcov[name], source_lines(GUESTS .. "/" .. name))
                    assert.are.same(expected, ours[name].lines, name .. ": lines and counts")
                end
                -- and the rules had work to do: a function never called, a
                -- line never run, a header's function called
                assert.are.equal(0, ours["coverage.c"].fns.never_called.count)
                assert.are.equal(tonumber(GUEST_ARGS[1]), ours["coverage.h"].fns.clamp.count)
            end)
    end

    it("writes a file genhtml renders, naming the sources", function()
        local dir = tmpdir()
        local r = run_coverage("x86_64", {}, helper.guest("coverage", "x86_64"))
        local ours = parse(r.report)
        helper.write(dir .. "/cov.info", r.report)
        local status, out, err = helper.sh(("cd %s && genhtml cov.info --output-directory html"):format(
            helper.quote(dir)))
        assert.are.equal(0, status, err)
        local lf, lh = 0, 0
        for _, f in pairs(ours) do
            lf, lh = lf + f.n.LF, lh + f.n.LH
        end
        assert.matches(("lines%%.+: [%%d.]+%%%% %%(%d of %d lines%%)"):format(lh, lf), out)
        for _, name in ipairs({ "coverage.c", "coverage.h" }) do
            local _, found = helper.sh(("find %s/html -name %s.gcov.html"):format(helper.quote(dir), name))
            local page = helper.read(found:match("[^\n]+") or "")
            assert.is_truthy(page, name .. "'s page")
            assert.matches(name, page, 1, true)
            -- the never called function's first line, shown as not run
            if name == "coverage.c" then
                assert.matches('<span class="lineNoCov">', page, 1, true)
            end
        end
    end)

    it("reads the program's lines alone with modules=program, its libraries' too by default", function()
        local guest = helper.modules_guest("modprog-x86_64")
        local all = parse(run_coverage("x86_64", {}, guest, { dynamic = true, guest_args = {} }).report)
        local program = parse(run_coverage("x86_64", { "modules=program" }, guest,
            { dynamic = true, guest_args = {} }).report)
        assert.is_truthy(all["modprog.c"])
        assert.is_truthy(all["modlib.c"])
        local names = {}
        for name in pairs(program) do
            names[#names + 1] = name
        end
        assert.are.same({ "modprog.c" }, names)
        assert.are.same(all["modprog.c"], program["modprog.c"])
        assert.is_true(all["modlib.c"].n.LH > 0)
    end)

    for _, arch in ipairs(helper.arches) do
        it("writes with format=drcov the file drcov.lua modules=all writes, in the same run (" .. arch .. ")",
            function()
                local drcov = helper.tmpname()
                local r = helper.run_dynamic_file(arch, SCRIPT, helper.modules_guest("modprog-" .. arch), {
                    args = { "format=drcov" }, guest_args = {},
                    plugins = { helper.luahost_plugin(helper.source_root .. "/scripts/drcov.lua",
                        { "modules=all", "filename=" .. drcov }) } })
                assert.are.equal(0, r.status, r.stderr)
                local expected = assert(helper.read(drcov))
                assert.is_truthy(expected:find("libmodlib", 1, true), "the library is in the table")
                assert.are.equal(expected, r.report)
            end)
    end

    it("refuses format=drcov with no file to write, naming the argument", function()
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT, { "format=drcov" }) },
            helper.guest("loop", "x86_64"), { "1" })
        assert.are_not.equal(0, r.status)
        assert.is_truthy(r.stderr:find("format=drcov writes a binary file: give one with -o FILE", 1, true),
            r.stderr)
    end)

    it("warns when nothing has line information, and writes no record", function()
        local r = run_coverage("x86_64", {}, helper.guest("loop", "x86_64"))
        assert.are.equal("", r.report)
        assert.are.equal("luahost: warning: no module has line information: build it with -g\n", r.stderr)
    end)
end)

describe("luahost.line_table", function()
    after_each(cleanup)

    for _, arch in ipairs(helper.arches) do
        it("gives each address the line symbolize gives it, and functions where their symbols are (" .. arch
            .. ")", function()
            local r = helper.run_lua(arch, [=[
                luahost.on_exit(function()
                    local m = luahost.modules()[1]
                    local t = assert(luahost.line_table(m))
                    local bad, rows = {}, #t.start
                    local function check(addr, i)
                        local s = luahost.symbolize(addr)
                        local base = t.files[t.file[i]]:match("[^/]*$")
                        if not (s and s.line == t.line[i] and s.file:match("[^/]*$") == base) then
                            bad[#bad + 1] = ("%x: %s:%s, table %s:%d"):format(addr, s and s.file, s and s.line,
                                t.files[t.file[i]], t.line[i])
                        end
                    end
                    for i = 1, rows do
                        check(t.start[i], i)
                        check(t.stop[i] - 1, i)
                    end
                    for i, name in ipairs(t.functions.name) do
                        local s = luahost.symbolize(t.functions.entry[i])
                        if not (s.symbol == name and s.symbol_offset == 0) then
                            bad[#bad + 1] = name .. " is not at its symbol"
                        end
                    end
                    assert(luahost.line_table(m.name).start[1] == t.start[1], "by name")
                    local none, why = luahost.line_table("no-such-module")
                    luahost.outs(("rows=%d functions=%d bad=%d %s\n%s\n%s\n"):format(rows, #t.functions.name,
                        #bad, tostring(none), why, table.concat(bad, "\n")))
                end)
            ]=], helper.guest("coverage", arch), { guest_args = GUEST_ARGS })
            local rows, functions, bad = r.report:match("^rows=(%d+) functions=(%d+) bad=(%d+) nil\n")
            assert.is_truthy(rows, r.report)
            assert.is_true(tonumber(rows) > 30, r.report)
            assert.is_true(tonumber(functions) >= 4, r.report)
            assert.are.equal("0", bad, r.report)
            assert.matches("\nno such module is mapped\n", r.report, 1, true)
        end)
    end
end)
