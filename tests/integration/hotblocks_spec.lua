-- hotblocks.lua against QEMU's libhotblocks.so, loaded into the same QEMU
-- run (so both see the very same translations and executions), on both
-- guest ISAs, inline and callback mode. Our report goes to an outfile,
-- the C plugin's to QEMU's log.
local helper = require("helper")

-- format=csv and format=json rows, as parse_report's rows.
local function parse_rows(format, text)
    local rows = {}
    local function add(pc, t, i, e)
        rows[#rows + 1] = {
            pc = tonumber(pc, 16), tcount = tonumber(t), icount = tonumber(i), ecount = tonumber(e),
            key = ("%s,%s,%s,%s"):format(pc, t, i, e),
        }
    end
    if format == "csv" then
        assert.are.equal("pc,tcount,icount,ecount\n", text:match("^[^\n]*\n"))
        for pc, t, i, e in text:gmatch("\n0x(%x+),(%d+),(%d+),(%d+)") do
            add(pc, t, i, e)
        end
    else
        assert.are.equal("[", text:sub(1, 1))
        for obj in text:gmatch("{[^}]*}") do
            add(obj:match('"pc":"0x(%x+)"'), obj:match('"tcount":(%d+)'), obj:match('"icount":(%d+)'),
                obj:match('"ecount":(%d+)'))
        end
    end
    return rows
end

local function parse_report(text)
    local entries = tonumber(text:match("collected (%d+) entries in the hash table"))
    local rows = {}
    for pc, t, i, e in text:gmatch("0x(%x+), (%d+), (%d+), (%d+)\n") do
        rows[#rows + 1] = {
            pc = tonumber(pc, 16), tcount = tonumber(t), icount = tonumber(i), ecount = tonumber(e),
            key = ("%s,%s,%s,%s"):format(pc, t, i, e),
        }
    end
    return { entries = entries, rows = rows, has_header = text:find("pc, tcount, icount, ecount\n", 1, true) ~= nil }
end

-- The rows of a report with symbolize=on: its rows (as parse_report's,
-- keyed without the symbolic columns) and each row's location, module
-- and offset (module and offset in csv and json only).
local function parse_symbolized(format, text)
    local rows = {}
    local function add(pc, t, i, e, location, module, offset)
        rows[#rows + 1] = {
            pc = tonumber(pc, 16), tcount = tonumber(t), icount = tonumber(i), ecount = tonumber(e),
            key = ("%s,%s,%s,%s"):format(pc, t, i, e), location = location, module = module,
            offset = offset and tonumber(offset, 16), offset_text = offset,
        }
    end
    if format == "text" then
        assert.is_truthy(text:find("\npc, tcount, icount, ecount, location\n"), text)
        for pc, t, i, e, location in text:gmatch("\n0x(%x+), (%d+), (%d+), (%d+), (%S+)") do
            add(pc, t, i, e, location)
        end
    elseif format == "csv" then
        assert.are.equal("pc,tcount,icount,ecount,location,module,offset\n", text:match("^[^\n]*\n"))
        for line in text:gmatch("\n(0x[^\n]*)") do
            local pc, t, i, e, location, module, offset = line:match("^0x(%x+),(%d+),(%d+),(%d+),([^,]*),([^,]*),(.*)$")
            assert.is_truthy(pc, line)
            add(pc, t, i, e, location, module ~= "" and module or nil, offset ~= "" and offset or nil)
        end
    else
        assert.are.equal("[", text:sub(1, 1))
        for obj in text:gmatch("{[^}]*}") do
            add(obj:match('"pc":"0x(%x+)"'), obj:match('"tcount":(%d+)'), obj:match('"icount":(%d+)'),
                obj:match('"ecount":(%d+)'), obj:match('"location":"([^"]*)"'), obj:match('"module":"([^"]*)"'),
                obj:match('"offset":"([^"]*)"'))
        end
    end
    return rows
end

