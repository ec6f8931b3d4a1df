-- luahost: the public API scripts see, as the global `luahost` and as
-- require("luahost"). Built here on the host's private raw table, which
-- scripts never reach. See docs/api.md.
local raw, args, compat = ...

local luahost = {}
local getinfo = debug.getinfo       -- the script may take debug away

local function check_function(fn, what)
    if type(fn) ~= "function" then
        error(("%s expects a function, got %s"):format(what, type(fn)), 3)
    end
end

local function hook(event, api_name)
    return function(fn)
        check_function(fn, api_name)
        raw.register(event, fn)
    end
end

-- Lifecycle, translation and syscall events. Each may be given several
-- functions; they run in the order given.
luahost.on_exit = hook("atexit", "luahost.on_exit")
-- Report hooks run after every exit hook: printing what exit hooks filled
-- (agg's maps print here), whatever the order of registration.
luahost.on_report = hook("report", "luahost.on_report")

-- luahost.on_interval(seconds, fn): fn() every seconds of wall-clock time
-- while the guest runs (bpftrace's interval), off any vCPU.
function luahost.on_interval(seconds, fn)
    if type(seconds) ~= "number" then
        error("luahost.on_interval expects a number of seconds, got " .. type(seconds), 2)
    elseif not (seconds >= 0.01 and seconds <= 86400) then
        error("bad argument #1 to 'on_interval' (interval must be 0.01 to 86400 seconds)", 2)
    end
    check_function(fn, "luahost.on_interval")
    raw.on_interval(seconds, fn)
end
luahost.on_vcpu_init = hook("vcpu_init", "luahost.on_vcpu_init")
luahost.on_vcpu_exit = hook("vcpu_exit", "luahost.on_vcpu_exit")
luahost.on_vcpu_idle = hook("vcpu_idle", "luahost.on_vcpu_idle")
luahost.on_vcpu_resume = hook("vcpu_resume", "luahost.on_vcpu_resume")
-- Under LuaJIT, translation hooks run interpreted: they are mostly calls
-- into the host, which LuaJIT cannot compile, and its attempts to trace
-- around them cost about 12 us per translated block (measured on xz; 1 us
-- interpreted). Functions they call are compiled as usual.
function luahost.on_tb_translate(fn)
    check_function(fn, "luahost.on_tb_translate")
    if jit and getinfo(fn, "S").what ~= "C" then     -- coroutine.wrap(f) is a C function
        jit.off(fn, true)
    end
    raw.register("tb_trans", fn)
end
luahost.on_flush = hook("flush", "luahost.on_flush")
-- luahost.on_syscall_filter(fn) (QEMU 11.0, user mode): fn(vcpu, num,
-- a1, ..., a8) before each syscall; a result other than nil skips the
-- syscall, and the guest gets that integer as its return value.
function luahost.on_syscall_filter(fn)
    check_function(fn, "luahost.on_syscall_filter")
    raw.register("syscall_filter", function(...)
        local ret = fn(...)
        if ret ~= nil then
            if type(ret) ~= "number" and type(ret) ~= "cdata" then
                error(("luahost.on_syscall_filter: the filter returned a %s, not an integer (or nil)")
                    :format(type(ret)), 0)
            end
            raw.skip_syscall(ret)
        end
    end)
end
luahost.on_syscall = hook("syscall", "luahost.on_syscall")
luahost.on_syscall_return = hook("syscall_ret", "luahost.on_syscall_return")

-- What this build of luahost and the QEMU it runs in can do beyond the
-- plugin API of QEMU 10.0: luahost.has("write_memory").
local features = raw.features
features.code_layout = raw.have_code_layout

function luahost.has(feature)
    if type(feature) ~= "string" then
        error("luahost.has expects a feature name, got " .. type(feature), 2)
    end
    return features[feature] == true
end

local NEEDS = {
    discontinuity = "QEMU 10.2", set_pc = "QEMU 11.0", readonly_registers = "QEMU 11.0",
    syscall_filter = "QEMU 11.0",
}

local function requires(feature, api_name)
    if not features[feature] then
        error(("%s needs %s or later; this luahost was built against an older qemu-plugin.h (API %d)")
            :format(api_name, NEEDS[feature] or "QEMU 10.1", raw.info.plugin_version), 3)
    end
end

-- Discontinuities (QEMU 10.2): kinds is a list of "interrupt",
-- "exception", "hostcall", or nil for all of them.
local DISCON_KINDS = { interrupt = 1, exception = 2, hostcall = 4 }

-- The metatable of luahost.scoreboard's boards (defined below).
local Board = {}

-- on_discontinuity(board [, kinds]): the host adds 1 to the board's
-- field named after each discontinuity's kind, without calling Lua.
local function count_discontinuities(board, mask)
    local entries = {}
    for kind, bit in pairs(DISCON_KINDS) do
        if mask % (2 * bit) >= bit then
            entries[bit] = rawget(board, kind)
            if entries[bit] == nil and mask ~= 7 then
                error(("luahost.on_discontinuity: the scoreboard has no field %s to count into"):format(kind), 3)
            end
        end
    end
    if entries[1] == nil and entries[2] == nil and entries[4] == nil then
        error("luahost.on_discontinuity: the scoreboard has no field interrupt, exception or hostcall", 3)
    end
    raw.count_discon(entries[1], entries[2], entries[4])
end

function luahost.on_discontinuity(fn, kinds)
    if type(fn) ~= "function" and getmetatable(fn) ~= Board then
        error("luahost.on_discontinuity expects a function or a scoreboard, got " .. type(fn), 2)
    end
    requires("discontinuity", "luahost.on_discontinuity")
    local mask = 0
    if kinds == nil then
        mask = 7
    elseif type(kinds) == "table" then
        for _, kind in ipairs(kinds) do
            local bit = DISCON_KINDS[kind]
            if not bit then
                error(("luahost.on_discontinuity: unknown kind %s (expected interrupt, exception or hostcall)")
                    :format(tostring(kind)), 2)
            end
            if mask % (2 * bit) < bit then
                mask = mask + bit
            end
        end
    else
        error("luahost.on_discontinuity expects a list of kinds, got " .. type(kinds), 2)
    end
    if type(fn) == "table" then
        count_discontinuities(fn, mask)
        return
    end
    raw.register("discon", fn, mask)
end

-- Reset drops every hook and callback (QEMU retranslates everything);
-- uninstall unloads the plugin. Both finish later; fn() runs then. Both
-- act on the whole plugin, so on every script of the run: refused when
-- the run has several.
local function alone(api_name)
    if raw.scripts_in_run > 1 then
        error(("%s: not available when several scripts share the run (it would drop the other "
            .. "scripts' hooks too)"):format(api_name), 3)
    end
end

function luahost.reset(fn)
    if fn ~= nil then
        check_function(fn, "luahost.reset")
    end
    alone("luahost.reset")
    raw.reset(fn)
end

function luahost.uninstall(fn)
    if fn ~= nil then
        check_function(fn, "luahost.uninstall")
    end
    alone("luahost.uninstall")
    raw.uninstall(fn)
end

-- Ends the process with status (0-255) once every plugin's exit callbacks,
-- this script's exit hooks included, have run: a C plugin's exit().
function luahost.exit(status)
    if type(status) ~= "number" or status ~= math.floor(status) or status < 0 or status > 255 then
        error("bad argument #1 to 'exit' (exit status must be 0 to 255)", 2)
    end
    raw.exit(status)
end

function luahost.vcpu_for_each(fn)
    check_function(fn, "luahost.vcpu_for_each")
    raw.vcpu_for_each(fn)
end

-- What QEMU told the plugin at install time.
luahost.info = {}
for k, v in pairs(raw.info) do
    luahost.info[k] = v
end

luahost.num_vcpus = raw.num_vcpus
-- luahost.disassemble(bytes, vaddr): insn:disas()'s text for bytes kept
-- from insn:data(), at any time; nil where only QEMU can disassemble.
luahost.disassemble = raw.disassemble

-- The guest, through the current vCPU (valid in callbacks on a vCPU).
luahost.read_memory = raw.read_memory
-- luahost.set_pc(vaddr) (QEMU 11.0): from an exec callback registered with
-- regs = "pc", the vCPU resumes at vaddr once the callback returns.
luahost.set_pc = raw.set_pc
luahost.path_to_binary = raw.path_to_binary
luahost.start_code = raw.start_code
luahost.end_code = raw.end_code
luahost.entry_code = raw.entry_code

for _, name in ipairs({ "write_memory", "read_memory_hwaddr", "write_memory_hwaddr",
                        "translate_vaddr" }) do
    luahost[name] = raw[name] or function()
        requires(name, "luahost." .. name)
    end
end

-- Modules and symbols (host/modules.c): what is mapped in the guest, and
-- what an address is in it. See docs/api.md, "Modules and symbols".
luahost.modules = raw.modules
luahost.module_at = raw.module_at
luahost.symbolize = raw.symbolize
luahost.modules_generation = raw.modules_generation
luahost.line_table = raw.line_table

function luahost.on_module(fn)
    check_function(fn, "luahost.on_module")
    raw.on_module(fn)
end

-- luahost.parse_location(text [, base]): what text names, without
-- looking it up: { address = u64 } for a number (base as for
-- luahost.args.parse_u64), else { module, symbol, offset } (module or
-- symbol may be nil: MODULE+0xOFF and SYMBOL+0xOFF read alike, and are
-- told apart by resolve). nil and why (without text) for text of no such
-- form, and for text that starts with a digit but is no number.
function luahost.parse_location(text, base)
    if type(text) ~= "string" then
        error("luahost.parse_location expects a string, got " .. type(text), 2)
    end
    local addr, not_number = args.parse_u64(text, base)
    if addr then
        return { address = addr }
    elseif text:match("^%d") then      -- names never start with a digit
        return nil, not_number
    end
    local module, rest = text:match("^([^!]+)!(.+)$")
    local name, offset_text = (rest or text):match("^([^+!]+)%+([^+!]+)$")
    name = name or rest or text
    local offset = 0
    if offset_text then
        offset = args.parse_u64(offset_text)
    end
    if not offset or name:find("[!+]") or name == "" then
        return nil, "expected an address, SYMBOL[+0xOFF], MODULE!SYMBOL[+0xOFF] or MODULE+0xOFF"
    end
    return { module = module, symbol = name, offset = offset, either = not module and offset_text ~= nil }
end

-- luahost.resolve(text [, base]): the guest address text names (see
-- parse_location), its module and the symbol's size (0 when unknown or
-- no symbol). OFF in MODULE+0xOFF is the ELF address in the module, as
-- addr2line and objdump show it. A symbol is looked up in the modules by
-- address, global definitions before local ones. nil and why when
-- nothing mapped now matches.
function luahost.resolve(text, base)
    if type(text) ~= "string" then
        error("luahost.resolve expects a string, got " .. type(text), 2)
    end
    local loc, why = luahost.parse_location(text, base)
    if not loc then
        return nil, ("%s: %s"):format(text, why)
    elseif loc.address then
        return loc.address
    end
    local found, where, size = raw.resolve(loc.module, loc.symbol, loc.offset)
    if not found and loc.either then
        found, where, size = raw.resolve(loc.symbol, nil, loc.offset)   -- MODULE+0xOFF
        if not found then
            where = "no mapped module defines it, nor is a module of that name mapped"
        end
    end
    if not found then
        return nil, ("%s: %s"):format(text, where)
    end
    return found, where, size
end

-- luahost.warn(text): "luahost: warning: text" on stderr, at once.
function luahost.warn(text)
    if type(text) ~= "string" then
        error("luahost.warn expects a string, got " .. type(text), 2)
    end
    raw.warn(text)
end

-- luahost.describe(addr): "symbol+0xOFF", "module+0xOFF" (no symbol) or
-- "0xADDR" (no module): a name that stays the same from run to run.
function luahost.describe(addr)
    if type(addr) ~= "number" and type(addr) ~= "cdata" then
        error("luahost.describe expects an address, got " .. type(addr), 2)
    end
    local s = raw.symbolize(addr)
    if not s then
        return ("0x%x"):format(addr)
    elseif s.symbol then
        if s.symbol_offset == 0 then
            return s.symbol
        end
        return ("%s+0x%x"):format(s.symbol, s.symbol_offset)
    end
    return ("%s+0x%x"):format(s.module, s.offset)
end

-- Time control: system emulation only, one plugin, once.
luahost.request_time_control = raw.request_time_control
luahost.time_ns = raw.time_ns       -- the host's wall clock, ns since the epoch

-- Registers. QEMU hands out one handle per register, the same for every
-- vCPU and for the whole run; reads and writes act on the vCPU whose
-- callback is running. Values are in the target's byte order.
local BIG_ENDIAN_TARGETS = {
    aarch64_be = true, armeb = true, hppa = true, m68k = true, microblaze = true,
    mips = true, mips64 = true, mipsn32 = true, or1k = true, ppc = true, ppc64 = true,
    s390x = true, sh4eb = true, sparc = true, sparc32plus = true, sparc64 = true,
    xtensaeb = true,
}
local big_endian = BIG_ENDIAN_TARGETS[raw.info.target_name] == true
local handle_of = setmetatable({}, { __mode = "k" })

local Register = {}
Register.__index = Register

function Register:read()
    local handle = handle_of[self]
    if not handle then
        error("register:read expects a register from luahost.registers()", 2)
    end
    return raw.read_register(handle, big_endian)
end

function Register:write(value)
    local handle = handle_of[self]
    if not handle then
        error("register:write expects a register from luahost.registers()", 2)
    end
    requires("write_register", "register:write")
    if self.readonly then
        error(("register:write: %s is read-only (QEMU says so; luahost.set_pc sets the PC)")
            :format(self.name), 2)
    end
    return raw.write_register(handle, value, big_endian)
end

function Register:__tostring()
    return "register " .. self.name
end

-- luahost.registers(): the current vCPU's registers, in QEMU's order,
-- each { name = "rax", feature = "org.gnu.gdb.i386.core" } with read/write.
function luahost.registers()
    local list = raw.get_registers()
    for i, d in ipairs(list) do
        local reg = setmetatable({ name = d.name, feature = d.feature, readonly = d.readonly }, Register)
        handle_of[reg] = d.handle
        list[i] = reg
    end
    return list
end

-- luahost.fpcalls{ register = reg, on_records = fn [, traces = 1]
-- [, capacity = 65536] [, level_fields = { { reg, shift, width }, ... },
-- on_level = fn] }: calls and returns followed by the frame pointer reg
-- (from luahost.registers()) at the instructions the script watches, as
-- uftrace's 16-byte records, in C (host/fpcalls.c; docs/api.md); with
-- level_fields, on_level(vcpu, pc) when those bits change.
local FPCALLS_OPTIONS = { register = "table", on_records = "function", traces = "number", capacity = "number",
    level_fields = "table", on_level = "function" }

-- level_fields as the host takes them: { { handle, shift, width }, ... }.
local function level_field_handles(fields)
    local out = {}
    for i, f in ipairs(fields) do
        local handle, shift, width
        if type(f) == "table" then
            handle, shift, width = handle_of[f[1]], f[2], f[3]
        end
        if not handle or type(shift) ~= "number" or type(width) ~= "number" or shift % 1 ~= 0 or width % 1 ~= 0
            or shift < 0 or width < 1 or shift + width > 64 then
            error(("luahost.fpcalls: level_fields[%d] must be { register, shift, width }, bits within 0 to 63")
                :format(i), 3)
        end
        out[i] = { handle, shift, width }
    end
    if #out < 1 or #out > 8 then
        error(("luahost.fpcalls: level_fields must list 1 to 8 fields, got %d"):format(#out), 3)
    end
    return out
end

function luahost.fpcalls(options)
    if type(options) ~= "table" then
        error("luahost.fpcalls expects a table of options, got " .. type(options), 2)
    end
    for key, value in pairs(options) do
        local want = FPCALLS_OPTIONS[key]
        if not want then
            error(("luahost.fpcalls: unknown option %s (expected register, on_records, traces, capacity, "
                .. "level_fields, on_level)")
                :format(tostring(key)), 2)
        elseif type(value) ~= want then
            error(("luahost.fpcalls: option %s must be a %s, got %s"):format(key, want, type(value)), 2)
        end
    end
    local handle = options.register and handle_of[options.register]
    if not handle then
        error("luahost.fpcalls: option register (a register from luahost.registers()) is required", 2)
    end
    if not options.on_records then
        error("luahost.fpcalls: option on_records (a function) is required", 2)
    end
    local traces, capacity = options.traces or 1, options.capacity or 65536
    if traces % 1 ~= 0 or traces < 1 or traces > 64 then
        error(("luahost.fpcalls: traces must be an integer from 1 to 64, got %s"):format(traces), 2)
    end
    if capacity % 1 ~= 0 or capacity < 1 or capacity > 16777216 then
        error(("luahost.fpcalls: capacity must be an integer from 1 to 2^24, got %s"):format(capacity), 2)
    end
    if (options.level_fields == nil) ~= (options.on_level == nil) then
        error("luahost.fpcalls: options level_fields and on_level go together", 2)
    end
    local fields = options.level_fields and level_field_handles(options.level_fields)
    local calls = raw.fpcalls_new(handle, traces, capacity, options.on_records, fields, options.on_level)
    return calls
end

-- Where luahost.outs writes: QEMU's plugin log (shown with -d plugin, or
-- -d plugin -D FILE), or the file of the host argument outfile=.
local write = raw.outs

-- luahost.pid(): this process's id (the guest's: QEMU runs it in its own
-- process); a forked child has its own.
luahost.pid = raw.getpid

-- Called by boot for outfile=: where this script's output goes instead.
function luahost._set_writer(fn)
    write = fn
end

function luahost.outs(text)
    if type(text) ~= "string" then
        error("luahost.outs expects a string, got " .. type(text), 2)
    end
    write(text)
end

function luahost.printf(fmt, ...)
    local ok, text = pcall(string.format, fmt, ...)
    if not ok then
        error("luahost.printf: " .. text, 2)
    end
    write(text)
end

-- luahost.callstack(max_depth): the host's shadow call stacks (the
-- mechanism; stdlib/callstack.lua is the module to use).
luahost.callstack = raw.callstack_new

