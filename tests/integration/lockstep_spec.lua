-- scripts/lockstep.lua against QEMU's liblockstep.so. A lockstep run is two
-- QEMUs talking over a Unix socket, so the oracle is the pair of C plugins
-- on the same guest: Lua-Lua, Lua-C and C-Lua pairs must print, side by
-- side, what the C-C pair prints, with no divergence when both guests get
-- the same arguments and with lockstep.c's report when they do not.
local helper = require("helper")

local SCRIPT = helper.script("lockstep.lua")
local C_PLUGIN = "contrib/plugins/liblockstep.so"

local function plugin(kind, args)
    if kind == "C" then
        return helper.c_plugin(C_PLUGIN) .. "," .. table.concat(args, ",")
    end
    return helper.luahost_plugin(SCRIPT, args)
end

local function qemu_cmd(arch, spec, log, guest_args)
    local cmd = { "timeout -k 5 60", helper.quote(helper.qemu_build() .. "/qemu-" .. arch),
        "-plugin", helper.quote(spec), "-d plugin -D", helper.quote(log),
        helper.quote(helper.guest("loop", arch)) }
    for _, a in ipairs(guest_args) do
        cmd[#cmd + 1] = helper.quote(a)
    end
    return table.concat(cmd, " ")
end

-- Runs two QEMUs on the loop guest in lockstep: first (kind "C" or "Lua")
-- listens, second connects once the socket exists. Returns both logs.
local function pair(arch, first, second, opts)
    local sock = helper.tmpname()
    os.remove(sock)         -- the first side binds a fresh socket there
    local args = { "sockpath=" .. sock }
    for _, a in ipairs(opts.args or {}) do
        args[#args + 1] = a
    end
    local log1, log2 = helper.tmpname(), helper.tmpname()
    local cmd = ("%s >/dev/null & first=$!\n"
        .. "n=0; while [ ! -S %s ] && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done\n"
        .. "%s >/dev/null; second=$?; wait $first; echo \"$? $second\"")
        :format(qemu_cmd(arch, plugin(first, args), log1, opts.guest_args1),
            helper.quote(sock), qemu_cmd(arch, plugin(second, args), log2, opts.guest_args2))
    local status, out, err = helper.sh(cmd)
    assert.are.equal(0, status, err)
    local s1, s2 = out:match("^(%d+) (%d+)")
    return { status = tonumber(s1), log = helper.read(log1) or "" },
        { status = tonumber(s2), log = helper.read(log2) or "" }, err
end

local PAIRS = { { "Lua", "Lua" }, { "Lua", "C" }, { "C", "Lua" } }

describe("lockstep.lua", function()
    after_each(helper.cleanup)

    for _, arch in ipairs(helper.arches) do
        it("agrees with liblockstep.so when nothing diverges (" .. arch .. ")", function()
            local same = { guest_args1 = { "300" }, guest_args2 = { "300" } }
            local c1, c2 = pair(arch, "C", "C", same)
            assert.are.equal(0, c1.status)
            assert.are.equal(0, c2.status)
            local blocks = c1.log:match("Executed (%d+)/%d+ blocks")
            assert.is_true(tonumber(blocks) > 1000, c1.log)
            assert.are.equal("setup_socket::ready\nNo divergence :-)\n", c1.log:sub(1, 38))
            for _, p in ipairs(PAIRS) do
                local l1, l2, err = pair(arch, p[1], p[2], same)
                local what = p[1] .. "-" .. p[2] .. "\n" .. err
                assert.are.equal(0, l1.status, what)
                assert.are.equal(0, l2.status, what)
                assert.are.equal(c1.log, l1.log, what)
                assert.are.equal(c2.log, l2.log, what)
            end
        end)

        it("reports a divergence as liblockstep.so does (" .. arch .. ")", function()
            -- the guest's first loop runs once more on the second side
            for _, verbose in ipairs({ "verbose=off", "verbose=on" }) do
                local differ = { guest_args1 = { "300" }, guest_args2 = { "301" }, args = { verbose } }
                local c1, c2 = pair(arch, "C", "C", differ)
                assert.matches("Δ too high, we have diverged, previous insns\n"
                    .. "  previously @ 0x%x+/%d+ %(%d+ insns%)\n", c1.log)
                assert.matches("giving up\n$", c1.log)
                assert.matches("giving up\n$", c2.log)
                assert.is_falsy(c1.log:find("No divergence"))
                for _, p in ipairs(PAIRS) do
                    local l1, l2, err = pair(arch, p[1], p[2], differ)
                    local what = p[1] .. "-" .. p[2] .. " " .. verbose .. "\n" .. err
                    assert.are.equal(c1.status, l1.status, what)
                    assert.are.equal(c2.status, l2.status, what)
                    assert.are.equal(c1.log, l1.log, what)
                    assert.are.equal(c2.log, l2.log, what)
                end
            end
        end)
    end

    -- One line naming the argument, and QEMU refuses the plugin.
    local function refused(args)
        local r = helper.qemu("x86_64", { helper.luahost_plugin(SCRIPT, args) },
            helper.guest("loop", "x86_64"), { "10" })
        assert.are_not.equal(0, r.status)
        local lines = {}
        for line in r.stderr:gmatch("[^\n]+") do
            if line:find("lockstep%.lua") then
                lines[#lines + 1] = line
            end
        end
        assert.are.equal(1, #lines, r.stderr)
        return lines[1]
    end

    it("refuses bad arguments as lockstep.c does, in one line", function()
        assert.matches("Need a socket path to talk to other instance%.", refused({}))
        assert.matches("option parsing failed: sock=x", refused({ "sock=x" }))
        assert.matches("boolean argument parsing failed: verbose=maybe",
            refused({ "verbose=maybe", "sockpath=/nonexistent" }))
        local file = helper.tmpname()       -- exists, but no one listens there
        assert.matches("Failed to setup socket for communications %(sockpath=" .. file:gsub("%p", "%%%0")
            .. ": failed to connect: ", refused({ "sockpath=" .. file }))
        assert.matches("Failed to setup socket for communications %(sockpath=/nonexistent/dir/s: bind socket: ",
            refused({ "sockpath=/nonexistent/dir/s" }))
    end)
end)
