-- The plugin's lifecycle and the queries about QEMU and the guest: reset,
-- uninstall, flush, vcpu_for_each, time control, the code layout of the
-- user-mode binary, and the functions of newer QEMUs (run where the QEMU
-- under test has them, checked for their clear refusal where it has not).
local helper = require("helper")

-- e_entry of a little-endian ELF64 file.
local function elf_entry(path)
    local f = assert(io.open(path, "rb"))
    local header = f:read(32)
    f:close()
    return (string.unpack("<I8", header, 25))
end

local function probe(source)
    return helper.run_lua("x86_64", source, helper.guest("loop", "x86_64"), { guest_args = { "1" } }).report
end

describe("reset and uninstall", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("reset drops every hook, flushes translations and keeps outfile (" .. arch .. ")", function()
            local r = helper.run_lua(arch, [[
local n = 0
luahost.on_flush(function() luahost.printf("flush after %d\n", n) end)
luahost.on_syscall(function(vcpu, num)
    n = n + 1
    if n == 3 then
        luahost.reset(function()
            luahost.printf("reset done after %d\n", n)
            luahost.on_exit(function() luahost.printf("new exit hook, n=%d\n", n) end)
        end)
    end
end)
luahost.on_exit(function() luahost.printf("old exit hook\n") end)
]], helper.guest("api", arch))
            assert.are.equal("flush after 3\nreset done after 3\nnew exit hook, n=3\n", r.report)
            assert.is_truthy(r.stdout:find("sum=", 1, true))
        end)

        it("uninstall runs its callback, then nothing more of the plugin (" .. arch .. ")", function()
            local r = helper.run_lua(arch, [[
local n = 0
luahost.on_syscall(function(vcpu, num)
    n = n + 1
    if n == 3 then
        luahost.uninstall(function() luahost.printf("uninstalled after %d\n", n) end)
        local ok, err = pcall(luahost.uninstall)
        luahost.printf("again: %s\n", err)
    end
end)
luahost.on_exit(function() luahost.printf("exit hook\n") end)
]], helper.guest("api", arch))
            assert.is_truthy(r.report:find(
                "^again: [^\n]*%.lua:%d+: luahost%.uninstall: the plugin is already being uninstalled\n"), r.report)
            assert.is_truthy(r.report:find("\nuninstalled after 3\n$"), r.report)
            assert.is_truthy(r.stdout:find("sum=", 1, true))
        end)
    end

    it("cannot be asked for while the script loads", function()
        for _, call in ipairs({ "reset()", "uninstall()", "exit(0)" }) do
            local fn = call:match("%a+")
            local script = helper.lua_file("local x = 1\nluahost." .. call .. "\n")
            local r = helper.qemu("x86_64", { helper.luahost_plugin(script) }, helper.guest("loop", "x86_64"), { "1" })
            assert.are_not.equal(0, r.status)
            assert.is_truthy(r.stderr:find("luahost: [^\n]*%.lua:2: luahost%." .. fn
                .. " cannot be called while the script loads"), r.stderr)
        end
    end)
end)

describe("exit", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("ends the process with the status, after every exit hook (" .. arch .. ")", function()
            local r = helper.run_lua(arch, [[
local n = 0
luahost.on_syscall(function(vcpu, num)
    n = n + 1
    if n == 2 then
        local ok, err = pcall(luahost.exit, 256)
        luahost.printf("256: %s\n", err)
        luahost.exit(42)
        luahost.printf("after exit\n")
    end
end)
luahost.on_exit(function() luahost.printf("exit hook after %d syscalls\n", n) end)
]], helper.guest("api", arch), { status = 42 })
            assert.matches("^256: [^\n]*exit status must be 0 to 255%)\nexit hook after 2 syscalls\n$", r.report)
            assert.are.equal("", r.stdout, "the guest stopped at its second syscall, before it printed")
        end)
    end
end)

