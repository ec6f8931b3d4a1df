-- A real Linux kernel in system mode: Debian 12's own arm64 kernel
-- (tools/debian-kernel: its vmlinuz and the real System.map) booted under
-- qemu-system-aarch64 with nokaslr, -smp 2, and an initramfs holding one
-- program, tests/guests/kernel/kinit.c, which makes a known number of
-- syscalls, prints them, and powers the machine off.
local helper = require("helper")

local KERNEL = os.getenv("LUAHOST_KERNEL_DIR")
    or (os.getenv("HOME") or "") .. "/.cache/luahost/debian-kernel/arm64"
local SYSTEM_MAP = KERNEL .. "/System.map"

local function exists(path)
    local f = io.open(path, "rb")
    if f then
        f:close()
    end
    return f ~= nil
end

local function have_kernel()
    return exists(KERNEL .. "/vmlinuz") and exists(SYSTEM_MAP)
end

-- Boots the kernel with the given -plugin arguments: what qemu_system
-- returns. The console is the first serial port, on stdout.
local function boot(plugins)
    if not have_kernel() then
        pending("no Debian kernel in " .. KERNEL .. ": tools/debian-kernel fetches it (tools/setup runs it)")
    end
    return helper.qemu_system(plugins, KERNEL .. "/vmlinuz", {
        "-m", "512M", "-no-reboot",
        "-initrd", helper.system_guest("initramfs", "aarch64"),
        "-append", "console=ttyAMA0 nokaslr rdinit=/init quiet panic=-1",
    })
end

local function luahost(script, args)
    local outfile = helper.tmpname()
    local all = { "outfile=" .. outfile, "symbols=" .. SYSTEM_MAP }
    for _, a in ipairs(args or {}) do
        all[#all + 1] = a
    end
    return helper.luahost_plugin(script, all), outfile
end

-- System.map's names of code (text symbols, t or T), as a set.
local function code_symbols()
    local names = {}
    for kind, name in assert(helper.read(SYSTEM_MAP)):gmatch("%x+ ([tT]) ([^\n]+)") do
        names[name] = kind
    end
    return names
end

local function clean_shutdown(r)
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("reboot: Power down", r.stdout, 1, true)
end

describe("a Debian kernel booted under qemu-system-aarch64 -smp 2", function()
    after_each(helper.cleanup)

    it("counts the syscalls its init makes, from the kernel's side, and powers off cleanly", function()
        local plugin, outfile = luahost(helper.source_root .. "/examples/ksyscalls.lua", { "limit=100" })
        local r = boot({ plugin })
        clean_shutdown(r)
        local report = helper.read(outfile) or ""
        local made = {}
        for name, n in r.stdout:match("kinit: ([^\n]+)"):gmatch("(%a+) (%d+)") do
            made[name] = tonumber(n)
        end
        assert.is_truthy(made.getpid, r.stdout)
        local counted = {}
        for name, n in report:gmatch("@syscalls%[([%w_]+)%]: (%d+)\n") do
            counted[name] = tonumber(n)
        end
        -- uname(2) is the kernel's newuname on arm64 (include/uapi/asm-generic/unistd.h)
        assert.are.same({ made.getpid, made.getppid, made.uname, 1 },
            { counted.getpid, counted.getppid, counted.newuname, counted.reboot }, report)
        -- every name is one of the kernel's own syscall functions
        local code = code_symbols()
        for name in pairs(counted) do
            assert.is_truthy(code["__arm64_sys_" .. name], name)
        end
    end)

    it("names the kernel's hottest functions from System.map", function()
        local plugin, outfile = luahost(helper.source_root .. "/examples/hotfuncs.lua", { "limit=10" })
        local r = boot({ plugin })
        clean_shutdown(r)
        local report = helper.read(outfile) or ""
        local code, rows = code_symbols(), 0
        for key, n in report:gmatch("@insns%[([^%]]+)%]: (%d+)\n") do
            local symbol = key:match("!(.+)$") or key
            assert.is_truthy(code[symbol], key .. " is no code symbol of System.map\n" .. report)
            assert.is_true(tonumber(n) > 0)
            rows = rows + 1
        end
        assert.are.equal(10, rows, report)
    end)

    it("counts each vCPU's blocks and instructions as libbb.so does in the same run", function()
        local script = helper.lua_file([[
local sb = luahost.scoreboard { "bbs", "insns" }
luahost.on_tb_translate(function(tb)
    tb:inline("add", sb.bbs, 1)
    tb:inline("add", sb.insns, tb:n_insns())
end)
luahost.on_exit(function()
    for vcpu = 0, luahost.num_vcpus() - 1 do
        luahost.printf("CPU%d: bb's: %d, insns: %d\n", vcpu, sb.bbs:get(vcpu), sb.insns:get(vcpu))
    end
end)
]])
        local plugin, outfile = luahost(script)
        local r = boot({ helper.c_plugin("tests/tcg/plugins/libbb.so") .. ",inline=on", plugin })
        clean_shutdown(r)
        local theirs = {}
        for line in r.log:gmatch("CPU%d+: bb's: %d+, insns: %d+") do
            theirs[#theirs + 1] = line
        end
        local ours = {}
        for line in (helper.read(outfile) or ""):gmatch("CPU%d+: bb's: %d+, insns: %d+") do
            ours[#ours + 1] = line
        end
        assert.are.equal(2, #ours, r.log)
        assert.are.same(theirs, ours)
        -- both vCPUs ran kernel code
        for _, line in ipairs(ours) do
            assert.is_true(tonumber(line:match("insns: (%d+)")) > 1000000, line)
        end
    end)
end)
