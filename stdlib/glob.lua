-- glob: shell-style wildcards as GLib's g_pattern_match_simple takes them
-- (QEMU's C plugins match register names with it): `*` matches any text,
-- none included, `?` one character; every other character is itself. The
-- whole string must match.
--
--     local glob = require("glob")
--     glob.match("x?", "x1")                --> true
--     local is_vector = glob.compile("xmm*")
--     is_vector("xmm10")                    --> true
--
-- Pure Lua: no luahost call, so it also runs (and is tested) outside QEMU.
local glob = {}

-- One UTF-8 character: a lead byte and its continuation bytes, as `?`
-- matches in GLib.
local ONE_CHAR = "[^\128-\191][\128-\191]*"

-- The Lua pattern that matches what `pattern` matches.
function glob.to_lua_pattern(pattern)
    local parts = { "^" }
    for i = 1, #pattern do
        local c = pattern:sub(i, i)
        if c == "*" then
            if parts[#parts] ~= ".-" then   -- `**` is `*`
                parts[#parts + 1] = ".-"
            end
        elseif c == "?" then
            parts[#parts + 1] = ONE_CHAR
        elseif c:match("%w") then
            parts[#parts + 1] = c
        else
            parts[#parts + 1] = "%" .. c
        end
    end
    parts[#parts + 1] = "$"
    return table.concat(parts)
end

-- A function telling whether a string matches `pattern`.
function glob.compile(pattern)
    if type(pattern) ~= "string" then
        error("glob pattern must be a string, got " .. type(pattern), 2)
    end
    local lua_pattern = glob.to_lua_pattern(pattern)
    return function(s)
        return s:find(lua_pattern) ~= nil
    end
end

function glob.match(pattern, s)
    return glob.compile(pattern)(s)
end

return glob
