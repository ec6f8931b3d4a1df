-- execlog.lua against QEMU's libexeclog.so, loaded into the same QEMU run
-- (so both see the very same translations, executions, memory accesses
-- and register values), on both guest ISAs: the C plugin's trace goes to
-- QEMU's log, ours to an outfile, and the two must be the same lines.
local helper = require("helper")

local C_PLUGIN = "contrib/plugins/libexeclog.so"

-- Per ISA: arguments that select a few instructions, and registers the
-- api guest sets (tests/guests/api.c): BIG in rax/x0/a0, 2^53 + 1 in
-- rdx/x2/a2, the 16 pattern bytes in xmm0/v0 (aarch64: z0, SVE, in user
-- mode).
local ISA = {
    x86_64 = {
        ifilter = { "ifilter=call", "ifilter=mov" },
        -- rax matches two patterns: execlog.c then logs its changes twice
        reg = { "reg=rax", "reg=r?x", "reg=fs_base", "reg=xmm0" },
        big = "rax -> 0xfedcba9876543210, rax -> 0xfedcba9876543210",
        exact = "rdx -> 0x0020000000000001",
        vector = "xmm0 -> 0xffeeddccbbaa99887766554433221100",
        -- set once, by the arch_prctl syscall (eflags never changes: QEMU
        -- reads it without the lazily computed condition codes)
        other = "fs_base %-> 0x" .. ("%x"):rep(16) .. "[,\n]",
        pointer = "rdi",            -- a register many instructions name
    },
    aarch64 = {
        ifilter = { "ifilter=bl", "ifilter=ldr" },
        reg = { "reg=x0", "reg=x?", "reg=cpsr", "reg=z0" },
        big = "x0 -> 0xfedcba9876543210, x0 -> 0xfedcba9876543210",
        exact = "x2 -> 0x0020000000000001",
        -- z0 is 256 bytes: the pattern in its low 16
        vector = "z0 -> 0x" .. ("00"):rep(240) .. "ffeeddccbbaa99887766554433221100",
        other = "cpsr %-> 0x" .. ("%x"):rep(8) .. "[,\n]",     -- 4 bytes
        pointer = "x0",
    },
    riscv64 = {
        ifilter = { "ifilter=jal", "ifilter=ld" },
        -- not reg=*: the counters and the entropy source (cycle, time,
        -- instret, seed) change between the two plugins' reads
        every_reg = { "reg=ra", "reg=sp", "reg=gp", "reg=tp", "reg=a?", "reg=s?", "reg=s1?", "reg=t?",
                      "reg=f*", "reg=v*" },
        reg = { "reg=a0", "reg=a?", "reg=vl", "reg=v0" },
        big = "a0 -> 0xfedcba9876543210, a0 -> 0xfedcba9876543210",
        exact = "a2 -> 0x0020000000000001",
        vector = "v0 -> 0xffeeddccbbaa99887766554433221100",     -- 16 bytes
        -- the vector length, 16 once reg_probe_fn's vsetivli has run
        other = "vl %-> 0x0000000000000010[,\n]",
        pointer = "a0",
    },
}

