-- scripts/patch.lua against QEMU's tests/tcg/plugins/libpatch.so (QEMU
-- 10.2) on the patchme guest, whose loop adds 1 to a register 100 times
-- with "add x9, x9, #1" (29 05 00 91) and prints the sum. Replaced by a
-- NOP (1f 20 03 d5), the sum is what the guest prints with libpatch.so
-- alone; both plugins in one run print the same messages.
local helper = require("helper")

local SCRIPT = helper.script("patch.lua")
local C_PLUGIN = "tests/tcg/plugins/libpatch.so"
local NOP_ADD = { "target=29050091", "patch=1f2003d5" }

local NOT_10_0 = "patch.c and the API it needs (writing guest memory) are QEMU 10.1+; this QEMU is 10.0"

local function qemu_10_2()
    return (os.getenv("QEMU_INCLUDE") or ""):find("qemu%-sid") ~= nil
end

local function with(list, more)
    local all = {}
    for _, a in ipairs(list) do
        all[#all + 1] = a
    end
    for _, a in ipairs(more or {}) do
        all[#all + 1] = a
    end
    return all
end

local function c_plugin(args)
    return helper.c_plugin(C_PLUGIN) .. "," .. table.concat(args, ",")
end

local function run(plugins)
    local r = helper.qemu_system(plugins, helper.system_guest("patchme", "aarch64"))
    assert.are.equal(0, r.status, r.stderr)
    return r
end

describe("patch.lua", function()
    after_each(helper.cleanup)

    for _, use_hwaddr in ipairs({ "use_hwaddr=true", "use_hwaddr=false" }) do
        it("patches the guest as libpatch.so does (" .. use_hwaddr .. ")", function()
            if not qemu_10_2() then
                pending(NOT_10_0)
                return
            end
            local args = with(NOP_ADD, { use_hwaddr })
            local plain = run({})
            assert.are.equal("Value: 100\n", plain.stdout)
            local c = run({ c_plugin(args) })
            local value = c.stdout:match("^Value: (%d+)\n$")
            assert.is_truthy(value, c.stdout)
            assert.are_not.equal("100", value)
            local lua = run({ helper.luahost_plugin(SCRIPT, args) })
            assert.are.equal(c.stdout, lua.stdout)
            assert.are.equal(c.log, lua.log)
            assert.matches("^patching: @0x%x+", lua.log)
            assert.matches("Success!\n$", lua.log)

            -- and both in one run print the same messages
            local outfile = helper.tmpname()
            local both = run({ c_plugin(args), helper.luahost_plugin(SCRIPT, with({ "outfile=" .. outfile }, args)) })
            assert.are.equal(c.stdout, both.stdout)
            assert.are.equal(both.log, helper.read(outfile))
        end)
    end

    it("leaves a guest alone when nothing matches", function()
        if not qemu_10_2() then
            pending(NOT_10_0)
            return
        end
        local args = { "target=29050092", "patch=1f2003d5" }
        local outfile = helper.tmpname()
        local r = run({ c_plugin(args), helper.luahost_plugin(SCRIPT, with({ "outfile=" .. outfile }, args)) })
        assert.are.equal("Value: 100\n", r.stdout)
        assert.are.equal("", r.log)
        assert.are.equal("", helper.read(outfile))
    end)

    it("cannot translate in user mode, and says so per instruction as patch.c", function()
        if not qemu_10_2() then
            pending(NOT_10_0)
            return
        end
        local args = { "target=90", "patch=90" }
        local outfile = helper.tmpname()
        local ours = helper.luahost_plugin(SCRIPT, with({ "outfile=" .. outfile }, args))
        local r = helper.qemu("x86_64", { c_plugin(args), ours }, helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("^Failed to translate vaddr\n", r.log)
        assert.are.equal(r.log, helper.read(outfile))
    end)

    -- One line naming the argument, and QEMU refuses the plugin.
    local function refused(args)
        local r = helper.qemu_system({ helper.luahost_plugin(SCRIPT, args) }, helper.system_guest("patchme", "aarch64"))
        assert.are_not.equal(0, r.status)
        local lines = {}
        for line in r.stderr:gmatch("[^\n]+") do
            if line:find("patch%.lua") then
                lines[#lines + 1] = line
            end
        end
        assert.are.equal(1, #lines, r.stderr)
        return lines[1]
    end

    it("refuses to load on QEMU 10.0, saying why, in one line", function()
        if qemu_10_2() then
            pending("this QEMU has the API: the tests above run")
            return
        end
        assert.matches("patch%.lua needs QEMU 10%.1 or later %(writes to guest memory%)", refused(NOP_ADD))
    end)

    it("refuses bad arguments as patch.c does, in one line", function()
        if not qemu_10_2() then
            pending(NOT_10_0)
            return
        end
        assert.matches("target argument is required", refused({ "patch=90" }))
        assert.matches("patch argument is required", refused({ "target=90" }))
        assert.matches("Failed to parse target bytes%.", refused({ "target=909", "patch=909" }))
        assert.matches("Failed to parse patch bytes%.", refused({ "target=90", "patch=zz" }))
        assert.matches("Target and patch data must be the same length", refused({ "target=90", "patch=9090" }))
        assert.matches("Failed to parse boolean argument use_hwaddr",
            refused(with(NOP_ADD, { "use_hwaddr=maybe" })))
        assert.matches("Unknown argument: bogus", refused(with(NOP_ADD, { "bogus=1" })))
        assert.matches("Usage: <lib>,target=<bytes>", refused(with(NOP_ADD, { "patch=90", "patch=90", "patch=90" })))
    end)
end)
