-- cache.lua against QEMU's libcache.so, both loaded into the same QEMU run
-- with the same arguments, so they see the very same fetches and memory
-- accesses. The C report goes to QEMU's log, ours to an outfile. Per-core
-- rows must be identical text; top lists identical but for the order of
-- rows with equal counts (cache.c's comes from a hash table).
local helper = require("helper")

local function libcache(args)
    return table.concat({ helper.c_plugin("contrib/plugins/libcache.so"), table.unpack(args) }, ",")
end

-- The table of per-core rows (header to blank line) and the top lists,
-- each { title =, rows = { { line =, count = } } }.
local function parse_report(text)
    local stats = text:match("(core #.-\n)\n")
    local lists, list = {}, nil
    for line in text:gmatch("[^\n]+") do
        local title = line:match("^address, ([%w ]+) misses, instruction$")
        if title then
            list = { title = title, rows = {} }
            lists[#lists + 1] = list
        elseif list and line:match("^0x") then
            local count = assert(line:match("^0x%x+[^,]*, (%d+), "), "bad row: " .. line)
            list.rows[#list.rows + 1] = { line = line, count = tonumber(count) }
        end
    end
    return { stats = stats, lists = lists }
end

-- Runs libcache.so and cache.lua with args on a guest; returns both
-- parsed reports.
local function run_both(arch, args, guest, guest_args)
    local r = helper.run_file(arch, helper.script("cache.lua"), helper.guest(guest, arch), {
        plugins = { libcache(args) }, args = args, guest_args = guest_args,
    })
    local c, lua = parse_report(r.log), parse_report(r.report)
    assert.is_truthy(c.stats, "no C report: " .. r.log)
    return c, lua
end

local function assert_same_reports(c, lua)
    assert.are.equal(c.stats, lua.stats)
    assert.are.equal(#c.lists, #lua.lists, "number of top lists")
    local above = {}
    for i, list in ipairs(c.lists) do
        assert.are.equal(list.title, lua.lists[i].title)
        above[list.title] = helper.assert_same_top_rows(list.title, list.rows, lua.lists[i].rows, "count",
            function(row) return row.line end)
    end
    return above
end

-- The cells of a per-core row ("0", "1", "sum").
local function row(stats, core)
    local line = assert(stats:match("\n" .. core .. " +([^\n]*)"), "no row " .. core .. " in\n" .. stats)
    local cells = {}
    for cell in line:gmatch("%S+") do
        cells[#cells + 1] = cell
    end
    return cells
end

local function rate(cell)
    return tonumber((cell:gsub("%%$", "")))
end

-- memtraffic's three phases: sweeps, random accesses, calls to 4 KiB
-- aligned functions (conflicting in a small instruction cache).
local CASES = {
    {
        name = "default geometry and policy (lru, no L2)",
        args = {},
        guest = { "memtraffic" },
    },
    {
        name = "fifo with an L2, every geometry argument, limit",
        args = { "evict=fifo", "dcachesize=8192", "dblksize=32", "dassoc=4", "icachesize=2048",
            "iblksize=32", "iassoc=2", "l2=on", "l2cachesize=65536", "l2blksize=128", "l2assoc=8", "limit=12" },
        guest = { "memtraffic", "128", "16", "3", "20000", "2000" },
        l2 = true,
    },
    {
        name = "lru with an L2 turned on by l2cachesize",
        args = { "evict=lru", "l2cachesize=131072", "icachesize=1024", "iassoc=2", "dblksize=128", "limit=40" },
        guest = { "memtraffic", "256", "64", "4", "30000", "1000" },
        l2 = true,
    },
    {
        name = "fifo, l2=off after an L2 argument leaves it off",
        args = { "l2assoc=4", "l2=off", "evict=fifo", "dassoc=2", "limit=20" },
        guest = { "memtraffic", "32", "8", "4", "10000", "500" },
        l2 = false,
    },
    {
        name = "cores=2 on one vCPU: an idle core and the sum row; l2 argument after l2=off",
        args = { "cores=2", "l2=off", "l2blksize=32", "limit=8" },
        guest = { "memtraffic", "64", "32", "2", "5000", "500" },
        l2 = true,
        cores = 2,
    },
    {
        name = "4 threads with a cache per vCPU (cores=8) #threads",
        args = { "cores=8", "evict=fifo", "l2=on", "dcachesize=4096", "limit=10" },
        guest = { "threads", "4", "20000" },
        l2 = true,
        cores = 8,
    },
}

describe("cache.lua agrees with libcache.so", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, case in ipairs(CASES) do
            it(case.name .. " (" .. arch .. ")", function()
                local c, lua = run_both(arch, case.args, case.guest[1], { table.unpack(case.guest, 2) })
                local above = assert_same_reports(c, lua)
                -- the comparison has something to compare
                assert.is_true(tonumber(row(c.stats, 0)[2]) > 0, "data misses")
                assert.is_true(above.data >= 3, "rows above the cut-off of the data list")
                assert.are.equal(case.l2 or false, c.stats:find("l2 accesses", 1, true) ~= nil, "L2 in use")
                assert.are.equal(case.l2 and 3 or 2, #c.lists)
                if case.cores then
                    assert.is_truthy(c.stats:find("\nsum ", 1, true), "sum row")
                    row(c.stats, case.cores - 1)
                end
            end)
        end
    end

    it("in system mode: physical data addresses, host fetch addresses, a cache per vCPU", function()
        local args = { "l2=on", "limit=10" }
        local outfile = helper.tmpname()
        local all = { "outfile=" .. outfile, table.unpack(args) }
        local r = helper.qemu_system({ libcache(args), helper.luahost_plugin(helper.script("cache.lua"), all) },
            helper.system_guest("sys", "aarch64"))
        assert.are.equal(0, r.status, r.stderr)
        local c, lua = parse_report(r.log), parse_report(helper.read(outfile) or "")
        assert.is_truthy(c.stats, "no C report: " .. r.log)
        assert_same_reports(c, lua)
        -- cores defaults to the vCPU count, so both vCPUs have rows
        assert.is_true(tonumber(row(c.stats, 1)[1]) > 0)
        assert.is_truthy(c.stats:find("\nsum ", 1, true))
    end)
end)

describe("cache.lua symbolize=on", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("ends cache.c's lines of the top lists with each instruction's location (" .. arch .. ")", function()
            local args = { "l2=on", "limit=20" }
            local guest = helper.guest("memtraffic", arch)
            local r = helper.run_file(arch, helper.script("cache.lua"), guest, {
                plugins = { libcache(args) }, args = { "symbolize=on", table.unpack(args) } })
            -- the C part of each line, and the locations by address
            local lines, locations = {}, {}
            for line in r.report:gmatch("[^\n]*\n") do
                local title = line:match("^address, ([%w ]+) misses, instruction, location\n$")
                local addr, rest, location = line:match("^0x(%x+)(.*), ([^,]*)\n$")
                if title then
                    line = ("address, %s misses, instruction\n"):format(title)
                elseif addr then
                    locations[tonumber(addr, 16)] = location
                    line = "0x" .. addr .. rest .. "\n"
                end
                lines[#lines + 1] = line
            end
            local c, lua = parse_report(r.log), parse_report(table.concat(lines))
            assert.is_truthy(c.stats, "no C report: " .. r.log)
            assert.are.equal(3, #lua.lists)
            assert_same_reports(c, lua)
            local names, n = helper.nm_names(guest), 0
            for addr, location in pairs(locations) do
                helper.assert_location(names, guest, addr, location)
                n = n + 1
            end
            assert.is_true(n >= 20, "named instructions")
        end)
    end
end)

describe("cache.lua evict=rand", function()
    after_each(helper.cleanup)

    -- A 12 KiB sweep through an 8 KiB data cache (8 ways) and 8 functions
    -- through one 4-way instruction cache set: cyclic, so lru and fifo
    -- miss on every block, and random replacement keeps some. cache.c's
    -- rand seeds itself from /dev/urandom: its rates vary from run to run
    -- by under 0.1 (data) and 0.03 (fetch) percentage points; ours must
    -- be within 0.5 and 0.2 of them, while lru's are 3 and 0.6 away.
    local geometry = { "dcachesize=8192", "icachesize=4096", "iassoc=4", "limit=5" }
    local guest = { "memtraffic", "12", "64", "100", "0", "3000" }

    local function with(policy)
        local args = { "evict=" .. policy }
        for _, a in ipairs(geometry) do
            args[#args + 1] = a
        end
        return args
    end

    for _, arch in ipairs(helper.arches) do
        it("gives miss rates within tolerance of libcache.so's (" .. arch .. ")", function()
            local c, lua = run_both(arch, with("rand"), guest[1], { table.unpack(guest, 2) })
            local c_lru, lua_lru = run_both(arch, with("lru"), guest[1], { table.unpack(guest, 2) })
            assert.are.equal(c_lru.stats, lua_lru.stats)
            local cr, lr, lru = row(c.stats, 0), row(lua.stats, 0), row(c_lru.stats, 0)
            assert.are.equal(cr[1], lr[1], "data accesses")
            assert.are.equal(cr[4], lr[4], "insn accesses")
            assert.are.equal(lru[1], cr[1])
            assert.is_true(math.abs(rate(cr[3]) - rate(lr[3])) <= 0.5, ("dmiss rate %s vs %s"):format(cr[3], lr[3]))
            assert.is_true(math.abs(rate(cr[6]) - rate(lr[6])) <= 0.2, ("imiss rate %s vs %s"):format(cr[6], lr[6]))
            assert.is_true(rate(lru[3]) - rate(cr[3]) >= 3, ("lru %s vs rand %s"):format(lru[3], cr[3]))
            assert.is_true(rate(lru[6]) - rate(cr[6]) >= 0.6, ("lru %s vs rand %s"):format(lru[6], cr[6]))
        end)
    end

    it("repeats itself for a seed (seed=, our extension)", function()
        local function report(seed)
            local r = helper.run_file("x86_64", helper.script("cache.lua"), helper.guest("memtraffic", "x86_64"),
                { args = { "evict=rand", "seed=" .. seed, table.unpack(geometry) },
                  guest_args = { table.unpack(guest, 2) } })
            return r.report
        end
        local first = report(7)
        assert.is_truthy(first:find("core #", 1, true))
        assert.are.equal(first, report(7))
        assert.are_not.equal(first, report(8))
    end)
end)

describe("cache.lua rejects bad arguments", function()
    after_each(helper.cleanup)

    local function run(plugin)
        return helper.qemu("x86_64", { plugin }, helper.guest("loop", "x86_64"), { "10" })
    end

    local function our_error(arg)
        local r = run(helper.luahost_plugin(helper.script("cache.lua"), { arg }))
        assert.are_not.equal(0, r.status)
        local line = r.stderr:match("luahost: [^\n]*cache%.lua:%d+: ([^\n]*)\n")
        assert.is_truthy(line, r.stderr)
        assert.is_falsy(r.stderr:find("traceback", 1, true), r.stderr)
        return line
    end

    it("as libcache.so does, with its message on one line", function()
        for _, bad in ipairs({ "bogus=1", "l2=maybe", "evict=mru", "dcachesize=1000", "iassoc=3",
                "l2cachesize=1000", "l2assoc=3" }) do
            local c = run(libcache({ bad }))
            assert.are_not.equal(0, c.status, bad)
            -- cache.c's message: one line, or two for a geometry
            local message = c.stderr:match("^(.-)\nqemu%-x86_64: Could not load plugin")
            assert.is_truthy(message, c.stderr)
            message = message:gsub("\n", ": ")
            local ours = our_error(bad)
            assert.are.equal(message, ours:sub(1, #message), bad)
        end
    end)

    it("where cache.c crashes, aborts or takes a value it cannot use", function()
        local cases = {
            ["dblksize=48"] = "dcache cannot be constructed from given parameters: block size must be a power of two"
                .. " (dcachesize=16384, dblksize=48, dassoc=8)",
            ["iassoc=0"] = "icache cannot be constructed from given parameters: "
                .. "associativity must be a positive integer (icachesize=16384, iblksize=64, iassoc=0)",
            ["dcachesize=0"] = "dcache cannot be constructed from given parameters: "
                .. "cache size must be a positive integer (dcachesize=0, dblksize=64, dassoc=8)",
            ["icachesize=3072"] = "icache cannot be constructed from given parameters: "
                .. "the number of sets (cache size / (assoc * block size)) must be a power of two"
                .. " (icachesize=3072, iblksize=64, iassoc=8)",
            ["l2cachesize=68719476736"] = "L2 cache cannot be constructed from given parameters: "
                .. "cache size / block size is 1073741824 blocks, more than the 16777216 (2^24) simulated"
                .. " (l2cachesize=68719476736, l2blksize=64, l2assoc=16)",
            ["l2assoc=9007199254740992"] = "L2 cache cannot be constructed from given parameters: "
                .. "cache size must be divisible by set size (assoc * block size)"
                .. " (l2cachesize=2097152, l2blksize=64, l2assoc=9007199254740992)",
            ["cores=100000"] = "cores=100000: 100000 cores of these caches hold 51200000 blocks, "
                .. "more than the 33554432 (2^25) simulated",
            ["cores=0"] = "cores must be at least 1: cores=0",
            ["limit=ten"] = "integer argument parsing failed: limit=ten",
            ["seed=x"] = "integer argument parsing failed: seed=x",
        }
        for bad, message in pairs(cases) do
            assert.are.equal(message, our_error(bad))
        end
    end)
end)
