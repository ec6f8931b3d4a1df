-- patch: replace instructions that match a byte pattern, as they run.
-- Each instruction whose bytes start with a pattern gets other bytes. A
-- port of QEMU's tests/tcg/plugins/patch.c (QEMU 10.2; it needs the
-- memory-writing API of QEMU 10.1): the same arguments and messages.
--
--   target=HEX        the bytes to look for at the start of an instruction
--   patch=HEX         the bytes to write there instead (as long as target)
--   use_hwaddr=BOOL   write through the physical address (default true,
--                     system mode); false writes through the virtual one
--
-- When QEMU translates a block holding a matching instruction, the block
-- gets a callback that, each time the block starts, writes the patch over
-- the instruction and reads it back. Once written, QEMU retranslates from
-- the patched memory, where the pattern no longer matches.
local USAGE = "Usage: <lib>,target=<bytes>,patch=<new_bytes>[,use_hwaddr=true|false]"

if not luahost.has("write_memory") then
    luahost.usage_error("patch.lua needs QEMU 10.1 or later (writes to guest memory)")
end

-- patch.c's str_to_bytes takes pairs of hex digits (a pair that is not hex
-- reads as 0 there; here it is refused).
local function str_to_bytes(text)
    if text == nil or #text == 0 or #text % 2 ~= 0 or text:find("[^%x]") then
        return nil
    end
    return (text:gsub("%x%x", function(pair) return string.char(tonumber(pair, 16)) end))
end

local use_hwaddr, target_data, patch_data = true, nil, nil
if #luahost.argv > 4 then
    luahost.usage_error(USAGE)
end
for _, arg in ipairs(luahost.argv) do
    local name, value = arg:match("^([^=]*)=?(.*)$")
    if name == "use_hwaddr" then
        local bool = { on = true, yes = true, ["true"] = true, off = false, no = false, ["false"] = false }
        if bool[value] == nil then
            luahost.usage_error("Failed to parse boolean argument use_hwaddr")
        end
        use_hwaddr = bool[value]
    elseif name == "target" then
        target_data = str_to_bytes(value) or luahost.usage_error("Failed to parse target bytes.")
    elseif name == "patch" then
        patch_data = str_to_bytes(value) or luahost.usage_error("Failed to parse patch bytes.")
    else
        luahost.usage_error(("Unknown argument: %s. %s"):format(name, USAGE))
    end
end
if not target_data then
    luahost.usage_error("target argument is required. " .. USAGE)
end
if not patch_data then
    luahost.usage_error("patch argument is required. " .. USAGE)
end
if #target_data ~= #patch_data then
    luahost.usage_error("Target and patch data must be the same length")
end

-- QEMU's enum qemu_plugin_hwaddr_operation_result, which patch.c prints,
-- from luahost's messages.
local RESULT = { ["device error"] = 2, ["access denied"] = 3, ["invalid address"] = 4,
    ["invalid address space"] = 5 }

local function patch_hwaddr(_, addr)
    luahost.outs(("patching: @0x%x\n"):format(addr))
    local ok, err = luahost.write_memory_hwaddr(addr, patch_data)
    if not ok then
        luahost.outs(("Failed to write memory: %d\n"):format(RESULT[err] or 1))
        return
    end
    local read
    read, err = luahost.read_memory_hwaddr(addr, #patch_data)
    luahost.outs("Reading memory...\n")
    if not read then
        luahost.outs(("Failed to read memory: %d\n"):format(RESULT[err] or 1))
        return
    end
    if read ~= patch_data then
        luahost.outs("Failed to read back written data\n")
    end
    luahost.outs("Success!\n")      -- even after the line above, as patch.c
end

local function patch_vaddr(_, addr)
    local hwaddr = luahost.translate_vaddr(addr)
    if not hwaddr then
        luahost.outs("Failed to translate vaddr\n")
        return
    end
    luahost.outs(("patching: @0x%x hw: @0x%x\n"):format(addr, hwaddr))
    luahost.outs("Writing memory (vaddr)...\n")
    if not luahost.write_memory(addr, patch_data) then
        luahost.outs("Failed to write memory\n")
        return
    end
    luahost.outs("Reading memory (vaddr)...\n")
    local read = luahost.read_memory(addr, #patch_data)
    if not read then
        luahost.outs("Failed to read memory\n")
        return
    end
    if read ~= patch_data then
        luahost.outs("Failed to read back written data\n")
    end
    luahost.outs("Success!\n")
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        local addr = insn:vaddr()
        local skip = false
        if use_hwaddr then
            addr = luahost.translate_vaddr(addr)
            if not addr then
                luahost.outs("Failed to translate vaddr\n")
                skip = true
            end
        end
        -- the instruction starts with the pattern (patch.c compares a prefix)
        if not skip and insn:data():sub(1, #target_data) == target_data then
            tb:on_exec(use_hwaddr and patch_hwaddr or patch_vaddr, addr)
        end
    end
end)
