-- newc.lua: writes an initramfs, a cpio archive in the kernel's "newc"
-- format (uncompressed, as the kernel takes it), holding executable files.
--
--     lua5.4 newc.lua OUT NAME=FILE...
--
-- Each NAME (a path in the archive, no directory) gets FILE's bytes, mode
-- 0755. Written here rather than with cpio(1), which Debian does not
-- install by default; the format is in the kernel's
-- Documentation/driver-api/early-userspace/buffer-format.rst.
local out_path = assert(arg[1], "usage: newc.lua OUT NAME=FILE...")

local function pad4(n)
    return ("\0"):rep((4 - n % 4) % 4)
end

-- One entry: the 110-byte header (13 fields of 8 hex digits after the
-- magic), the name with its NUL, padded to 4, the data, padded to 4.
local function entry(ino, mode, name, data)
    local fields = { ino, mode, 0, 0, 1, 0, #data, 0, 0, 0, 0, #name + 1, 0 }
    local header = { "070701" }
    for i, v in ipairs(fields) do
        header[i + 1] = ("%08X"):format(v)
    end
    local head = table.concat(header) .. name .. "\0"
    return head .. pad4(#head) .. data .. pad4(#data)
end

local parts = {}
for i = 2, #arg do
    local name, path = arg[i]:match("^([^=/]+)=(.+)$")
    assert(name, "not NAME=FILE: " .. arg[i])
    local f = assert(io.open(path, "rb"))
    parts[#parts + 1] = entry(i - 1, tonumber("100755", 8), name, f:read("a"))
    f:close()
end
parts[#parts + 1] = entry(0, 0, "TRAILER!!!", "")
local out = assert(io.open(out_path, "wb"))
out:write(table.concat(parts))
assert(out:close())
