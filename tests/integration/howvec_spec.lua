-- howvec.lua against QEMU's libhowvec.so, loaded into the same QEMU run
-- (so both see the very same translations and executions). On aarch64
-- the reports must agree; on x86_64, where our classes are capstone's
-- groups, table=default must agree with libhowvec.so, and the x86_64
-- table is checked against libhowvec.so's per-instruction counts,
-- libinsn.so's total and the guests' definitions.
local helper = require("helper")

local X86_OPTS = { "int", "priv", "call", "ret", "jump", "avx512", "avx", "sse", "mmx", "fpu", "other" }
local AARCH64_OPTS = { "udef", "sve", "res", "pcrel", "asit", "asi", "logi", "movwi", "bitf", "extr",
    "dpri", "cndb", "excp", "nop", "hint", "barr", "psta", "sins", "sreg", "breg", "bimm", "cmpb", "tstb",
    "branch", "advlsm", "advlsmp", "advlss", "advlssp", "ldstx", "prfm", "ldlit", "ldstnap", "ldstp",
    "ldstr", "atomic", "ldstro", "ldstpa", "ldsti", "ldst", "dprr", "fpsimd", "unclas" }

local function count_args(opts)
    local args = {}
    for i, o in ipairs(opts) do
        args[i] = "count=" .. o
    end
    return args
end

