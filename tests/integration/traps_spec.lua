-- scripts/traps.lua against QEMU 10.2's libtraps.so in the same run, in
-- user mode (x86_64, aarch64) and in system mode (the two-vCPU guest of
-- system_spec.lua, whose host calls come from its definition, and
-- irqs.S, which counts its own exceptions and interrupts). QEMU 10.0
-- has neither libtraps.so nor discontinuity callbacks: there the script
-- must refuse to load, saying why.
local helper = require("helper")

local SCRIPT = helper.script("traps.lua")
local C_PLUGIN = "contrib/plugins/libtraps.so"

local function have_traps()
    return helper.read(helper.c_plugin(C_PLUGIN)) ~= nil
end

local NO_TRAPS = "QEMU 10.0 has no libtraps.so and no discontinuity callbacks (QEMU 10.2 only)"

-- traps.c prints its user-mode note without a newline, so the header
-- follows it on the same line; traps.lua ends the note's line.
local NOTE = "Note: interrupts are only reported in system emulation mode."

-- The per-vCPU rows of a report: { vcpu = { interrupts, exceptions, hostcalls } }.
local function rows(text)
    local out, n = {}, 0
    for vcpu, i, e, h in text:gmatch("\n *(%d+), +(%d+), +(%d+), +(%d+)") do
        out[tonumber(vcpu)] = { tonumber(i), tonumber(e), tonumber(h) }
        n = n + 1
    end
    return out, n
end

describe("traps.lua agrees with libtraps.so", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, case in ipairs({ { "loop", { "1000" } }, { "threads", { "4", "1000" } } }) do
            it(("in user mode on %s %s"):format(arch, case[1]), function()
                if not have_traps() then
                    pending(NO_TRAPS)
                    return
                end
                local r = helper.run_file(arch, SCRIPT, helper.guest(case[1], arch),
                    { plugins = { helper.c_plugin(C_PLUGIN) }, guest_args = case[2] })
                assert.is_truthy(r.log:find(NOTE .. "VCPU, interrupts", 1, true), r.log)
                assert.are.equal(r.log:gsub(NOTE, NOTE .. "\n", 1), r.report)
                local _, n = rows(r.report)
                assert.is_true(n >= 1)
            end)
        end
    end

    it("in system mode on two vCPUs, with the guest's host calls", function()
        if not have_traps() then
            pending(NO_TRAPS)
            return
        end
        local outfile = helper.tmpname()
        local r = helper.qemu_system({ helper.c_plugin(C_PLUGIN),
            helper.luahost_plugin(SCRIPT, { "outfile=" .. outfile }) }, helper.system_guest("sys", "aarch64"))
        assert.are.equal(0, r.status, r.stderr)
        local report = helper.read(outfile) or ""
        assert.are.equal(r.log, report)
        assert.is_falsy(report:find("Note:", 1, true))
        -- sys.S: vCPU 0 makes two PSCI calls through HVC (CPU_ON,
        -- SYSTEM_OFF), vCPU 1 none, and nothing else traps
        local per_vcpu, n = rows(report)
        assert.are.equal(2, n)
        assert.are.same({ 0, 0, 2 }, per_vcpu[0])
        assert.are.same({ 0, 0, 0 }, per_vcpu[1])
    end)

    -- irqs.S: vCPU 0 takes svc exceptions and timer interrupts, which it
    -- counts itself and prints, and one host call (PSCI SYSTEM_OFF)
    it("in system mode, with the guest's own count of its exceptions and interrupts", function()
        if not have_traps() then
            pending(NO_TRAPS)
            return
        end
        local outfile = helper.tmpname()
        local r = helper.qemu_system({ helper.c_plugin(C_PLUGIN),
            helper.luahost_plugin(SCRIPT, { "outfile=" .. outfile }) }, helper.system_guest("irqs", "aarch64"))
        assert.are.equal(0, r.status, r.stderr)
        assert.is_truthy(r.stdout:find("traps done\n", 1, true), r.stdout)
        local svcs, irqs = tonumber(r.stdout:match("svcs=(%d+)\n")), tonumber(r.stdout:match("irqs=(%d+)\n"))
        assert.are.same({ 5, 3 }, { svcs, irqs }, "the guest's own counts (SVCS, TICKS)")
        local report = helper.read(outfile) or ""
        assert.are.equal(r.log, report)
        local per_vcpu = rows(report)
        assert.are.same({ irqs, svcs, 1 }, per_vcpu[0])
        assert.are.same({ 0, 0, 0 }, per_vcpu[1])
    end)

    it("refuses arguments, which traps.c ignores", function()
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT, { "bogus=1" }) },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are_not.equal(0, r.status)
        assert.matches("traps%.lua:%d+: option parsing failed: bogus=1", r.stderr)
    end)

    it("refuses to load without discontinuity callbacks, saying why (QEMU 10.0)", function()
        if have_traps() then
            pending("this QEMU has discontinuity callbacks (10.2): the refusal is for QEMU 10.0")
            return
        end
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT) }, helper.guest("loop", "x86_64"), { "10" })
        assert.are_not.equal(0, r.status)
        assert.matches("traps%.lua:%d+: traps%.lua needs QEMU 10%.2 or later %(discontinuity callbacks%)", r.stderr)
        assert.are.equal(1, select(2, r.stderr:gsub("luahost: ", "")), "one line of ours: " .. r.stderr)
    end)