-- luahost.count_blocks() (main chunk), luahost.block_counts(): every
-- translated block with its executions, counted inline by QEMU (host/blocks.c).
luahost.count_blocks = raw.count_blocks
luahost.block_counts = raw.block_counts

-- luahost.shadow{ region = N, on_unseen = fn }: stores mirrored and loads
-- checked against them in C, per region of N bytes (host/shadow.c).
local SHADOW_OPTIONS = { region = "number", on_unseen = "function" }

function luahost.shadow(options)
    if type(options) ~= "table" then
        error("luahost.shadow expects a table of options, got " .. type(options), 2)
    end
    for key, value in pairs(options) do
        local want = SHADOW_OPTIONS[key]
        if not want then
            error(("luahost.shadow: unknown option %s (expected region, on_unseen)"):format(tostring(key)), 2)
        elseif type(value) ~= want then
            error(("luahost.shadow: option %s must be a %s, got %s"):format(key, want, type(value)), 2)
        end
    end
    local size = options.region or 4096
    local power = 1     -- (no & in LuaJIT)
    while power < size and power < 2 ^ 30 do
        power = power * 2
    end
    if power ~= size then
        error(("luahost.shadow: region must be a power of two from 1 to 2^30, got %s"):format(size), 2)
    end
    return (raw.shadow_new(size, options.on_unseen))
