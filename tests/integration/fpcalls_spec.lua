-- luahost.fpcalls (host/fpcalls.c) against QEMU 10.2's libuftrace.so in
-- the same run: a script that writes each vCPU's records as they come
-- must write the records uftrace.c writes, and name as entered the
-- functions uftrace.c's entry records name. Bad options are refused with
-- the script's line.
local helper = require("helper")

-- The script of docs/api.md's example, for both targets, writing cpuN.dat into dir=.
local SCRIPT = [[
local opt = luahost.args { dir = "." }
-- the frame pointer, and what names it in a disassembly (uftrace.c's test)
local FP = { x86_64 = { "rbp", "rbp" }, aarch64 = { "x29", " x29" } }
local name, named = FP[luahost.info.target_name][1], FP[luahost.info.target_name][2]
local calls
local function append(vcpu, bytes)
    local f = assert(io.open(opt.dir .. "/cpu" .. vcpu .. ".dat", "ab"))
    f:write(bytes)
    f:close()
end
luahost.on_vcpu_init(function(vcpu)
    local fp
    for _, reg in ipairs(luahost.registers()) do
        if reg.name == name then fp = reg end
    end
    calls = calls or luahost.fpcalls { register = fp, capacity = 64,
        on_records = function(v, trace, bytes)
            assert(trace == 1)
            append(v, bytes)
        end }
    calls:restart(vcpu, 1)
end)
luahost.on_tb_translate(function(tb)
    local watch = true
    for _, insn in tb:insns() do
        if watch then calls:watch(insn) end
        watch = insn:disas():find(named, 1, true) ~= nil
    end
end)
luahost.on_exit(function()
    local out = {}
    for vcpu = 0, luahost.num_vcpus() - 1 do
        append(vcpu, calls:take(vcpu, 1))
    end
    for pc in pairs(calls:entered()) do
        out[#out + 1] = ("%x"):format(pc)
    end
    table.sort(out)
    local f = assert(io.open(opt.dir .. "/entered", "w"))
    f:write(table.concat(out, "\n"), "\n")
    f:close()
end)
]]

local function has_c_plugin()
    return helper.sh("test -e " .. helper.quote(helper.c_plugin("contrib/plugins/libuftrace.so"))) == 0
end

-- A .dat file's records without their timestamps, and the pcs of its
-- entries. A record's word is uftrace.c's sum, type + 0b101 << 3 + depth
-- << 6 + pc << 16, where a depth past 1023 (deep recursion) spills into
-- pc: the pc comes from the depth, replayed (an entry is one deeper, an
-- exit one less deep).
local function records(path, entered)
    local text = assert(helper.read(path), path)
    assert.are.equal(0, #text % 16, path .. ": whole records")
    local out, depth = {}, 0
    for pos = 1, #text, 16 do
        local word = string.unpack("<I8", text, pos + 8)
        out[#out + 1] = ("%x"):format(word)
        if word & 3 == 0 then
            depth = depth + 1
            entered[("%x"):format((word - 40 - depth * 64) >> 16)] = true
        else
            depth = depth - 1
        end
    end
    return out
end

describe("luahost.fpcalls", function()
    after_each(helper.cleanup)

    -- the targets uftrace.c, the oracle, supports
    for _, arch in ipairs({ "x86_64", "aarch64" }) do
        it("makes the records libuftrace.so makes, in the same run (" .. arch .. ")", function()
            if not has_c_plugin() then
                pending("QEMU 10.0 has no contrib/plugins/uftrace.c (it came in 10.1): nothing to compare with")
                return
            end
            local dir = helper.tmpname()
            os.remove(dir)
            assert(os.execute("mkdir " .. helper.quote(dir)))
            local script = helper.lua_file(SCRIPT)
            local cmd = ("cd %s && %s -plugin %s -plugin %s %s 20 1"):format(helper.quote(dir),
                helper.quote(helper.qemu_build() .. "/qemu-" .. arch),
                helper.quote(helper.c_plugin("contrib/plugins/libuftrace.so")),
                helper.quote(helper.luahost_plugin(script, { "dir=" .. dir })),
                helper.quote(helper.guest("calls-fp", arch)))
            local status, _, stderr = helper.sh(cmd)
            assert.are.equal(0, status, stderr)
            local c_entered, total = {}, 0
            for vcpu = 0, 1 do      -- calls-fp runs main and one thread
                local c = records(("%s/uftrace.data/%d.dat"):format(dir, (vcpu + 1) * 100), c_entered)
                local ours = records(("%s/cpu%d.dat"):format(dir, vcpu), {})
                assert.are.same(c, ours, "vCPU " .. vcpu)
                total = total + #ours
            end
            assert.is_true(total > 1000, "records: " .. total)
            -- the records keep 48 bits of a pc (garbage frames above the stack's top have more)
            local ours = {}
            for pc in helper.read(dir .. "/entered"):gmatch("%x+") do
                ours[("%x"):format(tonumber(pc:sub(-12), 16))] = true
            end
            assert.are.same(c_entered, ours)
            os.execute("rm -rf " .. helper.quote(dir))
        end)
    end

    -- level_fields: C reads the fields before each watched instruction and
    -- calls on_level only when they change. The oracle is a Lua callback
    -- on every block reading the same bits at the same moment (before the
    -- block's first instruction): the changes it sees, the first reading
    -- included, per vCPU, are on_level's calls. rax's bits change often.
    it("calls on_level exactly when the level fields change (a per-block Lua reading agrees)", function()
        local source = [[
local rax, calls
local on_level, changes, last = {}, {}, {}
local function count(t, vcpu) t[vcpu] = (t[vcpu] or 0) + 1 end
luahost.on_vcpu_init(function(vcpu)
    local fp
    for _, reg in ipairs(luahost.registers()) do
        if reg.name == "rbp" then fp = reg elseif reg.name == "rax" then rax = reg end
    end
    calls = calls or luahost.fpcalls { register = fp, on_records = function() end,
        level_fields = { { rax, 0, 3 }, { rax, 5, 1 } },
        on_level = function(v, pc) count(on_level, v) end }
    calls:restart(vcpu, 1)
end)
luahost.on_tb_translate(function(tb)
    tb:on_exec(function(v)
        local low = tonumber(rax:read() % 64)      -- a LuaJIT cdata too
        local key = low % 8 + 8 * (math.floor(low / 32) % 2)
        if key ~= last[v] then
            last[v] = key
            count(changes, v)
        end
    end, nil, "r")
    for i, insn in tb:insns() do
        if i == 1 then calls:watch_level(insn) end
    end
end)
luahost.on_exit(function()
    for v = 0, luahost.num_vcpus() - 1 do
        luahost.outs(("vcpu %d on_level %d changes %d\n"):format(v, on_level[v] or 0, changes[v] or 0))
    end
end)
]]
        local r = helper.run_lua("x86_64", source, helper.guest("calls-fp", "x86_64"), { guest_args = { "20", "1" } })
        local vcpus = 0
        for vcpu, on_level, changes in r.report:gmatch("vcpu (%d+) on_level (%d+) changes (%d+)\n") do
            assert.are.equal(tonumber(changes), tonumber(on_level), "vCPU " .. vcpu)
            assert.is_true(tonumber(changes) > 100, "changes: " .. changes)
            vcpus = vcpus + 1
        end
        assert.are.equal(2, vcpus, r.report)     -- calls-fp runs main and one thread
    end)

    local bad = {
        { "luahost.fpcalls { on_records = print }",
          "luahost.fpcalls: option register %(a register from luahost.registers%(%)%) is required" },
        { "luahost.fpcalls { register = luahost.registers()[1] }",
          "luahost.fpcalls: option on_records %(a function%) is required" },
        { "luahost.fpcalls { register = luahost.registers()[1], on_records = print, regs = 1 }",
          "luahost.fpcalls: unknown option regs %(expected register, on_records, traces, capacity, "
              .. "level_fields, on_level%)" },
        { "luahost.fpcalls { register = luahost.registers()[1], on_records = print, on_level = print }",
          "luahost.fpcalls: options level_fields and on_level go together" },
        { "luahost.fpcalls { register = luahost.registers()[1], on_records = print, on_level = print, "
              .. "level_fields = { { luahost.registers()[1], 60, 8 } } }",
          "luahost.fpcalls: level_fields%[1%] must be { register, shift, width }, bits within 0 to 63" },
        { "luahost.fpcalls { register = luahost.registers()[1], on_records = print, on_level = print, "
              .. "level_fields = {} }",
          "luahost.fpcalls: level_fields must list 1 to 8 fields, got 0" },
        { "luahost.fpcalls { register = luahost.registers()[1], on_records = print }"
              .. ":watch_level(nil)",
          "calls:watch_level: this tracker was made without level_fields" },
        { "luahost.fpcalls { register = luahost.registers()[1], on_records = print, traces = 0 }",
          "luahost.fpcalls: traces must be an integer from 1 to 64, got 0" },
        { "luahost.fpcalls { register = luahost.registers()[1], on_records = print }:restart(0, 2)",
          "bad argument #2 to 'restart' %(no such trace%)" },
    }
    for _, case in ipairs(bad) do
        it("refuses " .. case[1] .. " with one message naming the line", function()
            local source = "luahost.on_vcpu_init(function()\n    " .. case[1] .. "\nend)\n"
            local r = helper.run_lua("x86_64", source, helper.guest("calls-fp", "x86_64"),
                { status = false, guest_args = { "1", "0" } })
            assert.matches("%.lua:2: " .. case[2], r.stderr)
        end)
    end
end)
