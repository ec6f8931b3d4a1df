-- scripts/hwprofile.lua against QEMU's libhwprofile.so in the same
-- qemu-system-aarch64 run (-smp 2), on the hwdev guest, which reads and
-- writes the PL011 UART, the PL031 RTC and the GIC distributor from both
-- vCPUs. hwprofile.c orders devices of equal totals by its hash table, so
-- where totals tie the reports are compared as sets of device blocks.
local helper = require("helper")

local SCRIPT = helper.script("hwprofile.lua")
local C_PLUGIN = "contrib/plugins/libhwprofile.so"

-- QEMU 10.2 keeps TLB_MMIO among the TLB entry's slow flags, but its
-- tlb_plugin_lookup still looks for it in the comparator: every access is
-- RAM to a plugin there.
local function qemu_10_2()
    return (os.getenv("QEMU_INCLUDE") or ""):find("qemu%-sid") ~= nil
end
local NO_IO = "QEMU 10.2 reports no access as I/O (tlb_plugin_lookup looks for TLB_MMIO where "
    .. "10.2 no longer keeps it), so neither plugin sees a device there"

-- Both plugins in one run with the same arguments (a list); the C
-- plugin's log and our outfile.
local function run(args, lua_args)
    local outfile = helper.tmpname()
    local c = helper.c_plugin(C_PLUGIN)
    for _, a in ipairs(args) do
        c = c .. "," .. a
    end
    local ours = { "outfile=" .. outfile }
    for _, a in ipairs(lua_args or args) do
        ours[#ours + 1] = a
    end
    local r = helper.qemu_system({ c, helper.luahost_plugin(SCRIPT, ours) }, helper.system_guest("hwdev", "aarch64"))
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("hwdev done", r.stdout)
    return r.log, helper.read(outfile) or ""
end

-- The numbers after ", " in a report line: CPU mask and count per tracked
-- kind, after the base on a device line.
local function counts(line)
    local t = {}
    for field in line:gmatch(", (%x+)") do
        t[#t + 1] = field
    end
    return t
end

-- A report as its header lines (the column names; each match line with the
-- device line after it) and device blocks (a device line, or a "NAME @
-- 0xBASE" line and its "  off:"/"  pc:" lines), each block with its
-- total of accesses (reads and writes: the decimal counts). hwprofile.c
-- orders devices by their totals, which with match= count the matched
-- devices alone: the others tie at 0 (matches: a set of names, or nil).
local function blocks(text, matches)
    local header, list, in_match = {}, {}, false
    for line in text:gmatch("[^\n]*\n") do
        if in_match then
            header[#header] = header[#header] .. line
            in_match = false
        elseif line:find("^Device, ") then
            header[#header + 1] = line
        elseif line:find("^hwprofile: match") then
            header[#header + 1] = line
            in_match = true
        else
            local c = counts(line)
            if line:find("^  ") then      -- "  off:X, RCPUs, reads, WCPUs, writes"
                local b = list[#list]
                b.text, b.total = b.text .. line, b.total + tonumber(c[2] or 0) + tonumber(c[4] or 0)
            else                            -- "NAME, 0xBASE, RCPUs, reads, WCPUs, writes"
                list[#list + 1] = { text = line, total = tonumber(c[3] or 0) + tonumber(c[5] or 0),
                    name = line:match("^([^ ,]+)") }
            end
        end
    end
    for _, b in ipairs(list) do
        if matches and not matches[b.name] then
            b.total = 0
        end
    end
    return header, list
end

-- The header's lines as a comparable whole. A match line is printed at
-- the access, with the device's counts so far; the two vCPUs reach the
-- two plugins' locks in either order, so the lines are compared as a
-- set, and the counts (which vCPUs, how many hits before this one) by
-- the last line's number of hits: the device blocks compare the rest.
local function match_lines(header)
    local lines, last = {}, {}
    for _, entry in ipairs(header) do
        local hit, state = entry:match("^(hwprofile: match[^\n]*\n)(.*)$")
        if hit then
            lines[#lines + 1] = hit
            local name = state:match("^([^ ,]+)")
            local reads, writes = state:match("^[^,]*, [^,]*, %x+, (%d+), %x+, (%d+)")
            local n = (tonumber(reads) or 0) + (tonumber(writes) or 0)
            if not last[name] or n >= last[name].n then
                last[name] = { n = n, text = n .. " hits before the last\n" }
            end
        else
            lines[#lines + 1] = entry
        end
    end
    table.sort(lines)
    for name, l in pairs(last) do
        lines[#lines + 1] = name .. " last: " .. l.text
    end
    table.sort(lines)
    return lines
end

-- Same header lines, same blocks, and blocks in the same order of totals.
local function assert_same_report(c_text, lua_text, args)
    local matches
    for _, a in ipairs(args) do
        local name = a:match("^match=(.*)")
        if name then
            matches = matches or {}
            matches[name] = true
        end
    end
    local c_header, c_blocks = blocks(c_text, matches)
    local lua_header, lua_blocks = blocks(lua_text, matches)
    assert.are.same(match_lines(c_header), match_lines(lua_header))
    local c_set, lua_set = {}, {}
    for i, b in ipairs(c_blocks) do
        c_set[i] = b.text
        assert.are.equal(b.total, lua_blocks[i] and lua_blocks[i].total, "total of block " .. i)
    end
    for i, b in ipairs(lua_blocks) do
        lua_set[i] = b.text
    end
    table.sort(c_set)
    table.sort(lua_set)
    assert.are.same(c_set, lua_set)
end

describe("hwprofile.lua", function()
    after_each(helper.cleanup)

    for _, args in ipairs({ {}, { "track=read" }, { "pattern=on" }, { "source=on" },
            { "source=on", "track=read" }, { "match=pl031" }, { "match=pl031", "match=gic_dist" },
            { "pattern=on", "match=pl031" } }) do
        local what = #args > 0 and table.concat(args, ",") or "no arguments"
        it("prints what libhwprofile.so prints in the same run (" .. what .. ")", function()
            if qemu_10_2() then
                pending(NO_IO)
                return
            end
            local c, lua = run(args)
            assert.is_true(#helper.sorted_lines(c) >= 3, c)
            assert_same_report(c, lua, args)
        end)
    end

    it("agrees with libhwprofile.so on QEMU 10.2, where no access is I/O", function()
        if not qemu_10_2() then
            pending("QEMU 10.0 reports devices: the tests above compare them")
            return
        end
        local c, lua = run({})
        assert.are.equal("Device, Address, RCPUs, Reads,  WCPUs, Writes\n", c)
        assert.are.equal(c, lua)
    end)

    it("lists a lone device, which hwprofile.c leaves out", function()
        if qemu_10_2() then
            pending(NO_IO)
            return
        end
        -- Only the UART is written: hwprofile.c prints its header alone.
        local c_write = run({ "track=write" }, {})
        assert.are.equal("Device, Address,  WCPUs, Writes\n", c_write)
        -- The right line: the write columns of hwprofile.c's full report.
        local c, lua = run({}, { "track=write" })
        local cpus, writes = c:match("\npl011, 0x0, %x+, %d+, (%x+), (%d+)\n")
        assert.is_truthy(cpus, c)
        assert.are.equal(("Device, Address,  WCPUs, Writes\npl011, 0x0, %s, %s\n"):format(cpus, writes), lua)
    end)

    -- One line naming the argument, and QEMU refuses the plugin.
    local function refused(args, arch)
        local r
        if arch then
            r = helper.qemu(arch, { helper.luahost_plugin(SCRIPT, args) }, helper.guest("loop", arch), { "10" })
        else
            r = helper.qemu_system({ helper.luahost_plugin(SCRIPT, args) }, helper.system_guest("hwdev", "aarch64"))
        end
        assert.are_not.equal(0, r.status)
        local lines = {}
        for line in r.stderr:gmatch("[^\n]+") do
            if line:find("hwprofile%.lua") then
                lines[#lines + 1] = line
            end
        end
        assert.are.equal(1, #lines, r.stderr)
        return lines[1]
    end

    it("refuses bad arguments as hwprofile.c does, in one line", function()
        assert.matches("invalid value for track: track=both", refused({ "track=both" }))
        assert.matches("boolean argument parsing failed: pattern=maybe", refused({ "pattern=maybe" }))
        assert.matches("option parsing failed: patern=on", refused({ "patern=on" }))
        assert.matches("can only currently track either source or pattern%.",
            refused({ "pattern=on", "source=on" }))
        assert.matches("hwprofile: plugin only useful for system emulation", refused({}, "x86_64"))
    end)
end)

-- luahost.stream{ physical = "devices" }: device (MMIO) accesses alone.
-- The oracle is libhwprofile.so in the same run: its reads and writes
-- per device, which count every device access (hwdev.S makes no others).
describe('a physical = "devices" stream', function()
    after_each(helper.cleanup)

    it("records each device access libhwprofile.so counts, and no RAM access", function()
        if qemu_10_2() then
            pending(NO_IO)
            return
        end
        local script = helper.write(helper.tmpname() .. ".lua", [[
local counts, ram = {}, 0
local stream = luahost.stream {
    physical = "devices",
    on_batch = function(_, batch)
        for i = 1, batch.n do
            if batch.device[i] <= 1 then
                ram = ram + 1
            else
                local name = luahost.device_name(batch.device[i])
                local c = counts[name] or { 0, 0 }
                counts[name] = c
                local k = batch.kind[i] == luahost.STORE and 2 or 1
                c[k] = c[k] + 1
            end
        end
    end,
}
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        stream:mem(insn)
    end
end)
luahost.on_exit(function()
    luahost.printf("ram=%d\n", ram)
    for name, c in pairs(counts) do
        luahost.printf("%s %d %d\n", name, c[1], c[2])
    end
end)
]])
        local outfile = helper.tmpname()
        local r = helper.qemu_system({ helper.c_plugin(C_PLUGIN),
            helper.luahost_plugin(script, { "outfile=" .. outfile }) }, helper.system_guest("hwdev", "aarch64"))
        assert.are.equal(0, r.status, r.stderr)
        local c = {}
        for name, reads, writes in r.log:gmatch("\n([%w_]+), 0x%x+, %x+, (%d+), +%x+, (%d+)") do
            c[#c + 1] = ("%s %s %s"):format(name, reads, writes)
        end
        local report = helper.read(outfile) or ""
        assert.are.equal("0", report:match("^ram=(%d+)\n"), report)
        local ours = helper.sorted_lines((report:gsub("^ram=%d+\n", "")))
        table.sort(c)
        assert.is_true(#c >= 3, r.log)
        assert.are.same(c, ours)
    end)
end)
