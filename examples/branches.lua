-- branches: conditional branches, taken and not taken. A branch ends its
-- block; QEMU stores the branch's id in a per-vCPU slot as it executes,
-- and the next block calls Lua only when that slot is set: it was the
-- fall-through (not taken) or the target (taken). Each branch is named by
-- its location (luahost.describe: counted_loop+0x6, libc.so.6+0x2a1f0),
-- which stays the same from run to run.
--
--   limit=N                branches in the report, most executed first (default 20)
--   format=text|csv|json   report format (default: text)
local report = require("report")

local opt = luahost.args { limit = 20, format = report.format_arg() }
if opt.limit < 0 then
    luahost.usage_error(("limit must be at least 0: limit=%d"):format(opt.limit))
end

-- x86: jcc, jrcxz, loop (not jmp); aarch64: b.cond, cbz, cbnz, tbz, tbnz
local function is_conditional(mnemonic)
    return (mnemonic:match("^j") and not mnemonic:match("^jmp"))
        or mnemonic:match("^loop") or mnemonic:match("^b%.") or mnemonic:match("^c?bn?z$")
        or mnemonic:match("^tbn?z$")
end
if luahost.info.target_name == "riscv64" then
    -- beq, bnez, bltu, ...: every riscv64 mnemonic starting with b (j, jal, jr are not)
    is_conditional = function(mnemonic)
        return mnemonic:match("^b") ~= nil
    end
end

local pending = luahost.scoreboard()    -- per vCPU: id of the branch just run, 0 none
local branches = {}                     -- id -> record
local id_of = {}                        -- pc -> id

local function resolve(vcpu, vaddr)
    local b = branches[pending:get(vcpu)]
    pending:set(vcpu, 0)
    if vaddr == b.fall then
        b.not_taken = b.not_taken + 1
    else
        b.taken = b.taken + 1
    end
end

luahost.on_tb_translate(function(tb)
    tb:on_exec_if(pending, "ne", 0, resolve, tb:vaddr())
    local last = tb:insn(#tb)
    local disas = last:disas()
    if is_conditional(disas:match("^(%S+)") or "") then
        local pc = last:vaddr()
        local id = id_of[pc]
        if not id then
            id = #branches + 1
            id_of[pc] = id
            branches[id] = { pc = pc, fall = pc + last:size(), location = luahost.describe(pc),
                disas = disas, taken = 0, not_taken = 0 }
        end
        last:inline("store", pending, id)
    end
end)

luahost.on_exit(function()
    local sorted = {}
    for _, b in ipairs(branches) do
        sorted[#sorted + 1] = b
    end
    table.sort(sorted, function(a, b)
        local na, nb = a.taken + a.not_taken, b.taken + b.not_taken
        if na ~= nb then
            return na > nb
        end
        return a.pc < b.pc
    end)
    local rows = {}
    for i = 1, math.min(opt.limit, #sorted) do
        local b = sorted[i]
        rows[i] = { ("0x%x"):format(b.pc), b.location, b.disas, b.taken, b.not_taken }
    end
    luahost.outs(report.render(opt.format, { "pc", "location", "insn", "taken", "not_taken" }, rows))
end)
