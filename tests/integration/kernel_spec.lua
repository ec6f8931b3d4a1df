-- A real Linux kernel in system mode: Debian 12's own kernel for arm64
-- and amd64 (tools/debian-kernel: its vmlinuz and the real System.map)
-- booted under qemu-system-aarch64 and qemu-system-x86_64 with nokaslr,
-- -smp 2, and an initramfs holding one program, tests/guests/kernel/
-- kinit.c, which makes a known number of syscalls, prints them, and
-- powers the machine off.
local helper = require("helper")

local CACHE = os.getenv("LUAHOST_KERNEL_CACHE") or (os.getenv("HOME") or "") .. "/.cache/luahost/debian-kernel"

-- Per guest arch: Debian's name for it, the emulator, its board, console.
local ARCHES = {
    aarch64 = { debian = "arm64", qemu = os.getenv("QEMU_SYSTEM_AARCH64"),
        machine = { "-M", "virt", "-cpu", "cortex-a57" }, console = "ttyAMA0" },
    x86_64 = { debian = "amd64", qemu = os.getenv("QEMU_SYSTEM_X86_64"),
        machine = { "-M", "pc" }, console = "ttyS0" },
}

local function exists(path)
    local f = io.open(path, "rb")
    if f then
        f:close()
    end
    return f ~= nil
end

local function kernel_dir(arch)
    return CACHE .. "/" .. ARCHES[arch].debian
end

-- Boots arch's kernel with the given -plugin arguments, killed after
-- 150 s: what helper.qemu_system returns. The console is on stdout.
local function boot(arch, plugins)
    local a, dir = ARCHES[arch], kernel_dir(arch)
    if not exists(dir .. "/vmlinuz") or not exists(dir .. "/System.map") then
        pending(("no Debian %s kernel in %s: tools/debian-kernel %s fetches it (tools/setup runs it)")
            :format(a.debian, dir, a.debian))
    end
    if not (a.qemu and exists(a.qemu)) then
        pending(("no %s: tools/build-qemu builds qemu-system-aarch64 only (CI's first-run time); Debian's "
            .. "own qemu-system-x86 (QEMU 11.1) boots it in the lua5.4-qemu11.1-system build")
            :format(a.qemu or "qemu-system-" .. arch))
    end
    local log = helper.tmpname()
    local cmd = { "timeout -k 10 150", helper.quote(a.qemu) }
    local args = { "-smp", "2", "-m", "512M", "-display", "none", "-monitor", "none", "-serial", "stdio",
        "-nic", "none", "-no-reboot", "-kernel", dir .. "/vmlinuz",
        "-initrd", os.getenv("GUEST_DIR") .. "/kernel/initramfs-" .. arch,
        "-append", ("console=%s nokaslr rdinit=/init quiet panic=-1"):format(a.console) }
    for _, list in ipairs({ a.machine, args }) do
        for _, v in ipairs(list) do
            cmd[#cmd + 1] = helper.quote(v)
        end
    end
    for _, p in ipairs(plugins) do
        cmd[#cmd + 1] = "-plugin " .. helper.quote(p)
    end
    cmd[#cmd + 1] = "-d plugin -D " .. helper.quote(log)
    local status, stdout, stderr = helper.sh(table.concat(cmd, " ") .. " </dev/null")
    return { status = status, stdout = stdout, stderr = stderr, log = helper.read(log) or "" }
end

local function luahost(arch, script, args)
    local outfile = helper.tmpname()
    local all = { "outfile=" .. outfile, "symbols=" .. kernel_dir(arch) .. "/System.map" }
    for _, a in ipairs(args or {}) do
        all[#all + 1] = a
    end
    return helper.luahost_plugin(script, all), outfile
end

-- System.map's names of code (text symbols, t or T), as a set.
local function code_symbols(arch)
    local names = {}
    for name in assert(helper.read(kernel_dir(arch) .. "/System.map")):gmatch("%x+ [tT] ([^\n]+)") do
        names[name] = true
    end
    return names
end

local function clean_shutdown(r)
    assert.are.equal(0, r.status, r.stderr)
    assert.matches("reboot: Power down", r.stdout, 1, true)
end

for _, arch in ipairs({ "aarch64", "x86_64" }) do
    describe("Debian's " .. ARCHES[arch].debian .. " kernel under qemu-system-" .. arch .. " -smp 2", function()
        after_each(helper.cleanup)

        it("counts the syscalls its init makes, from the kernel's side, and powers off cleanly", function()
            local plugin, outfile = luahost(arch, helper.source_root .. "/examples/ksyscalls.lua", { "limit=100" })
            local r = boot(arch, { plugin })
            clean_shutdown(r)
            local report = helper.read(outfile) or ""
            local made = {}
            for name, n in (r.stdout:match("kinit: ([^\n]+)") or ""):gmatch("(%a+) (%d+)") do
                made[name] = tonumber(n)
            end
            assert.is_truthy(made.getpid, r.stdout)
            local counted = {}
            for name, n in report:gmatch("@syscalls%[([%w_]+)%]: (%d+)\n") do
                counted[name] = tonumber(n)
                assert.is_falsy(name:match("^syscall_%d"), "a number the kernel headers do not name: " .. name)
            end
            assert.are.same({ made.getpid, made.getppid, made.uname, 1 },
                { counted.getpid, counted.getppid, counted.uname, counted.reboot }, report)
        end)

        it("names the kernel's hottest functions from System.map", function()
            local plugin, outfile = luahost(arch, helper.source_root .. "/examples/hotfuncs.lua", { "limit=10" })
            local r = boot(arch, { plugin })
            clean_shutdown(r)
            local report = helper.read(outfile) or ""
            local code, rows, named = code_symbols(arch), 0, 0
            for key, n in report:gmatch("@insns%[([^%]]+)%]: (%d+)\n") do
                -- code outside the kernel's symbols (x86_64's bzImage runs
                -- its decompressor first, a program of its own) is told apart
                if key ~= "(no module)" then
                    local symbol = key:match("^System%.map!(.+)$")
                    assert.is_truthy(symbol and code[symbol], key .. " is no code symbol of System.map\n" .. report)
                    named = named + 1
                end
                assert.is_true(tonumber(n) > 0)
                rows = rows + 1
            end
            assert.are.equal(10, rows, report)
            assert.is_true(named >= 9, report)
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
            local bb = helper.c_plugin("tests/tcg/plugins/libbb.so") .. ",inline=on"
            local plugin, outfile = luahost(arch, script)
            local r = boot(arch, { bb, plugin })
            clean_shutdown(r)
            local pattern = "CPU%d+: bb's: %d+, insns: %d+"
            local theirs, ours = {}, {}
            for line in r.log:gmatch(pattern) do
                theirs[#theirs + 1] = line
            end
            for line in (helper.read(outfile) or ""):gmatch(pattern) do
                ours[#ours + 1] = line
            end
            assert.are.equal(2, #ours, r.log)
            assert.are.same(theirs, ours)
            for _, line in ipairs(ours) do     -- both vCPUs ran the kernel
                assert.is_true(tonumber(line:match("insns: (%d+)")) > 1000000, line)
            end
        end)
    end)
end
