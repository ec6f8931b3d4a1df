-- What luahost.symbolize, insn:symbol(), luahost.describe and
-- luahost.resolve say about the guest's code, against binutils on the same
-- files: nm for symbols, readelf for load addresses, addr2line for source
-- lines. The guests (tests/guests/modules/) are a PIE program and its
-- shared library built with -g, stripped copies of both, and Debian's own
-- xz with liblzma and libc. Every expected address comes from binutils or
-- from the guest's output, and every count from the guest's output.
local helper = require("helper")

-- For each instruction translated in a module whose path starts with
-- dir=: what symbolize, insn:symbol() and describe said at translation,
-- and how many times it ran (an inline counter per address). Then every
-- module, and what resolve= texts resolve to (at exit).
local SCRIPT = [[
local opt = luahost.args { dir = "", resolve = luahost.args.list() }
local entry_of, pool, lines, order = {}, {}, {}, {}

local function new_entry()
    if #pool == 0 then
        local names = {}
        for i = 1, 64 do names[i] = "e" .. i end
        for _, e in pairs(luahost.scoreboard(names)) do
            if type(e) == "userdata" then pool[#pool + 1] = e end
        end
    end
    return table.remove(pool)
end

local function show(v, fmt)
    return v == nil and "-" or (fmt or "%s"):format(v)
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local pc = insn:vaddr()
        local e = entry_of[pc]
        if e == nil then
            local s = luahost.symbolize(pc)
            e = false
            if s and s.path:sub(1, #opt.dir) == opt.dir then
                e = new_entry()
                order[#order + 1] = pc
                lines[pc] = ("pc=%x module=%s offset=%x symbol=%s symbol_offset=%s file=%s line=%s isym=%s describe=%s")
                    :format(pc, s.module, s.offset, show(s.symbol), show(s.symbol_offset, "%x"), show(s.file),
                        show(s.line), show(insn:symbol()), luahost.describe(pc))
            end
            entry_of[pc] = e
        end
        if e then
            insn:inline("add", e, 1)
        end
    end
end)

luahost.on_exit(function()
    for _, m in ipairs(luahost.modules()) do
        luahost.printf("module name=%s path=%s base=%x limit=%x bias=%x\n", m.name, m.path, m.base, m.limit, m.bias)
    end
    for _, pc in ipairs(order) do
        luahost.printf("insn %s count=%d\n", lines[pc], entry_of[pc]:sum())
    end
    for _, text in ipairs(opt.resolve) do
        local addr, where = luahost.resolve(text)
        if addr then
            luahost.printf("resolve %s addr=%x module=%s\n", text, addr, tostring(where))
        else
            luahost.printf("resolve %s nil why=%s\n", text, where)
        end
    end
end)
]]

local function hex(v)
    return v ~= nil and v ~= "-" and tonumber(v, 16) or nil
end

-- The report: modules by name, instructions by address, resolve results by text.
local function parse_report(report)
    local r = { modules = {}, insns = {}, resolved = {} }
    for kind, rest in report:gmatch("(%a+) ([^\n]*)") do
        local f = helper.fields(rest)
        if kind == "module" then
            r.modules[f.name] = { name = f.name, path = f.path, base = hex(f.base), limit = hex(f.limit),
                bias = hex(f.bias) }
        elseif kind == "insn" then
            r.insns[#r.insns + 1] = { pc = hex(f.pc), module = f.module, offset = hex(f.offset),
                symbol = f.symbol ~= "-" and f.symbol or nil, symbol_offset = hex(f.symbol_offset),
                file = f.file ~= "-" and f.file or nil, line = tonumber(f.line), isym = f.isym,
                describe = f.describe, count = tonumber(f.count) }
        elseif kind == "resolve" then
            local text = rest:match("^(%S+)")
            r.resolved[text] = { addr = hex(f.addr), module = f.module, why = rest:match(" why=(.*)$") }
        end
    end
    return r
end

local function run(arch, guest, guest_args, resolve)
    local args = { "dir=" .. helper.modules_guest("") }
    for _, text in ipairs(resolve or {}) do
        args[#args + 1] = "resolve=" .. text
    end
    local r = helper.run_dynamic_lua(arch, SCRIPT, guest, { args = args, guest_args = guest_args })
    r.parsed = parse_report(r.report)
    return r
end

-- An ELF file's function symbols from nm: by name (sized ones win), and a
-- lookup of the sized function holding an ELF address.
local FUNCTION_TYPES = { T = true, t = true, W = true, w = true, i = true }

local function functions(arch, path, dynamic)
    local by_name, sized = {}, {}
    for _, s in ipairs(helper.elf_symbols(arch, path, dynamic)) do
        if FUNCTION_TYPES[s.type] then
            if not by_name[s.name] or (s.size or 0) > 0 then
                by_name[s.name] = s
            end
            if (s.size or 0) > 0 then
                sized[#sized + 1] = s
            end
        end
    end
    local function holding(addr)
        local best
        for _, s in ipairs(sized) do
            if s.addr <= addr and addr < s.addr + s.size and (not best or s.addr > best.addr) then
                best = s
            end
        end
        return best
    end
    return { by_name = by_name, holding = holding, sized = sized }
end

-- addr2line's answer for each ELF address: { base = file's base name, line }
-- or false for "??:0", "??:?" or "FILE:?" (no line information).
local function addr2line(arch, path, addrs)
    if #addrs == 0 then
        return {}
    end
    local hexes = {}
    for i, a in ipairs(addrs) do
        hexes[i] = ("0x%x"):format(a)
    end
    local status, out, err = helper.sh(("%s -e %s %s"):format(helper.binutil(arch, "addr2line"),
        helper.quote(path), table.concat(hexes, " ")))
    assert(status == 0, "addr2line failed: " .. (err or ""))
    local answers = {}
    for line in out:gmatch("[^\n]+") do
        local file, num = line:gsub(" %(discriminator %d+%)$", ""):match("^(.*):([%d?]+)$")
        if file == nil or file == "??" or num == "?" then   -- "crtstuff.c:?": no line either
            answers[#answers + 1] = false
        else
            answers[#answers + 1] = { base = file:match("([^/]+)$"), line = tonumber(num) }
        end
    end
    assert(#answers == #addrs, "addr2line: one answer per address\n" .. out)
    local by_addr = {}
    for i, a in ipairs(addrs) do
        by_addr[a] = answers[i]
    end
    return by_addr
end

local function basename(path)
    return path:match("([^/]+)$")
end

-- The guest's counts: NAME_calls=N in its output, by function name.
local function guest_calls(stdout)
    local calls = {}
    for name, n in stdout:gmatch("([%w_]+)_calls=(%d+)") do
        calls[name] = tonumber(n)
    end
    assert(next(calls), "the guest printed no counts")
    return calls
end

-- The modules of the run under the guests' directory, by base name, and
-- the files binutils reads for them: the originals also for the
-- stripped copies (the same bytes otherwise).
local function our_modules(arch, r)
    local mods = {}
    for name, m in pairs(r.parsed.modules) do
        if m.path:sub(1, #helper.modules_guest("")) == helper.modules_guest("") then
            local original = helper.modules_guest(name)
            mods[name] = { module = m, original = original, funcs = functions(arch, original),
                dynamic = functions(arch, m.path, true) }
        end
    end
    return mods
end

-- Each function's calls, as executions of its first instruction, are the
-- calls the guest counted itself.
local function assert_calls_as_guest(r, mods)
    local calls, counted = guest_calls(r.stdout), {}
    for _, insn in ipairs(r.parsed.insns) do
        local f = mods[insn.module].funcs.holding(insn.offset)
        if f and f.addr == insn.offset then
            counted[f.name] = (counted[f.name] or 0) + insn.count
        end
    end
    for name, n in pairs(calls) do
        assert.are.equal(n, counted[name], name)
    end
end

describe("symbolize, insn:symbol and describe agree with nm and addr2line", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        local prog = "modprog-" .. arch
        local lib = "libmodlib-" .. arch .. ".so"

        it("name every instruction of a PIE program and its library (" .. arch .. ")", function()
            local r = run(arch, helper.modules_guest(prog), { "50" })
            local mods = our_modules(arch, r)
            assert.is_truthy(mods[prog], r.report)
            assert.is_truthy(mods[lib], r.report)
            local by_module, named = {}, {}
            for _, insn in ipairs(r.parsed.insns) do
                local m = assert(mods[insn.module], "an instruction in " .. insn.module)
                local where = ("%s+0x%x (%s)"):format(insn.module, insn.offset, tostring(insn.symbol))
                assert.are.equal(insn.pc - m.module.bias, insn.offset, where .. ": offset = pc - bias")
                local want = m.funcs.holding(insn.offset)
                if want then
                    -- Aliases share an address: compare addresses, not names.
                    local got = insn.symbol and m.funcs.by_name[insn.symbol]
                    assert.is_truthy(got, where .. ": nm says " .. want.name)
                    assert.are.equal(want.addr, got.addr, where .. ": nm says " .. want.name)
                    named[want.name] = true
                elseif insn.symbol then
                    -- Outside every sized function (start-up code, PLT): the
                    -- symbol named must at least be where nm puts it.
                    local got = m.funcs.by_name[insn.symbol]
                    assert.is_truthy(got, where .. ": nm knows no such function")
                    assert.is_true(got.size == nil or insn.symbol_offset < got.size, where .. ": past its end")
                end
                if insn.symbol then
                    assert.are.equal(m.funcs.by_name[insn.symbol].addr + insn.symbol_offset, insn.offset, where)
                end
                assert.are.equal(insn.symbol or "-", insn.isym, where .. ": insn:symbol()")
                local described = not insn.symbol and ("%s+0x%x"):format(insn.module, insn.offset)
                    or insn.symbol_offset == 0 and insn.symbol or ("%s+0x%x"):format(insn.symbol, insn.symbol_offset)
                assert.are.equal(described, insn.describe, where .. ": describe")
                by_module[insn.module] = by_module[insn.module] or {}
                table.insert(by_module[insn.module], insn)
            end
            -- Every function whose calls the guest counted ran and was named.
            for name in pairs(guest_calls(r.stdout)) do
                assert.is_true(named[name], name .. " was named")
            end
            -- Source lines: addr2line's file (base name) and line, or none.
            local lines_checked = 0
            for name, insns in pairs(by_module) do
                local addrs = {}
                for i, insn in ipairs(insns) do
                    addrs[i] = insn.offset
                end
                local want = addr2line(arch, mods[name].original, addrs)
                for _, insn in ipairs(insns) do
                    local w = want[insn.offset]
                    local where = ("%s+0x%x"):format(name, insn.offset)
                    if w then
                        assert.are.equal(w.base .. ":" .. tostring(w.line),
                            tostring(insn.file and basename(insn.file)) .. ":" .. tostring(insn.line), where)
                        lines_checked = lines_checked + 1
                    else
                        assert.is_nil(insn.file, where .. ": addr2line knows no line")
                    end
                end
            end
            assert.is_true(lines_checked > 20, "instructions with source lines: " .. lines_checked)
        end)

        it("count the calls the guest counted, at each function's first instruction (" .. arch .. ")", function()
            local r = run(arch, helper.modules_guest(prog), { "37" })
            local mods = our_modules(arch, r)
            assert_calls_as_guest(r, mods)
        end)

        it("name a shared library's functions with insn:symbol() (" .. arch .. ")", function()
            -- Before modules, insn:symbol() knew the program's own symbols only.
            local r = run(arch, helper.modules_guest(prog), { "5" })
            local lib_apply = functions(arch, helper.modules_guest(lib)).by_name.lib_apply
            local seen = 0
            for _, insn in ipairs(r.parsed.insns) do
                local inside = insn.offset >= lib_apply.addr and insn.offset < lib_apply.addr + lib_apply.size
                if insn.module == lib and inside then
                    assert.are.equal("lib_apply", insn.isym)
                    seen = seen + 1
                end
            end
            assert.is_true(seen > 0, "no instruction of lib_apply ran")
        end)

        it("read a separate debug file through .gnu_debuglink as from the file itself (" .. arch .. ")",
                function()
            -- debuglink/: stripped copies whose symbols and DWARF are in NAME.debug
            -- beside them. Every instruction of the program and library is named and
            -- placed as in the run of the unstripped files.
            local function by_offset(r)
                local t = {}
                for _, insn in ipairs(r.parsed.insns) do
                    if insn.module == prog or insn.module == lib then
                        t[insn.module .. "+" .. insn.offset] = insn
                    end
                end
                return t
            end
            local plain = by_offset(run(arch, helper.modules_guest(prog), { "20" }))
            local linked = by_offset(run(arch, helper.modules_guest("debuglink/" .. prog), { "20" }))
            local compared, lines = 0, 0
            for key, want in pairs(plain) do
                local got = linked[key]
                assert.is_truthy(got, key .. " ran in the debuglink copy too")
                assert.are.same({ want.symbol, want.symbol_offset, want.file, want.line },
                    { got.symbol, got.symbol_offset, got.file, got.line }, key)
                compared = compared + 1
                lines = lines + (got.line and 1 or 0)
            end
            assert.is_true(compared > 20 and lines > 20, ("%d instructions, %d with lines"):format(compared, lines))
        end)

        it("name stripped files by .dynsym, else module+offset (" .. arch .. ")", function()
            local r = run(arch, helper.modules_guest("stripped/" .. prog), { "20" })
            local mods = our_modules(arch, r)
            assert.are.equal(helper.modules_guest("stripped/" .. lib), mods[lib].module.path)
            local unnamed, exported = {}, {}
            for _, insn in ipairs(r.parsed.insns) do
                local m = mods[insn.module]
                local where = ("%s+0x%x (%s)"):format(insn.module, insn.offset, tostring(insn.symbol))
                assert.are.equal(insn.pc - m.module.bias, insn.offset, where .. ": offset = pc - bias")
                assert.is_nil(insn.file, where .. ": no DWARF in a stripped file")
                local f = m.funcs.holding(insn.offset)        -- nm on the original
                if f and m.dynamic.by_name[f.name] then      -- exported: still named
                    assert.are.equal(m.dynamic.by_name[f.name].addr,
                        insn.symbol and m.dynamic.by_name[insn.symbol] and m.dynamic.by_name[insn.symbol].addr, where)
                    assert.are.equal(f.addr + insn.symbol_offset, insn.offset, where)
                    exported[f.name] = true
                elseif f then                                -- static, or not exported
                    assert.is_nil(insn.symbol, where .. ": " .. f.name .. " has no symbol left")
                    assert.are.equal(("%s+0x%x"):format(insn.module, insn.offset), insn.describe, where)
                    assert.are.equal("-", insn.isym, where .. ": insn:symbol()")
                    unnamed[f.name] = true
                end
            end
            -- Both kinds ran: the library's static lib_mix, its exported lib_apply.
            assert.is_true(unnamed.lib_mix, "lib_mix ran unnamed")
            assert.is_true(unnamed.work, "work ran unnamed")
            assert.is_true(exported.lib_apply, "lib_apply ran named")
            -- And the counts are those of the unstripped run.
            assert_calls_as_guest(r, mods)
        end)
    end
end)

describe("resolve agrees with nm plus the module's bias", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        local prog = "modprog-" .. arch
        local lib = "libmodlib-" .. arch .. ".so"
        local lib_stem = "libmodlib-" .. arch

        it("symbols, module!symbol, +offsets, module+offset, unknown names (" .. arch .. ")", function()
            local pf = functions(arch, helper.modules_guest(prog)).by_name
            local lf = functions(arch, helper.modules_guest(lib)).by_name
            local texts = {
                work = { prog, pf.work.addr },
                prog_callback = { prog, pf.prog_callback.addr },
                lib_apply = { lib, lf.lib_apply.addr },
                ["lib_apply+0x4"] = { lib, lf.lib_apply.addr + 4 },
                [lib_stem .. "!lib_apply"] = { lib, lf.lib_apply.addr },
                [lib .. "!lib_mix"] = { lib, lf.lib_mix.addr },
                [helper.modules_guest(lib) .. "!lib_mixes+0x2"] = { lib, lf.lib_mixes.addr + 2 },
                [("%s+0x%x"):format(lib_stem, lf.lib_mix.addr)] = { lib, lf.lib_mix.addr },
                [("%s+0x%x"):format(prog, pf.main.addr)] = { prog, pf.main.addr },
            }
            local unknown = { "no_such_function_anywhere", lib_stem .. "!work", "libnosuch+0x10", "libnosuch!main" }
            local all = {}
            for text in pairs(texts) do
                all[#all + 1] = text
            end
            for _, text in ipairs(unknown) do
                all[#all + 1] = text
            end
            local r = run(arch, helper.modules_guest(prog), { "3" }, all)
            local mods = r.parsed.modules
            for text, want in pairs(texts) do
                local got = r.parsed.resolved[text]
                assert.is_truthy(got, text .. "\n" .. r.report)
                assert.are.equal(want[1], got.module, text)
                assert.are.equal(("%x"):format(mods[want[1]].bias + want[2]), ("%x"):format(got.addr or 0), text)
            end
            for _, text in ipairs(unknown) do
                local got = r.parsed.resolved[text]
                assert.is_truthy(got, text .. "\n" .. r.report)
                assert.is_nil(got.addr, text)
                assert.matches("^" .. text:gsub("%p", "%%%0") .. ": %a", got.why)
            end
            -- The addresses the guest itself printed.
            assert.are.equal(helper.printed_address(r.stdout, "work"), r.parsed.resolved.work.addr)
            assert.are.equal(helper.printed_address(r.stdout, "lib_apply"), r.parsed.resolved.lib_apply.addr)
        end)

        it("a PIE program's symbol resolves at its load address, not its ELF address (" .. arch .. ")", function()
            local r = run(arch, helper.modules_guest(prog), { "3" }, { "work" })
            local elf = functions(arch, helper.modules_guest(prog)).by_name.work.addr
            local printed = helper.printed_address(r.stdout, "work")
            assert.are_not.equal(elf, printed)
            assert.are.equal(("%x"):format(printed), ("%x"):format(r.parsed.resolved.work.addr or 0))
        end)

        it("in stripped files: exported symbols, module+offset, no static symbols (" .. arch .. ")", function()
            local lf = functions(arch, helper.modules_guest(lib)).by_name
            local r = run(arch, helper.modules_guest("stripped/" .. prog), { "3" },
                { "lib_apply", "lib_mix", ("%s+0x%x"):format(lib_stem, lf.lib_mix.addr) })
            local bias = r.parsed.modules[lib].bias
            assert.are.equal(bias + lf.lib_apply.addr, r.parsed.resolved.lib_apply.addr)
            assert.is_nil(r.parsed.resolved.lib_mix.addr)
            assert.matches("^lib_mix: ", r.parsed.resolved.lib_mix.why)
            local by_offset = r.parsed.resolved[("%s+0x%x"):format(lib_stem, lf.lib_mix.addr)]
            assert.are.equal(bias + lf.lib_mix.addr, by_offset.addr)
        end)
    end
end)

-- Executed instructions per module (an inline counter per module, "-"
-- for none), and what symbolize said at translation about each
-- instruction of the modules whose names start with a list= stem
-- ("liblzma" for liblzma.so.5.4.1: a module is named after its file,
-- not the soname the program asked for).
local XZ_SCRIPT = [[
local opt = luahost.args { list = luahost.args.list() }
local listed, entries, names, none, lines, seen = {}, {}, {}, luahost.scoreboard(), {}, {}
for _, name in ipairs(opt.list) do
    listed[name] = true
end
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local pc = insn:vaddr()
        local m = luahost.module_at(pc)
        local e = none
        if m then
            e = entries[m.id]
            if not e then
                e = luahost.scoreboard()
                entries[m.id], names[m.id] = e, m.name
            end
            if listed[m.name:match("^[^.]*")] and not seen[pc] then
                seen[pc] = true
                local s = luahost.symbolize(pc)
                lines[#lines + 1] = ("insn module=%s path=%s offset=%x symbol=%s symbol_offset=%x"):format(
                    s.module, s.path, s.offset, s.symbol or "-", s.symbol_offset or 0)
            end
        end
        insn:inline("add", e, 1)
    end
end)
luahost.on_exit(function()
    for id, e in pairs(entries) do
        luahost.printf("count module=%s n=%d\n", names[id], e:sum())
    end
    luahost.printf("count module=- n=%d\n", none:sum())
    luahost.printf("%s\n", table.concat(lines, "\n"))
end)
]]

describe("on Debian's xz", function()
    after_each(helper.cleanup)

    it("nearly every instruction is in a module, exported functions named as nm -D says (x86_64)", function()
        local arch, xz = "x86_64", "/usr/bin/xz"
        local input = helper.tmpname()
        local status = helper.sh("cat /usr/share/common-licenses/* >" .. helper.quote(input))
        assert.are.equal(0, status)
        local needed = {}
        local _, dyn = helper.sh(("%s -dW %s"):format(helper.binutil(arch, "readelf"), xz))
        for name in dyn:gmatch("%(NEEDED%)%s+Shared library: %[([^%]]+)%]") do
            needed[#needed + 1] = name:match("^[^.]*")
        end
        assert.is_true(#needed >= 2, "xz needs liblzma and libc")
        local args = {}
        for i, name in ipairs(needed) do
            args[i] = "list=" .. name
        end
        local r = helper.run_dynamic_lua(arch, XZ_SCRIPT, xz, { args = args, guest_args = { "-9", "-c", input } })
        -- Attribution: the counts per module.
        local total, attributed, per_module = 0, 0, {}
        for name, n in r.report:gmatch("count module=(%S+) n=(%d+)") do
            n = tonumber(n)
            total = total + n
            if name ~= "-" then
                attributed = attributed + n
                per_module[name:match("^[^.]*")] = (per_module[name:match("^[^.]*")] or 0) + n
            end
        end
        assert.is_true(total > 1000000, "instructions executed: " .. total)
        assert.is_true(attributed >= 0.999 * total, ("attributed %d of %d"):format(attributed, total))
        -- Naming: each listed instruction inside an exported function.
        local by_path, checked = {}, {}
        for line in r.report:gmatch("insn ([^\n]*)") do
            local f = helper.fields(line)
            by_path[f.path] = by_path[f.path] or { module = f.module, insns = {} }
            table.insert(by_path[f.path].insns, f)
        end
        for path, mod in pairs(by_path) do
            -- nm -D's sized functions, by the 4 KiB pages they cover.
            local pages, exported = {}, 0
            for _, s in ipairs(helper.elf_symbols(arch, path, true)) do
                if FUNCTION_TYPES[s.type] and (s.size or 0) > 0 then
                    exported = exported + 1
                    for page = s.addr // 4096, (s.addr + s.size - 1) // 4096 do
                        pages[page] = pages[page] or {}
                        table.insert(pages[page], s)
                    end
                end
            end
            assert.is_true(exported > 50, path .. ": exported functions")
            local stem = mod.module:match("^[^.]*")
            checked[stem] = 0
            for _, f in ipairs(mod.insns) do
                local offset, holders, names = hex(f.offset), {}, {}
                for _, s in ipairs(pages[offset // 4096] or {}) do
                    if s.addr <= offset and offset < s.addr + s.size then
                        holders[s.addr] = true
                        names[#names + 1] = s.name
                    end
                end
                if #names > 0 then
                    -- Named by an exported function holding it, or an alias of one.
                    local where = ("%s+0x%x: named %s+0x%s, nm -D: %s"):format(mod.module, offset, f.symbol,
                        f.symbol_offset, table.concat(names, " "))
                    assert.is_true(f.symbol ~= "-" and holders[offset - hex(f.symbol_offset)], where)
                    checked[stem] = checked[stem] + 1
                end
            end
        end
        for _, name in ipairs(needed) do
            assert.is_true((per_module[name] or 0) > 0, name .. " ran")
            assert.is_true((checked[name] or 0) > 100, name .. ": instructions in exported functions checked")
        end
    end)
end)
