-- between: instructions executed from one address to another: each time
-- a vCPU reaches `to` after `from`, the number of instructions it ran
-- from `from` (included) to `to` (excluded). QEMU counts instructions
-- inline; Lua runs only at the two addresses.
--
--   from=ADDR to=ADDR      addresses (0x...) or code named as SYMBOL[+0xOFF],
--                          MODULE!SYMBOL[+0xOFF] or MODULE+0xOFF, in any module
--   format=text|csv|json   report format (default: text, bpftrace's)
local agg = require("agg")
local addresses = require("addresses")
local report = require("report")

local opt = luahost.args { from = "", to = "", format = report.format_arg() }
agg.set_format(opt.format)
if opt.from == "" or opt.to == "" then
    luahost.usage_error("give from=ADDR and to=ADDR")
end
local from = addresses.set({ opt.from }, { what = "from" })
local to = addresses.set({ opt.to }, { what = "to" })

local icount = luahost.scoreboard()     -- instructions per vCPU
local started = {}                       -- vCPU -> icount at `from`
local distance = agg.stats("insns")
local hist = agg.hist("insns_hist")

local function at_from(vcpu)
    started[vcpu] = icount:get(vcpu)
end

local function at_to(vcpu)
    local start = started[vcpu]
    if start then
        local n = icount:get(vcpu) - start
        distance:add(n)
        hist:add(n)
        started[vcpu] = nil
    end
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        -- callbacks first: they see the count before this instruction
        local vaddr = insn:vaddr()
        if to:at(vaddr) then
            insn:on_exec(at_to)
        end
        if from:at(vaddr) then
            insn:on_exec(at_from)
        end
        insn:inline("add", icount, 1)
    end
end)
