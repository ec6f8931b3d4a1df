-- addresses: the addresses that a script's arguments name, resolved when
-- the modules they name are mapped. Each text is an address (0x hex or
-- decimal; base 16: hex, 0x optional), SYMBOL, SYMBOL+0xOFF,
-- MODULE!SYMBOL[+0xOFF] or MODULE+0xOFF (luahost.resolve). Numbers hold at
-- once; names are looked up again whenever a module comes or goes (a PIE
-- program, a library, dlopen), so they follow the guest's layout. A name
-- that never resolved during the run is reported at exit as a warning.
--
--     local addresses = require("addresses")
--     local fns = addresses.set(opt.fn, { what = "fn" })
--     luahost.on_tb_translate(function(tb)
--         for _, insn in tb:insns() do
--             local name = fns:at(insn:vaddr())    -- the text naming it, or nil
--             ...
local luahost = require("luahost")

local addresses = {}

local Set = {}
Set.__index = Set

-- texts: a list of strings. opts.what names the argument in messages
-- ("fn" -> "fn=foo"), opts.base is 16 for C-plugin style hex addresses.
-- A text of no known form is a usage error, at the caller's line.
function addresses.set(texts, opts)
    opts = opts or {}
    local set = setmetatable({ entries = {}, what = opts.what, generation = nil, at_address = {} }, Set)
    for _, text in ipairs(texts) do
        local loc, why = luahost.parse_location(text, opts.base)
        if not loc then
            luahost.usage_error(("%s: %s"):format(why, set:label(text)), 2)
        end
        set.entries[#set.entries + 1] = { text = text, addr = loc.address, size = 0, fixed = loc.address ~= nil }
    end
    luahost.on_report(function()
        set:warn_unresolved()
    end)
    return set
end

function Set:label(text)
    return self.what and (self.what .. "=" .. text) or text
end

-- Looks the names up again if the modules changed since the last time.
-- Call it where addresses are needed (at translation); at() does.
function Set:refresh()
    local generation = luahost.modules_generation()
    if generation == self.generation then
        return
    end
    self.generation = generation
    self.at_address = {}
    for _, e in ipairs(self.entries) do
        if not e.fixed then
            local addr, why, size = luahost.resolve(e.text)
            e.addr, e.size = addr, size or 0
            if addr then
                e.resolved = true
            else
                e.why = why
            end
        end
        if e.addr then
            self.at_address[e.addr] = self.at_address[e.addr] or e.text
        end
    end
end

-- The text naming addr, or nil.
function Set:at(addr)
    if #self.entries == 0 then   -- nothing to find: the modules need not be read
        return nil
    end
    self:refresh()
    return self.at_address[addr]
end

-- The entries, each { text, addr (nil: not mapped now), size (0: unknown) },
-- as of the last refresh.
function Set:list()
    return self.entries
end

function Set:warn_unresolved()
    for _, e in ipairs(self.entries) do
        if not e.fixed and not e.resolved then
            luahost.warn(("%s never named an address during the run (%s)")
                :format(self:label(e.text), e.why or "no module was mapped"))
        end
    end
end

return addresses
