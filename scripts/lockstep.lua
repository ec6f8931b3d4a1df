-- lockstep: two QEMUs run in lockstep; where their executions part.
-- The two compare block addresses over a Unix socket. A port of QEMU's
-- contrib/plugins/lockstep.c (QEMU 10.0 and 10.2): the same arguments,
-- the same messages and the same 16 bytes per block on the socket, so
-- either side may be lockstep.c.
--
--   sockpath=PATH   the socket: the first QEMU (no file at PATH yet)
--                   listens there and waits for the second, which connects
--   verbose=on|off  report every divergence, not only close ones
--
-- Before each block executes, each side sends its block address and the
-- instructions it has run so far, and reads the other's. Two divergences
-- one block apart are reported; three in a row end the comparison with
-- the last blocks run ("giving up"), and the plugin uninstalls itself.
-- Single-threaded guests only, as lockstep.c.
local unix = require("socket.unix")

local opt = luahost.args { verbose = false, sockpath = luahost.args.string() }

if opt.sockpath == nil then
    luahost.usage_error("Need a socket path to talk to other instance.")
end

-- The wire format is lockstep.c's ExecState: two uint64_t, host order
-- (little-endian on the hosts QEMU runs on).
local TWO32 = 4294967296
local pack, unpack = rawget(string, "pack"), rawget(string, "unpack")     -- Lua 5.3+

local function le4(v)
    local bytes = {}
    for i = 1, 4 do
        bytes[i] = string.char(v % 256)
        v = (v - v % 256) / 256
    end
    return table.concat(bytes)
end

local le8
if pack then
    le8 = function(v) return pack("<I8", v) end
else    -- LuaJIT: a number below 2^53 or a uint64_t cdata
    le8 = function(v)
        local lo = v % TWO32
        return le4(tonumber(lo)) .. le4(tonumber((v - lo) / TWO32))
    end
end

-- The 16 bytes a side sends before a block: the block's address (as
-- le8 made it at translation) and the instructions run so far, built as
-- one string; byte by byte, with le8, it was most of the port's cost
-- under LuaJIT.
local message
if pack then
    message = function(block, count) return pack("<I8I8", block.vaddr, count) end
else
    local char = string.char
    message = function(block, count)    -- count < 2^53: its last byte is 0
        local b1 = count % 256; count = (count - b1) / 256
        local b2 = count % 256; count = (count - b2) / 256
        local b3 = count % 256; count = (count - b3) / 256
        local b4 = count % 256; count = (count - b4) / 256
        local b5 = count % 256; count = (count - b5) / 256
        local b6 = count % 256; count = (count - b6) / 256
        return block.pc .. char(b1, b2, b3, b4, b5, b6, count, 0)
    end
end