end

-- luahost.tally{ [address = "virtual"|"physical"|"device"] [, block = 1]
-- [, key = "address"] [, key2 = "kind"] [, key3 = "none"] }: counters keyed
-- by up to three u64s, one table per vCPU, counted in C at memory accesses
-- and block executions (host/tally.c, docs/api.md "Tallies").
local TALLY_ADDRESSES = { virtual = true, physical = true, device = true }
local TALLY_OPTIONS = { address = true, block = true, key = true, key2 = true, key3 = true }
local TALLY_KEYS = { none = true, address = true, kind = true, device = true, paddr = true, pc = true, base = true }

function luahost.tally(options)
    options = options or {}
    if type(options) ~= "table" then
        error("luahost.tally expects a table of options, got " .. type(options), 2)
    end
    for key in pairs(options) do
        if not TALLY_OPTIONS[key] then
            error(("luahost.tally: unknown option %s (expected address, block, key, key2, key3)")
                :format(tostring(key)), 2)
        end
    end
    local address, block = options.address or "virtual", options.block or 1
    if not TALLY_ADDRESSES[address] then
        error(("luahost.tally: address must be \"virtual\", \"physical\" or \"device\", got %s")
            :format(tostring(address)), 2)
    end
    if type(block) ~= "number" or block < 1 or block > 2 ^ 52 or block % 1 ~= 0
            or 2 ^ math.floor(math.log(block, 2) + 0.5) ~= block then
        error(("luahost.tally: block must be a power of two from 1 to 2^52, got %s"):format(tostring(block)), 2)
    end
    local keys = { options.key or "address", options.key2 or "kind", options.key3 or "none" }
    for i, name in ipairs({ "key", "key2", "key3" }) do
        if not TALLY_KEYS[keys[i]] then
            error(("luahost.tally: %s must be one of address, kind, device, paddr, pc, base, none, got %s")
                :format(name, tostring(keys[i])), 2)
        end
    end
    local tally = raw.tally_new(address, block, keys[1], keys[2], keys[3])
    return tally
