-- The ports of QEMU's tests/tcg/plugins (scripts/bb.lua, empty.lua,
-- insn.lua, syscall.lua, mem.lua, inline.lua, reset.lua) against the C
-- plugins loaded into the same QEMU run, with the same arguments: the C
-- plugin's report is in QEMU's log, the port's in its outfile.
local helper = require("helper")
local util = require("luassert.util")

-- libinsn.so's match= reads freed memory (its hash table's keys): under
-- AddressSanitizer, preloaded into QEMU, QEMU stops. Pending there.
local function libinsn_match_freed()
    if (helper.sanitizer() or ""):find("address") then
        pending("libinsn.so's match= reads freed memory (its hash table's keys), which "
            .. "AddressSanitizer, preloaded into QEMU, stops")
        return true
    end
    return false
end

local function c_lib(name, args)
    local path = helper.c_plugin("tests/tcg/plugins/lib" .. name .. ".so")
    return args and args ~= "" and path .. "," .. args or path
end

local function split_args(args)
    local list = {}
    for a in (args or ""):gmatch("[^,]+") do
        list[#list + 1] = a
    end
    return list
end

-- QEMU user mode on guest NAME-ARCH with libNAME.so and NAME.lua, both
-- given args (a comma-separated string). Returns what helper.run_file
-- returns: log (the C plugin's), report (the port's).
-- A run with libmem.so's region summary is made again when mem.c aborts
-- on an access across its regions (helper.run_file_with_libmem_regions).
local function same_run(arch, name, args, guest, guest_args)
    return helper.run_file_with_libmem_regions(arch, helper.script(name .. ".lua"), helper.guest(guest, arch),
        { args = split_args(args), plugins = { c_lib(name, args) }, guest_args = guest_args })
end

-- The same on the two-vCPU system guest (qemu-system-aarch64).
local function same_system_run(name, args)
    local outfile = helper.tmpname()
    local lua_args = split_args(args)
    table.insert(lua_args, 1, "outfile=" .. outfile)
    local r = helper.qemu_system({ c_lib(name, args),
        helper.luahost_plugin(helper.script(name .. ".lua"), lua_args) }, helper.system_guest("sys", "aarch64"))
    assert.are.equal(0, r.status, r.stderr)
    r.report = helper.read(outfile) or ""
    return r
end

-- A bad argument refuses both plugins: the C one with a non-zero status,
-- ours with one line on stderr naming the argument, and status 1.
local function assert_refused_like_c(name, bad)
    local c = helper.qemu("x86_64", { c_lib(name, bad) }, helper.guest("loop", "x86_64"), { "10" })
    assert.are_not.equal(0, c.status, name .. " " .. bad)
    local r = helper.qemu("x86_64", { helper.luahost_plugin(helper.script(name .. ".lua"), { bad }) },
        helper.guest("loop", "x86_64"), { "10" })
    assert.are.equal(1, r.status, bad)
    assert.matches("^luahost: [^\n]*" .. name .. "%.lua:%d+: [^\n]*" .. bad:gsub("%p", "%%%0") .. "[^\n]*\n"
        .. "qemu%-x86_64: Could not load plugin [^\n]*\n$", r.stderr)
end

describe("bb.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, args in ipairs({ "inline=on", "inline=off", "" }) do
            it("prints libbb.so's report, " .. (args ~= "" and args or "no arguments")
                .. " (" .. arch .. ", 4 threads) #threads", function()
                local r = same_run(arch, "bb", args, "threads", { "4", "5000" })
                assert.matches("^CPU0: bb's: %d+, insns: %d+\nCPU1: .*Total: bb's: %d+, insns: %d+\n$", r.log)
                assert.are.equal(r.log, r.report)
            end)
        end
    end

    it("prints libbb.so's idle lines and report in system mode (2 vCPUs)", function()
        local r = same_system_run("bb", "idle=on")
        assert.matches("Idling CPU0: bb's: %d+, insns: %d+\n", r.log)
        assert.matches("Idling CPU1: bb's: %d+, insns: %d+\n", r.log)
        assert.matches("\nCPU1: bb's: %d+, insns: %d+\nTotal: ", r.log)
        -- the vCPUs' idle lines may interleave differently in the two outputs
        assert.are.same(helper.sorted_lines(r.log), helper.sorted_lines(r.report))
        assert.are.equal(r.log:match("CPU0: [^I]*$"), r.report:match("CPU0: [^I]*$"))
    end)

    it("refuses bad arguments as bb.c does", function()
        for _, bad in ipairs({ "bogus=1", "inline=maybe", "idle=2" }) do
            assert_refused_like_c("bb", bad)
        end
    end)
end)

describe("empty.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("prints nothing, as libempty.so, and the guest runs as without them (" .. arch .. ")", function()
            local alone = helper.qemu(arch, {}, helper.guest("loop", arch), { "100" })
            -- empty.c ignores its arguments: so does the port
            local r = same_run(arch, "empty", "anything=1", "loop", { "100" })
            assert.are.equal("", r.log)
            assert.are.equal("", r.report)
            assert.are.equal(alone.stdout, r.stdout)
            assert.matches("checksum=%d+\n", r.stdout)
        end)
    end
end)

