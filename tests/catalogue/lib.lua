-- Builders shared by the catalogue's categories (tests/catalogue/*.lua,
-- run by tests/integration/catalogue_spec.lua, which documents a case).
local lib = {}

-- QEMU's own line after any load error of the plugin.
lib.REFUSED = "qemu-ARCH: Could not load plugin PLUGIN: qemu_plugin_install returned error code -1\n"

-- case, refused at load with the one-line message (after "luahost: "):
-- the whole of stderr, status 1, the guest never ran. message may be a
-- pair { Lua 5.4's, LuaJIT's }.
function lib.refused(message, case)
    case.status = 1
    if type(message) == "table" then
        case.luajit = case.luajit or {}
        case.luajit.stderr_is = "luahost: " .. message[2] .. "\n" .. lib.REFUSED
        message = message[1]
    end
    case.stderr_is = "luahost: " .. message .. "\n" .. lib.REFUSED
    case.stdout_is = ""
    return case
end

-- case, refused at load with a message and a traceback (fragments in
-- order; the first at the start of stderr).
function lib.refused_with_traceback(message, traceback, case)
    case.status = 1
    case.stderr = { { pattern = "^luahost: " }, message .. "\nstack traceback:\n" }
    for _, line in ipairs(traceback or {}) do
        case.stderr[#case.stderr + 1] = line
    end
    case.stderr[#case.stderr + 1] = lib.REFUSED
    case.stdout_is = ""
    return case
end

-- The lines a hook's runtime error gives under on_error=abort.
function lib.aborted(what, message)
    return { "luahost: error in " .. what .. ": " .. message .. "\nstack traceback:\n",
        "\nluahost: stopping emulation (on_error=abort); exit hooks are not run\n" }
end

-- ... and under on_error=disable, n errors in all.
function lib.disabled(what, message, n)
    return { "luahost: error in " .. what .. ": " .. message .. "\nstack traceback:\n",
        "\nluahost: this " .. what .. " is disabled (on_error=disable); the exit status will be 1\n",
        ("luahost: %d callback error(s) in this run (on_error=disable): exit status 1\n"):format(n or 1) }
end

-- A setup function (see the spec) that writes text into ctx.tmp/name.
function lib.write(name, text)
    return function(ctx)
        local f = assert(io.open(ctx.tmp .. "/" .. name, "wb"))
        f:write(text)
        f:close()
    end
end

return lib
