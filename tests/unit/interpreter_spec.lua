-- The specs run under Lua 5.4 (tests/run-busted.lua, started by meson
-- with lua5.4), whatever /usr/bin/lua is: Debian's lua-check makes it
-- Lua 5.1, under which most specs fail.
describe("the interpreter running the specs", function()
    it("is Lua 5.4", function()
        assert.are.equal("Lua 5.4", _VERSION)
        assert.is_nil(rawget(_G, "jit"))
    end)
end)
