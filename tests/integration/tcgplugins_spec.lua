-- The ports of QEMU's tests/tcg/plugins (scripts/bb.lua, empty.lua,
-- insn.lua, syscall.lua, mem.lua, inline.lua, reset.lua) against the C
-- plugins loaded into the same QEMU run, with the same arguments: the C
-- plugin's report is in QEMU's log, the port's in its outfile.
local helper = require("helper")

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
local function same_run(arch, name, args, guest, guest_args)
    return helper.run_file(arch, helper.script(name .. ".lua"), helper.guest(guest, arch),
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
