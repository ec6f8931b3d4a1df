-- luahost.modules, module_at, on_module and modules_generation in user
-- mode, on the dynamically linked guests of tests/guests/modules/: a PIE
-- program with a library of its own, libraries opened and closed with
-- dlopen, a forking program. What a module should be comes from binutils
-- (readelf's program headers, interpreter and needed libraries; nm) and
-- from the guests' own output.
local helper = require("helper")

local function hex(v)
    return v ~= nil and v ~= "-" and tonumber(v, 16) or nil
end

local function module_of(line)
    local f = helper.fields(line)
    return { name = f.name, path = f.path, base = hex(f.base), limit = hex(f.limit), bias = hex(f.bias),
        id = tonumber(f.id), at_base = tonumber(f.at_base), at_last = tonumber(f.at_last), at_limit = f.at_limit }
end

-- Lua for a module's line: its fields and what module_at says at its
-- first and last address and at its limit.
local SHOW_MODULE = [[
local function show(m)
    local at_base, at_last, at_limit = luahost.module_at(m.base), luahost.module_at(m.limit - 1),
        luahost.module_at(m.limit)
    return ("name=%s path=%s base=%x limit=%x bias=%x id=%d at_base=%s at_last=%s at_limit=%s"):format(
        m.name, m.path, m.base, m.limit, m.bias, m.id, at_base and at_base.id or "-",
        at_last and at_last.id or "-", at_limit and at_limit.name or "-")
end
]]

-- The modules when the first block is translated, and as they were last
-- seen changing from a vCPU (a question at exit answers from the table
-- as last read on a vCPU: docs/api.md).
local LIST = SHOW_MODULE .. [[
local first, generation, last = true, nil, {}
luahost.on_tb_translate(function(tb)
    if first then
        first = false
        local m = luahost.module_at(tb:vaddr())
        luahost.printf("first pc=%x in=%s generation=%d\n", tb:vaddr(), m and m.name or "-",
            luahost.modules_generation())
        for _, mod in ipairs(luahost.modules()) do
            luahost.printf("first_module %s\n", show(mod))
        end
    end
    if luahost.modules_generation() ~= generation then
        generation = luahost.modules_generation()
        last = {}
        for _, mod in ipairs(luahost.modules()) do
            last[#last + 1] = show(mod)
        end
    end
end)
luahost.on_exit(function()
    for _, line in ipairs(last) do
        luahost.printf("module %s\n", line)
    end
    luahost.printf("last generation=%d\n", generation)
end)
]]

-- readelf's facts about a file: the interpreter it asks for, the
-- libraries it needs, whether it is position-independent.
local function readelf(arch, path, option)
    local status, out, err = helper.sh(("%s %s %s"):format(helper.binutil(arch, "readelf"), option, helper.quote(path)))
    assert(status == 0, "readelf failed: " .. (err or ""))
    return out
end

local function basename(path)
    return path:match("([^/]+)$")
end

local function exists(path)
    local f = io.open(path, "r")
    if f then
        f:close()
    end
    return f ~= nil
end

-- The lowest PT_LOAD's ELF address of file offset 0 (p_vaddr - p_offset:
-- p_vaddr itself for the usual first segment at offset 0), and the end of
-- the highest segment in memory.
local function elf_extent(arch, path)
    local loads = helper.elf_loads(arch, path)
    local first, top = loads[1], 0
    for _, l in ipairs(loads) do
        if l.vaddr < first.vaddr then
            first = l
        end
        top = math.max(top, l.vaddr + l.memsz)
    end
    return first.vaddr - first.offset, top, first
end

local function by_name(list)
    local t = {}
    for _, m in ipairs(list) do
        t[m.name] = m
    end
    return t
end

local function parse_list(report, kind)
    local list = {}
    for line in report:gmatch("[^\n]+") do
        local rest = line:match("^" .. kind .. " (.*)")
        if rest then
            list[#list + 1] = module_of(rest)
        end
    end
    return list
end

-- The names every run of prog must have as modules: the program, the
-- interpreter and the libraries it needs (readelf), the vDSO.
local function expected_modules(arch, path)
    local interp = readelf(arch, path, "-lW"):match("%[Requesting program interpreter: ([^%]]+)%]")
    assert.is_truthy(interp, "readelf: no interpreter")
    local names = { basename(path), basename(interp), "[vdso]" }
    for needed in readelf(arch, path, "-dW"):gmatch("%(NEEDED%)%s+Shared library: %[([^%]]+)%]") do
        names[#names + 1] = needed
    end
    return names
end

describe("modules of a dynamically linked PIE program", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        local prog = "modprog-" .. arch
        local prog_path = helper.modules_guest(prog)

        it("are the program, its loader, the libraries it needs and the vDSO (" .. arch .. ")", function()
            local r = helper.run_dynamic_lua(arch, LIST, prog_path, { guest_args = { "3" } })
            local list = parse_list(r.report, "module")
            local mods = by_name(list)
            local expected = expected_modules(arch, prog_path)
            assert.is_true(#expected >= 5, "the program needs libmodlib and libc")
            for _, name in ipairs(expected) do
                assert.is_truthy(mods[name], name .. " is a module\n" .. r.report)
            end
            assert.are.equal(prog_path, mods[prog].path)
            assert.are.equal("[vdso]", mods["[vdso]"].path)
            local ids = {}
            for i, m in ipairs(list) do
                assert.is_true(m.base < m.limit, m.name .. ": base < limit")
                assert.is_true(i == 1 or list[i - 1].limit <= m.base, m.name .. ": sorted, not overlapping")
                assert.is_nil(ids[m.id], m.name .. ": id of its own")
                ids[m.id] = true
                assert.are.equal(m.id, m.at_base, m.name .. ": module_at(base)")
                assert.are.equal(m.id, m.at_last, m.name .. ": module_at(limit - 1)")
                assert.are_not.equal(m.name, m.at_limit, m.name .. ": module_at(limit)")
                if m.path ~= "[vdso]" then
                    assert.is_true(exists(m.path), m.path .. " exists")
                    assert.are.equal(m.name, basename(m.path))
                    -- bias = base - the ELF address of the first PT_LOAD (file offset 0).
                    local elf_base, top = elf_extent(arch, m.path)
                    assert.are.equal(("%x"):format(m.base - elf_base), ("%x"):format(m.bias), m.name .. ": bias")
                    -- The module reaches past its last segment's file data and
                    -- not past its memory image rounded to 64 KiB pages.
                    local loads = helper.elf_loads(arch, m.path)
                    local last = loads[#loads]
                    assert.is_true(m.limit >= m.bias + last.vaddr + last.filesz, m.name .. ": limit covers the file")
                    assert.is_true(m.limit <= m.bias + top + 0x10000, m.name .. ": limit within the image")
                end
            end
        end)

        it("put the PIE program away from its link address, at work's address minus nm's (" .. arch .. ")", function()
            local r = helper.run_dynamic_lua(arch, LIST, prog_path, { guest_args = { "3" } })
            local mods = by_name(parse_list(r.report, "module"))
            local elf_base, _, first = elf_extent(arch, prog_path)
            assert.matches("Type:%s+DYN", readelf(arch, prog_path, "-hW"))
            assert.are.equal(0, first.vaddr, "linked at 0")
            assert.are_not.equal(elf_base, mods[prog].base)
            local work
            for _, s in ipairs(helper.elf_symbols(arch, prog_path)) do
                if s.name == "work" then
                    work = s.addr
                end
            end
            assert.are.equal(helper.printed_address(r.stdout, "work") - work, mods[prog].bias)
        end)

        it("are known from the first translated block on (" .. arch .. ")", function()
            local r = helper.run_dynamic_lua(arch, LIST, prog_path, { guest_args = { "3" } })
            local interp = expected_modules(arch, prog_path)[2]
            local first = helper.fields(r.report:match("first ([^\n]*)"))
            assert.are.equal(interp, first["in"], "the first block is the loader's")
            local mods = by_name(parse_list(r.report, "first_module"))
            for _, name in ipairs({ prog, interp, "[vdso]" }) do
                assert.is_truthy(mods[name], name .. " at the first block\n" .. r.report)
            end
            -- libc comes later, as the loader maps it.
            assert.is_nil(mods["libc.so.6"])
            local last = helper.fields(r.report:match("last ([^\n]*)"))
            assert.is_true(tonumber(last.generation) > tonumber(first.generation), "generation moved")
        end)
    end
end)

-- Only module events: no hook that translates blocks.
local EVENTS_ONLY = [[
luahost.on_module(function(what, m)
    luahost.printf("event %s name=%s id=%d base=%x limit=%x\n", what, m.name, m.id, m.base, m.limit)
end)
]]

describe("module events", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        local prog_path = helper.modules_guest("modprog-" .. arch)

        it("come to a script that watches modules and nothing else (" .. arch .. ")", function()
            local r = helper.run_dynamic_lua(arch, EVENTS_ONLY, prog_path, { guest_args = { "3" } })
            local mapped = {}
            for name in r.report:gmatch("event map name=(%S+)") do
                mapped[name] = true
            end
            for _, name in ipairs(expected_modules(arch, prog_path)) do
                assert.is_true(mapped[name], name .. " mapped\n" .. r.report)
            end
        end)

        it("are listed in an exit hook of a script with no other hook (" .. arch .. ")", function()
            local r = helper.run_dynamic_lua(arch, [[
luahost.on_exit(function()
    for _, m in ipairs(luahost.modules()) do
        luahost.printf("module %s\n", m.name)
    end
end)
]], prog_path, { guest_args = { "3" } })
            for _, name in ipairs(expected_modules(arch, prog_path)) do
                assert.matches("module " .. name:gsub("%p", "%%%0") .. "\n", r.report)
            end
        end)

        it("name the vDSO's functions at its link addresses, the same in every run (" .. arch .. ")", function()
            -- QEMU relocates its copy of the vDSO; its symbols, read by libdwfl,
            -- are at the image's link addresses, from 0.
            local script = [[
luahost.on_exit(function()
    for _, m in ipairs(luahost.modules()) do
        if m.name == "[vdso]" then
            local s = luahost.symbolize(m.base + 0x10)
            luahost.printf("vdso base=%x offset=%x\n", m.base, s.offset)
        end
    end
    for _, name in ipairs({ "__vdso_clock_gettime", "__kernel_clock_gettime" }) do
        local addr = luahost.resolve("[vdso]!" .. name)
        if addr then
            local s = luahost.symbolize(addr)
            luahost.printf("vdso fn=%s offset=%x\n", tostring(s.symbol), s.offset)
        end
    end
end)
]]
            local a = helper.run_dynamic_lua(arch, script, prog_path, { guest_args = { "3" } })
            local b = helper.run_dynamic_lua(arch, script, prog_path, { guest_args = { "3" } })
            assert.matches("vdso base=%x+ offset=10\n", a.report)
            local fn, offset = a.report:match("vdso fn=(%S+) offset=(%x+)\n")
            assert.is_truthy(fn, a.report)
            assert.is_truthy(fn:match("clock_gettime"), fn)
            assert.matches(("vdso fn=%s offset=%s\n"):format(fn, offset), b.report, 1, true)
        end)

        it("map each library the guest keeps once and never unmap it (" .. arch .. ")", function()
            -- While the loader maps a library (a reservation of its whole
            -- extent, then its segments and zeroed pages over it), the
            -- library is there all along: one map event, no unmap.
            local dl = { "libmoddl1-" .. arch .. ".so", "libmoddl2-" .. arch .. ".so" }
            for _, run in ipairs({
                { prog_path, { "3" } },
                { helper.modules_guest("moddl-" .. arch), { helper.modules_guest(dl[1]), "dl1_entry",
                    helper.modules_guest(dl[2]), "dl2_entry" } },
            }) do
                local r = helper.run_dynamic_lua(arch, EVENTS_ONLY .. "luahost.on_tb_translate(function() end)\n",
                    run[1], { guest_args = run[2] })
                local maps = {}
                for what, name in r.report:gmatch("event (%a+) name=(%S+)") do
                    if name ~= dl[1] and name ~= dl[2] then
                        assert.are.equal("map", what, name .. " unmapped while the guest kept it\n" .. r.report)
                        maps[name] = (maps[name] or 0) + 1
                        assert.are.equal(1, maps[name], name .. " mapped again\n" .. r.report)
                    end
                end
            end
        end)
    end
end)

-- Every module event in order, what each translated instruction of the
-- dlopen'd libraries was named, and what module_at says at the addresses
-- of modules gone.
local WATCH = SHOW_MODULE .. [[
local gone = {}
luahost.on_module(function(what, m)
    local line = ("event %s %s"):format(what, show(m))
    if what == "map" then
        for _, old in ipairs(gone) do
            local now = luahost.module_at(old.base)
            line = line .. (" where_%d_was=%s"):format(old.id, now and now.name or "-")
        end
    else
        gone[#gone + 1] = m
    end
    luahost.printf("%s\n", line)
end)
local seen = {}
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local m = luahost.module_at(insn:vaddr())
        local key = m and ("%d:%x"):format(m.id, insn:vaddr())   -- exact in LuaJIT too
        if m and m.name:match("^libmoddl") and not seen[key] then
            seen[key] = true
            luahost.printf("insn pc=%x id=%d module=%s bias=%x symbol=%s\n", insn:vaddr(), m.id, m.name,
                m.bias, tostring(insn:symbol()))
        end
    end
end)
luahost.on_exit(function()
    for _, old in ipairs(gone) do
        local now = luahost.module_at(old.base)
        luahost.printf("exit id=%d name=%s now=%s\n", old.id, old.name, now and now.name or "-")
    end
end)
]]

describe("modules opened with dlopen", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("come with on_module map and go with unmap, their symbols with them (" .. arch .. ")", function()
            local libs = { "libmoddl1-" .. arch .. ".so", "libmoddl2-" .. arch .. ".so" }
            local entries = { "dl1_entry", "dl2_entry" }
            local r = helper.run_dynamic_lua(arch, WATCH, helper.modules_guest("moddl-" .. arch), {
                guest_args = { helper.modules_guest(libs[1]), entries[1], helper.modules_guest(libs[2]), entries[2] } })
            -- The events of the two libraries, in order.
            local events = {}
            for what, line in r.report:gmatch("event (%a+) ([^\n]*)") do
                local m = module_of(line)
                if m.name == libs[1] or m.name == libs[2] then
                    m.what, m.line = what, line
                    events[#events + 1] = m
                end
            end
            assert.are.equal(4, #events, r.report)
            local order = {}
            for i, e in ipairs(events) do
                order[i] = e.what .. " " .. e.name
            end
            assert.are.same({ "map " .. libs[1], "unmap " .. libs[1], "map " .. libs[2], "unmap " .. libs[2] }, order)
            assert.are.equal(events[1].id, events[2].id)
            assert.are.equal(events[3].id, events[4].id)
            assert.are_not.equal(events[1].id, events[3].id)
            -- When the second came, the first one's address no longer named it.
            local where = events[3].line:match("where_" .. events[1].id .. "_was=(%S+)")
            assert.is_truthy(where, events[3].line)
            assert.are_not.equal(libs[1], where)
            for i, lib in ipairs(libs) do
                local e = events[2 * i - 1]
                assert.are.equal(helper.modules_guest(lib), e.path)
                -- Where the guest found the entry point: the module's bias plus nm's address.
                local printed = helper.printed_address(r.stdout, entries[i])
                local funcs = {}
                for _, s in ipairs(helper.elf_symbols(arch, helper.modules_guest(lib))) do
                    if s.size and s.size > 0 and s.type:match("[Tt]") then
                        funcs[s.name] = s
                    end
                end
                assert.is_true(e.base <= printed and printed < e.limit, entries[i] .. " inside " .. lib)
                assert.are.equal(e.bias + funcs[entries[i]].addr, printed)
                -- Its functions were named while it was there: each instruction
                -- inside one (nm's address and size) by its name.
                local named = {}
                for line in r.report:gmatch("insn ([^\n]*)") do
                    local f = helper.fields(line)
                    if tonumber(f.id) == e.id then
                        local offset = hex(f.pc) - hex(f.bias)
                        for name, s in pairs(funcs) do
                            if s.addr <= offset and offset < s.addr + s.size then
                                assert.are.equal(name, f.symbol, ("%s+0x%x"):format(lib, offset))
                                named[name] = true
                            end
                        end
                    end
                end
                assert.is_true(named[entries[i]], entries[i] .. " ran\n" .. r.report)
                assert.is_true(named.dl_step, "dl_step ran in " .. lib)
                -- At exit, nothing is where it was.
                assert.matches(("exit id=%d name=%s now=%%-\n"):format(e.id, lib:gsub("%p", "%%%0")), r.report)
            end
        end)
    end

    for _, arch in ipairs(helper.arches) do
        it("a library loaded where a closed one was is named anew (" .. arch .. ")", function()
            -- The same address for both is the usual outcome, not a promise:
            -- the test is pending when it did not happen.
            local libs = { "libmoddl1-" .. arch .. ".so", "libmoddl2-" .. arch .. ".so" }
            local r = helper.run_dynamic_lua(arch, WATCH, helper.modules_guest("moddl-" .. arch), {
                guest_args = { helper.modules_guest(libs[1]), "dl1_entry",
                    helper.modules_guest(libs[2]), "dl2_entry" } })
            local first = helper.printed_address(r.stdout, "dl1_entry")
            if first ~= helper.printed_address(r.stdout, "dl2_entry") then
                pending("the second library landed elsewhere: nothing to test")
                return
            end
            local names = {}
            for line in r.report:gmatch("insn ([^\n]*)") do
                local f = helper.fields(line)
                if hex(f.pc) == first then
                    names[#names + 1] = f.module .. " " .. f.symbol
                end
            end
            assert.are.same({ libs[1] .. " dl1_entry", libs[2] .. " dl2_entry" }, names)
        end)
    end
end)

-- In each process: its pid (QEMU's, which is the guest's), the
-- functions named at translation, and the modules at exit.
local FORK = [[
local names = {}
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local s = insn:symbol()
        if s then
            names[s] = true
        end
    end
end)
luahost.on_exit(function()
    local f = io.open("/proc/self/stat", "r")
    local pid = f:read("a"):match("^(%d+)")
    f:close()
    local list, mods = {}, {}
    for name in pairs(names) do
        list[#list + 1] = name
    end
    table.sort(list)
    for _, m in ipairs(luahost.modules()) do
        mods[#mods + 1] = ("%s@%x"):format(m.name, m.base)
    end
    luahost.printf("process pid=%s symbols=%s modules=%s\n", pid, table.concat(list, ","), table.concat(mods, ","))
end)
]]

describe("modules in a forked child", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("are still known, and its code named (" .. arch .. ")", function()
            local r = helper.run_dynamic_lua(arch, FORK, helper.modules_guest("modfork-" .. arch),
                { guest_args = { "20" } })
            local child = r.stdout:match("child pid=(%d+)")
            local parent, parent_child = r.stdout:match("parent pid=(%d+) child=(%d+)")
            assert.is_truthy(child, r.stdout)
            assert.are.equal(child, parent_child)
            local reports = {}
            for line in ("\n" .. r.report):gmatch("\nprocess ([^\n]*)") do     -- not the note naming it
                local f = helper.fields(line)
                local names = {}
                for name in f.symbols:gmatch("[^,]+") do
                    names[name] = true
                end
                reports[f.pid] = { names = names, modules = f.modules }
            end
            assert.is_truthy(reports[child], "the child reported\n" .. r.report)
            assert.is_truthy(reports[parent], "the parent reported\n" .. r.report)
            -- Each translated its own callback and the library's functions
            -- after the fork, and named them.
            local own = { [child] = "child_callback", [parent] = "parent_callback" }
            for pid, rep in pairs(reports) do
                for _, name in ipairs({ own[pid], "run", "lib_apply", "lib_mix" }) do
                    assert.is_true(rep.names[name], name .. " named in " .. pid .. "\n" .. r.report)
                end
                local other = own[pid] == "child_callback" and "parent_callback" or "child_callback"
                assert.is_nil(rep.names[other], other .. " not run in " .. pid)
            end
            -- The same modules at the same places in both.
            assert.are.equal(reports[parent].modules, reports[child].modules)
            assert.matches("libmodlib%-" .. arch .. "%.so@", reports[child].modules)
        end)
    end
end)
