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
    return parse_report(r.log), parse_report(helper.read(outfile) or ""), r
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
                it(("on %s %s, inline=%s"):format(arch, guest, inline), function()
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

describe("hotblocks.lua is exact on 8 concurrent vCPUs", function()
    after_each(helper.cleanup)

    local threads, iters = 8, 50000
    for _, arch in ipairs(helper.arches) do
        for _, inline in ipairs({ "on", "off" }) do
            it(("on %s, inline=%s"):format(arch, inline), function()
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
