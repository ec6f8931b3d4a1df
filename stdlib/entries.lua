-- entries: scoreboard entries one at a time, for a key each (a block, a
-- symbol, a map's key), taken from boards of 64 fields: one QEMU
-- scoreboard per 64 keys rather than one per key (each is per-vCPU
-- memory, and grows with every new vCPU).
--
--     local entries = require("entries")
--     local e = entries.new()      -- e:get(vcpu), e:add(vcpu, n), e:sum(); tb:inline("add", e, 1)
local entries = {}

local FIELDS = 64
local pool = {}

function entries.new()
    if #pool == 0 then
        local names = {}
        for i = 1, FIELDS do
            names[i] = "f" .. i
        end
        local board = require("luahost").scoreboard(names)
        for i = FIELDS, 1, -1 do
            pool[#pool + 1] = board["f" .. i]
        end
    end
    return table.remove(pool)
end

-- Forgets the pool (for tests).
function entries._reset()
    pool = {}
end

return entries
