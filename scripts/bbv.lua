-- bbv: basic block vectors for SimPoint. A port of QEMU's
-- contrib/plugins/bbv.c (QEMU 10.0 and 10.2): the same arguments and the
-- same files. Every INTERVAL instructions a vCPU executes, one line is
-- added to its file OUTFILE.N.bb: "T" then ":INDEX:COUNT " for each block
-- that executed in the interval, COUNT its instructions executed there,
-- INDEX the block's number (from 1) in order of first translation. The
-- last, partial interval is not written (as in bbv.c). bbv.c lists the
-- blocks of a line in its hash table's order, this port in index order:
-- the same vector.
--
--   outfile=PATH      required: the files' prefix (a file PATH is created
--                     too, empty: outfile= is also the host's argument)
--   interval=N        instructions per vector (default 100000000)
--
-- Counting is inline (QEMU adds, no Lua per block); Lua runs once per
-- interval, as bbv.c's C does.

-- outfile= is also the host's argument (where luahost.outs writes): the
-- host takes it first and tells the script (luahost.outfile).
local opt = luahost.args {
    interval = luahost.args.u64(100000000),
}
opt.outfile = luahost.outfile
if opt.outfile == nil then
    luahost.usage_error("outfile unspecified")
end
if opt.interval == 0 then
    luahost.usage_error("interval must be at least 1")
end

local count = luahost.scoreboard()      -- instructions in the vCPU's current interval

local new_entry = require("entries").new      -- a scoreboard entry per block

local blocks = {}       -- in order of first translation: the entry counting it per vCPU
local block_of = {}     -- vaddr -> entry
local files = {}        -- vCPU index -> file

-- A vCPU index QEMU gives again (a guest thread after one that ended)
-- goes on in the same file: bbv.c opens it again, and its two FILEs then
-- write over each other.
luahost.on_vcpu_init(function(vcpu)
    if not files[vcpu] then
        files[vcpu] = io.open(("%s.%d.bb"):format(opt.outfile, vcpu), "w")
    end
end)

local function interval_done(vcpu)
    local file = files[vcpu]
    if not file then
        return
    end
    count:set(vcpu, count:get(vcpu) - opt.interval)
    local line = { "T" }
    for index, entry in ipairs(blocks) do
        local n = entry:get(vcpu)
        if n ~= 0 then
            line[#line + 1] = (":%d:%d "):format(index, n)
            entry:set(vcpu, 0)
        end
    end
    line[#line + 1] = "\n"
    file:write(table.concat(line))
end

luahost.on_tb_translate(function(tb)
    local vaddr = tb:vaddr()
    local entry = block_of[vaddr]
    if not entry then
        entry = new_entry()
        block_of[vaddr] = entry
        blocks[#blocks + 1] = entry
    end
    local n = tb:n_insns()
    tb:inline("add", count, n)
    tb:inline("add", entry, n)
    tb:on_exec_if(count, "ge", opt.interval, interval_done)
end)

luahost.on_exit(function()
    for _, file in pairs(files) do
        file:close()
    end
end)
