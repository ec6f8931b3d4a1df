-- System mode: qemu-system-aarch64 on the bare-metal guest
-- tests/guests/system/sys.S (virt board, two vCPUs). Its addresses come
-- from its symbol table; its counts from its definition: the block at
-- sys_loop_head executes 1000 times on vCPU 0 and 2000 times on vCPU 1.
local helper = require("helper")

local GUEST_OUTPUT = "10\nsys done\n"

local function guest()
    return helper.system_guest("sys", "aarch64")
end

describe("the system guest", function()
    after_each(helper.cleanup)

    it("runs to a clean exit on two vCPUs under libinsn.so", function()
        local r = helper.qemu_system({ helper.c_plugin("tests/tcg/plugins/libinsn.so") }, guest())
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal(GUEST_OUTPUT, r.stdout)
        local cpus = {}
        for cpu, n in r.log:gmatch("cpu (%d+) insns: (%d+)\n") do
            cpus[#cpus + 1] = { tonumber(cpu), tonumber(n) }
        end
        assert.are.equal(2, #cpus, "libinsn.so report: " .. r.log)
        for _, c in ipairs(cpus) do
            -- At least the counted loop: 4 instructions per iteration.
            assert.is_true(c[2] >= 4 * 1000, ("vCPU %d ran %d instructions"):format(c[1], c[2]))
        end
    end)
end)

describe("luahost in system mode", function()
    after_each(helper.cleanup)

    it("counts the loop head per vCPU with an inline op", function()
        local script = helper.lua_file([[
local opt = luahost.args { head = 0 }
local entry = luahost.scoreboard()
luahost.on_tb_translate(function(tb)
    if tb:vaddr() == opt.head then
        tb:inline("add", entry, 1)
    end
end)
luahost.on_exit(function()
    luahost.printf("vcpus %d system %s\n", luahost.num_vcpus(), tostring(luahost.info.system_emulation))
    luahost.printf("smp %d max %d\n", luahost.info.smp_vcpus, luahost.info.max_vcpus)
    luahost.printf("head %d %d\n", entry:get(0), entry:get(1))
end)
]])
        local outfile = helper.tmpname()
        local head = helper.nm(guest(), "sys_loop_head")
        local r = helper.qemu_system({ helper.luahost_plugin(script,
            { "outfile=" .. outfile, ("head=0x%x"):format(head) }) }, guest())
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal(GUEST_OUTPUT, r.stdout)
        local report = helper.read(outfile) or ""
        assert.matches("vcpus 2 system true\n", report, 1, true)
        -- -smp 2: two vCPUs, and no more possible
        assert.matches("smp 2 max 2\n", report, 1, true)
        assert.matches("head 1000 2000\n", report, 1, true)
    end)
end)

-- libmem.so's print-accesses lines, from luahost.
local PRINT_ACCESSES = helper.read(helper.test_script("print_accesses.lua"))

describe("luahost's system-mode API", function()
    after_each(helper.cleanup)

    local function run(source, args)
        local script = helper.lua_file(source)
        local outfile = helper.tmpname()
        local all = { "outfile=" .. outfile }
        for _, a in ipairs(args or {}) do
            all[#all + 1] = a
        end
        local r = helper.qemu_system({ helper.luahost_plugin(script, all) }, guest())
        assert.are.equal(0, r.status, r.stderr)
        assert.are.equal(GUEST_OUTPUT, r.stdout)
        r.report = helper.read(outfile) or ""
        return r
    end

    it("sees the physical side of every access as libmem.so does", function()
        local report = helper.assert_system_accesses_as_libmem(PRINT_ACCESSES)
        -- RAM accesses have their physical address (the MMU is off)
        assert.is_truthy(report:find(("\n0x%%x+,[%%w_]*,0x%x,0x%x,64,store,"):format(
            helper.nm(guest(), "sys_data0"), helper.nm(guest(), "sys_data0"))), report)
    end)

    it("gives physical addresses per vCPU, and I/O as libmem.so sees it", function()
        local script = helper.lua_file([[
local opt = luahost.args { uart = 0, data0 = 0, data1 = 0 }
local seen, io = {}, 0
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local at = insn:vaddr()
        insn:on_mem(function(vcpu, mem, vaddr)
            local hw = mem:hwaddr()
            if hw:is_io() then io = io + 1 end
            if at == opt.uart then
                seen["uart device " .. hw:device_name()] = 1
            end
            if at == opt.uart or vaddr == opt.data0 or vaddr == opt.data1 then
                local key = ("vcpu %d %s 0x%x phys 0x%x"):format(vcpu,
                    mem:is_store() and "store" or "load", vaddr, hw:phys_addr())
                seen[key] = (seen[key] or 0) + 1
            end
        end)
    end
end)
luahost.on_exit(function()
    local keys = {}
    for k, n in pairs(seen) do keys[#keys + 1] = k .. " x" .. n end
    table.sort(keys)
    luahost.outs(table.concat(keys, "\n") .. "\n")
    luahost.printf("io accesses: %d\n", io)
end)
]])
        local outfile = helper.tmpname()
        local d0, d1 = helper.nm(guest(), "sys_data0"), helper.nm(guest(), "sys_data1")
        local r = helper.qemu_system({
            helper.c_plugin("tests/tcg/plugins/libmem.so") .. ",callback=on,haddr=on",
            helper.luahost_plugin(script, { "outfile=" .. outfile,
                ("uart=0x%x"):format(helper.nm(guest(), "sys_uart_store")),
                ("data0=0x%x"):format(d0), ("data1=0x%x"):format(d1) }),
        }, guest())
        assert.are.equal(0, r.status, r.stderr)
        local report = helper.read(outfile) or ""
        -- the loop: one store and one load per iteration, 1000 on vCPU 0, 2000 on vCPU 1
        for _, line in ipairs({
            ("vcpu 0 load 0x%x phys 0x%x x1000"):format(d0, d0),
            ("vcpu 0 store 0x%x phys 0x%x x1000"):format(d0, d0),
            ("vcpu 1 load 0x%x phys 0x%x x2000"):format(d1, d1),
            ("vcpu 1 store 0x%x phys 0x%x x2000"):format(d1, d1),
            -- one UART store per vCPU, to the PL011's data register
            "vcpu 0 store 0x9000000 phys 0x9000000 x1",
            "vcpu 1 store 0x9000000 phys 0x9000000 x1",
        }) do
            assert.is_truthy(report:find(line .. "\n", 1, true), line .. "\n" .. report)
        end
        -- QEMU 10.0 reports the PL011 stores as I/O; 10.2.2 as RAM (its TLB
        -- moved the MMIO flag where the plugin lookup does not look): the
        -- C plugin and luahost must agree either way
        local theirs = r.log:match("io accesses: (%d+)")
        assert.is_truthy(theirs, r.log)
        assert.are.equal("io accesses: " .. theirs, report:match("io accesses: %d+"))
        -- the device name follows: the PL011's region where QEMU sees I/O
        local device = tonumber(theirs) > 0 and "pl011" or "RAM"
        assert.is_truthy(report:find("uart device " .. device .. " x1\n", 1, true), report)
    end)

    it("reports idle and resume, time control, and no binary", function()
        local r = run([[
local idle, resume = {}, {}
luahost.on_vcpu_idle(function(vcpu) idle[vcpu] = (idle[vcpu] or 0) + 1 end)
luahost.on_vcpu_resume(function(vcpu) resume[vcpu] = (resume[vcpu] or 0) + 1 end)
local clock = assert(luahost.request_time_control())
luahost.printf("again: %s %s\n", luahost.request_time_control())
luahost.printf("clock: %s\n", tostring(getmetatable(clock) ~= nil))
local updated = false
luahost.on_tb_translate(function(tb)
    if not updated then
        updated = true
        luahost.printf("binary: %s %s\n", tostring(luahost.path_to_binary()), tostring(luahost.entry_code()))
        tb:on_exec(function(vcpu) clock:update_ns(1000) end)
    end
end)
luahost.on_exit(function()
    luahost.printf("vcpu 1 idle %s resume %s\n", tostring((idle[1] or 0) > 0), tostring((resume[1] or 0) > 0))
    local ok, err = pcall(clock.update_ns, clock, 5)
    luahost.printf("update at exit: %s\n", err)
end)
]])
        assert.is_truthy(r.report:find("again: nil time control was already requested\n", 1, true), r.report)
        assert.is_truthy(r.report:find("clock: true\n", 1, true))
        assert.is_truthy(r.report:find("binary: nil nil\n", 1, true), r.report)
        -- vCPU 1 waits, powered off, until CPU_ON
        assert.is_truthy(r.report:find("vcpu 1 idle true resume true\n", 1, true), r.report)
        assert.is_truthy(r.report:find("update at exit: [^\n]*clock:update_ns needs a vCPU"), r.report)
    end)

    it("translates and reads physical memory, or refuses clearly (QEMU 10.1+)", function()
        local r = run([[
local opt = luahost.args { data0 = 0 }
local done = false
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        insn:on_mem(function(vcpu, mem, vaddr)
            if vaddr == opt.data0 and not mem:is_store() and not done then
                done = true
                local ok, paddr, msg = pcall(luahost.translate_vaddr, vaddr)
                luahost.printf("translate: %s %s %s\n", tostring(ok), tostring(paddr), tostring(msg))
                local ok2, bytes = pcall(luahost.read_memory_hwaddr, vaddr, 8)
                luahost.printf("read: %s %s\n", tostring(ok2), ok2 and tostring(#bytes) or bytes)
                local _, _, bad = pcall(luahost.read_memory_hwaddr, 0x7fffffff000, 8)
                luahost.printf("bad: %s\n", tostring(bad))
                if ok then
                    -- well past the guest's variables: a scratch area of RAM
                    local scratch = paddr + 0x10000
                    local wrote = luahost.write_memory_hwaddr(scratch, "luahost!")
                    luahost.printf("write: %s %s\n", tostring(wrote),
                        tostring(luahost.read_memory_hwaddr(scratch, 8)))
                end
            end
        end)
    end
end)
]], { ("data0=0x%x"):format(helper.nm(guest(), "sys_data0")) })
        local d0 = helper.nm(guest(), "sys_data0")
        if r.report:find("translate: true", 1, true) then
            assert.is_truthy(r.report:find(("translate: true %d nil\n"):format(d0), 1, true), r.report)
            assert.is_truthy(r.report:find("read: true 8\n", 1, true), r.report)
            assert.is_truthy(r.report:find("bad: invalid address\n", 1, true), r.report)
            assert.is_truthy(r.report:find("write: true luahost!\n", 1, true), r.report)
        else
            assert.is_truthy(r.report:find("translate: false [^\n]*needs QEMU 10%.1 or later"), r.report)
        end
    end)

    it("reports PSCI calls as host calls, or refuses clearly (QEMU 10.2)", function()
        local r = run([[
local calls = {}
local ok, err = pcall(luahost.on_discontinuity, function(vcpu, kind, from, to)
    calls[#calls + 1] = ("%d %s"):format(vcpu, kind)
end, { "hostcall" })
luahost.printf("register: %s %s\n", tostring(ok), tostring(err))
luahost.on_exit(function() luahost.printf("calls: %s\n", table.concat(calls, ",")) end)
]])
        if r.report:find("register: true", 1, true) then
            -- CPU0's PSCI CPU_ON (SYSTEM_OFF ends the run inside QEMU)
            assert.is_truthy(r.report:find("calls: 0 hostcall", 1, true), r.report)
        else
            assert.is_truthy(r.report:find("register: false [^\n]*needs QEMU 10%.2 or later"), r.report)
        end
    end)
end)

-- symbols=FILE[@BIAS]: the guest's own ELF file, or a System.map made by
-- nm from it, names the code. Expected names and offsets come from nm.
describe("symbols= in system mode", function()
    after_each(helper.cleanup)

    local DESCRIBE = [[
local opt = luahost.args { at = luahost.args.list(luahost.args.u64()), name = "" }
local seen = {}
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        seen[insn:vaddr()] = luahost.describe(insn:vaddr())
    end
end)
luahost.on_exit(function()
    for _, pc in ipairs(opt.at) do
        luahost.printf("0x%x %s\n", pc, tostring(seen[pc]))
    end
    if opt.name ~= "" then
        luahost.printf("resolve %s 0x%x\n", opt.name, (luahost.resolve(opt.name)))
    end
    for _, m in ipairs(luahost.modules()) do
        luahost.printf("module %s 0x%x 0x%x\n", m.name, m.base, m.bias)
    end
end)
]]

    local function run(args)
        local outfile = helper.tmpname()
        local all = { "outfile=" .. outfile }
        for _, a in ipairs(args) do
            all[#all + 1] = a
        end
        local r = helper.qemu_system({ helper.luahost_plugin(helper.lua_file(DESCRIBE), all) }, guest())
        assert.are.equal(0, r.status, r.stderr)
        return helper.read(outfile) or ""
    end

    local function system_map()
        local status, out = helper.sh(("%s --defined-only %s"):format(
            helper.quote(os.getenv("GUEST_NM")), helper.quote(guest())))
        assert.are.equal(0, status)
        return helper.write(helper.tmpname(), out)
    end

    it("names code from the ELF file, labels as offsets in their function", function()
        local fn, head = helper.nm(guest(), "counted_loop"), helper.nm(guest(), "sys_loop_head")
        local at = { ("at=0x%x"):format(fn), ("at=0x%x"):format(head) }
        local plain = run(at)
        assert.matches(("0x%x 0x%x\n"):format(fn, fn), plain, 1, true)     -- no module: an address
        local named = run({ at[1], at[2], "symbols=" .. guest() })
        assert.matches(("0x%x counted_loop\n"):format(fn), named, 1, true)
        assert.matches(("0x%x counted_loop+0x%x\n"):format(head, head - fn), named, 1, true)
    end)

    it("names code from a System.map, moved by @BIAS", function()
        local fn, head = helper.nm(guest(), "counted_loop"), helper.nm(guest(), "sys_loop_head")
        local map = system_map()
        local report = run({ ("at=0x%x"):format(fn), ("at=0x%x"):format(head), "symbols=" .. map })
        assert.matches(("0x%x counted_loop\n"):format(fn), report, 1, true)
        assert.matches(("0x%x sys_loop_head\n"):format(head), report, 1, true)   -- typed in a map
        local moved = run({ "symbols=" .. map .. "@0x100000", "name=counted_loop" })
        assert.matches(("resolve counted_loop 0x%x\n"):format(fn + 0x100000), moved, 1, true)
    end)

    it("starts a System.map's module at its lowest code, not at absolute or per-CPU symbols", function()
        local text = assert(helper.read(system_map()))
        local lowest
        for addr in text:gmatch("(%x+) [TtWw] [^\n]+") do
            addr = tonumber(addr, 16)
            lowest = math.min(lowest or addr, addr)
        end
        -- as a kernel's: _kernel_size_le_hi32 is absolute, x86_64's per-CPU
        -- variables are data at offsets from 0
        local map = helper.write(helper.tmpname(), "0000000000000000 A _abs_value\n"
            .. "0000000000001000 D percpu_like\n" .. text)
        local report = run({ "symbols=" .. map })
        assert.matches(("module [^ ]+ 0x%x 0x0\n"):format(lowest), report)
    end)

    it("refuses a symbols= file it cannot use, naming it", function()
        for _, bad in ipairs({ "/nonexistent/vmlinux", helper.write(helper.tmpname(), "not a map\n") }) do
            local r = helper.qemu_system({ helper.luahost_plugin(helper.lua_file(DESCRIBE), { "symbols=" .. bad }) },
                guest())
            assert.are_not.equal(0, r.status)
            assert.matches("luahost: symbols=" .. bad:gsub("%p", "%%%0") .. ": [^\n]+\n", r.stderr)
        end
    end)
end)