end

-- luahost.insn_mix(classify [, { key = "groups" }]): executed
-- instructions counted by class, classify(insn) naming an encoding's
-- scoreboard entry, a list of entries or false once (once per set of
-- capstone groups with key = "groups"); mix:count(tb) registers the adds
-- in C (host/insnmix.c, docs/api.md "Instruction mixes").
function luahost.insn_mix(classify, options)
    if type(classify) ~= "function" then
        error("luahost.insn_mix expects a function, got " .. type(classify), 2)
    end
    local key = "encoding"
    if options ~= nil then
        if type(options) ~= "table" then
            error("luahost.insn_mix: options must be a table, got " .. type(options), 2)
        end
        for name in pairs(options) do
            if name ~= "key" then
                error(("luahost.insn_mix: unknown option %s (expected key)"):format(tostring(name)), 2)
            end
        end
        key = options.key == nil and key or options.key
        if key ~= "encoding" and key ~= "groups" then
            error(('luahost.insn_mix: key must be "encoding" or "groups", got %s'):format(tostring(key)), 2)
        end
    end
    return (raw.insn_mix_new(classify, key == "groups"))
end

-- luahost.lockstep{ fd = N, on_diverge = fn, on_error = fn }: before
-- every block, exchange where we are with the peer on the stream socket
-- fd, in lockstep.c's format, calling Lua only when the two differ or
-- the socket fails (host/lockstep.c, docs/api.md "Lockstep").
function luahost.lockstep(options)
    if type(options) ~= "table" then
        error("luahost.lockstep expects a table of options, got " .. type(options), 2)
    end
    for key in pairs(options) do
        if key ~= "fd" and key ~= "on_diverge" and key ~= "on_error" then
            error(("luahost.lockstep: unknown option %s (expected fd, on_diverge, on_error)")
                :format(tostring(key)), 2)
        end
    end
    local fd = options.fd
    if type(fd) ~= "number" or fd < 0 or fd % 1 ~= 0 then
        error(("luahost.lockstep: fd must be a file descriptor (an integer), got %s"):format(tostring(fd)), 2)
    end
    for _, key in ipairs({ "on_diverge", "on_error" }) do
        if type(options[key]) ~= "function" then
            error(("luahost.lockstep: %s must be a function, got %s"):format(key, type(options[key])), 2)
        end
    end
    return (raw.lockstep_new(fd, options.on_diverge, options.on_error))
