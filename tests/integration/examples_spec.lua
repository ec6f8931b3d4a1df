-- Every script in examples/ on a guest program. The expected numbers come
-- from QEMU's C plugins loaded into the same run (libsyscall, libinsn,
-- libmem, -d exec) or from the guests' source (counted_loop.h, api.c).
local helper = require("helper")

local function example(name)
    return helper.source_root .. "/examples/" .. name
end

local function c_plugin(name, args)
    return helper.c_plugin("tests/tcg/plugins/" .. name) .. (args and "," .. args or "")
end

-- Runs an example with other plugins first; returns what helper.qemu
-- returns plus report.
local function run(arch, name, args, guest, guest_args, plugins)
    return helper.run_file(arch, example(name), helper.guest(guest, arch),
        { args = args, guest_args = guest_args, plugins = plugins })
end

-- agg's tidy CSV (map,key,stat,value) as { [map] = { [key] = value } } for
-- one stat.
local function tidy(csv, stat)
    local out = {}
    for map, key, s, value in csv:gmatch("(@[^,\n]+),([^,\n]*),([^,\n]+),([^,\n]+)\n") do
        if s == stat then
            out[map] = out[map] or {}
            out[map][key] = tonumber(value)
        end
    end
    return out
end

local function sum(t)
    local n = 0
    for _, v in pairs(t or {}) do
        n = n + v
    end
    return n
end

