-- Memory accesses from Lua: every access of a run, with its value, size,
-- kind and physical address, agrees with QEMU's own libmem.so loaded into
-- the same run; inline counts agree with its inline counter; guest memory
-- reads agree with what the guest wrote.
local helper = require("helper")

-- The same lines as libmem.so's print-accesses=on, from luahost.
local PRINT_ACCESSES = helper.read(helper.test_script("print_accesses.lua"))

local function libmem(args)
    return helper.c_plugin("tests/tcg/plugins/libmem.so") .. "," .. args
end

describe("memory callbacks", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        for _, track in ipairs({ "rw", "r", "w" }) do
            it("print every access as libmem.so does, track=" .. track .. " (" .. arch .. ")", function()
                local r = helper.run_lua(arch, PRINT_ACCESSES, helper.guest("api", arch), {
                    args = { "track=" .. track },
                    plugins = { libmem("print-accesses=on,track=" .. track) },
                    guest_args = { "50" },
                })
                local theirs = r.log:match("insn_vaddr,.*")
                assert.is_truthy(theirs, r.log)
                assert.is_true(#r.report > 1000)
                assert.are.equal(theirs, r.report)
            end)
        end

        it("on_access gives each access's address, size and kind as libmem.so prints them (" .. arch .. ")",
            function()
                local r = helper.run_lua(arch, [[
local function on_access(_, vaddr, size, is_store, prefix)
    luahost.printf("%s0x%x,%d,%s\n", prefix, vaddr, size * 8, is_store and "store" or "load")
end
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        insn:on_access(on_access, ("0x%x,%s,"):format(insn:vaddr(), insn:qemu_symbol() or ""), "w")
    end
end)
]], helper.guest("api", arch), {
                    plugins = { libmem("print-accesses=on,track=w") },
                    guest_args = { "50" },
                })
                -- libmem.so's lines less the physical address and the value
                local theirs = {}
                for insn, vaddr, rest in r.log:gmatch("\n(0x%x+,[^,\n]*,)(0x%x+),0x%x+,(%d+,%a+),0x%x+") do
                    theirs[#theirs + 1] = insn .. vaddr .. "," .. rest .. "\n"
                end
                assert.is_true(#theirs > 100, r.log)
                assert.are.equal(table.concat(theirs), r.report)
            end)

        it("sees the guest's values at and above 2^53 exactly (" .. arch .. ")", function()
            local r = helper.run_lua(arch, PRINT_ACCESSES, helper.guest("api", arch))
            local slot = helper.printed_address(r.stdout, "slot")
            local function line(addr, kind)
                return r.report:match(("\n0x%%x+,main,0x%x,0x0,64,%s,(0x%%x+)\n"):format(addr, kind))
            end
            -- the guest stores BIG to slot[0] and EXACT (2^53 + 1) to slot[1]
            assert.are.equal("0xfedcba9876543210", line(slot, "store"))
            assert.are.equal("0xfedcba9876543210", line(slot, "load"))
            assert.are.equal("0x0020000000000001", line(slot + 8, "store"))
            assert.are.equal("0x0020000000000001", line(slot + 8, "load"))
            -- and loads its 16-byte pattern with one access; riscv64's
            -- vector load (vle8.v) is one access per byte-sized element in
            -- QEMU, then comes the byte load of pattern[8]
            if arch == "riscv64" then
                local bytes = {}
                for value in r.report:gmatch(",reg_probe_fn,0x%x+,0x0,8,load,0x(%x+)\n") do
                    bytes[#bytes + 1] = value
                end
                assert.are.equal("00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff 88", table.concat(bytes, " "))
            else
                assert.is_truthy(r.report:find(",reg_probe_fn,0x%x+,0x0,128,load,0xffeeddccbbaa99887766554433221100\n"))
            end
        end)

        it("marks sign-extending loads and the guest's byte order (" .. arch .. ")", function()
            local r = helper.run_lua(arch, [[
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        if insn:symbol() == "reg_probe_fn" then
            insn:on_mem(function(vcpu, mem, vaddr)
                luahost.printf("%d %s %s %s %d %x\n", mem:size(), tostring(mem:is_store()),
                    tostring(mem:is_sign_extended()), tostring(mem:is_big_endian()),
                    mem:size_shift(), mem:value())
            end)
        end
    end
end)
]], helper.guest("api", arch))
            -- reg_probe_fn: a 16-byte load of the pattern (on riscv64 16
            -- byte loads, one per vector element), a sign-extending byte
            -- load of pattern[8], and its return (a load on x86_64)
            local lines = {}
            for line in r.report:gmatch("[^\n]+") do
                lines[#lines + 1] = line
            end
            local first = 1
            if arch == "riscv64" then
                for i = 1, 16 do
                    assert.are.equal(("1 false false false 0 %x"):format((i - 1) * 0x11), lines[i])
                end
                first = 16
            else
                assert.are.equal("16 false false false 4 7766554433221100", lines[1])
            end
            assert.are.equal("1 false true false 0 88", lines[first + 1])
            assert.are.equal(first + (arch == "x86_64" and 2 or 1), #lines)
        end)

        for _, track in ipairs({ "rw", "r", "w" }) do
            it("counts accesses inline as libmem.so does, track=" .. track .. " (" .. arch .. ") #threads", function()
                local r = helper.run_lua(arch, [[
local opt = luahost.args { track = "rw" }
local count = luahost.scoreboard()
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        insn:mem_inline("add", count, 1, opt.track)
    end
end)
luahost.on_exit(function() luahost.printf("mem accesses: %d\n", count:sum()) end)
]], helper.guest("threads", arch), {
                    args = { "track=" .. track },
                    plugins = { libmem("inline=on,track=" .. track) },
                    guest_args = { "4", "2000" },
                })
                local theirs = r.log:match("mem accesses: (%d+)")
                assert.is_truthy(theirs, r.log)
                assert.are.equal("mem accesses: " .. theirs .. "\n", r.report)
            end)
        end

        it("stores inline on accesses of the chosen kind only (" .. arch .. ")", function()
            local r = helper.run_lua(arch, [[
local board = luahost.scoreboard { "on_write", "on_read" }
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        if insn:symbol() == "reg_probe_fn" then
            insn:mem_inline("store", board.on_write, 7, "w")
            insn:mem_inline("store", board.on_read, 9, "r")
        end
    end
end)
luahost.on_exit(function()
    luahost.printf("%d %d\n", board.on_write:get(0), board.on_read:get(0))
end)
]], helper.guest("api", arch))
            -- reg_probe_fn loads (the pattern, a byte, on x86_64 its return
            -- address) but never stores
            assert.are.equal("0 9\n", r.report)
        end)

        it("gives no hwaddr in user mode and the host address of code (" .. arch .. ")", function()
            local r = helper.run_lua(arch, [[
local offsets, hwaddrs = {}, 0
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        offsets[insn:haddr() - insn:vaddr()] = true
        insn:on_mem(function(vcpu, mem, vaddr)
            if mem:hwaddr() ~= nil then hwaddrs = hwaddrs + 1 end
        end)
    end
end)
luahost.on_exit(function()
    local n = 0
    for _ in pairs(offsets) do n = n + 1 end
    luahost.printf("offsets %d hwaddrs %d\n", n, hwaddrs)
end)
]], helper.guest("api", arch))
            -- user mode maps guest memory at one fixed host offset
            assert.are.equal("offsets 1 hwaddrs 0\n", r.report)
        end)
    end
end)

describe("guest memory reads", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("read what the guest writes, and fail cleanly (" .. arch .. ")", function()
            local r = helper.run_lua(arch, [[
local WRITE = { x86_64 = 1, aarch64 = 64, riscv64 = 64 }
luahost.on_syscall(function(vcpu, num, fd, buf, len)
    if num == WRITE[luahost.info.target_name] and fd == 1 then
        luahost.printf("[%s]\n", luahost.read_memory(buf, len))
        luahost.printf("unmapped: %s %s\n", luahost.read_memory(0, 16))
        for _, len in ipairs({ 0, -1, 1048577 }) do
            local ok, err = pcall(luahost.read_memory, buf, len)
            luahost.printf("len %d: %s\n", len, err)
        end
    end
end)
]], helper.guest("api", arch))
            local message = r.stdout:match("(luahost read_memory probe: [^\n]*\n)")
            assert.is_truthy(message)
            assert.is_truthy(r.report:find("[" .. message .. "]", 1, true), r.report)
            assert.is_truthy(r.report:find("unmapped: nil cannot read 16 bytes of guest memory at 0x0\n", 1, true))
            for _, len in ipairs({ "0", "-1", "1048577" }) do
                assert.is_truthy(r.report:find("len " .. len:gsub("%-", "%%-") .. ": bad argument #2 to '[^']*' "
                    .. "%(length must be from 1 to 1048576 bytes%)"), r.report)
            end
        end)
    end
end)
