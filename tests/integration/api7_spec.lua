-- Plugin API 6 and 7 (QEMU 11.0, 11.1): what they add, on Debian's QEMU
-- 11.1 binaries (flavour lua5.4-qemu11.1-system, built in tools/sid-root
-- against our own declarations, host/api7/); on an older QEMU, the
-- refusals. System mode on the bare-metal guest tests/guests/system/sys.S,
-- whose loop head block runs 1000 times on vCPU 0 and 2000 times on vCPU 1
-- (its definition; system_spec.lua counts them).
local helper = require("helper")

local API = tonumber(os.getenv("LUAHOST_QEMU_API"))
local GUEST_OUTPUT = "10\nsys done\n"
local ITERATIONS = { 1000, 2000 }

local function guest()
    return helper.system_guest("sys", "aarch64")
end

local function need_api(n)
    if API < n then
        pending(("needs plugin API %d (QEMU %s); this build is API %d")
            :format(n, n == 6 and "11.0" or "11.1", API))
    end
end

-- Runs script on the sys guest; its report (outfile=) is r.report.
local function run(script, args)
    local outfile = helper.tmpname()
    local all = { "outfile=" .. outfile }
    for _, a in ipairs(args or {}) do
        all[#all + 1] = a
    end
    local r = helper.qemu_system({ helper.luahost_plugin(helper.lua_file(script), all) }, guest())
    r.report = helper.read(outfile) or ""
    return r
end

describe("plugin API 7", function()
    after_each(helper.cleanup)

    it("loads in a QEMU that accepts only API 7, and says so", function()
        need_api(7)
        local r = run([[
luahost.on_exit(function()
    luahost.printf("api %d qemu %d..%d\n", luahost.info.plugin_version,
                   luahost.info.version_min, luahost.info.version_cur)
end)
]])
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal(GUEST_OUTPUT, r.stdout)
        -- QEMU 11.1 refuses plugins built for API 6 or older: min is 7
        assert.matches("api 7 qemu 7..7\n", r.report, 1, true)
    end)
end)

describe("read-only registers", function()
    after_each(helper.cleanup)

    it("are flagged by QEMU, and writing one is refused with a message", function()
        need_api(6)
        local r = run([[
luahost.on_vcpu_init(function(vcpu)
    if vcpu ~= 0 then
        return
    end
    local by_name, readonly = {}, 0
    for _, reg in ipairs(luahost.registers()) do
        by_name[reg.name] = reg
        assert(type(reg.readonly) == "boolean", reg.name)
        readonly = readonly + (reg.readonly and 1 or 0)
    end
    luahost.printf("has %s pc %s x0 %s some %s\n", tostring(luahost.has("readonly_registers")),
                   tostring(by_name.pc.readonly), tostring(by_name.x0.readonly), tostring(readonly > 0))
    local x0 = by_name.x0:read()
    luahost.printf("x0 write %s\n", tostring(by_name.x0:write(x0)))
    local ok, err = pcall(by_name.pc.write, by_name.pc, 0)
    luahost.printf("pc write %s %s\n", tostring(ok), err)
end)
]])
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal(GUEST_OUTPUT, r.stdout)
        -- QEMU's documentation: the PC is read-only (set_pc sets it);
        -- x0 is a general register, written back unchanged
        assert.matches("has true pc true x0 false some true\n", r.report, 1, true)
        assert.matches("x0 write true\n", r.report, 1, true)
        assert.matches("pc write false [^\n]*register:write: pc is read%-only %(QEMU says so; "
                       .. "luahost.set_pc sets the PC%)\n", r.report)
    end)
end)

describe("luahost.set_pc", function()
    after_each(helper.cleanup)

    -- Each redirect sends the vCPU back to the start of the loop head block
    -- before it runs: the block's callback runs again, the guest does not
    -- notice. A set_pc that left through lua_pcall would leave the Lua
    -- thread's C call count (and the host lock) behind: the nested pcalls
    -- after thousands of redirects would fail, or the next callback hang.
    local SCRIPT = [[
local opt = luahost.args { head = 0, redirects = 0 }
local calls, redirected, nested = { 0, 0 }, { 0, 0 }, {}
local function nest(n)
    if n == 0 then
        return true
    end
    local ok, v = pcall(nest, n - 1)
    return ok and v
end
luahost.on_tb_translate(function(tb)
    if tb:vaddr() ~= opt.head then
        return
    end
    tb:on_exec(function(vcpu)
        local i = vcpu + 1
        calls[i] = calls[i] + 1
        if redirected[i] < opt.redirects then
            redirected[i] = redirected[i] + 1
            luahost.set_pc(opt.head)
            luahost.set_pc(opt.head)        -- again: the last one wins
        elseif nested[i] == nil then
            nested[i] = nest(150)
        end
    end, nil, "pc")
end)
luahost.on_exit(function()
    luahost.printf("calls %d %d redirected %d %d nested %s %s\n", calls[1], calls[2],
                   redirected[1], redirected[2], tostring(nested[1]), tostring(nested[2]))
end)
]]

    it("redirects the vCPU thousands of times, after the Lua call returns", function()
        need_api(6)
        local redirects = 2500
        local head = helper.nm(guest(), "sys_loop_head")
        local r = run(SCRIPT, { ("head=0x%x"):format(head), "redirects=" .. redirects })
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal(GUEST_OUTPUT, r.stdout)
        assert.matches(("calls %d %d redirected %d %d nested true true\n"):format(
            ITERATIONS[1] + redirects, ITERATIONS[2] + redirects, redirects, redirects), r.report, 1, true)
    end)

    it("is refused outside a regs=\"pc\" exec callback, naming it", function()
        need_api(6)
        local r = run([[
luahost.on_vcpu_init(function(vcpu)
    local ok, err = pcall(luahost.set_pc, 0)
    if vcpu == 0 then
        luahost.printf("init %s %s\n", tostring(ok), err)
    end
end)
]])
        assert.are.equal(0, r.status, r.stderr)
        assert.matches('init false [^\n]*luahost%.set_pc in vcpu init hook: only an exec callback '
                       .. 'registered with regs="pc" may set the PC\n', r.report)
    end)
end)

describe("on a QEMU older than 11.0", function()
    after_each(helper.cleanup)

    it("has() says no, and set_pc, regs=\"pc\" and readonly refuse or stay unset", function()
        if API >= 6 then
            pending("this QEMU has plugin API " .. API .. ": the tests above run instead")
        end
        local r = run([[
luahost.on_vcpu_init(function(vcpu)
    if vcpu ~= 0 then
        return
    end
    local pc
    for _, reg in ipairs(luahost.registers()) do
        if reg.name == "pc" then
            pc = reg
        end
    end
    luahost.printf("has %s %s readonly %s\n", tostring(luahost.has("set_pc")),
                   tostring(luahost.has("readonly_registers")), tostring(pc.readonly))
    luahost.printf("set_pc %s\n", select(2, pcall(luahost.set_pc, 0)))
    luahost.printf("filter %s %s\n", tostring(luahost.has("syscall_filter")),
                   select(2, pcall(luahost.on_syscall_filter, function() end)))
end)
local reported = false
luahost.on_tb_translate(function(tb)
    local ok, err = pcall(tb.on_exec, tb, function() end, nil, "pc")
    if not ok and not reported then
        reported = true
        luahost.printf("regs %s\n", err)
    end
end)
]])
        assert.are.equal(0, r.status, r.stderr)
        assert.matches("has false false readonly nil\n", r.report, 1, true)
        assert.matches(("set_pc [^\n]*luahost.set_pc needs QEMU 11.0 %%(plugin API 6%%); "
                        .. "this luahost was built for API %d\n"):format(API), r.report)
        assert.matches(('regs [^\n]*regs="pc" %%(luahost.set_pc%%) needs QEMU 11.0 %%(plugin API 6%%); '
                        .. "this luahost was built for API %d"):format(API), r.report)
        assert.matches(("filter false [^\n]*luahost.on_syscall_filter needs QEMU 11.0 %%(plugin API 6%%); "
                        .. "this luahost was built for API %d\n"):format(API), r.report)
    end)
end)

describe("luahost.on_syscall_filter", function()
    after_each(helper.cleanup)

    -- The loop guest's only output is its write(2)s: filtered with their
    -- length as result, the guest sees them succeed and nothing is printed.
    it("skips a syscall and gives the guest its result (user mode)", function()
        need_api(6)
        local f = io.open(helper.qemu_build() .. "/qemu-x86_64", "rb")
        if not f then
            pending("no plugin-capable qemu-x86_64 for this QEMU (Debian's 11.1 qemu-user is static)")
        end
        f:close()
        local count = [[
local writes = 0
luahost.on_syscall(function(_, num)
    if num == 1 then writes = writes + 1 end
end)
luahost.on_exit(function() luahost.printf("writes %d\n", writes) end)
]]
        local filter = [[
local skipped = 0
luahost.on_syscall_filter(function(_, num, _, _, len)
    if num == 1 then
        skipped = skipped + 1
        return len
    end
end)
luahost.on_exit(function() luahost.printf("skipped %d\n", skipped) end)
]]
        local loop = helper.guest("loop", "x86_64")
        local plain = helper.run_script("x86_64", helper.lua_file(count), {}, loop)
        assert.are.equal(0, plain.status, plain.stderr)
        assert.are_not.equal("", plain.stdout)
        local writes = tonumber(plain.report:match("writes (%d+)\n"))
        assert.is_true(writes > 0, plain.report)
        local r = helper.run_script("x86_64", helper.lua_file(filter), {}, loop)
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal("", r.stdout)
        assert.matches(("skipped %d\n"):format(writes), r.report, 1, true)
    end)
end)
