-- luacheck configuration for every Lua file in the tree; run from the
-- source root as the `lint` meson suite does (tests/meson.build):
--
--     luacheck lua scripts stdlib examples tools/luahost bench bench/run bench/callback-cost tests
--
-- Two kinds of code: what runs inside the plugin, under Lua 5.4 or LuaJIT
-- (lua/, scripts/, stdlib/, examples/, bench/empty.lua, tests/scripts/),
-- and what runs under the lua5.4 interpreter only (tools/luahost, bench/run, bench/callback-cost,
-- bench/workloads/, the busted specs and their helper).

-- 120: the code is wrapped near 100 columns, but messages, format strings
-- and expected outputs in the specs read better whole on one line; 120
-- keeps those without letting ordinary lines grow.
max_line_length = 120

-- The default: lua5.4 programs.
std = "lua54"

-- The plugin's Lua: only what both Lua 5.4 and LuaJIT 2.1 have ("min" is
-- the intersection of all Lua versions), plus Debian's LuaJIT's table.move,
-- package.searchpath (both have it) and `jit`, read only to tell the two
-- apart (nil under Lua 5.4).
stds.portable = {
    read_globals = {
        jit = { other_fields = true },
        table = { fields = { move = {} } },
        package = { fields = { searchpath = {} } },
    },
}

-- Plugin scripts see the public API as the global `luahost`; they may
-- read it but never assign to it or its fields.
stds.script = {
    read_globals = { luahost = { other_fields = true } },
}

files["lua"] = { std = "min+portable" }
files["stdlib"] = { std = "min+portable" }
files["scripts"] = { std = "min+portable+script" }
files["examples"] = { std = "min+portable+script" }
files["bench/empty.lua"] = { std = "min+portable+script" }
files["tests/scripts"] = { std = "min+portable+script" }
files["tests/**/*_spec.lua"] = { std = "lua54+busted" }
-- regs_spec builds its 64-bit value as LuaJIT's uint64_t when run under
-- LuaJIT by hand; under the suite's Lua 5.4 `jit` is nil.
files["tests/unit/regs_spec.lua"] = { read_globals = { "jit" } }
