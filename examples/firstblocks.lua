-- firstblocks: the first N translation blocks the program executed, in
-- order: vCPU, address, location, instructions. The location names the
-- code (luahost.describe: main, memcpy+0x1c, liblzma.so.5+0x1a2b, or the
-- address outside every module), the same from run to run. One Lua
-- callback per block execution until N are seen.
--
--   n=N                    blocks to show (default 20)
--   format=text|csv|json   report format (default: text)
local report = require("report")

local opt = luahost.args { n = 20, format = report.format_arg() }
if opt.n < 0 then
    luahost.usage_error(("n must be at least 0: n=%d"):format(opt.n))
end

local rows = {}

local function on_exec(vcpu, block)
    if #rows < opt.n then
        rows[#rows + 1] = { vcpu, ("0x%x"):format(block.vaddr), block.location, block.insns }
    end
end

luahost.on_tb_translate(function(tb)
    if #rows < opt.n then
        local vaddr = tb:vaddr()
        tb:on_exec(on_exec, { vaddr = vaddr, location = luahost.describe(vaddr), insns = #tb })
    end
end)

luahost.on_exit(function()
    luahost.outs(report.render(opt.format, { "vcpu", "pc", "location", "insns" }, rows))
end)
