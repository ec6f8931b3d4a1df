-- entries: scoreboard entries one at a time, for a key each (a block, a
-- symbol, a map's key), taken from boards of 64 fields: one QEMU
-- scoreboard per 64 keys rather than one per key (each is per-vCPU
-- memory, and grows with every new vCPU).
--
--     local entries = require("entries")
--     local e = entries.new()      -- e:get(vcpu), e:add(vcpu, n), e:sum(); tb:inline("add", e, 1)
local entries = {}

local FIELDS = {}
for i = 1, 64 do
    FIELDS[i] = "f" .. i
end
local board, used = nil, #FIELDS

function entries.new()
    if used == #FIELDS then
        board, used = require("luahost").scoreboard(FIELDS), 0
    end
    used = used + 1
    return board[FIELDS[used]]
end

-- Forgets the pool (for tests).
function entries._reset()
    board, used = nil, #FIELDS
end

return entries