end

-- luahost.scoreboard(): one u64 per vCPU.
-- luahost.scoreboard{"hits", "misses"}: a per-vCPU struct; returns a
-- table of its fields by name. Each entry has get/set/add/sum and can be
-- the target of inline ops (tb:inline, insn:inline).
--
-- board:find(vcpu) gives one vCPU's struct as a live row: row.hits reads
-- the slot, row.hits = v writes it.
Board.__index = Board

-- A board's own keys are exactly its fields (methods come from Board).
function Board:find(vcpu)
    local board = self
    local function field(name)
        local entry = rawget(board, name)
        if entry == nil then
            error("no field " .. tostring(name) .. " in this scoreboard", 3)
        end
        return entry
    end
    return setmetatable({}, {
        __index = function(_, name) return field(name):get(vcpu) end,
        __newindex = function(_, name, value) field(name):set(vcpu, value) end,
    })
end

function luahost.scoreboard(fields)
    if fields == nil then
        return (raw.scoreboard_new(1))
    end
    if type(fields) ~= "table" or #fields == 0 or #fields > 64 then
        error("luahost.scoreboard expects nothing or a list of 1 to 64 field names", 2)
    end
    local entries = { raw.scoreboard_new(#fields) }
    local board = {}
    for i, name in ipairs(fields) do
        if type(name) ~= "string" or Board[name] or board[name] then
            error(("luahost.scoreboard: field name %s is not a string, reserved or repeated")
                :format(tostring(name)), 2)
        end
        board[name] = entries[i]
    end
    return setmetatable(board, Board)
end

-- Event streams: C records events into per-vCPU buffers, Lua reads them
-- in batches (lua/stream.lua, docs/api.md "Event streams").
-- One for the process, whatever the number of scripts (its FFI types and
-- the host's delivery function exist once).
raw.stream_module = raw.stream_module or raw.load_embedded("stream")(raw, compat)
local stream = raw.stream_module

function luahost.stream(options)
    local s = stream.new(options)   -- not a tail call: error levels count this frame
    return s
end

for name, kind in pairs(stream.kinds) do
    luahost[name] = kind
end
luahost.device_name = stream.device_name

-- Plugin arguments other than the host's own (script=, e=, on_error=, outfile=, stats=,
-- symbols=), as
-- "name=value" strings in the order given; filled in by boot.
luahost.argv = {}

-- luahost.args(spec) parses luahost.argv; luahost.args.bool etc. make specs.
luahost.args = setmetatable({}, {
    __index = args,
    __call = function(_, spec)
        -- not a tail call: the error level counts this frame
        local opt = args.parse(spec, luahost.argv, 2)
        return opt
    end,
})

luahost.usage_error = args.usage_error

return luahost