-- insn's match= report: { [prefix] = { hits = N, records = { ["vaddr disas"] = hits } } }.
-- insn.c can list one instruction twice (its table's keys are freed
-- strings, so a lookup may miss): its records' hits are summed here.
local function insn_matches(text)
    local matches, current = {}, nil
    for line in text:gmatch("[^\n]+") do
        local prefix, hits = line:match("^Match: (.*), hits (%d+)$")
        if prefix then
            current = { hits = tonumber(hits), records = {} }
            matches[prefix] = current
        else
            local vaddr, disas, n = line:match("^  (%x+): (.*) %(hits (%d+)%)$")
            if vaddr then
                local key = vaddr .. " " .. disas
                current.records[key] = (current.records[key] or 0) + tonumber(n)
            end
        end
    end
    return matches
end

-- The set of "Created record for: ..." lines.
local function created_records(text)
    local set = {}
    for key in text:gmatch("Created record for: ([^\n]*)\n") do
        set[key] = true
    end
    return set
end

-- The lines of text matching pattern, in order.
local function lines_matching(text, pattern)
    local lines = {}
    for line in text:gmatch("[^\n]+") do
        if line:find(pattern) then
            lines[#lines + 1] = line
        end
    end
    return lines
end

-- What insn.c's sizes=on prints for instructions translated with these
-- lengths, in this order: its GArray of counts is zero-terminated, and
-- each time it grows from length L glib clears the elements from L up,
-- the count of L-byte instructions included.
local function libinsn_sizes(lengths)
    local counts, len = { [0] = 0 }, 0
    for _, sz in ipairs(lengths) do
        if sz > len then
            for i = len, sz do
                counts[i] = 0
            end
            len = sz
        end
        counts[sz] = counts[sz] + 1
    end
    local out = {}
    for i = 0, len do
        if counts[i] ~= 0 then
            out[#out + 1] = ("len %d bytes: %d insns\n"):format(i, counts[i])
        end
    end
    return table.concat(out)
end

describe("insn.lua", function()
    after_each(helper.cleanup)

    -- Two prefixes, the second a longer one of the first, for each ISA.
    local PREFIXES = { x86_64 = { "cmp", "cmpq" }, aarch64 = { "b", "b.ne" }, riscv64 = { "addi", "addiw" } }

    for _, arch in ipairs(helper.arches) do
        for _, args in ipairs({ "inline=on", "inline=off" }) do
            it("prints libinsn.so's counts, " .. args .. " (" .. arch .. ", 4 threads) #threads", function()
                local r = same_run(arch, "insn", args, "threads", { "4", "5000" })
                assert.matches("^cpu 0 insns: %d+\ncpu 1 insns: %d+\n.*total insns: %d+\n$", r.log)
                assert.are.equal(r.log, r.report)
            end)
        end

        it("counts the executions of matched instructions as libinsn.so does (" .. arch .. ")", function()
            if libinsn_match_freed() then
                return
            end
            local prefix = PREFIXES[arch][1]
            -- insn.c looks its records up by keys it has freed: now and then
            -- a lookup finds another instruction's record, and the hits go
            -- there. That varies from run to run, ours does not: a run
            -- where the two agree shows ours right (at most 3 runs).
            local r, theirs, ours
            for _ = 1, 3 do
                r = same_run(arch, "insn", "match=" .. prefix, "threads", { "4", "5000" })
                theirs, ours = insn_matches(r.log), insn_matches(r.report)
                if util.deepcompare(theirs, ours) then
                    break
                end
            end
            assert.is_true(theirs[prefix].hits > 1000)
            assert.are.same(theirs, ours)
            assert.are.same(created_records(r.log), created_records(r.report))
            assert.are.equal(r.log:match("^[^C]*total insns: %d+\n"), r.report:match("^[^C]*total insns: %d+\n"))
        end)

        it("gives each match= its own records, which libinsn.so does not (" .. arch .. ")", function()
            if libinsn_match_freed() then
                return
            end
            -- insn.c gives a second match of an instruction the first's
            -- record, so the first counts its hits: each is checked with
            -- libinsn.so given that match alone
            local both = "match=" .. PREFIXES[arch][1] .. ",match=" .. PREFIXES[arch][2]
            for _, prefix in ipairs(PREFIXES[arch]) do
                local r = helper.run_file(arch, helper.script("insn.lua"), helper.guest("loop", arch),
                    { args = split_args(both), plugins = { c_lib("insn", "match=" .. prefix) },
                      guest_args = { "100" } })
                local theirs, ours = insn_matches(r.log), insn_matches(r.report)
                assert.is_true(theirs[prefix].hits >= 100, prefix)
                assert.are.same(theirs[prefix], ours[prefix])
            end
        end)

        it("traces matched executions as libinsn.so does (" .. arch .. ")", function()
            if libinsn_match_freed() then
                return
            end
            local prefix = PREFIXES[arch][2]
            local r = same_run(arch, "insn", "match=" .. prefix .. ",trace=on", "loop", { "100" })
            local pattern = "^0x%x+, '.*', %d+ hits , cpu %d+"
            local theirs, ours = lines_matching(r.log, pattern), lines_matching(r.report, pattern)
            assert.is_true(#theirs >= 100)
            assert.are.equal(#theirs, #ours)
            local seen = {}
            for i, line in ipairs(ours) do
                -- the same line but for the instruction's own hits, which
                -- libinsn.so counts per record (it may have two)
                local strip = "(, '.-', )%d+ hits"
                assert.are.equal(theirs[i]:gsub(strip, "%1"), (line:gsub(strip, "%1")))
                local at, hits = line:match("^(0x%x+), '.-', (%d+) hits")
                seen[at] = (seen[at] or 0) + 1
                assert.are.equal(seen[at], tonumber(hits), line)
            end
            assert.are.same(insn_matches(r.log), insn_matches(r.report))
        end)

        it("counts the translated instructions of each length, which libinsn.so loses (" .. arch .. ")", function()
            -- a script beside insn.lua prints each translated length in order
            local lengths = helper.tmpname()
            local r = helper.qemu(arch, { c_lib("insn", "sizes=on"), table.concat({ helper.plugin(),
                "script=" .. helper.script("insn.lua"), "sizes=on", "outfile=" .. lengths .. ".insn",
                "script=" .. helper.lua_file([[
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do luahost.printf("%d\n", insn:size()) end
end)
]]), "outfile=" .. lengths }, ",") }, helper.guest("loop", arch), { "100" })
            assert.are.equal(0, r.status, r.stderr)
            local seq, histogram = {}, {}
            for n in helper.read(lengths):gmatch("%d+") do
                seq[#seq + 1] = tonumber(n)
                histogram[tonumber(n)] = (histogram[tonumber(n)] or 0) + 1
            end
            assert.is_true(#seq > 1000)
            -- the lengths seen are the ones libinsn.so counted from
            assert.are.equal(libinsn_sizes(seq), r.log)
            local want = {}
            for len = 1, 16 do
                if histogram[len] then
                    want[#want + 1] = ("len %d bytes: %d insns\n"):format(len, histogram[len])
                end
            end
            local report = helper.read(lengths .. ".insn")
            os.remove(lengths .. ".insn")
            assert.are.equal(table.concat(want), report)
            -- insn.c loses counts when a longer length comes after a
            -- shorter one: on x86_64 always; never with aarch64's one
            -- length; riscv64's run starts with 4-byte instructions
            if arch == "x86_64" then
                assert.are_not.equal(r.log, report)
            else
                assert.are.equal(seq[1], math.max(table.unpack(seq)))
                assert.are.equal(r.log, report)
            end
        end)
    end

    it("prints libinsn.so's counts in system mode (2 vCPUs), reading every register as insn.c does", function()
        local r = same_system_run("insn", "")
        assert.matches("^cpu 0 insns: %d+\ncpu 1 insns: %d+\ntotal insns: %d+\n$", r.log)
        assert.are.equal(r.log, r.report)
    end)

    it("refuses bad arguments as insn.c does", function()
        for _, bad in ipairs({ "bogus=1", "inline=maybe", "sizes=2", "trace=x" }) do
            assert_refused_like_c("insn", bad)
        end
    end)
end)

-- syscall's table: its rows { num, calls, errors } in order.
local function syscall_rows(text)
    local header, rest = text:match("^(syscall no%.  calls  errors\n)(.*)$")
    assert(header, "no syscall table:\n" .. text)
    local rows = {}
    for line in rest:gmatch("[^\n]+") do
        local num, calls, errors = line:match("^(%-?%d+) +(%d+) +(%d+)$")
        assert(num, "not a row: " .. line)
        assert.are.equal(("%-13d%-6d %d"):format(num, calls, errors), line)
        rows[#rows + 1] = { num = tonumber(num), calls = tonumber(calls), errors = tonumber(errors) }
    end
    return rows
end

describe("syscall.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("prints libsyscall.so's table: the same rows, most calls first (" .. arch .. ", 4 threads) #threads",
            function()
            local r = same_run(arch, "syscall", "", "threads", { "4", "1000" })
            local theirs, ours = syscall_rows(r.log), syscall_rows(r.report)
            assert.is_true(#theirs > 10)
            local function by_num(rows)
                local set = {}
                for i, row in ipairs(rows) do
                    assert.is_true(i == 1 or rows[i - 1].calls >= row.calls, "sorted by calls")
                    set[row.num] = row
                end
                return set
            end
            -- syscall.c orders rows with equal calls by its hash table
            assert.are.same(by_num(theirs), by_num(ours))
            local errors = 0
            for _, row in ipairs(ours) do
                errors = errors + row.errors
            end
            assert.is_true(errors > 0, "some syscalls failed")
        end)

        it("prints each syscall and its result as libsyscall.so does, print=on (" .. arch .. ")", function()
            local r = same_run(arch, "syscall", "print=on", "loop", { "10" })
            assert.matches("^syscall #%d+\nsyscall #%d+ returned %-> %-?%d+\n", r.log)
            assert.are.equal(r.log, r.report)
        end)

        it("hex-dumps every write as libsyscall.so does, log_writes=on (" .. arch .. ")", function()
            for _, args in ipairs({ "log_writes=on", "log_writes=on,print=on" }) do
                local r = same_run(arch, "syscall", args, "loop", { "10" })
                -- the guest's own output, 16 bytes a line: its first line
                -- names counted_loop's address
                local first = ("counted_loop=0x%x"):format(helper.nm(helper.guest("loop", arch), "counted_loop"))
                first = first:sub(1, 16)
                local hex = first:gsub(".", function(c) return ("%02x "):format(c:byte()) end)
                assert.is_truthy(r.log:find(hex .. " | " .. first .. "\n", 1, true), r.log)
                -- the dumps; the table's equal rows may come in another order
                local dumps = "^(.-)syscall no%.  calls  errors\n"
                if args:find("print=on") then
                    assert.are.equal(r.log, r.report)
                else
                    assert.are.equal(r.log:match(dumps), r.report:match(dumps))
                    assert.are.same(helper.sorted_lines(r.log), helper.sorted_lines(r.report))
                end
            end
        end)
    end

    it("refuses bad arguments as syscall.c does, and a bad boolean, which syscall.c ignores", function()
        assert_refused_like_c("syscall", "bogus=1")
        for _, bad in ipairs({ "print=maybe", "log_writes=2" }) do
            -- syscall.c says so and runs on as if the argument were off
            local c = helper.qemu("x86_64", { c_lib("syscall", bad) }, helper.guest("loop", "x86_64"), { "10" })
            assert.are.equal(0, c.status)
            assert.matches("boolean argument parsing failed: " .. bad:gsub("%p", "%%%0") .. "\n", c.stderr)
            local r = helper.qemu("x86_64", { helper.luahost_plugin(helper.script("syscall.lua"), { bad }) },
                helper.guest("loop", "x86_64"), { "10" })
            assert.are.equal(1, r.status)
            assert.matches("^luahost: [^\n]*syscall%.lua:%d+: boolean argument parsing failed: "
                .. bad:gsub("%p", "%%%0") .. "\n", r.stderr)
        end
    end)
end)

-- mem's region-summary rows: { [base] = { reads, writes } } and their
-- total reads + writes.
local function mem_regions(text)
    local regions, total = {}, 0
    for base, reads, writes in text:gmatch("\n(0x%x+), (%d+), (%d+), %a+") do
        regions[base] = { tonumber(reads), tonumber(writes) }
        total = total + tonumber(reads) + tonumber(writes)
    end
    return regions, total
end

-- A region-summary report without what depends on the order of other
-- threads' accesses: which load first read a byte the mirror had not
-- seen stored (the warnings and the "Seen all" column). Each plugin
-- mirrors under its own lock, and QEMU calls the C plugin, then ours,
-- after each access: when one thread loads what another stores, the two
-- calls of each can interleave differently in the two plugins. Within one
-- report the two must still agree: a region has a warning if and only if
-- it was not seen all.
local function without_thread_order(report)
    local warned = {}
    for base in report:gmatch("Warning: (0x%x+):%d+ read an un%-instrumented value\n") do
        assert.is_nil(warned[base], "one warning per region")
        warned[base] = true
    end
    for base, seen in report:gmatch("\n(0x%x+), %d+, %d+, (%a+)") do
        assert.are.equal(seen == "false", warned[base] == true, base .. " warned if not seen all")
    end
    return (report:gsub("Warning: 0x%x+:%d+ read an un%-instrumented value\n", "")
                  :gsub("(\n0x%x+, %d+, %d+, )%a+", "%1?"))
end

describe("mem.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, args in ipairs({ "inline=on", "callback=on", "inline=on,track=r", "callback=on,track=w",
                                "callback=on,haddr=on", "haddr=on", "region-summary=on",
                                "callback=on,haddr=on,region-summary=on,track=w" }) do
            it("prints libmem.so's report, " .. args .. " (" .. arch .. ", 4 threads) #threads", function()
                local r = same_run(arch, "mem", args, "threads", { "4", "2000" })
                if args:find("inline") or args:find("callback") then
                    assert.matches("mem accesses: %d%d%d%d+\n", r.log)
                end
                if args:find("region") then
                    assert.matches("Region Base, Reads, Writes, Seen all\n0x", r.log, 1, true)
                end
                if args:find("region") and not args:find("track=w") then
                    -- the reads and writes of each region exactly; the
                    -- exact report is compared on memtraffic, one thread
                    assert.are.equal(without_thread_order(r.log), without_thread_order(r.report))
                else
                    assert.are.equal(r.log, r.report)
                end
            end)
        end

        it("prints every access as libmem.so does, print-accesses=on (" .. arch .. ")", function()
            for _, args in ipairs({ "print-accesses=on", "print-accesses=on,track=r,inline=on" }) do
                local r = same_run(arch, "mem", args, "loop", { "100" })
                assert.matches("^insn_vaddr,insn_symbol,mem_vaddr,mem_hwaddr,access_size,access_type,mem_value\n"
                    .. "0x%x+,[%w_]*,0x%x+,0x0,%d+,%a+,0x%x+\n", r.log)
                assert.is_true(#r.log > 10000)
                assert.are.equal(r.log, r.report)
            end
        end)

        it("mirrors stores as libmem.so does: the zeroed array is seen whole, region-summary=on (" .. arch .. ")",
            function()
            local r = same_run(arch, "mem", "region-summary=on", "memtraffic", { "64", "16", "2", "1000", "10" })
            assert.are.equal(r.log, r.report)
            local regions = mem_regions(r.report)
            local whole = 0
            for base in pairs(regions) do
                if r.report:find(base .. ", %d+, %d+, true\n") then
                    whole = whole + 1
                end
            end
            -- the 64 KiB swept: 4 regions of 16 KiB, written before read
            assert.is_true(whole >= 4, r.report)
            assert.matches("Warning: 0x%x+:%d+ read an un%-instrumented value\n", r.report)
        end)

        it("counts each access once with inline=on and region-summary=on, which libmem.so counts twice ("
            .. arch .. ")", function()
            local r = same_run(arch, "mem", "inline=on,region-summary=on", "loop", { "100" })
            local theirs = tonumber(r.log:match("mem accesses: (%d+)\n"))
            local ours = tonumber(r.report:match("mem accesses: (%d+)\n"))
            local regions, total = mem_regions(r.log)
            -- both list the same regions: every access once
            assert.are.same(regions, (mem_regions(r.report)))
            assert.are.equal(total, ours)
            assert.are.equal(2 * ours, theirs)   -- an inline op and a callback each
        end)

        it("mirrors an access across two regions, where libmem.so aborts, region-summary=on (" .. arch .. ")",
            function()
            local guest = helper.guest("straddle", arch)
            local c = helper.qemu(arch, { c_lib("mem", "region-summary=on") }, guest)
            assert.are.equal(134, c.status)
            assert.matches(helper.REGION_ABORT, c.stderr, 1, true)
            local r = helper.run_file(arch, helper.script("mem.lua"), guest, { args = { "region-summary=on" } })
            local at = helper.printed_address(r.stdout, "straddle")
            assert.matches("loaded=0x1122334455667788\n", r.stdout)
            local base = at - at % 16384
            -- the store and the load, in the region where they start; the
            -- load read what the store left in both: no warning
            assert.matches(("\n0x%016x, 1, 1, true\n"):format(base), r.report)
            assert.matches(("\n0x%016x, 0, 0, true\n"):format(base + 16384), r.report)
            assert.is_falsy(r.report:find(("Warning: 0x%016x"):format(base), 1, true), r.report)
        end)
    end

    for _, args in ipairs({ "callback=on,haddr=on", "inline=on,track=w", "region-summary=on" }) do
        it("prints libmem.so's report in system mode (2 vCPUs), " .. args, function()
            local r = same_system_run("mem", args)
            assert.matches(args:find("region") and "Region Base" or "mem accesses: %d%d%d+\n", r.log)
            assert.are.equal(r.log, r.report)
        end)
    end

    it("prints the accesses of both vCPUs as libmem.so does in system mode, print-accesses=on", function()
        local r = same_system_run("mem", "print-accesses=on")
        assert.is_true(#r.log > 10000)
        -- the two vCPUs' lines interleave differently in the two outputs
        assert.are.same(helper.sorted_lines(r.log), helper.sorted_lines(r.report))
    end)

    it("refuses bad arguments as mem.c does", function()
        for _, bad in ipairs({ "bogus=1", "track=x", "inline=maybe", "print-accesses=2", "region-summary=x" }) do
            assert_refused_like_c("mem", bad)
        end
        local both = "inline=on,callback=on"
        local c = helper.qemu("x86_64", { c_lib("mem", both) }, helper.guest("loop", "x86_64"), { "10" })
        assert.are_not.equal(0, c.status)
        assert.matches("can't enable inline and callback counting at the same time\n", c.stderr, 1, true)
        local r = helper.qemu("x86_64", { helper.luahost_plugin(helper.script("mem.lua"), split_args(both)) },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(1, r.status)
        assert.matches("^luahost: [^\n]*mem%.lua:%d+: can't enable inline and callback counting at the same time\n",
            r.stderr)
    end)
end)

describe("inline.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("counts as libinline.so does, and its checks pass (" .. arch .. ", 4 threads) #threads", function()
            -- inline.c ignores its arguments: so does the port
            local r = same_run(arch, "inline", "anything=1", "threads", { "4", "5000" })
            assert.matches("^cpu 0: tb %((%d+), %1, %d+ %* 100 %+ %d+%) | insn %((%d+), %2, ", r.log)
            assert.matches("\nmem: (%d+)\nmem: %1 %(per vcpu%)\nmem: %1 %(per vcpu inline%)\n$", r.log)
            assert.are.equal(r.log, r.report)
        end)
    end

    it("counts as libinline.so does in system mode (2 vCPUs), and its checks pass", function()
        local r = same_system_run("inline", "")
        assert.matches("\ncpu 1: tb %(%d+", r.log)
        assert.are.equal(r.log, r.report)
    end)

    -- The port's own checks fail when what they check is broken: a copy
    -- of the script with one thing changed must stop with that check.
    for _, case in ipairs({
        { "a block's inline count left out", '    tb:inline("add", counts.tb_inline, 1)\n', "",
          "error in exit hook: .*check failed: tb == tb_inline" },
        { "the memory stream left out", "        mem_stream:mem(insn)\n", "",
          "error in exit hook: .*check failed: mem == mem_inline" },
        { "an instruction's conditional callback given another token", "on_insn_cond, insn_token)",
          "on_insn_cond, insn_token + 1)", "error in insn exec callback: .*check failed: data_insn == udata" },
        { "a block's conditional callback at another count", '"eq", COND_TRIGGER_LIMIT, on_tb_cond',
          '"eq", COND_TRIGGER_LIMIT - 1, on_tb_cond',
          "error in tb exec callback: .*check failed: tb cond track count == limit" },
    }) do
        it("fails its checks with " .. case[1], function()
            local source = helper.read(helper.script("inline.lua"))
            local from, to = source:find(case[2], 1, true)
            assert.is_truthy(from, "inline.lua has no " .. case[2])
            local broken = helper.lua_file(source:sub(1, from - 1) .. case[3] .. source:sub(to + 1))
            local r = helper.run_file("x86_64", broken, helper.guest("loop", "x86_64"),
                { guest_args = { "100" }, status = false })
            assert.are.equal(1, r.status)
            assert.matches(case[4], r.stderr)
        end)
    end
end)

describe("reset.lua", function()
    after_each(helper.cleanup)

    local STEPS = "reset done\nuninstall done\nplugin exit\n"

    for _, arch in ipairs(helper.arches) do
        it("resets and uninstalls itself as libreset.so does (" .. arch .. ", 4 threads) #threads", function()
            -- reset.c ignores its arguments: so does the port
            local r = same_run(arch, "reset", "anything=1", "threads", { "4", "5000" })
            assert.are.equal(STEPS, r.log)
            assert.are.equal(STEPS, r.report)
            assert.matches("\niters=5000\n$", r.stdout)   -- the guest ran to its end
        end)
    end

    it("resets and uninstalls itself as libreset.so does in system mode (2 vCPUs)", function()
        local r = same_system_run("reset", "")
        assert.are.equal(STEPS, r.log)
        assert.are.equal(STEPS, r.report)
    end)

    -- Its checks catch steps that do not happen: a copy of the script
    -- with one request left out must fail at exit.
    for _, case in ipairs({
        { "no uninstall", "        luahost.uninstall(after_uninstall)\n" },
        { "no reset", "        luahost.reset(after_reset)\n" },
    }) do
        it("fails its checks with " .. case[1], function()
            local source = helper.read(helper.script("reset.lua"))
            local from, to = source:find(case[2], 1, true)
            assert.is_truthy(from, "reset.lua has no " .. case[2])
            local broken = helper.lua_file(source:sub(1, from - 1) .. source:sub(to + 1))
            local r = helper.run_file("x86_64", broken, helper.guest("loop", "x86_64"),
                { guest_args = { "100" }, status = false })
            assert.are.equal(1, r.status)
            assert.matches("error in exit hook: .*check failed: the process ended before the plugin was reset and "
                .. "uninstalled", r.stderr)
        end)
    end
end)