local function concat(...)
    local all = {}
    for _, list in ipairs({ ... }) do
        for _, v in ipairs(list) do
            all[#all + 1] = v
        end
    end
    return all
end

-- A howvec report (ours, or libhowvec.so's within QEMU's log): its text
-- from "Instruction Classes:" on, class lines, and instruction rows.
local function parse(text)
    local r = { classes = {}, hits = {}, instrs = {} }
    local from = text:find("Instruction Classes:\n", 1, true)
    assert.is_truthy(from, "no howvec report in:\n" .. text)
    local lines = {}
    for line in text:sub(from):gmatch("[^\n]*\n") do
        local name, rest = line:match("^Class: (.-) *\t(.*)\n$")
        local insn, hits, op, class = line:match("^Instr: (.-) *\t%((%d+) hits%)\t%(op=0x(%x+)/(.*)%)\n$")
        if line == "Instruction Classes:\n" and #lines == 0 then
            r.header = true
        elseif name then
            r.classes[#r.classes + 1] = line
            r.hits[name:match("^ *(.*)$")] = tonumber(rest:match("^%((%d+) hits%)$"))
        elseif insn then
            r.instrs[#r.instrs + 1] = { insn = insn, hits = tonumber(hits), op = op, class = class, line = line }
        elseif line == "Individual Instructions:\n" then
            r.individual_header = true
        elseif not (line:match("^cpu %d+ insns: %d+\n$") or line:match("^total insns: %d+\n$")) then
            break   -- the end of the report (libinsn.so's lines may follow)
        end
        lines[#lines + 1] = line
    end
    r.text = table.concat(lines)
    return r
end

-- Both instruction lists are the top rows by hits (helper's rule for
-- ties at the cut), and a row in both agrees entirely. key(row) says what
-- must agree (all of the line by default).
local function assert_same_instrs(c_rows, lua_rows, key)
    key = key or function(row) return row.line end
    helper.assert_same_top_rows("instructions", c_rows, lua_rows, "hits", key)
    local by_op = {}
    for _, row in ipairs(c_rows) do
        by_op[row.op] = row
    end
    for _, row in ipairs(lua_rows) do
        if by_op[row.op] then
            assert.are.equal(key(by_op[row.op]), key(row))
        end
    end
end

local function without_class(row)
    return ("%s|%d|%s"):format(row.insn, row.hits, row.op)
end

-- libhowvec.so with c_args and howvec.lua with lua_args in one QEMU run.
local function run_both(arch, guest, guest_args, c_args, lua_args, more_plugins)
    local c = table.concat(concat({ helper.c_plugin("contrib/plugins/libhowvec.so") }, c_args), ",")
    local r = helper.run_file(arch, helper.script("howvec.lua"), helper.guest(guest, arch), {
        plugins = concat({ c }, more_plugins or {}), args = lua_args, guest_args = guest_args,
    })
    return parse(r.log), parse(r.report), r
end

local function find_instr(report, pattern)
    for _, row in ipairs(report.instrs) do
        if row.insn:match(pattern) then
            return row
        end
    end
end

describe("howvec.lua agrees with libhowvec.so on aarch64", function()
    after_each(helper.cleanup)

    for _, case in ipairs({ { {}, {} }, { { "inline=on", "verbose=on" }, {} },
                            { { "inline=off", "verbose=off" }, { "table=aarch64" } } }) do
        local args = case[1]
        it("class counts, with " .. table.concat(concat(args, case[2]), ","), function()
            local c, lua = run_both("aarch64", "loop", { "20000" }, args, concat(args, case[2]))
            assert.is_nil(c.individual_header)
            assert.is_true(#c.classes > 20)
            assert.are.equal(c.text, lua.text)
        end)
    end

    it("counts chosen classes individually and others not at all (count=)", function()
        local args = { "inline=on", "count=asi", "count=ldstp", "count=cndb", "count=!dprr", "count=nop",
            "count=!sve", "count=excp" }
        local c, lua, r = run_both("aarch64", "api", { "20000" }, args, args)
        assert.are.same(c.classes, lua.classes)
        assert.is_true(lua.individual_header)
        assert.are.equal(50, #c.instrs)
        assert_same_instrs(c.instrs, lua.instrs)
        -- api's definition: counted_loop's b.ne runs ITERS times
        local head = helper.printed_address(r.stdout, "hot_loop_head")
        assert.are.equal(20000, find_instr(lua, ("^b%%.ne #0x%x$"):format(head)).hits)
        assert.is_truthy(lua.text:find("Class: Data Proc Reg           \tnot counted\n", 1, true))
    end)

    it("prints all individual instructions but the last, as libhowvec.so", function()
        local args = { "count=breg", "count=excp" }
        local c, lua = run_both("aarch64", "api", {}, args, args)
        assert.are.same(c.classes, lua.classes)
        assert.is_true(#c.instrs > 2 and #c.instrs < 49, "fewer instructions than the limit")
        assert_same_instrs(c.instrs, lua.instrs)
        -- one instruction (svc #0) only: no list at all
        c, lua = run_both("aarch64", "api", {}, { "count=excp" }, { "count=excp" })
        assert.is_nil(c.individual_header)
        assert.are.equal(c.text, lua.text)
    end)

    for _, inline in ipairs({ "on", "off" }) do
        it("on 4 concurrent vCPUs, inline=" .. inline .. " #threads", function()
            local args = { "inline=" .. inline, "count=cndb", "count=breg", "count=!ldstp" }
            local c, lua, r = run_both("aarch64", "threads", { "4", "20000" }, args, args)
            assert.are.same(c.classes, lua.classes)
            assert_same_instrs(c.instrs, lua.instrs)
            local head = helper.printed_address(r.stdout, "hot_loop_head")
            assert.are.equal(4 * 20000, find_instr(lua, ("^b%%.ne #0x%x$"):format(head)).hits)
        end)
    end

    it("with table=default counts each opcode as libhowvec.so does every class", function()
        local c, lua = run_both("aarch64", "loop", { "20000" }, count_args(AARCH64_OPTS), { "table=default" })
        assert.are.same({ "Class: Unclassified            \tcounted individually\n" }, lua.classes)
        assert.are.equal(50, #lua.instrs)
        assert_same_instrs(c.instrs, lua.instrs, without_class)
        for _, row in ipairs(lua.instrs) do
            assert.are.equal("Unclassified", row.class)
        end
    end)
end)

describe("howvec.lua on x86_64", function()
    after_each(helper.cleanup)

    it("with table=default agrees with libhowvec.so", function()
        local c, lua = run_both("x86_64", "loop", { "20000" }, { "inline=on" }, { "inline=on", "table=default" })
        assert.are.same({ "Class: Unclassified            \tcounted individually\n" }, c.classes)
        assert.are.same(c.classes, lua.classes)
        assert.are.equal(50, #c.instrs)
        assert_same_instrs(c.instrs, lua.instrs)
    end)

    it("with table=default agrees on 4 concurrent vCPUs, inline=off, verbose=on #threads", function()
        local args = { "inline=off", "verbose=on" }
        local c, lua = run_both("x86_64", "threads", { "4", "20000" }, args, concat(args, { "table=default" }))
        assert.are.same(c.classes, lua.classes)
        assert_same_instrs(c.instrs, lua.instrs)
    end)

    it("with count=!unclas counts nothing, as libhowvec.so", function()
        local c, lua = run_both("x86_64", "loop", { "2000" }, { "count=!unclas" },
            { "table=default", "count=!unclas" })
        assert.are.equal("Instruction Classes:\nClass: Unclassified            \tnot counted\n", c.text)
        assert.are.equal(c.text, lua.text)
    end)

    it("keys and counts instructions as libhowvec.so, and labels them by capstone group", function()
        local c, lua = run_both("x86_64", "loop", { "20000" }, { "inline=on" },
            concat({ "inline=on" }, count_args(X86_OPTS)))
        for _, line in ipairs(lua.classes) do
            assert.matches("\tcounted individually\n$", line)
        end
        assert.are.equal(#X86_OPTS, #lua.classes)
        assert_same_instrs(c.instrs, lua.instrs, without_class)
        -- the label agrees with QEMU's disassembly of the instruction
        local by_mnemonic = { jne = "  Jump", je = "  Jump", jmp = "  Jump", callq = "  Call",
            retq = "  Return", syscall = "  Interrupt", movq = "Other", addq = "Other", cmpl = "Other" }
        local seen = {}
        for _, row in ipairs(lua.instrs) do
            local mnemonic = row.insn:match("^(%S+)")
            if by_mnemonic[mnemonic] then
                assert.are.equal(by_mnemonic[mnemonic], row.class, row.line)
                seen[by_mnemonic[mnemonic]] = true
            end
        end
        assert.are.same({ ["  Jump"] = true, ["  Call"] = true, ["  Return"] = true, Other = true }, seen)
    end)

    it("counts every executed instruction in some class (libinsn.so's total)", function()
        local n = 100000
        local r = helper.run_file("x86_64", helper.script("howvec.lua"), helper.guest("loop", "x86_64"), {
            plugins = { helper.c_plugin("tests/tcg/plugins/libinsn.so") },
            args = { "inline=on", "verbose=on" }, guest_args = { tostring(n) },
        })
        local lua = parse(r.report)
        local total = tonumber(r.log:match("total insns: (%d+)"))
        local sum = 0
        for _, hits in pairs(lua.hits) do
            sum = sum + hits
        end
        assert.are.equal(total, sum)
        assert.are.equal(#X86_OPTS, #lua.classes, "verbose=on lists every class")
        -- loop's definition: mix() is called and returns n times; the
        -- loop in main and counted_loop's jnz branch n times each, after
        -- counted_loop's sub
        assert.is_true(lua.hits["Call"] >= n and lua.hits["Return"] >= n)
        assert.is_true(lua.hits["Jump"] >= 2 * n)
        assert.is_true(lua.hits["Other"] >= n)
    end)

    it("counts syscalls as interrupts and SSE/AVX code in libc as vector", function()
        local r = helper.run_file("x86_64", helper.script("howvec.lua"), helper.guest("api", "x86_64"),
            { args = { "count=!jump" } })
        local lua = parse(r.report)
        assert.is_true(lua.hits["Interrupt"] >= 7, "close x5, getpid, write")
        assert.is_true(lua.hits["SSE"] > 0)
        assert.is_nil(lua.hits["AVX-512"], "classes without hits are not listed")
        assert.is_truthy(lua.text:find("Class:   Jump                  \tnot counted\n", 1, true))
        assert.is_nil(lua.individual_header)
    end)
end)

describe("howvec.lua symbolize=on", function()
    after_each(helper.cleanup)

    -- Our report with symbolize=on, parsed as parse() does once each
    -- instruction line's last field is cut off; and that field of each.
    local function run_symbolized(arch, guest, guest_args, c_args, lua_args)
        local c, _, r = run_both(arch, guest, guest_args, c_args, concat(lua_args, { "symbolize=on" }))
        local locations = {}
        local text = r.report:gsub("(Instr: [^\n]*)\t%(first at ([^)\n]*)%)\n", function(line, location)
            locations[#locations + 1] = location
            return line .. "\n"
        end)
        local lua = parse(text)
        assert.are.equal(#lua.instrs, #locations, "every instruction line has its location")
        for i, row in ipairs(lua.instrs) do
            row.location = locations[i]
        end
        return c, lua, r
    end

    -- Each location is SYMBOL[+0xN] for a symbol nm knows, and the code
    -- there is the line's instruction: objdump shows its opcode (aarch64
    -- objdump prints each instruction as one 32-bit word).
    local function assert_locations(guest, rows)
        local names = helper.nm_names(guest)
        for _, row in ipairs(rows) do
            local name, offset = row.location:match("^(.-)%+0x(%x+)$")
            name, offset = name or row.location, tonumber(offset or "0", 16)
            assert.is_truthy(names[name], row.location)
            local found = false
            for _, at in ipairs(names[name]) do
                local status, out = helper.sh(("%s -d --start-address=0x%x --stop-address=0x%x %s"):format(
                    "aarch64-linux-gnu-objdump", at + offset, at + offset + 4, helper.quote(guest)))
                assert.are.equal(0, status)
                local word = out:match("\n%s*%x+:%s+(%x%x%x%x%x%x%x%x)%s")
                found = found or (word and tonumber(word, 16) == tonumber(row.op, 16))
            end
            assert.is_true(found, ("%s at %s"):format(row.line, row.location))
        end
    end

    it("ends libhowvec.so's instruction lines with where each was first seen (aarch64)", function()
        local args = { "inline=on", "count=asi", "count=cndb", "count=excp" }
        local c, lua, r = run_symbolized("aarch64", "api", { "20000" }, args, args)
        assert.are.same(c.classes, lua.classes)
        assert_same_instrs(c.instrs, lua.instrs)
        local guest = helper.guest("api", "aarch64")
        assert_locations(guest, lua.instrs)
        -- counted_loop.h: b.ne follows subs at hot_loop_head
        local head = helper.printed_address(r.stdout, "hot_loop_head")
        assert.are.equal(("counted_loop+0x%x"):format(head + 4 - helper.nm(guest, "counted_loop")),
            find_instr(lua, ("^b%%.ne #0x%x$"):format(head)).location)
    end)
end)

describe("howvec.lua arguments", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("are refused like the C plugin's on " .. arch, function()
            for _, bad in ipairs({ "bogus=1", "inline=maybe", "verbose=2" }) do
                local c = helper.qemu(arch, { helper.c_plugin("contrib/plugins/libhowvec.so") .. "," .. bad },
                    helper.guest("loop", arch), { "10" })
                assert.are_not.equal(0, c.status)
                local r = helper.run_file(arch, helper.script("howvec.lua"), helper.guest("loop", arch),
                    { args = { bad }, guest_args = { "10" }, status = false })
                assert.are_not.equal(0, r.status)
                assert.matches("^luahost: [^\n]*howvec.lua:%d+: [^\n]*" .. bad:gsub("%p", "%%%0") .. "[^\n]*\n",
                    r.stderr)
            end
        end)
    end

    it("refuse an unknown class and another architecture's table", function()
        for _, case in ipairs({
            { "count=!vec", "unknown class vec %(known: udef, sve, res, .*, unclas%): count=!vec" },
            { "table=x86_64", "expected one of aarch64, default: table=x86_64" },
        }) do
            local r = helper.run_file("aarch64", helper.script("howvec.lua"), helper.guest("loop", "aarch64"),
                { args = { case[1] }, guest_args = { "10" }, status = false })
            assert.are_not.equal(0, r.status)
            assert.matches("howvec.lua:%d+: " .. case[2], r.stderr)
        end
    end)
end)

describe("insn:groups()", function()
    after_each(helper.cleanup)

    -- counted_loop's instructions, by address: jmp/b, sub/subs, jnz/b.ne, ret
    local size = { x86_64 = 9, aarch64 = 16 }
    local ret_group = { x86_64 = "ret", aarch64 = "return" }
    for _, arch in ipairs({ "x86_64", "aarch64" }) do
        it("names capstone's groups of counted_loop's instructions on " .. arch, function()
            local guest = helper.guest("loop", arch)
            local r = helper.run_lua(arch, ([[
                local from, to, seen = %d, %d, {}
                luahost.on_tb_translate(function(tb)
                    for _, insn in tb:insns() do
                        if insn:vaddr() >= from and insn:vaddr() < to then
                            seen[insn:vaddr()] = table.concat(insn:groups(), " ")
                        end
                    end
                end)
                luahost.on_exit(function()
                    for pc = from, to - 1 do
                        if seen[pc] then luahost.printf("[%%s]\n", seen[pc]) end
                    end
                end)
            ]]):format(helper.nm(guest, "counted_loop"), helper.nm(guest, "counted_loop") + size[arch]),
                guest, { guest_args = { "10" } })
            local groups = {}
            for line in r.report:gmatch("%[(.-)%]") do
                groups[#groups + 1] = " " .. line .. " "
            end
            assert.are.equal(4, #groups, r.report)
            assert.matches(" jump ", groups[1])
            assert.are.equal(nil, groups[2]:find("jump"))
            assert.matches(" jump ", groups[3])
            assert.matches(" " .. ret_group[arch] .. " ", groups[4])
        end)
    end

    -- Debian 12's capstone (4.0) has no RISC-V
    it("is refused on riscv64, naming the architecture", function()
        local r = helper.run_lua("riscv64", [[
            local done
            luahost.on_tb_translate(function(tb)
                if not done then
                    done = true
                    local ok, err = pcall(function() return tb:insn(1):groups() end)
                    luahost.printf("%s %s\n", tostring(ok), err)
                end
            end)
        ]], helper.guest("loop", "riscv64"), { guest_args = { "10" } })
        assert.matches("^false [^\n]*: insn:groups: no capstone support in luahost for this guest architecture "
            .. "%(riscv64%)\n$", r.report)
    end)
end)
