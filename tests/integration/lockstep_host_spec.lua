-- luahost.lockstep (host/lockstep.c) against liblockstep.so on the other
-- end of the socket. The C peer is the oracle twice over: its own log must
-- be what it prints against another liblockstep.so, and what a script
-- sees (each divergence, the blocks run before it, the last blocks, the
-- counts) must be what a liblockstep.so in the script's place reports.
local helper = require("helper")

local C_PLUGIN = "contrib/plugins/liblockstep.so"

-- docs/api.md's example: connects to sockpath=, prints every divergence
-- with the last blocks, the socket's failure, and the counts at exit.
local SCRIPT = assert(helper.read(helper.source_root .. "/docs/api.md"))
    :match("\n## Lockstep\n.-```lua\n(.-)```")

local function qemu_cmd(spec, log, guest_arg)
    return table.concat({ "timeout -k 5 60", helper.quote(helper.qemu_build() .. "/qemu-x86_64"),
        "-plugin", helper.quote(spec), "-d plugin -D", helper.quote(log),
        helper.quote(helper.guest("loop", "x86_64")), guest_arg }, " ")
end

-- liblockstep.so (verbose=on) listens on guest argument 300; the second
-- side, "C" or "script", connects on guest argument arg2. Both logs.
local function pair(second, arg2, stop)
    local sock = helper.tmpname()
    os.remove(sock)
    local c = helper.c_plugin(C_PLUGIN) .. ",verbose=on,sockpath=" .. sock
    local spec = second == "C" and c
        or helper.luahost_plugin(helper.lua_file(SCRIPT), { "sockpath=" .. sock, "stop=" .. (stop or 0) })
    local log1, log2 = helper.tmpname(), helper.tmpname()
    local cmd = ("%s >/dev/null & first=$!\n"
        .. "n=0; while [ ! -S %s ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done\n"
        .. "%s >/dev/null; second=$?; wait $first; echo \"$? $second\"")
        :format(qemu_cmd(c, log1, "300"), helper.quote(sock), qemu_cmd(spec, log2, arg2))
    local status, out, err = helper.sh(cmd)
    assert.are.equal(0, status, err)
    assert.are.equal("0 0", out:match("^%d+ %d+"), err)
    return helper.read(log1) or "", helper.read(log2) or "", err
end

