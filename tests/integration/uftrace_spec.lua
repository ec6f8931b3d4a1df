-- scripts/uftrace.lua against QEMU 10.2's libuftrace.so in the same run
-- (libuftrace.so writes ./uftrace.data, so QEMU runs in a directory of
-- its own and our script writes dir=lua.data beside it), and the
-- directory read by Debian's uftrace, whose call counts must be the
-- guest's own (calls-fp prints every caller-callee edge it counted).
local helper = require("helper")

local SCRIPT = helper.source_root .. "/scripts/uftrace.lua"
local CALLEES = { "rec", "even", "odd", "via_ptr_a", "via_ptr_b", "tail_from", "tail_to",
                  "jump_deep", "loop_target" }

local dirs = {}

local function tmpdir()
    local path = helper.tmpname()
    os.remove(path)
    assert(os.execute("mkdir " .. helper.quote(path)))
    dirs[#dirs + 1] = path
    return path
end

local function cleanup()
    for _, d in ipairs(dirs) do
        os.execute("rm -rf " .. helper.quote(d))
    end
    dirs = {}
    helper.cleanup()
end

-- Runs qemu-ARCH in a new directory on guest with the given -plugin
-- arguments; returns that directory and what helper.sh returns.
local function run_in_dir(arch, plugins, guest, guest_args)
    local dir = tmpdir()
    local cmd = { "cd " .. helper.quote(dir) .. " &&", helper.quote(helper.qemu_build() .. "/qemu-" .. arch) }
    for _, p in ipairs(plugins) do
        cmd[#cmd + 1] = "-plugin " .. helper.quote(p)
    end
    cmd[#cmd + 1] = helper.quote(guest)
    for _, a in ipairs(guest_args or {}) do
        cmd[#cmd + 1] = helper.quote(a)
    end
    local status, stdout, stderr = helper.sh(table.concat(cmd, " "))
    return dir, { status = status, stdout = stdout, stderr = stderr }
end

local function has_c_plugin()
    local f = io.open(helper.c_plugin("contrib/plugins/libuftrace.so"), "rb")
    if f then
        f:close()
    end
    return f ~= nil
end

local function ls(dir)
    local _, out = helper.sh("ls " .. helper.quote(dir))
    local names = {}
    for name in out:gmatch("[^\n]+") do
        names[#names + 1] = name
    end
    return names
end

-- The records of a .dat file (uftrace's libmcount/record.c: a u64
-- timestamp, then type:2 more:1 magic:3 depth:10 addr:48), as
-- { ts, "TYPE DEPTH ADDR" }.
local function records(path)
    local text = assert(helper.read(path), path)
    assert.are.equal(0, #text % 16, path .. ": whole records")
    local out = {}
    for pos = 1, #text, 16 do
        local ts, word = string.unpack("<I8I8", text, pos)
        assert.are.equal(5, (word >> 3) & 7, "record magic")
        out[#out + 1] = { ts = ts, key = ("%d %d %x"):format(word & 3, (word >> 6) & 1023, word >> 16) }
    end
    return out
end

local function keys(recs)
    local k = {}
    for i, r in ipairs(recs) do
        k[i] = r.key
    end
    return k
end

-- The lines of a sid-0.map naming the guest below 4 GiB (its load
-- segments; the rest of the map is QEMU's own, read at another moment).
local function guest_lines(map, guest)
    local lines = {}
    for line in map:gmatch("[^\n]+") do
        local start = line:match("^(%x+)%-")
        if line:find(guest, 1, true) and #start <= 8 then
            lines[#lines + 1] = line
        end
    end
    return lines
end

-- The guest's own counts: calls of each function, from "edge A B N".
local function guest_calls(stdout)
    local calls, total = {}, 0
    for callee, n in stdout:gmatch("edge %S+ (%S+) (%d+)") do
        calls[callee] = (calls[callee] or 0) + tonumber(n)
        total = total + tonumber(n)
    end
    calls.count = total         -- count() is called once per edge counted
    return calls
end

-- uftrace report's Calls column, by function name.
local function report_calls(report)
    local calls = {}
    for line in report:gmatch("[^\n]+") do
        local n, name = line:match("^%s*[%d.]+%s+%a+%s+[%d.]*%s*%a*%s+(%d+)%s+(%S+)%s*$")
        if n then
            calls[name] = (calls[name] or 0) + tonumber(n)
        end
    end
    return calls
end

local function uftrace(cmd, dir)
    return helper.sh(("uftrace %s -d %s"):format(cmd, helper.quote(dir)))
end

local function have_uftrace()
    return helper.sh("uftrace --version") == 0
end

-- The targets uftrace.c follows frame pointers on (and so uftrace.lua).
local FP_ARCHES = { "x86_64", "aarch64" }

describe("uftrace.lua", function()
    after_each(cleanup)

    it("refuses riscv64 with one message, as libuftrace.so does", function()
        local guest = helper.guest("calls", "riscv64")
        local r = helper.run_file("riscv64", SCRIPT, guest, { status = false, guest_args = { "1", "0" } })
        assert.are.equal(1, r.status)
        assert.matches("uftrace%.lua:%d+: target riscv64 is not supported %(aarch64 and x86_64 are%)\n", r.stderr)
        if has_c_plugin() then
            local c = helper.qemu("riscv64", { helper.c_plugin("contrib/plugins/libuftrace.so") }, guest, { "1", "0" })
            assert.are_not.equal(0, c.status)
            assert.matches("riscv64 target is not supported", c.stderr .. c.log)
        end
    end)

    for _, arch in ipairs(FP_ARCHES) do
        for _, privilege in ipairs({ "off", "on" }) do
            it(("writes the records libuftrace.so writes, in the same run (%s, trace-privilege-level=%s)")
                    :format(arch, privilege), function()
                if not has_c_plugin() then
                    pending("QEMU 10.0 has no contrib/plugins/uftrace.c (it came in 10.1): nothing to compare with")
                    return
                end
                local guest = helper.guest("calls-fp", arch)
                local before = tonumber((select(2, helper.sh("date +%s%N"))))
                local dir, r = run_in_dir(arch, {
                    helper.c_plugin("contrib/plugins/libuftrace.so") .. ",trace-privilege-level=" .. privilege,
                    helper.luahost_plugin(SCRIPT, { "dir=lua.data", "trace-privilege-level=" .. privilege }),
                }, guest, { "20", "1" })
                local after = tonumber((select(2, helper.sh("date +%s%N"))))
                assert.are.equal(0, r.status, r.stderr)
                local c, lua = dir .. "/uftrace.data", dir .. "/lua.data"
                local c_files, lua_files = ls(c), ls(lua)
                local lua_dats = {}
                for _, name in ipairs(lua_files) do
                    if not name:find("%.sym$") then
                        lua_dats[#lua_dats + 1] = name
                    end
                end
                assert.are.same(c_files, lua_dats)
                -- two vCPUs (main and one thread); 10 or 5 levels each with privilege levels
                local per_cpu = privilege == "on" and (arch == "x86_64" and 5 or 10) or 1
                assert.are.equal(2 * per_cpu + 3, #c_files)
                local total = 0
                for _, name in ipairs(c_files) do
                    if name:find("%.dat$") then
                        local c_recs, lua_recs = records(c .. "/" .. name), records(lua .. "/" .. name)
                        assert.are.same(keys(c_recs), keys(lua_recs), name)
                        for i, rec in ipairs(lua_recs) do
                            assert.is_true(before <= rec.ts and rec.ts <= after, "timestamp within the run")
                            assert.is_true(i == 1 or lua_recs[i - 1].ts <= rec.ts, "timestamps in order")
                        end
                        total = total + #lua_recs
                    end
                end
                assert.is_true(total > 1000, "records: " .. total)
                assert.are.equal(helper.read(c .. "/info"), helper.read(lua .. "/info"))
                assert.are.equal(helper.read(c .. "/task.txt"), helper.read(lua .. "/task.txt"))
                local c_map = guest_lines(helper.read(c .. "/sid-0.map"), guest)
                assert.is_true(#c_map >= 2, "the guest in the map")
                assert.are.same(c_map, guest_lines(helper.read(lua .. "/sid-0.map"), guest))
            end)
        end

        it("writes a directory uftrace replays and reports, with the guest's names and counts (" .. arch .. ")",
                function()
            if not have_uftrace() then
                pending("uftrace is not installed (tools/setup installs it)")
                return
            end
            local dir, r = run_in_dir(arch, { helper.luahost_plugin(SCRIPT) }, helper.guest("calls-fp", arch),
                { "30", "1" })
            assert.are.equal(0, r.status, r.stderr)
            local data = dir .. "/uftrace.data"
            local status, replay, err = uftrace("replay", data)
            assert.are.equal(0, status, err)
            for _, name in ipairs(CALLEES) do
                assert.matches("| +" .. name .. "%(%) {", replay)
            end
            local report
            status, report, err = uftrace("report", data)
            assert.are.equal(0, status, err)
            local expected, got = guest_calls(r.stdout), report_calls(report)
            assert.is_true(expected.rec > 30, r.stdout)
            for _, name in ipairs(CALLEES) do
                assert.are.equal(expected[name], got[name], name .. " in\n" .. report)
            end
            assert.are.equal(expected.count, got.count, "count in\n" .. report)
        end)
    end

    it("names the functions with its .sym files when the program is gone; symfiles=off writes none", function()
        if not have_uftrace() then
            pending("uftrace is not installed (tools/setup installs it)")
            return
        end
        local copy = tmpdir() .. "/prog"
        assert(os.execute(("cp %s %s"):format(helper.quote(helper.guest("calls-fp", "x86_64")), helper.quote(copy))))
        local dir, r = run_in_dir("x86_64", { helper.luahost_plugin(SCRIPT, { "dir=with" }),
            helper.luahost_plugin(SCRIPT, { "dir=without", "symfiles=off" }) }, copy, { "10", "0" })
        assert.are.equal(0, r.status, r.stderr)
        assert.are.same({ "100.dat", "info", "prog.sym", "sid-0.map", "task.txt" }, ls(dir .. "/with"))
        assert.are.same({ "100.dat", "info", "sid-0.map", "task.txt" }, ls(dir .. "/without"))
        os.remove(copy)
        local _, with = uftrace("report", dir .. "/with")
        local _, without = uftrace("report", dir .. "/without")
        for _, name in ipairs(CALLEES) do
            assert.matches(" " .. name .. "\n", with)
            assert.does_not.match(" " .. name .. "\n", without)
        end
    end)

    it("names a system guest's functions from symbols= alone, in the same run as libuftrace.so", function()
        if not has_c_plugin() then
            pending("QEMU 10.0 has no contrib/plugins/uftrace.c (it came in 10.1): nothing to compare with")
            return
        elseif not have_uftrace() then
            pending("uftrace is not installed (tools/setup installs it)")
            return
        end
        local guest = helper.system_guest("sys", "aarch64")
        local dir = tmpdir()
        local cmd = { "cd " .. helper.quote(dir) .. " && timeout -k 10 120",
            helper.quote(os.getenv("QEMU_SYSTEM_AARCH64")) }
        for _, a in ipairs(helper.system_args) do
            cmd[#cmd + 1] = helper.quote(a)
        end
        cmd[#cmd + 1] = "-plugin " .. helper.quote(helper.c_plugin("contrib/plugins/libuftrace.so"))
        cmd[#cmd + 1] = "-plugin "
            .. helper.quote(helper.luahost_plugin(SCRIPT, { "dir=lua.data" }) .. ",symbols=" .. guest)
        cmd[#cmd + 1] = "-kernel " .. helper.quote(guest) .. " </dev/null"
        local status, _, err = helper.sh(table.concat(cmd, " "))
        assert.are.equal(0, status, err)
        local c, lua = dir .. "/uftrace.data", dir .. "/lua.data"
        for _, name in ipairs({ "100.dat", "200.dat" }) do      -- two vCPUs
            assert.are.same(keys(records(c .. "/" .. name)), keys(records(lua .. "/" .. name)), name)
        end
        assert.matches("\n%x+%-%x+ r%-%-p 00000000 00:00 0 " .. guest:gsub("%p", "%%%0") .. "\n",
            helper.read(lua .. "/sid-0.map"))
        local _, with = uftrace("report", lua)
        local _, without = uftrace("report", c)
        for _, name in ipairs({ "_start", "cpu1_entry" }) do
            assert.matches(" " .. name .. "\n", with)
            assert.does_not.match(" " .. name .. "\n", without)
        end
    end)

    -- Where QEMU has no libuftrace.so (10.0), the guest's own counts alone.
    it("moves between traces at each change of exception level: the guest's counts, and libuftrace.so's "
            .. "records where QEMU has it (system, trace-privilege-level=on)", function()
        -- el0-aarch64 erets to EL0 and comes back with an svc, once per round
        local guest = helper.system_guest("el0", "aarch64")
        local dir = tmpdir()
        local cmd = { "cd " .. helper.quote(dir) .. " && timeout -k 10 120",
            helper.quote(os.getenv("QEMU_SYSTEM_AARCH64")) }
        for _, a in ipairs(helper.system_args) do
            cmd[#cmd + 1] = helper.quote(a)
        end
        if has_c_plugin() then
            cmd[#cmd + 1] = "-plugin " .. helper.quote(helper.c_plugin("contrib/plugins/libuftrace.so")
                .. ",trace-privilege-level=on")
        end
        cmd[#cmd + 1] = "-plugin " .. helper.quote(helper.luahost_plugin(SCRIPT,
            { "dir=lua.data", "trace-privilege-level=on" }))
        cmd[#cmd + 1] = "-kernel " .. helper.quote(guest) .. " </dev/null"
        local status, out, err = helper.sh(table.concat(cmd, " "))
        assert.are.equal(0, status, err)
        local rounds = tonumber(out:match("el0 svc=(%d+)\n"))
        assert.is_true(rounds ~= nil and rounds > 1, out)
        local c, lua = dir .. "/uftrace.data", dir .. "/lua.data"
        for vcpu = 1, has_c_plugin() and 2 or 0 do
            for level = 0, 9 do     -- aarch64's ten levels
                local name = ("%d.dat"):format(vcpu * 100 + level)
                assert.are.same(keys(records(c .. "/" .. name)), keys(records(lua .. "/" .. name)), name)
            end
        end
        -- the guest's own count: each round enters el1_count in the EL1 trace
        -- and el0_leaf in the EL0 one (no EL3: the secure levels, as uftrace.c reads them)
        local function entries(name, from, to)
            local lo, hi, n = helper.nm(guest, from), helper.nm(guest, to), 0
            for _, r in ipairs(records(lua .. "/" .. name)) do
                local kind, pc = r.key:match("^(%d) %d+ (%x+)$")
                pc = tonumber(pc, 16)
                n = n + ((kind == "0" and lo <= pc and pc < hi) and 1 or 0)
            end
            return n
        end
        assert.are.equal(rounds, entries("103.dat", "el1_count", "finish"))
        assert.are.equal(rounds, entries("100.dat", "el0_leaf", "el1_sync"))
    end)

    local bad = {
        { "trace-privilege-level=maybe", "boolean argument parsing failed: trace%-privilege%-level=maybe" },
        { "symfiles=some", "boolean argument parsing failed: symfiles=some" },
        { "depth=3", "option parsing failed: depth=3 %(known options: [^)]*%)" },
        { "dir=/proc/version/x", "dir=/proc/version/x: cannot create a file in this directory" },
    }
    for _, case in ipairs(bad) do
        it("refuses " .. case[1] .. " with one message", function()
            local r = helper.run_file("x86_64", SCRIPT, helper.guest("calls-fp", "x86_64"),
                { args = { case[1] }, status = false, guest_args = { "1", "0" } })
            assert.are.equal(1, r.status)
            assert.matches("uftrace%.lua:%d+: " .. case[2], r.stderr)
            assert.does_not.match("traceback", r.stderr)
        end)
    end
end)