end)

-- luahost.on_discontinuity(board [, kinds]): the host counts each
-- discontinuity into the board's field named after its kind, without a
-- Lua call. The oracle is libtraps.so in the same run (its per-vCPU
-- counts, summed) and irqs.S's own counts.
describe("luahost.on_discontinuity(board)", function()
    after_each(helper.cleanup)

    -- "name=value" lines of a report.
    local function values(report)
        local out = {}
        for name, value in report:gmatch("([%w_]+)=(%d+)\n") do
            out[name] = tonumber(value)
        end
        return out
    end

    -- Runs script (its text) next to libtraps.so on irqs.S; returns
    -- libtraps.so's rows, the script's values and the guest's own
    -- counts. QEMU 10.2 reports no discontinuities in user mode.
    local function run_irqs(text)
        local script = helper.write(helper.tmpname() .. ".lua", text)
        local outfile = helper.tmpname()
        local r = helper.qemu_system({ helper.c_plugin(C_PLUGIN),
            helper.luahost_plugin(script, { "outfile=" .. outfile }) }, helper.system_guest("irqs", "aarch64"))
        assert.are.equal(0, r.status, r.stderr)
        local guest = { svcs = tonumber(r.stdout:match("svcs=(%d+)\n")),
            irqs = tonumber(r.stdout:match("irqs=(%d+)\n")) }
        assert.are.same({ 5, 3 }, { guest.svcs, guest.irqs }, "the guest's own counts (SVCS, TICKS)")
        return rows(r.log), values(helper.read(outfile) or ""), guest
    end

    it("counts per kind as libtraps.so and the guest do, next to a Lua hook", function()
        if not have_traps() then
            pending(NO_TRAPS)
            return
        end
        local traps, v, guest = run_irqs([[
local all = luahost.scoreboard { "interrupt", "exception", "hostcall" }
local exceptions = luahost.scoreboard { "exception", "other" }
local calls = luahost.scoreboard()
luahost.on_discontinuity(all)
luahost.on_discontinuity(exceptions, { "exception" })
luahost.on_discontinuity(function(vcpu) calls:add(vcpu, 1) end)
luahost.on_exit(function()
    for vcpu = 0, 1 do
        luahost.printf("interrupt_%d=%d\nexception_%d=%d\nhostcall_%d=%d\n", vcpu, all.interrupt:get(vcpu),
            vcpu, all.exception:get(vcpu), vcpu, all.hostcall:get(vcpu))
        luahost.printf("only_%d=%d\nother_%d=%d\ncalls_%d=%d\n", vcpu, exceptions.exception:get(vcpu),
            vcpu, exceptions.other:get(vcpu), vcpu, calls:get(vcpu))
    end
end)
]])
        assert.are.same({ guest.irqs, guest.svcs, 1 }, traps[0])
        for vcpu = 0, 1 do
            local t = traps[vcpu]
            local function get(name) return v[name .. "_" .. vcpu] end
            assert.are.same(t, { get("interrupt"), get("exception"), get("hostcall") }, "vCPU " .. vcpu)
            assert.are.same({ t[2], 0, t[1] + t[2] + t[3] }, { get("only"), get("other"), get("calls") },
                "vCPU " .. vcpu)
        end
    end)

    -- The first exception asks for a reset. Counters made before it stop
    -- at its completion; one made while it is pending, and one made in
    -- its completion, count from then on (QEMU completes a reset with
    -- every vCPU stopped): before + after is everything libtraps.so saw.
    it("counts across luahost.reset as registered", function()
        if not have_traps() then
            pending(NO_TRAPS)
            return
        end
        local traps, v = run_irqs([[
local FIELDS = { "interrupt", "exception", "hostcall" }
local before, pending, after = luahost.scoreboard(FIELDS), luahost.scoreboard(FIELDS), luahost.scoreboard(FIELDS)
luahost.on_discontinuity(before)
local function report()
    for _, field in ipairs(FIELDS) do
        luahost.printf("before_%s=%d\npending_%s=%d\nafter_%s=%d\n", field, before[field]:sum(),
            field, pending[field]:sum(), field, after[field]:sum())
    end
end
local asked = false
luahost.on_discontinuity(function()
    if not asked then
        asked = true
        luahost.reset(function()
            luahost.on_discontinuity(after)
            luahost.on_exit(report)     -- the reset dropped every hook
        end)
        luahost.on_discontinuity(pending)
    end
end, { "exception" })
]])
        local t = { 0, 0, 0 }
        for _, row in pairs(traps) do
            for k = 1, 3 do
                t[k] = t[k] + row[k]
            end
        end
        assert.is_true(v.before_exception > 0 and v.after_exception > 0, "the reset split the run")
        for k, field in ipairs({ "interrupt", "exception", "hostcall" }) do
            assert.are.equal(v["after_" .. field], v["pending_" .. field], field)
            assert.are.equal(t[k], v["before_" .. field] + v["after_" .. field], field)
        end
    end)

    it("refuses a board it cannot count into, naming the script's line", function()
        if not have_traps() then
            pending(NO_TRAPS)
            return
        end
        local script = helper.write(helper.tmpname() .. ".lua", [[
local function try(fn)
    local ok, err = pcall(fn)
    luahost.printf("%s %s\n", tostring(ok), tostring(err))
end
try(function() luahost.on_discontinuity(luahost.scoreboard { "hits" }) end)
try(function() luahost.on_discontinuity(luahost.scoreboard { "exception" }, { "interrupt" }) end)
try(function() luahost.on_discontinuity(42) end)
try(function() luahost.on_discontinuity({ exception = true }) end)
for _ = 1, 16 do
    luahost.on_discontinuity(luahost.scoreboard { "exception" })
end
try(function() luahost.on_discontinuity(luahost.scoreboard { "exception" }) end)
]])
        local outfile = helper.tmpname()
        local r = helper.qemu("x86_64", { helper.luahost_plugin(script, { "outfile=" .. outfile }) },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are.equal(0, r.status, r.stderr)
        local lines = {}
        for line in (helper.read(outfile) or ""):gmatch("[^\n]+") do
            lines[#lines + 1] = line
        end
        local NO_KIND = "the scoreboard has no field interrupt, exception or hostcall"
        local NOT_ONE = "expects a function or a scoreboard, got "
        assert.matches("^false [^ ]*%.lua:5: luahost%.on_discontinuity: " .. NO_KIND .. "$", lines[1])
        assert.matches("^false [^ ]*%.lua:6: luahost%.on_discontinuity: the scoreboard has no field "
            .. "interrupt to count into$", lines[2])
        assert.matches("^false [^ ]*%.lua:7: luahost%.on_discontinuity " .. NOT_ONE .. "number$", lines[3])
        assert.matches("^false [^ ]*%.lua:8: luahost%.on_discontinuity " .. NOT_ONE .. "table$", lines[4])
        assert.matches("^false [^ ]*%.lua:12: too many scoreboards count discontinuities %(at most 16%)$", lines[5])

        -- uncaught, at load: one line naming the script's line, and QEMU refuses the plugin
        helper.write(script, 'luahost.on_discontinuity(luahost.scoreboard { "misses" })\n')
        r = helper.qemu("x86_64", { helper.luahost_plugin(script) }, helper.guest("loop", "x86_64"), { "10" })
        assert.are_not.equal(0, r.status)
        assert.matches("%.lua:1: luahost%.on_discontinuity: " .. NO_KIND, r.stderr)
    end)
end)
