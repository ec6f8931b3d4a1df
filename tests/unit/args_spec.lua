-- lua/args.lua is pure Lua: tested here without QEMU.
local helper = require("helper")
local compat = assert(loadfile(helper.source_root .. "/lua/compat.lua"))()
local args = assert(loadfile(helper.source_root .. "/lua/args.lua"))(compat)

local function parse_error(spec, argv)
    local ok, err = pcall(args.parse, spec, argv)
    assert.is_false(ok)
    assert.is_true(args.is_usage_error(err))
    return tostring(err)
end

describe("args.parse", function()
    it("gives defaults for names not given", function()
        assert.are.same({ inline = false, limit = 20, mode = "lru", addr = {} },
            args.parse({ inline = false, limit = 20, mode = "lru", addr = args.list() }, {}))
    end)

    it("takes QEMU's boolean spellings", function()
        local spellings = { on = true, yes = true, ["true"] = true, off = false, no = false, ["false"] = false }
        for text, value in pairs(spellings) do
            assert.are.equal(value, args.parse({ v = not value }, { "v=" .. text }).v)
        end
        assert.matches("boolean argument parsing failed: v=1", parse_error({ v = false }, { "v=1" }))
        assert.matches("boolean argument parsing failed: v=ON", parse_error({ v = false }, { "v=ON" }))
    end)

    it("takes decimal and 0x integers", function()
        assert.are.equal(42, args.parse({ n = 0 }, { "n=42" }).n)
        assert.are.equal(-3, args.parse({ n = 0 }, { "n=-3" }).n)
        assert.are.equal(0x400000, args.parse({ n = 0 }, { "n=0x400000" }).n)
        assert.are.equal(255, args.parse({ n = 0 }, { "n=0XfF" }).n)
        for _, bad in ipairs({ "n=", "n=1.5", "n=0x", "n=12k", "n= 1" }) do
            assert.matches("integer argument parsing failed: " .. bad:gsub("%p", "%%%0"),
                parse_error({ n = 0 }, { bad }))
        end
    end)

    it("refuses integers that do not fit, and numbers that are not integers", function()
        assert.are.equal(math.maxinteger, args.parse({ n = 0 }, { "n=9223372036854775807" }).n)
        assert.are.equal(math.mininteger, args.parse({ n = 0 }, { "n=-9223372036854775808" }).n)
        assert.are.equal(math.maxinteger, args.parse({ n = 0 }, { "n=0x7FFFFFFFFFFFFFFF" }).n)
        assert.are.equal(5, args.parse({ n = 0 }, { "n=000000000000000000000005" }).n)
        assert.are.equal("integer", math.type(args.parse({ n = 0 }, { "n=-0" }).n))
        for _, bad in ipairs({ "n=9223372036854775808", "n=-9223372036854775809", "n=99999999999999999999",
                "n=0x8000000000000000", "n=0x10000000000000000", "n=0xffffffffffffffffff" }) do
            assert.matches("integer argument out of range %(%-2%^63 to 2%^63 %- 1%): " .. bad:gsub("%p", "%%%0"),
                parse_error({ n = 0 }, { bad }))
        end
        for _, bad in ipairs({ "n=1e3", "n=inf", "n=-inf", "n=nan", "n=0x1p4", "n=1.0" }) do
            assert.matches("integer argument parsing failed: " .. bad:gsub("%p", "%%%0"),
                parse_error({ n = 0 }, { bad }))
        end
    end)

    it("under LuaJIT, refuses integers its numbers do not hold exactly", function()
        -- args.lua as LuaJIT loads it: with the global jit
        local env = setmetatable({ jit = {} }, { __index = _G })
        local jit_args = assert(loadfile(helper.source_root .. "/lua/args.lua", "t", env))(compat)
        local function jit_error(argv)
            local ok, err = pcall(jit_args.parse, { n = 0 }, argv)
            assert.is_false(ok)
            return tostring(err)
        end
        assert.are.equal(2 ^ 53, jit_args.parse({ n = 0 }, { "n=9007199254740992" }).n)
        assert.are.equal(-2 ^ 53, jit_args.parse({ n = 0 }, { "n=-9007199254740992" }).n)
        assert.are.equal(2 ^ 53, jit_args.parse({ n = 0 }, { "n=0x20000000000000" }).n)
        for _, bad in ipairs({ "n=9007199254740993", "n=-9007199254740993", "n=0x20000000000001",
                "n=9223372036854775807" }) do
            assert.matches("integer argument out of range %(%-2%^53 to 2%^53%): " .. bad:gsub("%p", "%%%0"),
                jit_error({ bad }))
        end
    end)

    it("keeps repeated names in order for lists", function()
        local opt = args.parse({ addr = args.list(args.int()) }, { "addr=1", "addr=0x2", "addr=3" })
        assert.are.same({ 1, 2, 3 }, opt.addr)
    end)

    it("takes the last value of a repeated plain name", function()
        assert.are.equal(2, args.parse({ n = 0 }, { "n=1", "n=2" }).n)
    end)

    it("rejects unknown names, listing the known ones", function()
        assert.matches("option parsing failed: foo=1 %(known options: a, b%)",
            parse_error({ a = 1, b = false }, { "foo=1" }))
    end)

    it("rejects a name without a value", function()
        assert.matches("option parsing failed: inline %(expected inline=VALUE%)",
            parse_error({ inline = false }, { "inline" }))
    end)

    it("checks choices and custom parsers", function()
        local spec = {
            evict = args.choice({ "lru", "fifo", "rand" }, "lru"),
            pair = args.custom(function(t)
                local a, b = t:match("^(%d+):(%d+)$")
                if not a then return nil, "expected A:B" end
                return { tonumber(a), tonumber(b) }
            end),
        }
        assert.are.equal("fifo", args.parse(spec, { "evict=fifo" }).evict)
        assert.matches("expected one of lru, fifo, rand: evict=mru", parse_error(spec, { "evict=mru" }))
        assert.are.same({ 1, 2 }, args.parse(spec, { "pair=1:2" }).pair)
        assert.matches("expected A:B: pair=12", parse_error(spec, { "pair=12" }))
    end)

    it("makes usage errors after a script took away the globals they use", function()
        local saved = { error = error, getmetatable = getmetatable, setmetatable = setmetatable, debug = debug }
        local checked, ok, err, usage = pcall(function()
            _G.error, _G.getmetatable, _G.setmetatable, _G.debug = nil, nil, nil, nil
            local ok, err = pcall(function() args.usage_error("bad input") end)
            return ok, err, args.is_usage_error(err)
        end)
        for k, v in pairs(saved) do
            _G[k] = v
        end
        assert.is_true(checked, ok)
        assert.is_false(ok)
        assert.is_true(usage)
        assert.matches("args_spec%.lua:%d+: bad input", err.message)
        -- the host's message handler knows them by their metatable's name
        assert.are.equal("luahost.usage_error", getmetatable(err).__name)
    end)

    it("refuses a spec it cannot read", function()
        assert.has_error(function() args.parse({ x = function() end }, {}) end)
    end)
end)
