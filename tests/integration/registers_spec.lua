-- Registers from Lua: the guest (tests/guests/api.c) puts known values in
-- general and vector registers at the instruction labelled reg_probe; the
-- script reads them there.
local helper = require("helper")

local NAMES = {
    x86_64 = { first = "rax", big = "rax", exact = "rdx", vector = "xmm0", flags = "eflags", flags_size = 4,
               core = "org.gnu.gdb.i386.core" },
    -- cortex-a57 would show v0; QEMU's default user-mode CPU has SVE: z0
    aarch64 = { first = "x0", big = "x0", exact = "x2", vector = "z0", flags = "cpsr", flags_size = 4,
                core = "org.gnu.gdb.aarch64.core" },
    -- no flags register: the float control and status CSR, 64-bit in QEMU's XML
    riscv64 = { first = "zero", big = "a0", exact = "a2", vector = "v0", flags = "fcsr", flags_size = 8,
                core = "org.gnu.gdb.riscv.cpu" },
}

local READ_AT_PROBE = [[
local opt = luahost.args { probe = 0, big = "", exact = "", vector = "", flags = "" }
local regs, by_name = nil, {}
luahost.on_vcpu_init(function(vcpu)
    regs = luahost.registers()
    for _, r in ipairs(regs) do
        by_name[r.name] = r
    end
    luahost.printf("first %s %s\n", regs[1].name, regs[1].feature)
end)
local function hex(s)
    return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        if insn:vaddr() == opt.probe then
            insn:on_exec(function(vcpu)
                luahost.printf("big %x\n", by_name[opt.big]:read())
                luahost.printf("exact %x\n", by_name[opt.exact]:read())
                luahost.printf("exact is 2^53+1: %s\n", tostring(by_name[opt.exact]:read() == EXACT))
                local v, vsize = by_name[opt.vector]:read()
                luahost.printf("vector %d %s\n", #v, hex(v:sub(1, 16)))
                luahost.printf("sizes %d %d %s\n", select(2, by_name[opt.big]:read()), vsize,
                    tostring(select(2, by_name[opt.flags]:read())))
                luahost.printf("%s\n", tostring(by_name[opt.big]))
            end, nil, "r")
            insn:on_exec(function(vcpu)
                local ok, err = pcall(by_name[opt.big].read, by_name[opt.big])
                luahost.printf("without regs: %s\n", err)
            end)
        end
    end
end)
]]

describe("registers", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("read exactly at a labelled instruction (" .. arch .. ")", function()
            local names = NAMES[arch]
            local plain = helper.qemu(arch, {}, helper.guest("api", arch))
            local probe = helper.printed_address(plain.stdout, "reg_probe")
            -- 2^53 + 1 written so that both Lua builds hold it exactly
            local exact = "EXACT = jit and require('ffi').new('uint64_t', 2^53) + 1"
                .. " or math.tointeger(2^53) + 1\n"
            local r = helper.run_lua(arch, exact .. READ_AT_PROBE, helper.guest("api", arch), {
                args = { "probe=" .. probe, "big=" .. names.big, "exact=" .. names.exact,
                         "vector=" .. names.vector, "flags=" .. names.flags },
            })
            assert.are.equal(("first %s %s\n"):format(names.first, names.core),
                r.report:match("first [^\n]*\n"))
            -- the values the guest's reg_probe_fn loads (tests/guests/api.c)
            assert.is_truthy(r.report:find("big fedcba9876543210\n", 1, true), r.report)
            assert.is_truthy(r.report:find("exact 20000000000001\n", 1, true), r.report)
            assert.is_truthy(r.report:find("exact is 2^53+1: true\n", 1, true), r.report)
            local size, bytes = r.report:match("vector (%d+) (%x+)\n")
            assert.is_true(tonumber(size) >= 16)
            assert.are.equal("00112233445566778899aabbccddeeff", bytes)
            -- the second result is the size in bytes: 8 for a 64-bit
            -- register, the string's length for a vector, the flags' own
            assert.are.equal(("sizes 8 %d %d\n"):format(size, names.flags_size), r.report:match("sizes [^\n]*\n"))
            assert.is_truthy(r.report:find("register " .. names.big .. "\n", 1, true))
            assert.is_truthy(r.report:find("without regs: [^\n]*cannot read registers in insn exec "
                .. "callback: register it with regs=\"r\""), r.report)
        end)
    end

    it("are refused outside vCPU callbacks, with a clear error", function()
        local r = helper.run_lua("x86_64", [[
local ok, err = pcall(luahost.registers)
luahost.printf("main chunk: %s\n", err)
luahost.on_exit(function()
    local ok, err = pcall(luahost.registers)
    luahost.printf("exit: %s\n", err)
end)
]], helper.guest("loop", "x86_64"), { guest_args = { "10" } })
        -- located at the script's line, not inside the runtime
        assert.is_truthy(r.report:find("main chunk: [^\n]*%.lua:1: luahost%.registers%(%) needs a vCPU: "
            .. "call it from a callback that runs on a vCPU %(translation, execution, memory, syscall "
            .. "or vcpu init%), not from the main chunk\n"), r.report)
        assert.is_truthy(r.report:find("exit: [^\n]*%.lua:4: luahost%.registers%(%) needs a vCPU: "
            .. "[^\n]* not from exit hook\n"), r.report)
    end)
end)