-- The "@ ..." lines of a log: { line without its tail, distance or blocks }.
local function divergences(log, tail)
    local list = {}
    for line, n in log:gmatch("\n?(@ [^\n]-) " .. tail .. "\n") do
        list[#list + 1] = { line, tonumber(n) }
    end
    return list
end

describe("luahost.lockstep", function()
    after_each(helper.cleanup)

    it("runs in step with liblockstep.so and counts as it does", function()
        local c1, c2 = pair("C", "300")
        local blocks, insns = c2:match("Executed (%d+)/%d+ blocks\nExecuted ~(%d+) instructions\n")
        assert.is_true(tonumber(blocks) > 1000, c2)
        local l1, l2, err = pair("script", "300")
        assert.are.equal(c1, l1, err)
        assert.are.equal(("Executed %s blocks, ~%s instructions\n"):format(blocks, insns), l2, err)
    end)

    it("reports each divergence as liblockstep.so would", function()
        local c1, c2 = pair("C", "301")
        local c_seen = divergences(c2, "%(%d+/(%d+) since last%)")
        assert.is_true(#c_seen >= 3, c2)
        -- the script stops where liblockstep.so gives up
        local l1, l2, err = pair("script", "301", #c_seen)
        assert.are.equal(c1, l1, err)
        -- the same divergences, each after the blocks lockstep.c counts
        -- to the previous one (its distance)
        local seen = divergences(l2, "after (%d+)")
        assert.are.equal(#c_seen, #seen, l2)
        for i, c in ipairs(c_seen) do
            assert.are.equal(c[1], seen[i][1], l2)
            if i > 1 then
                assert.are.equal(c[2], seen[i][2] - math.max(seen[i - 1][2], 1), l2)
            end
        end
        -- where liblockstep.so gave up, it listed the blocks recent() gives
        local listed = c2:match("previous insns\n(.-)giving up\n")
        local recent, at = {}, l2:find(c_seen[#c_seen][1], 1, true)
        for line in l2:sub(at):gmatch("\n(  [^\n]*)") do
            recent[#recent + 1] = line .. "\n"
        end
        assert.are.equal(listed, table.concat(recent), l2)
        -- the block of the last divergence counts as run, as lockstep.c
        assert.matches("\nExecuted " .. seen[#seen][2] + 1 .. " blocks, ~%d+ instructions\n$", l2)
    end)
end)

-- A peer that reads our first position, sends half of its own and closes.
local HALF_PEER = [[
local unix = require("socket.unix")
local server = assert(unix.stream())
assert(server:bind(arg[1]))
assert(server:listen(1))
local peer = assert(server:accept())
assert(peer:receive(16))
assert(peer:send("12345678"))
peer:close()
server:close()
os.remove(arg[1])
]]

-- The -D log of a QEMU whose plugin spec connects to a HALF_PEER.
local function against_half_peer(spec_of)
    local sock = helper.tmpname()
    os.remove(sock)
    local log = helper.tmpname()
    local cmd = ("lua5.4 %s %s & peer=$!\n"
        .. "n=0; while [ ! -S %s ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done\n"
        .. "%s >/dev/null; status=$?; wait $peer; echo \"$? $status\"")
        :format(helper.quote(helper.lua_file(HALF_PEER)), helper.quote(sock), helper.quote(sock),
            qemu_cmd(spec_of(sock), log, "300"))
    local status, out, err = helper.sh(cmd)
    assert.are.equal(0, status, err)
    assert.are.equal("0 0", out:match("^%d+ %d+"), err)
    return helper.read(log) or ""
end

describe("luahost.lockstep at a short read", function()
    after_each(helper.cleanup)

    it("calls on_error with no error, as liblockstep.so finds it", function()
        local c = against_half_peer(function(sock)
            return helper.c_plugin(C_PLUGIN) .. ",sockpath=" .. sock
        end)
        assert.are.equal("connect_socket::ready\nread less than expected", c)
        local script = helper.lua_file(SCRIPT)
        local l = against_half_peer(function(sock)
            return helper.luahost_plugin(script, { "sockpath=" .. sock })
        end)
        assert.matches("^read failed: nil\nExecuted 0 blocks, ~0 instructions\n$", l)
        local port = against_half_peer(function(sock)
            return helper.luahost_plugin(helper.script("lockstep.lua"), { "sockpath=" .. sock })
        end)
        assert.are.equal(c, port)
    end)
end)

describe("luahost.lockstep misuse", function()
    after_each(helper.cleanup)

    local function fails(source, ...)
        local r = helper.run_lua("x86_64", source, helper.guest("loop", "x86_64"), { status = false })
        assert.are_not.equal(0, r.status, "qemu should fail")
        for _, message in ipairs({ ... }) do
            assert.matches(message, r.stderr, 1, true)
        end
    end

    local F = "local f = function() end\n"

    it("names the script line of a bad option", function()
        fails("luahost.lockstep(3)", ":1: luahost.lockstep expects a table of options, got number")
        fails(F .. "luahost.lockstep { fd = 3, on_diverge = f, on_error = f, verbose = true }",
            ":2: luahost.lockstep: unknown option verbose (expected fd, on_diverge, on_error)")
        fails(F .. "luahost.lockstep { fd = 1.5, on_diverge = f, on_error = f }",
            ":2: luahost.lockstep: fd must be a file descriptor (an integer), got 1.5")
        fails(F .. "luahost.lockstep { fd = 3, on_error = f }",
            ":2: luahost.lockstep: on_diverge must be a function, got nil")
        fails(F .. "luahost.lockstep { fd = 999, on_diverge = f, on_error = f }",
            ":2: luahost.lockstep: fd 999: Bad file descriptor")
    end)

    it("takes a stream socket only, once, in the main chunk", function()
        fails(F .. "local udp = require('socket').udp4()\n"
            .. "luahost.lockstep { fd = udp:getfd(), on_diverge = f, on_error = f }",
            ":3: luahost.lockstep: fd ", " is not a stream socket")
        local tcp = "local tcp = require('socket').tcp4()\n"
        fails(F .. tcp .. "luahost.lockstep { fd = tcp:getfd(), on_diverge = f, on_error = f }\n"
            .. "luahost.lockstep { fd = tcp:getfd(), on_diverge = f, on_error = f }",
            ":4: luahost.lockstep: only one per run (it compares every block)")
        fails(F .. tcp .. "luahost.on_vcpu_init(function()\n"
            .. "    luahost.lockstep { fd = tcp:getfd(), on_diverge = f, on_error = f }\nend)",
            ":4: luahost.lockstep must be called in the script's main chunk")
    end)
end)