-- Splits CSV lines with a header into rows keyed by column name (fields
-- may be quoted; no doubled quotes in what the tests read).
local function csv_rows(text)
    local rows, header = {}, nil
    for line in text:gmatch("[^\n]+") do
        local fields, pos = {}, 1
        while pos <= #line + 1 do
            local quoted, after = line:match('^"([^"]*)",?()', pos)
            if quoted then
                fields[#fields + 1], pos = quoted, after
            else
                local field, next_pos = line:match("^([^,]*),?()", pos)
                fields[#fields + 1], pos = field, next_pos
                if next_pos == pos and field == "" then break end
            end
            if pos > #line and line:sub(-1) ~= "," then break end
        end
        if not header then
            header = fields
        else
            local row = {}
            for i, name in ipairs(header) do
                row[name] = fields[i]
            end
            rows[#rows + 1] = row
        end
    end
    return rows
end

local syscall_names = assert(loadfile(helper.source_root .. "/stdlib/syscalls.lua"))()

-- A file of about 300 KB for xz to compress: Debian's license texts.
local function licenses()
    local path = helper.tmpname()
    assert.are.equal(0, helper.sh("cat /usr/share/common-licenses/* >" .. helper.quote(path)))
    return path
end

describe("examples", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        local title = "syscount.lua counts syscalls by name as libsyscall.so counts them by number"
        it(title .. " (" .. arch .. ") #threads", function()
            local r = run(arch, "syscount.lua", { "format=csv", "errors=on" }, "threads", { "3", "100" },
                { c_plugin("libsyscall.so") })
            local ours = tidy(r.report, "count")
            local calls, errors = 0, 0
            for num, n, e in r.log:match("syscall no%.%s+calls%s+errors\n(.*)$"):gmatch("(%d+)%s+(%d+)%s+(%d+)\n") do
                local name = syscall_names.name(arch, tonumber(num))
                assert.are.equal(tonumber(n), ours["@syscalls"][name], name)
                assert.are.equal(tonumber(e), ours["@failed"] and ours["@failed"][name] or 0, name)
                calls, errors = calls + tonumber(n), errors + tonumber(e)
            end
            assert.is_true(calls > 20)
            assert.are.equal(calls, sum(ours["@syscalls"]))
            assert.are.equal(errors, sum(ours["@failed"]))
        end)

        it("callcount.lua counts calls of named functions (" .. arch .. ")", function()
            -- loop.c: mix() once per iteration, counted_loop() once
            local r = run(arch, "callcount.lua", { "fn=mix", "fn=counted_loop", "format=csv" }, "loop", { "777" })
            local ours = tidy(r.report, "count")["@calls"]
            assert.are.same({ mix = 777, counted_loop = 1 }, ours)
        end)

        it("callcount.lua counts calls of a PIE program's and its library's functions (" .. arch .. ")", function()
            -- modprog prints how often it called each; before modules, work
            -- was looked up without the load bias and counted 0, silently.
            local r = helper.run_dynamic_file(arch, example("callcount.lua"),
                helper.modules_guest("modprog-" .. arch),
                { args = { "fn=work", "fn=lib_apply", "fn=prog_callback", "format=csv" }, guest_args = { "37" } })
            local want = {}
            for name, n in r.stdout:gmatch("([%w_]+)_calls=(%d+)") do
                want[name] = tonumber(n)
            end
            local counts = tidy(r.report, "count")["@calls"]
            for _, name in ipairs({ "work", "lib_apply", "prog_callback" }) do
                assert.is_truthy(want[name], r.stdout)
                assert.are.equal(want[name], counts[name], name)
            end
            assert.is_falsy(r.stderr:find("warning", 1, true), r.stderr)
        end)

        it("callcount.lua warns at exit about a name no module defined (" .. arch .. ")", function()
            local r = run(arch, "callcount.lua", { "fn=mix", "fn=no_such_function", "format=csv" }, "loop", { "5" })
            assert.are.same({ mix = 5, no_such_function = 0 }, tidy(r.report, "count")["@calls"])
            assert.matches("luahost: warning: fn=no_such_function never named an address during the run "
                .. "(no_such_function: no mapped module defines it)\n", r.stderr, 1, true)
            assert.is_falsy(r.stderr:find("fn=mix", 1, true), r.stderr)
        end)

        it("between.lua measures instructions between two symbols (" .. arch .. ")", function()
            -- api.c: reg_probe_fn's instructions before reg_probe, as objdump counts them
            local r = run(arch, "between.lua", { "from=reg_probe_fn", "to=reg_probe", "format=csv" }, "api")
            local want = helper.insns_between(arch, helper.guest("api", arch), "reg_probe_fn", "reg_probe")
            assert.are.equal(1, tidy(r.report, "count")["@insns"][""])
            assert.are.equal(want, tidy(r.report, "min")["@insns"][""])
            assert.are.equal(want, tidy(r.report, "max")["@insns"][""])
        end)

        it("branches.lua counts counted_loop's branch taken and not taken (" .. arch .. ")", function()
            -- counted_loop.h: the loop branch runs n times, taken n - 1
            local r = run(arch, "branches.lua", { "format=csv", "limit=100000" }, "loop", { "500" })
            local guest = helper.guest("loop", arch)
            local names, found = helper.nm_names(guest), nil
            for _, row in ipairs(csv_rows(r.report)) do
                local pc = tonumber(row.pc:match("^0x(%x+)$"), 16)
                helper.assert_location(names, guest, pc, row.location)
                if row.location:match("^counted_loop%+") then
                    assert.is_nil(found, "one conditional branch in counted_loop")
                    found = row
                end
            end
            assert.is_truthy(found, r.report)
            assert.are.equal("499", found.taken)
            assert.are.equal("1", found.not_taken)
        end)

        it("memsize.lua's histogram holds every access libmem.so counts (" .. arch .. ")", function()
            local r = run(arch, "memsize.lua", { "format=csv" }, "api", nil, { c_plugin("libmem.so", "inline=true") })
            local theirs = tonumber(r.log:match("mem accesses: (%d+)"))
            local all = 0
            for line in r.report:gmatch("@bytes,[^\n]*\n") do
                all = all + tonumber(line:match(",(%d+)\n$"))
            end
            assert.is_true(all > 0)
            assert.are.equal(theirs, all)
            -- api.c's 16-byte load of pattern (movdqu, ldr q0; riscv64's
            -- vle8.v is 16 byte-sized accesses in QEMU)
            if arch ~= "riscv64" then
                assert.matches("@bytes,load,\"%[16, 32%)\",%d+\n", r.report)
            end
        end)
    end

    it("hotfuncs.lua: counted_loop's instructions, and the total libinsn.so counts", function()
        local r = run("x86_64", "hotfuncs.lua", { "format=csv", "limit=100000" }, "loop", { "1000" },
            { c_plugin("libinsn.so") })
        local ours = tidy(r.report, "count")["@insns"]
        -- counted_loop.h: jmp, then sub+jnz 1000 times, then ret
        assert.are.equal(2 * 1000 + 2, ours["loop-x86_64!counted_loop"])
        local total = tonumber(r.log:match("total insns: (%d+)"))
        assert.are.equal(total, sum(ours))
        -- by=module: the same instructions, by module alone
        r = run("x86_64", "hotfuncs.lua", { "format=csv", "by=module" }, "loop", { "1000" },
            { c_plugin("libinsn.so") })
        local by_module = tidy(r.report, "count")["@insns"]
        assert.are.equal(tonumber(r.log:match("total insns: (%d+)")), sum(by_module))
        assert.is_true(by_module["loop-x86_64"] > 2 * 1000)
    end)

    -- A dynamically linked Debian program: xz spends its time in
    -- liblzma's internal functions, which the stripped library does not
    -- name. Every instruction still has a module.
    it("hotfuncs.lua keys a real program's instructions by module (xz)", function()
        local xz = "/usr/bin/xz"
        if not io.open(xz) then
            pending(xz .. " is not installed")
            return
        end
        local function counts(args)
            local r = helper.run_file("x86_64", example("hotfuncs.lua"), xz, {
                args = args, guest_args = { "-9", "-T1", "-c", licenses() }, plugins = { c_plugin("libinsn.so") } })
            local ours = tidy(r.report, "count")["@insns"]
            assert.are.equal(tonumber(r.log:match("total insns: (%d+)")), sum(ours))
            return ours
        end
        local ours = counts({ "format=csv", "limit=1000000" })
        local total, in_module, per_module = sum(ours), 0, {}
        for key, n in pairs(ours) do
            assert.are_not.equal("?", key)
            local module = key:match("^([^!]+)!.")
            if module then
                in_module = in_module + n
                per_module[module] = (per_module[module] or 0) + n
            end
        end
        assert.is_true(total > 100000000, "xz -9 ran: " .. total)
        assert.is_true(in_module / total > 0.999, ("%d of %d instructions in a module"):format(in_module, total))
        local lzma = 0
        for module, n in pairs(per_module) do
            lzma = module:match("^liblzma%.so") and lzma + n or lzma
        end
        assert.is_true(lzma / total > 0.9, "liblzma's share")
        local named = 0
        for key in pairs(ours) do
            named = named + (key:match("^libc%.so%.6![%a_]") and 1 or 0)
        end
        assert.is_true(named > 10, "libc's functions by name")
        -- by=module: the per-module totals of the same work
        assert.are.same(per_module, counts({ "format=csv", "by=module" }))
    end)

    it("insnmix.lua: the mnemonics add up to libinsn.so's total", function()
        local r = run("aarch64", "insnmix.lua", { "format=csv", "limit=100000" }, "loop", { "1000" },
            { c_plugin("libinsn.so") })
        local ours = tidy(r.report, "count")["@insns"]
        assert.are.equal(tonumber(r.log:match("total insns: (%d+)")), sum(ours))
        -- counted_loop.h on aarch64: subs and b.ne run 1000 times each, and more elsewhere
        assert.is_true(ours["b.ne"] >= 1000)
    end)

    it("loads.lua sees the loads from a symbol's range that libmem.so prints", function()
        local arch = "x86_64"
        local guest = helper.guest("api", arch)
        local r = run(arch, "loads.lua", { "symbol=slot", "format=csv" }, "api", nil,
            { c_plugin("libmem.so", "print-accesses=true") })
        local slot = helper.printed_address(r.stdout, "slot")
        assert.are.equal(slot, helper.nm(guest, "slot"))
        local want = 0
        for vaddr, kind in r.log:gmatch("\n0x%x+,[^,]*,0x(%x+),0x%x+,%d+,(%a+),") do
            local a = tonumber(vaddr, 16)
            if kind == "load" and a >= slot and a < slot + 16 then
                want = want + 1
            end
        end
        local ours = tidy(r.report, "count")["@loads"]
        assert.is_true(want >= 2)
        assert.are.equal(want, sum(ours))
    end)

    it("pagemap.lua touches the pages libmem.so prints, with the same counts", function()
        local r = run("aarch64", "pagemap.lua", { "format=csv" }, "api", nil,
            { c_plugin("libmem.so", "print-accesses=true") })
        local want = {}
        for vaddr, kind in r.log:gmatch("\n0x%x+,[^,]*,0x(%x+),0x%x+,%d+,(%a+),") do
            local page = ("0x%x"):format(tonumber(vaddr, 16) // 4096 * 4096)
            want[page] = want[page] or { loads = 0, stores = 0 }
            local k = kind == "store" and "stores" or "loads"
            want[page][k] = want[page][k] + 1
        end
        local ours = {}
        for _, row in ipairs(csv_rows(r.report)) do
            ours[row.page] = { loads = tonumber(row.loads), stores = tonumber(row.stores) }
        end
        assert.is_truthy(next(want))
        assert.are.same(want, ours)
    end)

    it("firstblocks.lua lists the blocks QEMU's -d exec logs first, in order", function()
        local outfile, log = helper.tmpname(), helper.tmpname()
        local plugin = helper.luahost_plugin(example("firstblocks.lua"),
            { "outfile=" .. outfile, "n=30", "format=csv" })
        local status, _, err = helper.sh(("%s -plugin %s -d exec,nochain -D %s %s 10"):format(
            helper.quote(helper.qemu_build() .. "/qemu-x86_64"), helper.quote(plugin), helper.quote(log),
            helper.quote(helper.guest("loop", "x86_64"))))
        assert.are.equal(0, status, err)
        local want = {}
        for pc in helper.read(log):gmatch("Trace 0: 0x%x+ %[%x+/0*(%x+)/") do
            if #want < 30 then
                want[#want + 1] = "0x" .. pc
            end
        end
        local ours, guest = {}, helper.guest("loop", "x86_64")
        local names = helper.nm_names(guest)
        for _, row in ipairs(csv_rows(helper.read(outfile))) do
            ours[#ours + 1] = row.pc
            helper.assert_location(names, guest, tonumber(row.pc:match("^0x(%x+)$"), 16), row.location)
        end
        assert.are.equal(30, #want)
        assert.are.same(want, ours)
        assert.is_truthy(helper.read(outfile):find("\n0,0x%x+,_start,%d+\n"), "the first block is _start's")
    end)
end)
