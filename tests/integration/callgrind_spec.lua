-- examples/callgrind.lua against Valgrind's callgrind_annotate: the file
-- it writes is read by the real tool, whose program total is what QEMU's
-- libinsn.so counts in the same run, and whose self and inclusive counts
-- per function are the callstack module's (a second script, in the same
-- run, with a tree of its own).
local helper = require("helper")

local PROFILE = [[
local cs = require("callstack").new()
luahost.on_exit(function()
    local f = cs:profile().functions
    for _, name in ipairs({ "worker", "rec", "even", "main", "tail_from" }) do
        luahost.printf("%s self %d inclusive %d calls %d\n", name, f[name].self, f[name].inclusive, f[name].calls)
    end
end)
]]

local RECURSIVE = { rec = true, even = true }

local function annotate(file, inclusive)
    local status, out, err = helper.sh(("callgrind_annotate %s %s"):format(
        inclusive and "--inclusive=yes" or "", helper.quote(file)))
    assert.are.equal(0, status, err)
    assert.is_nil(err:find("Use of uninitialized", 1, true), err)
    return out
end

local function ir(out, name)
    local n = out:match("\n%s*([%d,]+) %([ %d.]+%%%)%s+[^\n]*:" .. name .. "\n")
    return n and tonumber((n:gsub(",", "")))
end

describe("callgrind.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("writes a profile callgrind_annotate reads, with the counts of the run (" .. arch .. ")", function()
            local out, mine = helper.tmpname(), helper.tmpname()
            local plugin = table.concat({ helper.plugin(),
                "script=" .. helper.source_root .. "/examples/callgrind.lua", "outfile=" .. out,
                "script=" .. helper.lua_file(PROFILE), "outfile=" .. mine }, ",")
            local libinsn = helper.c_plugin("tests/tcg/plugins/libinsn.so")
            local r = helper.qemu_with(arch, {}, { libinsn, plugin }, helper.guest("calls", arch), { "200", "2" })
            assert.are.equal(0, r.status, r.stderr)
            local total = tonumber((r.stderr .. r.log):match("total insns: (%d+)"))
            local self_report = annotate(out)
            assert.are.equal(total, tonumber(self_report:match("([%d,]+) %(100%.0%%%)%s+PROGRAM TOTALS"):gsub(",", "")
                + 0))
            local inclusive_report = annotate(out, true)
            local profile = helper.read(mine)
            for name, self, incl, calls in profile:gmatch("(%S+) self (%d+) inclusive (%d+) calls (%d+)") do
                assert.are.equal(tonumber(self), ir(self_report, name), name .. " self\n" .. self_report)
                -- callgrind_annotate adds a recursive function's calls of
                -- itself to its inclusive count (as for Valgrind's own
                -- files): compare the functions that do not recurse
                if not RECURSIVE[name] then
                    assert.are.equal(tonumber(incl), ir(inclusive_report, name), name .. " inclusive")
                end
                assert.is_true(tonumber(calls) > 0)
            end
            assert.matches("\nfn=%(%d+%) rec\n", helper.read(out))
        end)
    end
end)