-- "%016x" of the little-endian uint64 in bytes.
local function hex8(bytes)
    return (bytes:reverse():gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

-- "%d" (PRId64) of the little-endian int64 in bytes.
local function decimal8(bytes)
    if unpack then
        return ("%d"):format(unpack("<i8", bytes))
    end
    local b1, b2, b3, b4, b5, b6, b7, b8 = bytes:byte(1, 8)
    local lo = b1 + b2 * 256 + b3 * 65536 + b4 * 16777216
    local hi = b5 + b6 * 256 + b7 * 65536 + b8 * 16777216
    return ("%.0f"):format(hi * TWO32 + lo)    -- exact below 2^53 instructions
end

-- The first QEMU listens, the second connects: whoever finds no file at
-- the path is first, as lockstep.c decides.
local sock, path_to_unlink

-- lockstep.c prints the failing call with perror, then this line.
local function fail(what, err)
    luahost.usage_error(("Failed to setup socket for communications (sockpath=%s: %s: %s)"):format(
        opt.sockpath, what, tostring(err)), 2)
end

local function exists(path)
    local f, _, code = io.open(path, "r")
    if f then
        f:close()
    end
    return f ~= nil or code ~= 2      -- ENOENT
end

do
    local fd, err = unix.stream()
    if not fd then
        fail("create socket", err)
    end
    if exists(opt.sockpath) then
        local ok, cerr = fd:connect(opt.sockpath)
        if not ok then
            fail("failed to connect", cerr)
        end
        luahost.outs("connect_socket::ready\n")
        sock = fd
    else
        local ok, berr = fd:bind(opt.sockpath)
        if not ok then
            fail("bind socket", berr)
        end
        path_to_unlink = opt.sockpath
        ok, berr = fd:listen(1)
        if not ok then
            fail("listen socket", berr)
        end
        sock, berr = fd:accept()
        if not sock then
            fail("accept socket", berr)
        end
        luahost.outs("setup_socket::ready\n")
        fd:close()
    end
end

local insn_count, bb_count = 0, 0
-- The log of executed blocks: lockstep.c keeps every one but reads only
-- the last five, so this keeps their count and the last five, entry i
-- (its block and the instructions run after it) at i % LOG_KEPT: a table
-- per block would grow by tens of MiB and cost its collection.
local LOG_KEPT = 5
local log_n, log_block, log_insns = 0, {}, {}
local divergences = {}      -- { at = log_n, distance } per divergence, oldest first

local function cleanup()
    if sock then
        sock:close()
        sock = nil
    end
    if path_to_unlink then
        os.remove(path_to_unlink)
    end
end

local function report_divergence(us_pc, us_count, them)
    local divrec = { at = log_n, distance = 0 }
    local diverged = false
    local last = divergences[#divergences]
    if last then
        -- lockstep.c walks its log back to the last divergence's entry,
        -- stopping at its oldest one: the distance is never above log_n - 1.
        divrec.distance = log_n - math.max(last.at, 1)
        diverged = divrec.distance == 1 and last.distance == 1
    end
    divergences[#divergences + 1] = divrec

    if opt.verbose or divrec.distance == 1 or diverged then
        luahost.outs(("@ 0x%s (%s) vs 0x%s (%s) (%d/%d since last)\n"):format(
            hex8(us_pc), decimal8(us_count), hex8(them:sub(1, 8)), decimal8(them:sub(9, 16)),
            #divergences, divrec.distance))
    end

    if diverged then
        local out = { "Δ too high, we have diverged, previous insns\n" }
        -- the five latest blocks, leaving out the oldest of all, as lockstep.c
        for i = log_n, math.max(2, log_n - LOG_KEPT + 1), -1 do
            local block = log_block[i % LOG_KEPT]
            out[#out + 1] = ("  previously @ 0x%s/%d (%d insns)\n"):format(
                hex8(block.pc), block.insns, log_insns[i % LOG_KEPT])
        end
        luahost.outs(table.concat(out))
        luahost.outs("giving up\n")
        luahost.uninstall(cleanup)
    end
end

local function block_exec(_, block)
    if not sock then
        return
    end
    local sent = sock:send(message(block, insn_count))
    if not sent then
        luahost.outs("problem writing to socket")
        luahost.uninstall(cleanup)
        return
    end
    local them, err, partial = sock:receive(16)
    if not them then
        luahost.outs(err == "closed" and #partial < 16 and "read less than expected"
            or "problem reading from socket")
        luahost.uninstall(cleanup)
        return
    end
    if them:find(block.pc, 1, true) ~= 1 then    -- them:sub(1, 8) ~= block.pc, without a string
        report_divergence(block.pc, le8(insn_count), them)
    end
    insn_count = insn_count + block.insns
    bb_count = bb_count + 1
    log_n = log_n + 1
    log_block[log_n % LOG_KEPT], log_insns[log_n % LOG_KEPT] = block, insn_count
end

luahost.on_tb_translate(function(tb)
    tb:on_exec(block_exec, { pc = le8(tb:vaddr()), vaddr = tb:vaddr(), insns = tb:n_insns() })
end)

luahost.on_exit(function()
    luahost.outs(("No divergence :-)\nExecuted %d/%d blocks\nExecuted ~%d instructions\n"):format(
        bb_count, log_n, insn_count))
    cleanup()
end)
