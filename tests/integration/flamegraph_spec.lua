-- examples/flamegraph.lua: folded stacks and an SVG flame graph whose
-- counts add up to the instructions QEMU's own libinsn.so counts in the
-- same run, and an SVG that a real renderer draws (rsvg-convert, from
-- Debian's librsvg2-bin, which tools/setup installs).
local helper = require("helper")

local LIBINSN = "tests/tcg/plugins/libinsn.so"

-- flamegraph.lua with args on the calls guest (1 thread besides main),
-- libinsn.so in the same run; returns the report and libinsn's total.
local function run(arch, args)
    local r = helper.run_file(arch, helper.source_root .. "/examples/flamegraph.lua", helper.guest("calls", arch),
        { args = args, guest_args = { "100", "1" }, plugins = { helper.c_plugin(LIBINSN) },
          qemu_args = { "-d", "plugin" } })
    local total = tonumber(r.stderr:match("total insns: (%d+)") or r.log:match("total insns: (%d+)"))
    return r, assert(total, "libinsn.so printed no total\n" .. r.stderr)
end

local function sum_folded(text)
    local sum, lines = 0, 0
    for count in text:gmatch(" (%d+)\n") do
        sum = sum + tonumber(count)
        lines = lines + 1
    end
    return sum, lines
end

describe("flamegraph.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("folds every instruction libinsn.so counts into a chain of calls (" .. arch .. ")", function()
            local r, total = run(arch, { "format=folded" })
            local sum, lines = sum_folded(r.report)
            assert.are.equal(total, sum)
            assert.is_true(lines > 20, r.report)
            assert.matches("\n[^\n]*main;worker;rec;rec;rec %d+\n", "\n" .. r.report)
            assert.matches("\n[^\n]*start_thread;worker;even;odd %d+\n", "\n" .. r.report)
            for line in r.report:gmatch("[^\n]+") do
                assert.matches("^[^ ]+ %d+$", line)    -- flamegraph.pl's input: "a;b;c N"
            end
        end)
    end

    it("writes an SVG that rsvg-convert draws, its widths the counts", function()
        local r, total = run("x86_64", { "title=calls & <friends>" })
        local svg = helper.tmpname() .. ".svg"
        helper.write(svg, r.report)
        local png = helper.tmpname() .. ".png"
        local status, _, err = helper.sh(("rsvg-convert %s -o %s && file %s"):format(
            helper.quote(svg), helper.quote(png), helper.quote(png)))
        os.remove(svg)
        assert.are.equal(0, status, err)
        -- parsed as XML: the title escaped, the root frame all of it, and
        -- no frame wider than the one below it
        local check = [[
import re, sys, xml.etree.ElementTree as et
root = et.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
titles = [t.text for t in root.iter(ns + "text")]
frames = []
for g in root.iter(ns + "g"):
    title = g.find(ns + "title").text
    rect = g.find(ns + "rect")
    frames.append((title, float(rect.get("x")), float(rect.get("y")), float(rect.get("width"))))
print("title", titles[0])
print("root", frames[0][0])
print("frames", len(frames))
for name, x, y, w in frames[1:]:
    below = [f for f in frames if f[2] == y + 16 and f[1] <= x + 0.01 and x + w <= f[1] + f[3] + 0.01]
    assert below, name
print("nested ok")
]]
        local py = helper.write(helper.tmpname() .. ".py", check)
        helper.write(svg, r.report)
        local pstatus, out, perr = helper.sh(("python3 %s %s"):format(helper.quote(py), helper.quote(svg)))
        os.remove(svg)
        os.remove(py)
        assert.are.equal(0, pstatus, perr)
        assert.matches("title calls & <friends>\n", out)
        assert.matches(("root all %%(%d instructions, 100%%.00%%%%%%)\n"):format(total), out)
        assert.is_true(tonumber(out:match("frames (%d+)")) > 20, out)
        assert.matches("nested ok\n", out)
    end)

    it("puts each vCPU in a tower of its own with per_vcpu=on", function()
        local r, total = run("x86_64", { "format=folded", "per_vcpu=on" })
        assert.are.equal(total, (sum_folded(r.report)))
        for line in r.report:gmatch("[^\n]+") do
            assert.matches("^vcpu %d+;", line)
        end
        assert.matches("\nvcpu 1;start_thread;worker;", "\n" .. r.report)
    end)

    it("refuses an unknown format, naming it", function()
        local r = helper.run_file("x86_64", helper.source_root .. "/examples/flamegraph.lua",
            helper.guest("loop", "x86_64"), { args = { "format=png" }, status = false })
        assert.are.equal(1, r.status)
        assert.matches("format=png", r.stderr)
    end)
end)