local function lines_of(text)
    local lines = {}
    for line in text:gmatch("([^\n]*)\n") do
        lines[#lines + 1] = line
    end
    return lines
end

-- The same lines in the same order; on a difference, the first one.
local function assert_same_trace(theirs, ours)
    local c, lua = lines_of(theirs), lines_of(ours)
    for i = 1, math.max(#c, #lua) do
        if c[i] ~= lua[i] then
            error(("line %d differs\n  libexeclog.so: %s\n  execlog.lua:   %s"):format(
                i, tostring(c[i]), tostring(lua[i])), 2)
        end
    end
    assert.are.equal(theirs, ours)      -- and nothing after the last newline
end

-- Several vCPUs print at once. Ours print a line with one write, under
-- luahost's lock; libexeclog.so prints a line's text and its newline with
-- two writes, which another vCPU's text can fall between. So: the C log
-- must be our lines, each vCPU's in our order, interleaved, with as many
-- newlines as we printed lines.
local function assert_same_interleaved(theirs, ours)
    local by_vcpu, taken, lines = {}, {}, lines_of(ours)
    for _, line in ipairs(lines) do
        local vcpu = line:match("^(%d+), ")
        if vcpu then
            by_vcpu[vcpu] = by_vcpu[vcpu] or {}
            table.insert(by_vcpu[vcpu], line)
            taken[vcpu] = 0
        else
            assert.are.equal("", line, "a line of ours without a vCPU")  -- a vCPU that logged nothing
        end
    end
    local pos, newlines = 1, 0
    while pos <= #theirs do
        if theirs:sub(pos, pos) == "\n" then
            newlines, pos = newlines + 1, pos + 1
        else
            local vcpu = theirs:match("^(%d+), ", pos)
            local line = vcpu and by_vcpu[vcpu] and by_vcpu[vcpu][taken[vcpu] + 1]
            if not line or theirs:sub(pos, pos + #line - 1) ~= line then
                error(("libexeclog.so wrote, at byte %d: %s\nexpected: %s"):format(
                    pos, theirs:sub(pos, pos + 200), tostring(line)), 2)
            end
            taken[vcpu], pos = taken[vcpu] + 1, pos + #line
        end
    end
    for vcpu, list in pairs(by_vcpu) do
        assert.are.equal(#list, taken[vcpu], "lines of vCPU " .. vcpu .. " missing from the C log")
    end
    assert.are.equal(#lines, newlines, "newlines")
end

-- A -plugin argument: the plugin and then args, comma-separated.
local function plugin_arg(plugin, args)
    local parts = { plugin }
    for _, a in ipairs(args) do
        parts[#parts + 1] = a
    end
    return table.concat(parts, ",")
end

local function c_plugin(args)
    return plugin_arg(helper.c_plugin(C_PLUGIN), args)
end

-- Both plugins with the same arguments on one guest run; returns the
-- C plugin's trace and ours, and the run.
local function run_both(arch, guest, args, guest_args)
    local r = helper.run_file(arch, helper.script("execlog.lua"), helper.guest(guest, arch),
        { args = args, plugins = { c_plugin(args) }, guest_args = guest_args })
    assert.is_true(#r.log > 0, "libexeclog.so logged nothing: " .. r.stderr)
    return r.log, r.report, r
end

local function disassemblies(trace)
    local list = {}
    for disas in ("\n" .. trace):gmatch('\n%d+, 0x%x+, 0x%x+, "([^"\n]*)"') do
        list[#list + 1] = disas
    end
    return list
end

describe("execlog.lua agrees with libexeclog.so", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        local isa = ISA[arch]

        it("on a whole run, with every memory access (" .. arch .. ")", function()
            local theirs, ours = run_both(arch, "loop", {}, { "3" })
            assert_same_trace(theirs, ours)
            local lines = lines_of(theirs)
            assert.is_true(#lines > 10000, "a whole static binary's run")
            assert.matches('\n0, 0x%x+, 0x%x+, "[^"]*", store, 0x%x%x%x%x%x%x%x%x+\n', theirs)
            assert.matches('\n0, 0x%x+, 0x%x+, "[^"]*", load, 0x%x%x%x%x%x%x%x%x+\n', theirs)
            -- rdisas looks for registers after the mnemonic: from the first
            -- space in QEMU 10.0, after the first space or tab in 10.2. The
            -- same text while every disassembly has a space and no tab.
            for _, disas in ipairs(disassemblies(theirs)) do
                assert.is_truthy(disas:find(" ", 1, true), disas)
                assert.is_falsy(disas:find("\t", 1, true), disas)
            end
        end)

        it("with ifilter= (" .. arch .. ")", function()
            local args = { isa.ifilter[1], isa.ifilter[2] }
            for _, reg in ipairs(isa.every_reg or { "reg=*" }) do
                args[#args + 1] = reg
            end
            local theirs, ours = run_both(arch, "loop", args, { "3" })
            assert_same_trace(theirs, ours)
            local prefixes = { isa.ifilter[1]:match("=(.*)"), isa.ifilter[2]:match("=(.*)") }
            local seen = {}
            for _, disas in ipairs(disassemblies(theirs)) do
                local prefix = disas:sub(1, #prefixes[1]) == prefixes[1] and 1
                    or disas:sub(1, #prefixes[2]) == prefixes[2] and 2
                assert.is_truthy(prefix, disas)
                seen[prefix] = true
            end
            assert.is_true(seen[1] and seen[2], "both prefixes logged")
        end)

        it("with afilter=, hex with and without 0x (" .. arch .. ")", function()
            local guest = helper.guest("loop", arch)
            local head, entry = helper.nm(guest, "hot_loop_head"), helper.nm(guest, "counted_loop")
            local args = { ("afilter=%x"):format(head), ("afilter=0x%x"):format(entry), "reg=" .. isa.pointer }
            local theirs, ours = run_both(arch, "loop", args, { "5" })
            assert_same_trace(theirs, ours)
            local heads, entries = 0, 0
            for _, line in ipairs(lines_of(theirs)) do
                local addr = tonumber(line:match("^0, 0x(%x+),"), 16)
                assert.is_true(addr == head or addr == entry, line)
                heads = heads + (addr == head and 1 or 0)
                entries = entries + (addr == entry and 1 or 0)
            end
            -- counted_loop once, the loop head 5 times, and with reg= the
            -- last line once more (execlog.c prints its buffer at exit,
            -- though it printed it already)
            assert.are.same({ 1, 6 }, { entries, heads })
        end)

        it("with afilter=SYMBOL as with afilter= at nm's address of it (" .. arch .. ")", function()
            local guest = helper.guest("loop", arch)
            local entry = helper.nm(guest, "counted_loop")
            local r = helper.run_file(arch, helper.script("execlog.lua"), guest, {
                args = { "afilter=counted_loop", "afilter=hot_loop_head+0" },
                plugins = { c_plugin({ ("afilter=%x"):format(entry),
                                       ("afilter=%x"):format(helper.nm(guest, "hot_loop_head")) }) },
                guest_args = { "5" } })
            assert.is_true(#r.log > 0, r.stderr)
            assert_same_trace(r.log, r.report)
        end)

        it("with reg= globs: changes after each instruction (" .. arch .. ")", function()
            local theirs, ours = run_both(arch, "api", isa.reg, { "3" })
            assert_same_trace(theirs, ours)
            assert.is_truthy(theirs:find(isa.big, 1, true), "BIG")
            assert.is_truthy(theirs:find(isa.exact, 1, true), "2^53 + 1")
            assert.is_truthy(theirs:find(isa.vector, 1, true), "the vector register")
            assert.matches(isa.other, theirs)
        end)

        it("with rdisas=on (" .. arch .. ")", function()
            local args = { "ifilter=ret", "reg=" .. isa.pointer, "rdisas=on" }
            local theirs, ours = run_both(arch, "api", args, { "3" })
            assert_same_trace(theirs, ours)
            -- also logged: instructions naming the register, not only rets
            local other = 0
            for _, disas in ipairs(disassemblies(theirs)) do
                other = other + (disas:find("^ret") and 0 or 1)
            end
            assert.is_true(other > 100, "rdisas logs instructions naming a tracked register")
            assert.matches(", " .. isa.pointer .. " %-> 0x%x+", theirs)
        end)
    end

    -- Several vCPUs at once: in system mode only. On a multi-threaded
    -- user-mode guest libexeclog.so itself crashes more often than not (it
    -- grows its vCPU array while other vCPUs use pointers into it); in
    -- system mode the array is sized for max_vcpus at load.
    it("in system mode, on two vCPUs, with physical addresses and devices (aarch64)", function()
        local guest = helper.system_guest("sys", "aarch64")
        local outfile = helper.tmpname()
        local args = { "reg=x0", ("afilter=%x"):format(helper.nm(guest, "sys_uart_store")), "ifilter=ldr" }
        local ours = plugin_arg(helper.luahost_plugin(helper.script("execlog.lua"), { "outfile=" .. outfile }), args)
        local r = helper.qemu_system({ c_plugin(args), ours }, guest)
        assert.are.equal(0, r.status, r.stderr)
        ours = helper.read(outfile) or ""
        assert_same_interleaved(r.log, ours)
        assert.matches("^0, ", ours)
        assert.matches("\n1, ", ours)
        -- the UART's data register: device pl011 in QEMU 10.0, RAM in
        -- 10.2.2 (see system_spec.lua); both plugins print what QEMU says
        assert.matches(", store, 0x09000000, %w+[,\n]", ours)
        assert.matches(", load, 0x%x+, RAM[,\n]", ours)
    end)
end)

describe("execlog.lua symbolize=on", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, case in ipairs({ { "loop", {}, "every memory access" }, { "api", ISA[arch].reg, "reg=" } }) do
            local guest_name, args, what = case[1], case[2], case[3]
            it(("ends libexeclog.so's lines with the location, with %s (%s)"):format(what, arch), function()
                local guest = helper.guest(guest_name, arch)
                local lua_args = { "symbolize=on" }
                for _, a in ipairs(args) do
                    lua_args[#lua_args + 1] = a
                end
                local r = helper.run_file(arch, helper.script("execlog.lua"), guest,
                    { args = lua_args, plugins = { c_plugin(args) }, guest_args = { "3" } })
                assert.is_true(#r.log > 0, "libexeclog.so logged nothing: " .. r.stderr)
                local lines, located = {}, {}
                for _, line in ipairs(lines_of(r.report)) do
                    local addr = line:match("^%d+, 0x(%x+), ")
                    if addr then
                        local rest, location = line:match("^(.*), ([^,]*)$")
                        located[tonumber(addr, 16)] = location
                        line = rest
                    end
                    lines[#lines + 1] = line .. "\n"
                end
                assert_same_trace(r.log, table.concat(lines))
                local names, n = helper.nm_names(guest), 0
                for addr, location in pairs(located) do
                    helper.assert_location(names, guest, addr, location)
                    n = n + 1
                end
                assert.is_true(n > 1000, "instructions named")
                local entry = helper.nm(guest, "counted_loop")
                assert.are.equal("counted_loop", located[entry])
                local head = helper.nm(guest, "hot_loop_head")
                assert.are.equal(("counted_loop+0x%x"):format(head - entry), located[head])
            end)
        end
    end
end)

describe("execlog.lua's arguments", function()
    after_each(helper.cleanup)

    local function refused(plugin)
        local r = helper.qemu("x86_64", { plugin }, helper.guest("loop", "x86_64"), { "1" })
        assert.are_not.equal(0, r.status)
        return r.stderr
    end

    it("are refused like libexeclog.so's: one line, QEMU exits non-zero", function()
        for _, bad in ipairs({ "bogus=1", "rdisas=maybe" }) do
            local theirs = refused(c_plugin({ bad }))
            assert.matches("parsing failed: " .. bad:gsub("%p", "%%%0"), theirs)
            local ours = refused(helper.luahost_plugin(helper.script("execlog.lua"), { bad }))
            assert.matches("^luahost: [^\n]*execlog%.lua:%d+: [^\n]*parsing failed: " .. bad:gsub("%p", "%%%0")
                .. "[^\n]*\n[^\n]*qemu_plugin_install returned error code %-1\n$", ours)
        end
    end)

    it("refuse an afilter= that names no address (libexeclog.so takes it as 0)", function()
        for _, bad in ipairs({ "afilter=", "afilter=0x10000000000000000", "afilter=12xyz", "afilter=main+zz" }) do
            local ours = refused(helper.luahost_plugin(helper.script("execlog.lua"), { bad }))
            assert.matches("execlog%.lua:%d+: [^\n]*: " .. bad:gsub("%p", "%%%0") .. "\n", ours)
            local line = ours:match("[^\n]*")
            assert.is_truthy(line:find("not a hex address", 1, true) or line:find("wider than 64 bits", 1, true)
                or line:find("expected an address", 1, true), line)
        end
    end)
end)
