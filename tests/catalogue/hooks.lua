-- An error in each kind of hook and callback, under on_error=abort (the
-- run stops at once: status 1, no exit hook) and on_error=disable (the
-- function is disabled, the run goes on, the report is still written,
-- status 1). The failing line is the one that says error("boom").
local lib = require("catalogue.lib")

local REPORT = "luahost.on_exit(function() luahost.outs('report ran\\n') end)\n"

-- what: the hook's name in messages; source: registers it (and REPORT
-- where a reset does not drop it); guest and guest_args as for a case.
local KINDS = {
    { what = "exit hook", source = [[
luahost.on_exit(function()
    error("boom")
end)
luahost.on_report(function() luahost.outs("report ran\n") end)
]] },
    { what = "report hook", source = [[
luahost.on_report(function()
    error("boom")
end)
luahost.on_report(function() luahost.outs("report ran\n") end)
]] },
    { what = "vcpu init hook", source = [[
luahost.on_vcpu_init(function(vcpu)
    error("boom")
end)
]] .. REPORT },
    { what = "vcpu exit hook", guest = "threads", guest_args = { "2", "10" }, source = [[
luahost.on_vcpu_exit(function(vcpu)
    error("boom")
end)
]] .. REPORT },
    { what = "tb translation hook", source = [[
luahost.on_tb_translate(function(tb)
    error("boom")
end)
]] .. REPORT },
    { what = "tb exec callback", name = "tb exec callback (on_exec)", source = [[
luahost.on_tb_translate(function(tb)
    tb:on_exec(function(vcpu)
        error("boom")
    end)
end)
]] .. REPORT },
    { what = "tb exec callback", name = "tb exec callback (on_exec_if)", source = [[
local entry = luahost.scoreboard()
luahost.on_tb_translate(function(tb)
    tb:on_exec_if(entry, "eq", 0, function(vcpu)
        error("boom")
    end)
end)
]] .. REPORT },
    { what = "insn exec callback", name = "insn exec callback (on_exec)", source = [[
luahost.on_tb_translate(function(tb)
    tb:insn(1):on_exec(function(vcpu)
        error("boom")
    end)
end)
]] .. REPORT },
    { what = "insn exec callback", name = "insn exec callback (on_exec_if)", source = [[
local entry = luahost.scoreboard()
luahost.on_tb_translate(function(tb)
    tb:insn(1):on_exec_if(entry, "always", 0, function(vcpu)
        error("boom")
    end)
end)
]] .. REPORT },
    { what = "memory callback", source = [[
luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        insn:on_mem(function(vcpu, mem, vaddr)
            error("boom")
        end)
    end
end)
]] .. REPORT },
    { what = "syscall hook", source = [[
luahost.on_syscall(function(vcpu, num)
    error("boom")
end)
]] .. REPORT },
    { what = "syscall return hook", source = [[
luahost.on_syscall_return(function(vcpu, num, ret)
    error("boom")
end)
]] .. REPORT },
    { what = "interval hook", guest_args = { "5000000" }, source = [[
luahost.on_interval(0.01, function()
    error("boom")
end)
]] .. REPORT },
    { what = "module hook", source = [[
luahost.on_module(function(event, module)
    error("boom")
end)
]] .. REPORT },
    { what = "stream batch callback", source = [[
local stream = luahost.stream { capacity = 16, on_batch = function(vcpu, batch)
    error("boom")
end }
luahost.on_tb_translate(function(tb) stream:exec(tb) end)
]] .. REPORT },
    { what = "flush hook", source = [[
luahost.on_flush(function()
    error("boom")
end)
local n = 0
luahost.on_syscall(function()
    n = n + 1
    if n == 2 then luahost.reset(function() luahost.on_exit(function() luahost.outs("report ran\n") end) end) end
end)
]] },
    { what = "reset completion callback", source = [[
local n = 0
luahost.on_syscall(function()
    n = n + 1
    if n == 2 then luahost.reset(function()
        luahost.on_exit(function() luahost.outs("report ran\n") end)
        error("boom")
    end) end
end)
]] },
    -- under on_error=disable: below (no exit work runs after an uninstall)
    { what = "uninstall completion callback", source = [[
local n = 0
luahost.on_syscall(function()
    n = n + 1
    if n == 2 then luahost.uninstall(function()
        error("boom")
    end) end
end)
]], abort_only = true },
    -- vcpu_for_each raises its fn's error in the hook that called it
    { what = "exit hook", name = "vcpu_for_each's function (in an exit hook)", source = [[
luahost.on_exit(function()
    luahost.vcpu_for_each(function(vcpu)
        error("boom")
    end)
end)
luahost.on_report(function() luahost.outs("report ran\n") end)
]] },
}

local cases = {}
for _, kind in ipairs(KINDS) do
    local n, line = 0, nil
    for text in kind.source:gmatch("[^\n]*\n") do
        n = n + 1
        if text:find('error("boom")', 1, true) then
            line = n
        end
    end
    local message = "SCRIPT:" .. line .. ": boom"
    local name = kind.name or kind.what
    cases[#cases + 1] = { name = name .. " under on_error=abort", source = kind.source, args = {},
        guest = kind.guest, guest_args = kind.guest_args, status = 1,
        stderr = lib.aborted(kind.what, message), once = { "error in " }, no_log = { "report ran" } }
    cases[#cases + 1] = not kind.abort_only and { name = name .. " under on_error=disable",
        source = kind.source, args = { "on_error=disable" },
        guest = kind.guest, guest_args = kind.guest_args, status = 1,
        stderr = lib.disabled(kind.what, message), once = { "error in " }, log = { "report ran\n" } } or nil
end
-- An error in an uninstall's completion under on_error=disable: said at
-- once, as no exit work runs after an uninstall; the status is the guest's.
cases[#cases + 1] = { name = "uninstall completion callback under on_error=disable", args = { "on_error=disable" },
    source = KINDS[#KINDS - 1].source, status = 0, once = { "error in " },
    stderr = { "luahost: error in uninstall completion callback: SCRIPT:5: boom\nstack traceback:\n",
        "luahost: this uninstall completion callback is disabled (on_error=disable); the exit status will be 1\n",
        "luahost: 1 callback error(s) before the uninstall (on_error=disable); luahost is unloaded, so the exit "
            .. "status is the guest's\n" } }
return cases
