-- stoptrigger.lua against QEMU's libstoptrigger.so. The first plugin to
-- trigger ends the process, so the two cannot share a run: each runs the
-- same deterministic single-threaded guest alone, and the message in the
-- plugin log, the exit status and how far the guest got must be the same.
local helper = require("helper")

local C_PLUGIN = "contrib/plugins/libstoptrigger.so"

-- One run with plugin (a -plugin argument) and its arguments.
local function run(arch, plugin, args, guest_args)
    local spec = plugin
    for _, a in ipairs(args) do
        spec = spec .. "," .. a
    end
    return helper.qemu(arch, { spec }, helper.guest("loop", arch), guest_args or { "3000" })
end

local function run_both(arch, args, guest_args)
    local c = run(arch, helper.c_plugin(C_PLUGIN), args, guest_args)
    local lua = run(arch, helper.luahost_plugin(helper.script("stoptrigger.lua")), args, guest_args)
    return c, lua
end

local function assert_same_stop(c, lua)
    assert.are.equal(c.status, lua.status, "exit status\n" .. lua.stderr)
    assert.are.equal(c.log, lua.log, "message")
    assert.are.equal(c.stdout, lua.stdout, "the guest's output up to the stop")
end

local function hex(n)
    return ("0x%x"):format(n)
end

describe("stoptrigger.lua agrees with libstoptrigger.so", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        local guest = helper.guest("loop", arch)

        it(("icount=N stops after N instructions (%s)"):format(arch), function()
            for _, n in ipairs({ "1", "1000", "0x2710", "012345" }) do
                local c, lua = run_both(arch, { "icount=" .. n })
                assert.matches("^icount reached at 0x%x+, exiting\n$", c.log)
                assert_same_stop(c, lua)
            end
        end)

        it(("icount=N:CODE exits with CODE (%s)"):format(arch), function()
            local c, lua = run_both(arch, { "icount=50000:7" })
            assert.are.equal(7, c.status)
            assert_same_stop(c, lua)
        end)

        it(("icount beyond the program's end lets it finish (%s)"):format(arch), function()
            local c, lua = run_both(arch, { "icount=100000000:3" }, { "10" })
            assert.are.equal(0, c.status)
            assert.are.equal("", c.log)
            assert_same_stop(c, lua)
            assert.matches("checksum=", lua.stdout)
        end)

        it(("several addr=A:CODE: the first address reached wins (%s)"):format(arch), function()
            local mix, head = helper.nm(guest, "mix"), helper.nm(guest, "hot_loop_head")
            -- main calls mix before it reaches the counted loop
            local c, lua = run_both(arch, { "addr=" .. hex(head) .. ":4", "addr=" .. hex(mix) .. ":9" })
            assert.are.equal(9, c.status)
            assert.are.equal(hex(mix) .. " reached, exiting\n", c.log)
            assert_same_stop(c, lua)
        end)

        it(("addr=SYMBOL stops where addr= at nm's address of it does (%s)"):format(arch), function()
            local mix = helper.nm(guest, "mix")
            local c = run(arch, helper.c_plugin(C_PLUGIN), { "addr=" .. hex(mix) .. ":9" })
            for _, name in ipairs({ "mix", "mix+0", "mix+0x0" }) do
                local lua = run(arch, helper.luahost_plugin(helper.script("stoptrigger.lua")),
                    { "addr=" .. name .. ":9" })
                assert.are.equal(9, c.status)
                assert_same_stop(c, lua)
            end
        end)

        it(("addr= in decimal and with no code; icount and addr together (%s)"):format(arch), function()
            local head = helper.nm(guest, "hot_loop_head")
            local c, lua = run_both(arch, { "addr=" .. ("%d"):format(head) })
            assert.are.equal(0, c.status)
            assert.are.equal(hex(head) .. " reached, exiting\n", c.log)
            assert_same_stop(c, lua)
            -- whichever comes first: a small icount before the address
            c, lua = run_both(arch, { "icount=500:5", "addr=" .. hex(head) .. ":6" })
            assert.are.equal(5, c.status)
            assert_same_stop(c, lua)
            c, lua = run_both(arch, { "icount=100000000:5", "addr=" .. hex(head) .. ":6" })
            assert.are.equal(6, c.status)
            assert_same_stop(c, lua)
        end)

        it(("an address never executed does not stop the guest (%s)"):format(arch), function()
            local c, lua = run_both(arch, { "addr=0x10:3" }, { "10" })
            assert.are.equal(0, c.status)
            assert_same_stop(c, lua)
        end)
    end

    it("runs the script's exit hooks before the process ends, as C exit() does", function()
        local script = helper.lua_file([[
            local stoptrigger = assert(loadfile(os.getenv("LUAHOST_SOURCE_ROOT") .. "/scripts/stoptrigger.lua"))
            stoptrigger()
            luahost.on_exit(function() luahost.outs("exit hook ran\n") end)
        ]])
        local r = helper.qemu("x86_64", { helper.luahost_plugin(script, { "icount=1000:2" }) },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(2, r.status, r.stderr)
        assert.matches("^icount reached at 0x%x+, exiting\nexit hook ran\n$", r.log)
    end)

    it("rejects what libstoptrigger.so rejects, with one line and a non-zero exit", function()
        for _, bad in ipairs({ {}, { "icount=0" }, { "icount=-5" }, { "icount=abc" }, { "bogus=1" } }) do
            local c, lua = run_both("x86_64", bad, { "10" })
            assert.are_not.equal(0, c.status, "C accepted " .. table.concat(bad, ","))
            assert.are_not.equal(0, lua.status, "accepted " .. table.concat(bad, ","))
            assert.matches("^luahost: [^\n]*stoptrigger.lua:%d+: [^\n]+\nqemu%-x86_64: [^\n]*\n$", lua.stderr)
        end
    end)

    it("rejects what libstoptrigger.so would read as 0, or cut to 8 bits", function()
        for _, bad in ipairs({ "addr=", "addr=12ab", "addr=main+zz", "addr=0x10:300",
                               "addr=0x10:0xffffffffffffffff", "icount=10:x",
                               "icount=10e3", "icount=0x10000000000000000" }) do
            local r = run("x86_64", helper.luahost_plugin(helper.script("stoptrigger.lua")), { bad }, { "10" })
            assert.are_not.equal(0, r.status, "accepted " .. bad)
            assert.matches("^luahost: [^\n]*stoptrigger.lua:%d+: [^\n]*parsing failed[^\n]*\nqemu%-x86_64: [^\n]*\n$",
                r.stderr)
        end
    end)
end)
