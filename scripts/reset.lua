-- reset: the plugin resets itself, then uninstalls itself.
-- A port of QEMU's tests/tcg/plugins/reset.c, QEMU's test of
-- qemu_plugin_reset and qemu_plugin_uninstall, here of luahost.reset and
-- luahost.uninstall: the first executed block asks for a reset; after
-- it, the first executed block asks for the plugin's removal. It prints
-- "reset done", "uninstall done", "plugin exit", and checks at each step
-- that the steps came in that order, or the script fails (status 1), as
-- reset.c's assertions abort QEMU. Like reset.c, it ignores its
-- arguments.
local was_reset, was_uninstalled = false, false
local reset_asked, uninstall_asked = false, false

local function check(ok, what)
    if not ok then
        error("reset.lua: check failed: " .. what, 2)
    end
end

-- reset.c prints "plugin exit" from a destructor, when QEMU unloads it
-- (after the uninstall) or when the process ends: an exit hook stands for
-- the latter, and a reset or the uninstall drops it.
local function on_exit_before_uninstall()
    check(was_reset and was_uninstalled, "the process ended before the plugin was reset and uninstalled")
end

local function after_uninstall()
    check(was_reset and not was_uninstalled, "uninstall after the reset, once")
    luahost.outs("uninstall done\n")
    was_uninstalled = true
    luahost.outs("plugin exit\n")   -- QEMU unloads the plugin now
end

local function exec_after_reset()
    check(was_reset and not was_uninstalled, "a block runs after the reset, before the uninstall")
    if not uninstall_asked then  -- QEMU ignores a second request; luahost refuses it
        uninstall_asked = true
        luahost.uninstall(after_uninstall)
    end
end

local function after_reset()
    check(not was_reset and not was_uninstalled, "one reset, before the uninstall")
    luahost.outs("reset done\n")
    was_reset = true
    luahost.on_tb_translate(function(tb)
        check(was_reset and not was_uninstalled, "translation after the reset, before the uninstall")
        tb:on_exec(exec_after_reset)
    end)
    luahost.on_exit(on_exit_before_uninstall)
end

local function exec_before_reset()
    check(not was_reset and not was_uninstalled, "a block runs before the reset")
    if not reset_asked then
        reset_asked = true
        luahost.reset(after_reset)
    end
end

luahost.on_tb_translate(function(tb)
    check(not was_reset and not was_uninstalled, "translation before the reset")
    tb:on_exec(exec_before_reset)
end)
luahost.on_exit(on_exit_before_uninstall)
