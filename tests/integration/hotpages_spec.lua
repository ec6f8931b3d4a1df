-- scripts/hotpages.lua against QEMU's libhotpages.so in the same run (so
-- both see the very same accesses), every sort order, user mode on both
-- guest ISAs and system mode on two vCPUs; and every page's counts
-- against libmem.so's region-summary (tests/tcg/plugins), which counts
-- the reads and writes of each 16 KiB region, to check the row
-- hotpages.c leaves out.
local helper = require("helper")

local SCRIPT = helper.script("hotpages.lua")
local C_PLUGIN = "contrib/plugins/libhotpages.so"
local HEADER = "Addr, RCPUs, Reads, WCPUs, Writes\n"

local function parse(text)
    assert.are.equal(HEADER, text:sub(1, #HEADER), text)
    local rows = {}
    for addr, rc, r, wc, w in text:gmatch("\n0x(%x+), 0x(%x+), (%d+), 0x(%x+), (%d+)") do
        rows[#rows + 1] = { addr = tonumber(addr, 16), reads = tonumber(r), writes = tonumber(w),
            total = tonumber(r) + tonumber(w), rcpus = tonumber(rc, 16), wcpus = tonumber(wc, 16),
            key = ("%s,%s,%s,%s,%s"):format(addr, rc, r, wc, w) }
    end
    assert.are.equal(select(2, text:gsub("\n", "")), #rows + 1, "every line is a row: " .. text)
    return rows
end

local SORT_COUNT = { [""] = "total", reads = "reads", writes = "writes", address = "addr" }

-- hotpages.c prints min(50, pages - 1) rows (its loop stops before the
-- last page of its sorted list); hotpages.lua min(limit, pages). The C
-- rows must be ours, in the same order of counts (rows tied at the C
-- report's last count may be other pages); ours has the one more row
-- when C printed fewer than 50.
local function assert_agree(c_text, lua_text, sortby)
    local c, lua = parse(c_text), parse(lua_text)
    assert.is_true(#c >= 1, "C report: " .. c_text)
    local count = SORT_COUNT[sortby]
    if #c < 50 then
        assert.are.equal(#c + 1, #lua, "one row more than hotpages.c")
        local last = lua[#lua]
        for _, row in ipairs(lua) do   -- the row hotpages.c drops is last in the order
            assert.is_true(row[count] >= last[count])
        end
    else
        assert.are.equal(50, #lua)
    end
    local top = {}
    table.move(lua, 1, #c, 1, top)
    helper.assert_same_top_rows("hotpages " .. sortby, c, top, count, function(row) return row.key end)
    return c, lua
end

local function plugin_args(sortby, extra)
    local args = {}
    if sortby ~= "" then
        args[1] = "sortby=" .. sortby
    end
    for _, a in ipairs(extra or {}) do
        args[#args + 1] = a
    end
    return args
end

local function c_plugin(args)
    local text = helper.c_plugin(C_PLUGIN)
    for _, a in ipairs(args) do
        text = text .. "," .. a
    end
    return text
end

describe("hotpages.lua agrees with libhotpages.so", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, sortby in ipairs({ "", "reads", "writes", "address" }) do
            for _, case in ipairs({ { "memtraffic", { "256", "64", "2", "2000", "100" } },
                                    { "threads", { "8", "2000" } } }) do
                local tag = case[1] == "threads" and " #threads" or ""
                it(("on %s %s, sortby=%s%s"):format(arch, case[1], sortby, tag), function()
                    local args = plugin_args(sortby)
                    local r = helper.run_file(arch, SCRIPT, helper.guest(case[1], arch),
                        { args = args, plugins = { c_plugin(args) }, guest_args = case[2] })
                    local _, lua = assert_agree(r.log, r.report, sortby)
                    if case[1] == "threads" then
                        -- the 8 threads' stacks: pages more than one vCPU wrote
                        local shared = 0
                        for _, row in ipairs(lua) do
                            shared = shared + ((row.wcpus & (row.wcpus - 1)) ~= 0 and 1 or 0)
                        end
                        assert.is_true(shared > 0, r.report)
                    end
                end)
            end
        end
    end

    for _, sortby in ipairs({ "", "address" }) do
        for _, io in ipairs({ "off", "on" }) do
            it(("in system mode on two vCPUs, sortby=%s io=%s"):format(sortby, io), function()
                local args = plugin_args(sortby, { "io=" .. io })
                local outfile = helper.tmpname()
                local lua_args = { "outfile=" .. outfile }
                table.move(args, 1, #args, 2, lua_args)
                local r = helper.qemu_system({ c_plugin(args), helper.luahost_plugin(SCRIPT, lua_args) },
                    helper.system_guest("sys", "aarch64"))
                assert.are.equal(0, r.status, r.stderr)
                local report = helper.read(outfile) or ""
                if io == "on" then
                    -- one device page at most (the PL011's): hotpages.c
                    -- prints none of it; see the libmem.so test below
                    assert.are.equal(HEADER, r.log)
                    assert.is_true(#parse(report) <= 1, report)
                    return
                end
                local _, lua = assert_agree(r.log, report, sortby)
                -- sys.S: both vCPUs load and store their variable in .data
                local data = helper.nm(helper.system_guest("sys", "aarch64"), "sys_data0")
                local found
                for _, row in ipairs(lua) do
                    if row.addr == data - data % 4096 then
                        found = row
                    end
                end
                assert.is_truthy(found, report)
                assert.are.equal(3, found.rcpus)
                assert.are.equal(3, found.wcpus)
                assert.is_true(found.writes >= 3000 and found.reads >= 3000)
            end)
        end
    end
end)

-- alias.S turns its MMU on and reaches alias_data through a second
-- virtual address, 1 GiB above it: 1000 loads and 1000 stores (its
-- ALIAS_ITERS) whose virtual and physical addresses differ. Pages are
-- physical in system emulation: libmem.so's region-summary, in the
-- same run, keys by virtual address and must see them at the alias.
describe("hotpages.lua in system mode with the MMU on", function()
    after_each(helper.cleanup)

    it("keys RAM accesses by physical address, as libhotpages.so", function()
        local guest = helper.system_guest("alias", "aarch64")
        local outfile = helper.tmpname()
        local r = helper.qemu_system({ c_plugin({}),
            helper.c_plugin("tests/tcg/plugins/libmem.so") .. ",region-summary=on",
            helper.luahost_plugin(SCRIPT, { "outfile=" .. outfile }) }, guest)
        assert.are.equal(0, r.status, r.stderr)
        assert.is_truthy(r.stdout:find("alias done\n", 1, true), r.stdout)
        local data = helper.nm(guest, "alias_data")
        local alias = data + 0x40000000
        local region = alias - alias % 16384
        assert.is_truthy(r.log:find(("\n0x%016x, 1000, 1000, "):format(region)), r.log)
        local report = helper.read(outfile) or ""
        -- libhotpages.so's lines among libmem.so's
        local c_lines = { HEADER }
        for line in r.log:gmatch("0x%x+, 0x%x+, %d+, 0x%x+, %d+\n") do
            c_lines[#c_lines + 1] = line
        end
        assert_agree(table.concat(c_lines), report, "")
        local found
        for _, row in ipairs(parse(report)) do
            assert.is_true(row.addr < 0x80000000, ("a virtual page: 0x%x"):format(row.addr))
            if row.addr == data - data % 4096 then
                found = row
            end
        end
        assert.is_truthy(found, report)
        assert.are.same({ 1000, 1000 }, { found.reads, found.writes })
    end)
end)

-- libmem.so region-summary=on: reads and writes per 16 KiB region of
-- virtual addresses, every region, ascending. With pagesize=16384 and a
-- limit above the page count, hotpages.lua sortby=address must list the
-- same pages with the same counts, highest first: the page hotpages.c
-- drops included.
describe("hotpages.lua counts every page as libmem.so does", function()
    after_each(helper.cleanup)

    local function regions(log)
        local text = log:match("Region Base, Reads, Writes, Seen all\n(.*)$")
        assert.is_truthy(text, log)
        local rows = {}
        for addr, r, w in text:gmatch("0x(%x+), (%d+), (%d+), %a+\n") do
            table.insert(rows, 1, ("%x %s %s"):format(tonumber(addr, 16), r, w))
        end
        return rows
    end

    local function ours(report)
        local rows = {}
        for _, row in ipairs(parse(report)) do
            rows[#rows + 1] = ("%x %d %d"):format(row.addr, row.reads, row.writes)
        end
        return rows
    end

    local ARGS = { "pagesize=16384", "sortby=address", "limit=100000" }
    local LIBMEM = "tests/tcg/plugins/libmem.so"

    for _, arch in ipairs(helper.arches) do
        it("in user mode on " .. arch, function()
            local r = helper.run_file_with_libmem_regions(arch, SCRIPT, helper.guest("memtraffic", arch),
                { args = ARGS, plugins = { helper.c_plugin(LIBMEM) .. ",region-summary=on" },
                  guest_args = { "256", "64", "2", "2000", "100" } })
            local theirs = regions(r.log)
            assert.is_true(#theirs > 10)
            assert.are.same(theirs, ours(r.report))
        end)
    end

    it("in system mode on two vCPUs, device pages with io=on", function()
        local function run(extra)
            local outfile = helper.tmpname()
            local args = { "outfile=" .. outfile }
            table.move(ARGS, 1, #ARGS, 2, args)
            table.move(extra, 1, #extra, #args + 1, args)
            local r = helper.qemu_system({ helper.c_plugin(LIBMEM) .. ",region-summary=on,haddr=on",
                helper.luahost_plugin(SCRIPT, args) }, helper.system_guest("sys", "aarch64"))
            assert.are.equal(0, r.status, r.stderr)
            return r, helper.read(outfile) or ""
        end
        -- the MMU is off: RAM's physical addresses are its virtual ones
        local r, report = run({})
        local theirs = regions(r.log)
        assert.are.equal(2, #theirs, "RAM and the UART: " .. r.log)
        assert.are.same(theirs, ours(report))
        -- io=on: libmem.so's count of device accesses, all on the PL011's
        -- page (QEMU 10.0 reports the UART as a device, 10.2.2 as RAM)
        r, report = run({ "io=on" })
        local io = tonumber(r.log:match("io accesses: (%d+)"))
        local rows = parse(report)
        if io == 0 then
            assert.are.equal(0, #rows, report)
        else
            assert.are.equal(1, #rows, report)
            assert.are.equal(0x09000000, rows[1].addr)
            assert.are.equal(io, rows[1].total)
            -- sys.S: the control register, '1' from vCPU 1, '0' and
            -- "\nsys done\n" from vCPU 0: 13 stores, no loads
            assert.are.equal(13, rows[1].writes)
            assert.are.equal(3, rows[1].wcpus)
        end
    end)
end)

describe("hotpages.lua arguments", function()
    after_each(helper.cleanup)

    it("limit= sets the number of rows", function()
        local r = helper.run_file("x86_64", SCRIPT, helper.guest("memtraffic", "x86_64"),
            { args = { "limit=3" }, guest_args = { "64", "64", "1", "10", "10" } })
        assert.are.equal(3, #parse(r.report))
    end)

    it("counts nothing with io=on in user mode, as libhotpages.so", function()
        local r = helper.run_file("x86_64", SCRIPT, helper.guest("loop", "x86_64"),
            { args = { "io=on" }, plugins = { c_plugin({ "io=on" }) }, guest_args = { "10" } })
        assert.are.equal(HEADER, r.log)
        assert.are.equal(HEADER, r.report)
    end)

    it("refuses what libhotpages.so refuses, and more, in one line", function()
        for _, case in ipairs({
            { "bogus=1", "option parsing failed: bogus=1" },
            { "sortby=rw", "expected one of reads, writes, address: sortby=rw" },
            { "io=maybe", "boolean argument parsing failed: io=maybe" },
            -- hotpages.c reads these as garbage masks (0, 3000) or as 0
            { "pagesize=0", "pagesize must be a power of two from 1 to 2^52: pagesize=0" },
            { "pagesize=3000", "pagesize must be a power of two from 1 to 2^52: pagesize=3000" },
            { "pagesize=4k", "integer argument parsing failed: pagesize=4k" },
            { "limit=-1", "limit must be at least 0: limit=-1" },
        }) do
            local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT, { case[1] }) },
                helper.guest("loop", "x86_64"), { "10" })
            assert.are_not.equal(0, r.status)
            local ours = r.stderr:match("luahost: ([^\n]*)\n")
            assert.is_truthy(ours, r.stderr)
            assert.matches("hotpages%.lua:%d+: " .. case[2]:gsub("%p", "%%%0"), ours)
            assert.are.equal(1, select(2, r.stderr:gsub("luahost: ", "")), r.stderr)
        end
    end)
end)
