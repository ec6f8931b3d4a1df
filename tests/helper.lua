-- Shared by the busted specs: paths from the environment meson sets, and
-- running QEMU with plugins on the guest programs the tests build.
local luassert = require("luassert")
local helper = {}

local function env(name)
    local v = os.getenv(name)
    if v == nil or v == "" then
        error("test environment: " .. name .. " is not set (run the tests through meson test)", 2)
    end
    return v
end

helper.source_root = os.getenv("LUAHOST_SOURCE_ROOT") or "."

function helper.plugin()
    return env("LUAHOST_PLUGIN")
end

function helper.qemu_build()
    return env("QEMU_BUILD")
end

function helper.guest(name, arch)
    return env("GUEST_DIR") .. "/" .. name .. "-" .. arch
end

-- A bare-metal guest for qemu-system-ARCH (tests/guests/system/).
function helper.system_guest(name, arch)
    return env("GUEST_DIR") .. "/system/" .. name .. "-" .. arch
end

-- One of QEMU's own C plugins, the oracle of a test. A QEMU that comes
-- without them (QEMU_NO_C_PLUGINS says why: Debian's 11.1 binaries) skips
-- the test with that reason; anywhere else a missing one fails it.
function helper.c_plugin(path)
    local why = os.getenv("QEMU_NO_C_PLUGINS")
    if why and why ~= "" then
        -- busted's pending() is only a spec's global; any core instance's
        -- throws the same pending object
        require("busted.core")().pending(("needs QEMU's %s as its oracle: %s"):format(path, why))
    end
    return helper.qemu_build() .. "/" .. path
end

function helper.script(name)
    return helper.source_root .. "/scripts/" .. name
end

function helper.test_script(name)
    return helper.source_root .. "/tests/scripts/" .. name
end

local tmp_files = {}

function helper.tmpname()
    local name = os.tmpname()
    tmp_files[#tmp_files + 1] = name
    return name
end

function helper.cleanup()
    for _, f in ipairs(tmp_files) do
        os.remove(f)
    end
    tmp_files = {}
end

function helper.read(path)
    local f = io.open(path, "r")
    if not f then
        return nil
    end
    local text = f:read("a")
    f:close()
    return text
end

function helper.write(path, text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
end

-- A temporary Lua script with the given source.
function helper.lua_file(source)
    local path = helper.tmpname() .. ".lua"
    tmp_files[#tmp_files + 1] = path
    return helper.write(path, source)
end

function helper.quote(s)
    return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- The sanitizers of this build, as meson's b_sanitize ("address,undefined",
-- "thread"), or nil (tests/sanitizers/).
function helper.sanitizer()
    return os.getenv("LUAHOST_SANITIZE")
end

-- In a sanitizer build (tests/sanitizers/), the variables that preload
-- its runtime into QEMU and say where reports go, as NAME=VALUE words
-- for env(1); "" otherwise. For a command run with a cleared environment.
function helper.sanitizer_env()
    local words = {}
    for _, name in ipairs({ "LD_PRELOAD", "LUAHOST_SANITIZER_RUNTIME", "QEMU_UNSET_ENV",
                            "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS" }) do
        local value = os.getenv(name)
        if value ~= nil then
            words[#words + 1] = helper.quote(name .. "=" .. value)
        end
    end
    return table.concat(words, " ")
end

-- In a sanitizer build: UBSan's reports, which reach stderr only (GCC's
-- libubsan cannot write to a log_path beside ASan's runtime), copied into
-- the test's report directory for the test sanitizer-reports.
local ubsan_copies = 0
local function keep_ubsan_reports(stderr)
    local dir = os.getenv("LUAHOST_SANITIZER_LOGS")
    if dir == nil or stderr == nil or not stderr:find(": runtime error: ", 1, true) then
        return
    end
    ubsan_copies = ubsan_copies + 1
    os.execute("mkdir -p " .. helper.quote(dir))
    helper.write(("%s/ubsan.stderr.%d.%d"):format(dir, os.time(), ubsan_copies), stderr)
end

-- Runs a shell command; returns exit status, stdout, stderr.
function helper.sh(cmd)
    local out, err = helper.tmpname(), helper.tmpname()
    local _, how, code = os.execute(("{ %s\n} >%s 2>%s"):format(cmd, out, err))
    if how ~= "exit" then
        code = 128 + (code or 0)
    end
    local stderr = helper.read(err)
    keep_ubsan_reports(stderr)
    return code, helper.read(out), stderr
end

-- The luahost plugin argument: script and name=value pairs, in order.
function helper.luahost_plugin(script, args)
    local parts = { helper.plugin(), "script=" .. script }
    for _, a in ipairs(args or {}) do
        parts[#parts + 1] = a
    end
    return table.concat(parts, ",")
end

-- Runs qemu-ARCH on a guest with the given -plugin arguments. Returns a
-- table: status, stdout, stderr, log (the -d plugin log).
function helper.qemu(arch, plugins, guest_path, guest_args)
    return helper.qemu_with(arch, {}, plugins, guest_path, guest_args)
end

-- The machine the system guests are written for: the virt board with two
-- vCPUs, PSCI through HVC (no EL2/EL3), the PL011 UART on stdout. No NIC:
-- our qemu-system-aarch64 has no virtio-net-pci and would warn about it.
helper.system_args = { "-M", "virt", "-smp", "2", "-cpu", "cortex-a57",
    "-display", "none", "-monitor", "none", "-serial", "stdio", "-nic", "none" }

-- Runs qemu-system-aarch64 on a bare-metal guest (-kernel) with the given
-- -plugin arguments; args are extra QEMU options, after the defaults above
-- (a later -smp wins). Killed after 120 s, so a hung guest fails (status
-- 124) instead of hanging the suite. Returns what helper.qemu returns.
function helper.qemu_system(plugins, guest_path, args)
    local log = helper.tmpname()
    local cmd = { "timeout -k 10 120", helper.quote(env("QEMU_SYSTEM_AARCH64")) }
    for _, a in ipairs(helper.system_args) do
        cmd[#cmd + 1] = helper.quote(a)
    end
    for _, p in ipairs(plugins) do
        cmd[#cmd + 1] = "-plugin " .. helper.quote(p)
    end
    cmd[#cmd + 1] = "-d plugin -D " .. helper.quote(log)
    cmd[#cmd + 1] = "-kernel " .. helper.quote(guest_path)
    for _, a in ipairs(args or {}) do
        cmd[#cmd + 1] = helper.quote(a)
    end
    -- stdin from /dev/null: -serial stdio would read (and set up) a terminal.
    local status, stdout, stderr = helper.sh(table.concat(cmd, " ") .. " </dev/null")
    return { status = status, stdout = stdout, stderr = stderr, log = helper.read(log) or "" }
end

-- The address of a guest's global symbol, from its symbol table (the
-- system guests are linked at fixed addresses and print none).
function helper.nm(guest_path, symbol)
    local status, out, err = helper.sh(("%s --defined-only %s"):format(
        helper.quote(env("GUEST_NM")), helper.quote(guest_path)))
    assert(status == 0, "nm failed: " .. (err or ""))
    local hex = out:match("(%x+) %a " .. symbol:gsub("%p", "%%%0") .. "\n")
    return tonumber(assert(hex, "no symbol " .. symbol .. " in " .. guest_path), 16)
end

-- Runs a luahost script alone; its report goes to an outfile.
function helper.run_script(arch, script, args, guest_path, guest_args)
    local outfile = helper.tmpname()
    local all = { "outfile=" .. outfile }
    for _, a in ipairs(args or {}) do
        all[#all + 1] = a
    end
    local r = helper.qemu(arch, { helper.luahost_plugin(script, all) }, guest_path, guest_args)
    r.report = helper.read(outfile) or ""
    return r
end

-- Runs the luahost script at path on a guest, with other plugins in the
-- same run. opts: args (script arguments), guest_args, plugins (run
-- before ours), qemu_args (QEMU options before the plugins), status
-- (expected, default 0; false: any). Returns what helper.qemu returns
-- plus report (the outfile).
function helper.run_file(arch, path, guest, opts)
    opts = opts or {}
    local outfile = helper.tmpname()
    local plugins = {}
    for _, p in ipairs(opts.plugins or {}) do
        plugins[#plugins + 1] = p
    end
    local all = { "outfile=" .. outfile }
    for _, a in ipairs(opts.args or {}) do
        all[#all + 1] = a
    end
    plugins[#plugins + 1] = helper.luahost_plugin(path, all)
    local r = helper.qemu_with(arch, opts.qemu_args or {}, plugins, guest, opts.guest_args)
    r.report = helper.read(outfile) or ""
    if opts.status ~= false then
        assert(r.status == (opts.status or 0),
            ("qemu exited with %d\n%s"):format(r.status, r.stderr))
    end
    return r
end

-- helper.run_file for a run with libmem.so region-summary=on among the
-- plugins. mem.c aborts QEMU on an access that crosses one of its 16 KiB
-- regions (docs/scripts/mem.md); where the guest's stack lies, and so
-- whether one of its unaligned accesses crosses, changes from run to run
-- (ASLR): such a run is made again, up to 5 times.
helper.REGION_ABORT = "assertion failed: (offset + size <= region_size)"

function helper.run_file_with_libmem_regions(arch, path, guest, opts)
    local tries = {}
    for k, v in pairs(opts or {}) do
        tries[k] = v
    end
    tries.status = false
    for _ = 1, 5 do
        local r = helper.run_file(arch, path, guest, tries)
        if not (r.status == 134 and r.stderr:find(helper.REGION_ABORT, 1, true)) then
            luassert.are.equal(0, r.status, r.stderr)
            return r
        end
    end
    error("mem.c aborted on an access across its regions 5 times")
end

-- The same with Lua source instead of a file.
function helper.run_lua(arch, source, guest, opts)
    return helper.run_file(arch, helper.lua_file(source), guest, opts)
end

-- The address NAME=0x... a guest printed, as an integer.
function helper.printed_address(stdout, name)
    local hex = stdout:match(name .. "=0x(%x+)")
    return tonumber(assert(hex, "guest did not print " .. name), 16)
end

-- The hot_loop_head address a guest printed, as an integer.
function helper.hot_loop_head(stdout)
    local hex = assert(stdout:match("hot_loop_head=0x(%x+)"), "guest did not print hot_loop_head")
    return tonumber(hex, 16)
end

-- Two top-N lists of the same run, a C plugin's and ours, each sorted by
-- row[count], largest first. Their counts must be the same sequence, and
-- the rows above the last row's count the same rows (key(row), as a
-- multiset); rows tied at the last count may differ, because the C
-- plugins order equal counts by their hash tables. Returns the number of
-- rows above that count.
function helper.assert_same_top_rows(title, c_rows, lua_rows, count, key)
    luassert.are.equal(#c_rows, #lua_rows, title .. ": row count")
    for i, row in ipairs(c_rows) do
        luassert.are.equal(row[count], lua_rows[i][count], title .. ": count of row " .. i)
        luassert.is_true(i == 1 or c_rows[i - 1][count] >= row[count], title .. ": C rows sorted")
    end
    local cut, above, n_above = c_rows[#c_rows] and c_rows[#c_rows][count], {}, 0
    for _, row in ipairs(c_rows) do
        if row[count] > cut then
            above[key(row)] = (above[key(row)] or 0) + 1
            n_above = n_above + 1
        end
    end
    for _, row in ipairs(lua_rows) do
        if row[count] > cut then
            local k = key(row)
            luassert.is_true((above[k] or 0) > 0, title .. ": row not in the C report: " .. k)
            above[k] = above[k] - 1
        end
    end
    return n_above
end

-- Runs the system guest sys with QEMU's libmem.so (print-accesses=on) and
-- the luahost script source (args: its arguments) in the same run, and
-- checks that both printed the same accesses. The two vCPUs interleave
-- differently in the two outputs, so the lines are compared sorted.
-- Returns luahost's report.
function helper.assert_system_accesses_as_libmem(source, args)
    local outfile = helper.tmpname()
    local all = { "outfile=" .. outfile }
    for _, a in ipairs(args or {}) do
        all[#all + 1] = a
    end
    local r = helper.qemu_system({
        helper.c_plugin("tests/tcg/plugins/libmem.so") .. ",print-accesses=on",
        helper.luahost_plugin(helper.lua_file(source), all),
    }, helper.system_guest("sys", "aarch64"))
    luassert.are.equal(0, r.status, r.stderr)
    local report = helper.read(outfile) or ""
    local theirs = r.log:match("insn_vaddr,.*")
    luassert.is_truthy(theirs, r.log)
    luassert.is_true(#report > 10000)
    luassert.are.same(helper.sorted_lines(theirs), helper.sorted_lines(report))
    return report
end

-- The lines of text, sorted: for outputs whose vCPUs interleave differently.
function helper.sorted_lines(text)
    local lines = {}
    for line in text:gmatch("[^\n]+") do
        lines[#lines + 1] = line
    end
    table.sort(lines)
    return lines
end

helper.arches = { "x86_64", "aarch64", "riscv64" }

-- The dynamically linked guests of tests/guests/modules/ (PIE, -g, with
-- shared libraries of their own): name as built there, e.g.
-- "modprog-x86_64", "libmodlib-aarch64.so", "stripped/modprog-x86_64".
function helper.modules_guest(name)
    return env("GUEST_DIR") .. "/modules/" .. name
end

-- QEMU options a dynamically linked guest needs, by arch: aarch64 ones
-- and riscv64 ones find their loader and libraries in Debian's cross
-- sysroots.
helper.dynamic_qemu_args = {
    x86_64 = {},
    aarch64 = { "-L", "/usr/aarch64-linux-gnu" },
    riscv64 = { "-L", "/usr/riscv64-linux-gnu" },
}

-- helper.qemu with QEMU options (a list) before the plugins.
function helper.qemu_with(arch, qemu_args, plugins, guest_path, guest_args)
    local log = helper.tmpname()
    local cmd = { helper.quote(helper.qemu_build() .. "/qemu-" .. arch) }
    for _, a in ipairs(qemu_args) do
        cmd[#cmd + 1] = helper.quote(a)
    end
    for _, p in ipairs(plugins) do
        cmd[#cmd + 1] = "-plugin " .. helper.quote(p)
    end
    cmd[#cmd + 1] = "-d plugin -D " .. helper.quote(log)
    cmd[#cmd + 1] = helper.quote(guest_path)
    for _, a in ipairs(guest_args or {}) do
        cmd[#cmd + 1] = helper.quote(a)
    end
    local status, stdout, stderr = helper.sh(table.concat(cmd, " "))
    return { status = status, stdout = stdout, stderr = stderr, log = helper.read(log) or "" }
end

-- helper.run_file for a dynamically linked guest: QEMU gets
-- helper.dynamic_qemu_args[arch]. opts as there.
function helper.run_dynamic_file(arch, path, guest, opts)
    local with_args = { qemu_args = helper.dynamic_qemu_args[arch] }
    for k, v in pairs(opts or {}) do
        with_args[k] = v
    end
    return helper.run_file(arch, path, guest, with_args)
end

-- The same with Lua source instead of a file.
function helper.run_dynamic_lua(arch, source, guest, opts)
    return helper.run_dynamic_file(arch, helper.lua_file(source), guest, opts)
end

-- A binutils program for arch's files: "nm", "readelf", "addr2line".
function helper.binutil(arch, tool)
    return arch .. "-linux-gnu-" .. tool
end

-- The defined symbols of an ELF file, from nm -S (dynamic: nm -D, the
-- .dynsym only): a list of { name, addr, size (nil when nm shows none),
-- type (nm's letter) }.
function helper.elf_symbols(arch, path, dynamic)
    local status, out, err = helper.sh(("%s -S --defined-only %s %s"):format(
        helper.binutil(arch, "nm"), dynamic and "-D" or "", helper.quote(path)))
    assert(status == 0, "nm failed: " .. (err or ""))
    local syms = {}
    for line in out:gmatch("[^\n]+") do
        local addr, size, kind, name = line:match("^(%x+) (%x+) (%a) (%S+)$")
        if not addr then
            addr, kind, name = line:match("^(%x+) (%a) (%S+)$")
        end
        if addr then
            syms[#syms + 1] = { name = name, addr = tonumber(addr, 16),
                size = size and tonumber(size, 16), type = kind }
        end
    end
    return syms
end

-- The number of instructions from symbol from (included) to symbol to
-- (excluded) of a guest, as binutils' objdump disassembles them.
function helper.insns_between(arch, path, from, to)
    local status, out, err = helper.sh(("%s -d --no-show-raw-insn %s"):format(
        helper.binutil(arch, "objdump"), helper.quote(path)))
    assert(status == 0, "objdump failed: " .. (err or ""))
    local first = tonumber(assert(out:match("\n(%x+) <" .. from:gsub("%p", "%%%0") .. ">:"), "no " .. from), 16)
    local last = tonumber(assert(out:match("\n(%x+) <" .. to:gsub("%p", "%%%0") .. ">:"), "no " .. to), 16)
    local n = 0
    for addr in out:gmatch("\n *(%x+):\t") do
        local a = tonumber(addr, 16)
        if a >= first and a < last then
            n = n + 1
        end
    end
    return n
end

-- The PT_LOAD program headers of an ELF file, in file order, from
-- readelf -lW: a list of { offset, vaddr, filesz, memsz }.
function helper.elf_loads(arch, path)
    local status, out, err = helper.sh(("%s -lW %s"):format(helper.binutil(arch, "readelf"), helper.quote(path)))
    assert(status == 0, "readelf failed: " .. (err or ""))
    local loads = {}
    for offset, vaddr, filesz, memsz in out:gmatch("\n%s*LOAD%s+0x(%x+)%s+0x(%x+)%s+0x%x+%s+0x(%x+)%s+0x(%x+)") do
        loads[#loads + 1] = { offset = tonumber(offset, 16), vaddr = tonumber(vaddr, 16),
            filesz = tonumber(filesz, 16), memsz = tonumber(memsz, 16) }
    end
    assert(#loads > 0, "no PT_LOAD in " .. path)
    return loads
end

-- The meson build directory under test (the one holding the plugin).
function helper.build_root()
    return (helper.plugin():gsub("/host/libluahost%.so$", ""))
end

-- The build directory's configured copy of the luahost launcher
-- (tools/meson.build): its plugin, the source tree's scripts, its QEMU.
function helper.build_launcher()
    return helper.build_root() .. "/tools/luahost"
end

-- Every address nm gives each defined symbol of a guest: names[name] =
-- { addr, ... } (a local name may be defined in several files).
function helper.nm_names(guest_path)
    local status, out, err = helper.sh(("%s --defined-only %s"):format(
        helper.quote(env("GUEST_NM")), helper.quote(guest_path)))
    assert(status == 0, "nm failed: " .. (err or ""))
    local names = {}
    for hex, name in out:gmatch("(%x+) %a (%S+)\n") do
        names[name] = names[name] or {}
        table.insert(names[name], tonumber(hex, 16))
    end
    return names
end

-- luahost.describe's name of addr in a static guest (bias 0) is right:
-- SYMBOL[+0xN] with SYMBOL at addr - N by nm, or GUEST+0xN with N = addr.
function helper.assert_location(names, guest_path, addr, location)
    local name, offset = location:match("^(.-)%+0x(%x+)$")
    name, offset = name or location, tonumber(offset or "0", 16)
    if name == guest_path:match("[^/]*$") then
        luassert.are.equal(addr, offset, location)
        return
    end
    for _, at in ipairs(names[name] or {}) do
        if at + offset == addr then
            return
        end
    end
    error(("0x%x named %s, which nm does not place there"):format(addr, location), 2)
end

-- The NAME=VALUE fields of a report line, as a table of strings.
function helper.fields(line)
    local t = {}
    for k, v in line:gmatch("([%w_]+)=(%S+)") do
        t[k] = v
    end
    return t
end

return helper