describe("vcpu_for_each", function()
    after_each(helper.cleanup)

    it("visits the live vCPUs and passes errors on with their line", function()
        local report = probe([[
luahost.on_exit(function()
    local seen = {}
    luahost.vcpu_for_each(function(vcpu) seen[#seen + 1] = vcpu end)
    luahost.printf("seen %s of %d\n", table.concat(seen, ","), luahost.num_vcpus())
    local ok, err = pcall(luahost.vcpu_for_each, function(vcpu) error("boom") end)
    luahost.printf("error: %s\n", err)
    ok, err = pcall(luahost.vcpu_for_each, 42)
    luahost.printf("type: %s\n", err)
end)
]])
        assert.is_truthy(report:find("seen 0 of 1\n", 1, true), report)
        assert.is_truthy(report:find("error: [^\n]*%.lua:5: boom\n"), report)
        assert.is_truthy(report:find("type: [^\n]*luahost%.vcpu_for_each expects a function, got number\n"), report)
    end)
end)

describe("Lua modules from Debian packages", function()
    after_each(helper.cleanup)

    it("load, C modules included (lua-cjson)", function()
        assert.are.equal('{"ok":true}\n', probe([[
local cjson = require("cjson")
luahost.printf("%s\n", cjson.encode({ ok = true }))
]]))
    end)
end)

describe("queries", function()
    after_each(helper.cleanup)

    it("refuse time control in user mode with a reason", function()
        assert.are.equal("nil time control needs system emulation (user mode runs on wall-clock time)\n",
            probe([[luahost.printf("%s %s\n", luahost.request_time_control())]]))
    end)

    for _, arch in ipairs(helper.arches) do
        it("give the binary's path and code layout (" .. arch .. ")", function()
            local guest = helper.guest("api", arch)
            local r = helper.run_lua(arch, [[
luahost.printf("has %s\n", tostring(luahost.has("code_layout")))
local ok, err = pcall(luahost.entry_code)
luahost.printf("main chunk: %s\n", err)
luahost.on_vcpu_init(function()
    local ok, err = pcall(function()
        luahost.printf("path %s\nentry %d\nstart %d\nend %d\n", luahost.path_to_binary(),
            luahost.entry_code(), luahost.start_code(), luahost.end_code())
    end)
    if not ok then luahost.printf("layout: %s\n", err) end
end)
]], guest)
            assert.is_truthy(r.report:find("main chunk: [^\n]*luahost%.entry_code needs a vCPU"), r.report)
            if r.report:find("has true\n", 1, true) then
                assert.are.equal(guest, r.report:match("path ([^\n]*)\n"))
                local entry = tonumber(r.report:match("entry (%d+)"))
                assert.are.equal(elf_entry(guest), entry)
                local start, stop = tonumber(r.report:match("start (%d+)")), tonumber(r.report:match("end (%d+)"))
                assert.is_true(start <= entry and entry < stop)
            else
                -- QEMU 10.0 never compiles these into qemu-<arch> (docs/qemu-api.md)
                assert.is_truthy(r.report:find("has false\n", 1, true), r.report)
                assert.is_truthy(r.report:find(
                    "layout: [^\n]*luahost%.path_to_binary: this QEMU binary does not export it"), r.report)
            end
        end)
    end

    it("say which newer functions this build has", function()
        local report = probe([[
local names = { "write_register", "write_memory", "read_memory_hwaddr", "write_memory_hwaddr",
                "translate_vaddr", "discontinuity", "no_such_feature" }
for _, name in ipairs(names) do
    luahost.printf("%s %s\n", name, tostring(luahost.has(name)))
end
luahost.printf("api %d\n", luahost.info.plugin_version)
]])
        local api5 = tonumber(report:match("api (%d+)")) >= 5
        for _, name in ipairs({ "write_register", "write_memory", "read_memory_hwaddr",
                                "write_memory_hwaddr", "translate_vaddr" }) do
            assert.are.equal(name .. " " .. tostring(api5), report:match(name .. " %a+"))
        end
        assert.is_truthy(report:find("no_such_feature false\n", 1, true))
    end)
end)

describe("functions of newer QEMUs", function()
    after_each(helper.cleanup)

    local has = probe([[luahost.printf("%s %s", tostring(luahost.has("write_memory")),
        tostring(luahost.has("discontinuity")))]])
    local api5, discon = has:match("(%a+) (%a+)")

    for _, arch in ipairs(helper.arches) do
        it("write guest memory and registers, or refuse clearly (" .. arch .. ")", function()
            local guest = helper.guest("api", arch)
            local probe_at = helper.printed_address(helper.qemu(arch, {}, guest).stdout, "reg_probe")
            local r = helper.run_lua(arch, [[
local opt = luahost.args { probe = 0 }
local WRITE = { x86_64 = 1, aarch64 = 64, riscv64 = 64 }
local EXACT = { x86_64 = "rdx", aarch64 = "x2", riscv64 = "a2" }
local regs, wrote
luahost.on_vcpu_init(function() regs = luahost.registers() end)
local function reg(name)
    for _, r in ipairs(regs) do if r.name == name then return r end end
end
luahost.on_syscall(function(vcpu, num, fd, buf, len)
    if num == WRITE[luahost.info.target_name] and fd == 1 and not wrote then
        wrote = true
        local ok, err = pcall(luahost.write_memory, buf, "LUAHOST")
        luahost.printf("write_memory: %s %s\n", tostring(ok), tostring(err))
        local ok, value, msg = pcall(luahost.translate_vaddr, buf)
        luahost.printf("translate: %s %s %s\n", tostring(ok), tostring(value), tostring(msg))
        ok, value, msg = pcall(luahost.read_memory_hwaddr, 0, 8)
        luahost.printf("hwaddr read: %s %s %s\n", tostring(ok), tostring(value), tostring(msg))
    end
end)
luahost.on_tb_translate(function(tb)
    for i, insn in tb:insns() do
        if insn:vaddr() == opt.probe then
            insn:on_exec(function()
                local ok, err = pcall(reg(EXACT[luahost.info.target_name]).write,
                    reg(EXACT[luahost.info.target_name]), 0x1234)
                luahost.printf("write_register: %s %s\n", tostring(ok), tostring(err))
            end, nil, "rw")
            insn:on_exec(function()
                local ok, err = pcall(reg(EXACT[luahost.info.target_name]).write,
                    reg(EXACT[luahost.info.target_name]), 1)
                luahost.printf("read-only: %s\n", tostring(err))
            end, nil, "r")
            tb:insn(i + 1):on_exec(function()
                luahost.printf("after: %x\n", reg(EXACT[luahost.info.target_name]):read())
            end, nil, "r")
        end
    end
end)
]], guest, { args = { "probe=" .. probe_at } })
            if api5 == "true" then
                assert.is_truthy(r.stdout:find("LUAHOST read_memory probe", 1, true), r.stdout)
                assert.is_truthy(r.report:find("write_memory: true true\n", 1, true), r.report)
                assert.is_truthy(r.report:find("translate: true nil no translation (unmapped, or user mode)\n",
                    1, true), r.report)
                assert.is_truthy(r.report:find("hwaddr read: true nil error (user mode has no physical memory)\n",
                    1, true), r.report)
                assert.is_truthy(r.report:find("write_register: true true\n", 1, true), r.report)  -- returns true
                assert.is_truthy(r.report:find("after: 1234\n", 1, true), r.report)
                assert.is_truthy(r.report:find('read%-only: [^\n]*cannot write registers in insn exec callback: '
                    .. 'it was registered with regs="r", not regs="rw"'), r.report)
            else
                assert.is_truthy(r.report:find(
                    "write_memory: false [^\n]*luahost%.write_memory needs QEMU 10%.1 or later"), r.report)
                assert.is_truthy(r.report:find("write_register: false [^\n]*register:write needs QEMU 10%.1 or later"),
                    r.report)
                assert.is_truthy(r.report:find("translate: false [^\n]*luahost%.translate_vaddr needs QEMU 10%.1"))
                assert.is_truthy(r.report:find("hwaddr read: false [^\n]*luahost%.read_memory_hwaddr needs QEMU 10%.1"))
                assert.is_truthy(r.report:find("after: 20000000000001\n", 1, true), r.report)
            end
        end)
    end

    -- QEMU reports discontinuities from system emulation only (the
    -- PSCI host calls of system_spec.lua); here: registration
    it("take discontinuity hooks, or refuse clearly", function()
        local report = probe([[
local ok, err = pcall(luahost.on_discontinuity, function() end, { "exception", "interrupt" })
luahost.printf("register: %s %s\n", tostring(ok), tostring(err))
ok, err = pcall(luahost.on_discontinuity, function() end, { "trap" })
luahost.printf("bad kind: %s\n", tostring(err))
]])
        if discon == "true" then
            assert.is_truthy(report:find("register: true nil\n", 1, true), report)
            assert.is_truthy(report:find(
                "bad kind: [^\n]*unknown kind trap %(expected interrupt, exception or hostcall%)"), report)
        else
            assert.is_truthy(report:find("register: false [^\n]*luahost%.on_discontinuity needs QEMU 10%.2 or later"),
                report)
        end
    end)
end)