local function assert_same_top_rows(c_rows, lua_rows)
    helper.assert_same_top_rows("hotblocks", c_rows, lua_rows, "ecount", function(row) return row.key end)
end

local function run_both(arch, guest, guest_args, inline, extra)
    local outfile = helper.tmpname()
    local args = { "inline=" .. inline, "outfile=" .. outfile }
    for _, a in ipairs(extra or {}) do
        args[#args + 1] = a
    end
    local r = helper.qemu(arch, {
        helper.c_plugin("contrib/plugins/libhotblocks.so") .. ",inline=" .. inline,
        helper.luahost_plugin(helper.script("hotblocks.lua"), args),
    }, helper.guest(guest, arch), guest_args)
    assert.are.equal(0, r.status, r.stderr)
    r.report = helper.read(outfile) or ""
    return parse_report(r.log), parse_report(r.report), r
end

describe("hotblocks.lua agrees with libhotblocks.so", function()
    after_each(helper.cleanup)

    for _, format in ipairs({ "csv", "json" }) do
        it("in format=" .. format .. " (x86_64)", function()
            local outfile = helper.tmpname()
            local r = helper.qemu("x86_64", {
                helper.c_plugin("contrib/plugins/libhotblocks.so") .. ",inline=on",
                helper.luahost_plugin(helper.script("hotblocks.lua"),
                    { "inline=on", "format=" .. format, "outfile=" .. outfile }),
            }, helper.guest("loop", "x86_64"), { "20000" })
            assert.are.equal(0, r.status, r.stderr)
            local rows = parse_rows(format, helper.read(outfile) or "")
            assert.are.equal(20, #rows)
            assert_same_top_rows(parse_report(r.log).rows, rows)
        end)
    end

    for _, arch in ipairs(helper.arches) do
        for _, inline in ipairs({ "on", "off" }) do
            for _, case in ipairs({ { "loop", { "20000" } }, { "threads", { "8", "20000" } } }) do
                local guest, guest_args = case[1], case[2]
                local tag = guest == "threads" and " #threads" or ""   -- the TSan build runs these
                it(("on %s %s, inline=%s%s"):format(arch, guest, inline, tag), function()
                    local c, lua = run_both(arch, guest, guest_args, inline)
                    assert.is_truthy(c.entries, "C report missing")
                    assert.is_true(c.has_header and lua.has_header)
                    assert.are.equal(20, #c.rows)
                    assert.are.equal(c.entries, lua.entries, "entries in the hash table")
                    assert_same_top_rows(c.rows, lua.rows)
                end)
            end
        end
    end

    it("limit= sets the number of rows", function()
        local _, lua = run_both("x86_64", "loop", { "2000" }, "on", { "limit=3" })
        assert.are.equal(3, #lua.rows)
        local _, all = run_both("x86_64", "loop", { "2000" }, "on", { "limit=100000" })
        assert.are.equal(all.entries, #all.rows, "a limit above the entry count prints every entry")
    end)

    it("rejects unknown and malformed arguments like the C plugin", function()
        for _, bad in ipairs({ "bogus=1", "inline=maybe", "limit=ten" }) do
            local r = helper.qemu("x86_64", { helper.luahost_plugin("hotblocks.lua", { bad }) },
                helper.guest("loop", "x86_64"), { "10" })
            assert.are_not.equal(0, r.status)
            assert.matches("hotblocks.lua:%d+: .*" .. bad:gsub("%p", "%%%0"), r.stderr)
        end
    end)
end)

describe("hotblocks.lua symbolize=on", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, format in ipairs({ "text", "csv", "json" }) do
            it(("keeps libhotblocks.so's rows and names each block (%s, format=%s)"):format(arch, format), function()
                local guest = helper.guest("loop", arch)
                local c, _, r = run_both(arch, "loop", { "20000" }, "on", { "symbolize=on", "format=" .. format })
                local rows = parse_symbolized(format, r.report)
                assert.are.equal(20, #rows)
                assert_same_top_rows(c.rows, rows)
                local names, head = helper.nm_names(guest), helper.nm(guest, "hot_loop_head")
                local head_row
                for _, row in ipairs(rows) do
                    helper.assert_location(names, guest, row.pc, row.location)
                    if format ~= "text" then
                        -- a static program: its module is the file, its bias 0
                        assert.are.equal("loop-" .. arch, row.module)
                        assert.are.equal(("0x%x"):format(row.pc), row.offset_text)
                    end
                    if row.pc == head then
                        head_row = row
                    end
                end
                -- hot_loop_head is a label: the code is counted_loop's
                assert.is_truthy(head_row, "the hot loop's block is in the top rows")
                assert.are.equal(("counted_loop+0x%x"):format(head - helper.nm(guest, "counted_loop")),
                    head_row.location)
            end)
        end
    end

    -- A PIE program and its shared libraries: QEMU maps the libraries
    -- where the host's mmap (ASLR) puts them, so raw addresses change from
    -- run to run and (module, offset) does not.
    it("gives the same (module, offset, icount) rows on two runs of a PIE program", function()
        local xz = "/usr/bin/xz"
        if not helper.read(xz) then
            pending(xz .. " is not installed")
            return
        end
        local input = helper.tmpname()
        assert.are.equal(0, helper.sh("cat /usr/share/common-licenses/* >" .. helper.quote(input)))
        local runs = {}
        for i = 1, 2 do
            local r = helper.run_file("x86_64", helper.script("hotblocks.lua"), xz, {
                args = { "inline=on", "symbolize=on", "format=csv", "limit=1000000" },
                guest_args = { "-9", "-T1", "-c", input } })
            local by_key, pcs = {}, {}
            for _, row in ipairs(parse_symbolized("csv", r.report)) do
                -- the vDSO's offsets are addresses today (its bias is
                -- taken as 0): left out until the host gives its ELF offsets
                if row.module and row.module ~= "[vdso]" then
                    local key = ("%s,%s,%d"):format(row.module, row.offset_text, row.icount)
                    assert.is_nil(by_key[key], "one row per key: " .. key)
                    by_key[key] = ("%d,%d"):format(row.tcount, row.ecount)
                    pcs[row.pc] = true
                end
            end
            runs[i] = { by_key = by_key, pcs = pcs, report = r.report }
        end
        local modules = {}
        for key in pairs(runs[1].by_key) do
            modules[key:match("^[^,]*")] = true
        end
        assert.is_truthy(modules.xz, "the program's own code")
        assert.is_truthy(modules["libc.so.6"], "libc's code")
        assert.are.same(runs[1].by_key, runs[2].by_key)
        local aslr = (helper.read("/proc/sys/kernel/randomize_va_space") or "0"):match("%d") ~= "0"
        if aslr then
            local moved = 0
            for pc in pairs(runs[1].pcs) do
                moved = moved + (runs[2].pcs[pc] and 0 or 1)
            end
            assert.is_true(moved > 100, "the libraries' addresses changed from run to run")
        end
    end)
end)

describe("hotblocks.lua is exact on 8 concurrent vCPUs", function()
    after_each(helper.cleanup)

    local threads, iters = 8, 50000
    for _, arch in ipairs(helper.arches) do
        for _, inline in ipairs({ "on", "off" }) do
            it(("on %s, inline=%s #threads"):format(arch, inline), function()
                local r = helper.run_script(arch, helper.script("hotblocks.lua"), { "inline=" .. inline },
                    helper.guest("threads", arch), { tostring(threads), tostring(iters) })
                assert.are.equal(0, r.status, r.stderr)
                local head = helper.hot_loop_head(r.stdout)
                local count = 0
                for _, row in ipairs(parse_report(r.report).rows) do
                    if row.pc == head then
                        count = count + row.ecount
                    end
                end
                assert.are.equal(threads * iters, count)
            end)
        end
    end
end)
