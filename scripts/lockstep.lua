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

-- The exchange before each block, and the counts and last blocks the
-- report needs, are host/lockstep.c's: Lua runs only at a divergence or
-- when the socket fails.
local lockstep
local divergences = {}      -- { at = blocks run, distance } per divergence, oldest first

local function cleanup()
    if lockstep then
        lockstep:close()
    end
    if sock then
        sock:close()
        sock = nil
    end
    if path_to_unlink then
        os.remove(path_to_unlink)
    end
end

local function report_divergence(us_pc, us_count, them_pc, them_count, log_n)
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
        luahost.outs(("@ 0x%016x (%d) vs 0x%016x (%d) (%d/%d since last)\n"):format(
            us_pc, us_count, them_pc, them_count, #divergences, divrec.distance))
    end

    if diverged then
        local out = { "Δ too high, we have diverged, previous insns\n" }
        -- the five latest blocks, leaving out the oldest of all, as lockstep.c
        local recent = lockstep:recent()
        for i = 1, math.min(recent.n, log_n - 1) do
            out[#out + 1] = ("  previously @ 0x%016x/%d (%d insns)\n"):format(
                recent.pc[i], recent.insns[i], recent.insn_count[i])
        end
        luahost.outs(table.concat(out))
        luahost.outs("giving up\n")
        luahost.uninstall(cleanup)
    end
end

-- lockstep.c's messages; it prints no newline after them.
local FAILURES = {
    write = { error = "problem writing to socket", short = "wrote less than expected to socket" },
    read = { error = "problem reading from socket", short = "read less than expected" },
}

local function socket_failed(what, err)
    luahost.outs(FAILURES[what][err and "error" or "short"])
    luahost.uninstall(cleanup)
end

lockstep = luahost.lockstep { fd = sock:getfd(), on_diverge = report_divergence, on_error = socket_failed }

luahost.on_exit(function()
    local blocks, insns = lockstep:counts()
    luahost.outs(("No divergence :-)\nExecuted %d/%d blocks\nExecuted ~%d instructions\n"):format(
        blocks, blocks, insns))
    cleanup()
end)
