-- The API reference cannot drift from the header: every function the
-- qemu-plugin.h under test declares has a row in docs/qemu-api.md, each
-- bound one is called by host/, and each Lua name there is documented in
-- docs/api.md.
local helper = require("helper")

local function header_functions()
    local path = os.getenv("QEMU_INCLUDE") .. "/qemu-plugin.h"
    local text = assert(helper.read(path), "cannot read " .. path)
    local names = {}
    for decl in text:gmatch("QEMU_PLUGIN_API%s+([^;{]-%()") do
        names[#names + 1] = decl:match("(qemu_plugin_[%w_]+)%s*%($")
    end
    -- the entry point is exported by the plugin, not by QEMU
    names[#names + 1] = "qemu_plugin_install"
    return names
end

local function doc_rows()
    local text = assert(helper.read(helper.source_root .. "/docs/qemu-api.md"))
    local bound, omitted = {}, {}
    local section
    for line in text:gmatch("[^\n]+") do
        if line:match("^## ") then
            section = line
        end
        local name, second = line:match("^| `(qemu_plugin_[%w_]+)` | ([^|]*) | ([^|]*) |")
        if name and section == "## Bound" then
            bound[name] = second
        elseif name and section and section:find("Not bound", 1, true) then
            omitted[name] = second
        end
    end
    return bound, omitted
end

local function host_sources()
    local _, out = helper.sh("cat " .. helper.quote(helper.source_root) .. "/host/*.c")
    return out
end

describe("docs/qemu-api.md", function()
    after_each(helper.cleanup)

    local names = header_functions()
    local bound, omitted = doc_rows()
    local host = host_sources()
    local api_md = helper.read(helper.source_root .. "/docs/api.md")

    it("reads the header's functions", function()
        assert.is_true(#names >= 57)   -- QEMU 10.0 declares 57
    end)

    for _, name in ipairs(names) do
        it("covers " .. name, function()
            assert.is_truthy(bound[name] or omitted[name], name .. " has no row in docs/qemu-api.md")
            if omitted[name] then
                assert.is_true(#omitted[name] > 20, name .. ": say why it is not bound")
                return
            end
            if name ~= "qemu_plugin_install" then
                -- called, or looked up by name (dlsym)
                assert.is_truthy(host:find(name .. "(", 1, true) or host:find('"' .. name .. '"', 1, true),
                    name .. " is documented as bound but host/ never calls it")
                local lua_name = assert(bound[name]:match("`([%w_.:]+)`"), name .. ": no Lua name")
                assert.is_truthy(api_md:find("`" .. lua_name, 1, true),
                    lua_name .. " (for " .. name .. ") is not documented in docs/api.md")
            end
        end)
    end
end)
