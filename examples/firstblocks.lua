-- firstblocks: the first N translation blocks the program executed, in
-- order: vCPU, address, symbol, instructions. One Lua callback per block
-- execution until N are seen.
--
--   n=N                    blocks to show (default 20)
--   format=text|csv|json   report format (default: text)
local report = require("report")

local opt = luahost.args { n = 20, format = report.format_arg() }

local rows = {}

local function on_exec(vcpu, block)
    if #rows < opt.n then
        rows[#rows + 1] = { vcpu, ("0x%x"):format(block.vaddr), block.symbol, block.insns }
    end
end

luahost.on_tb_translate(function(tb)
    if #rows < opt.n then
        local first = tb:insn(1)
        tb:on_exec(on_exec, { vaddr = tb:vaddr(), symbol = first:symbol() or "?", insns = #tb })
    end
end)

luahost.on_exit(function()
    luahost.outs(report.render(opt.format, { "vcpu", "pc", "symbol", "insns" }, rows))
end)
