-- flamegraph: where the program spends its instructions, by chain of
-- calls, as a flame graph (an SVG to open in a browser: hover for the
-- counts, click nothing) or as folded stacks ("main;f;g 1234", what
-- flamegraph.pl, inferno and speedscope read). Counts are executed guest
-- instructions, exact (not samples), from stdlib/callstack.lua.
--
--   format=svg|folded   (default svg; write it to a file: -o prog.svg)
--   per_vcpu=on|off     a tower per vCPU (guest thread), under "vcpu N"
--                       (default off: the threads merged)
--   title=TEXT          the graph's title (default "Flame graph")
--   width=PIXELS        the SVG's width (default 1200)
--   min_width=PIXELS    narrower frames are left out (default 0.5)
local callstack = require("callstack")

local opt = luahost.args {
    format = luahost.args.choice({ "svg", "folded" }, "svg"),
    per_vcpu = false,
    title = "Flame graph",
    width = 1200,
    min_width = luahost.args.custom(function(text)
        local n = tonumber(text)
        if not n or n < 0 then
            return nil, "min_width must be a number of pixels, 0 or more"
        end
        return n
    end, 0.5),
}
if opt.width < 100 or opt.width > 100000 then
    luahost.usage_error("width must be 100 to 100000 pixels")
end

local cs = callstack.new()

local FRAME_HEIGHT, TOP, BOTTOM, SIDE = 16, 40, 24, 10

local function escape(text)
    return (text:gsub("[<>&\"]", { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;", ['"'] = "&quot;" }))
end

-- A warm colour from the name, the same for a name in every graph.
local function colour(name)
    local h = 0
    for i = 1, #name do
        h = (h * 31 + name:byte(i)) % 65536
    end
    return ("rgb(%d,%d,%d)"):format(205 + h % 50, 80 + math.floor(h / 50) % 130, 40 + math.floor(h / 6500) % 55)
end

-- The folded lines as a tree: node = { name, count (inclusive), children, order }.
local function tree_of(lines)
    local root = { name = "all", count = 0, children = {}, order = {} }
    for _, line in ipairs(lines) do
        local path, n = line:match("^(.*) (%d+)$")
        n = tonumber(n)
        root.count = root.count + n
        local node = root
        for name in path:gmatch("[^;]+") do
            local child = node.children[name]
            if not child then
                child = { name = name, count = 0, children = {}, order = {} }
                node.children[name] = child
                node.order[#node.order + 1] = name
            end
            child.count = child.count + n
            node = child
        end
    end
    return root
end

local function depth_of(node)
    local deepest = 0
    for _, child in pairs(node.children) do
        deepest = math.max(deepest, depth_of(child))
    end
    return deepest + 1
end

local function svg(lines)
    local root = tree_of(lines)
    local levels = depth_of(root)
    local height = TOP + levels * FRAME_HEIGHT + BOTTOM
    local scale = root.count > 0 and (opt.width - 2 * SIDE) / root.count or 0
    local out = {
        ('<?xml version="1.0" standalone="no"?>\n'),
        ('<svg version="1.1" width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg">\n')
            :format(opt.width, height, opt.width, height),
        ('<rect x="0" y="0" width="%d" height="%d" fill="#f8f8f8"/>\n'):format(opt.width, height),
        ('<text x="%d" y="24" font-family="Verdana" font-size="17" text-anchor="middle">%s</text>\n')
            :format(math.floor(opt.width / 2), escape(opt.title)),
        ('<text x="%d" y="%d" font-family="Verdana" font-size="12">%d instructions; luahost flamegraph.lua</text>\n')
            :format(SIDE, height - 8, root.count),
    }
    local function frame(node, x, level)
        local w = node.count * scale
        if w < opt.min_width then
            return
        end
        local y = height - BOTTOM - (level + 1) * FRAME_HEIGHT
        local pct = 100 * node.count / root.count
        out[#out + 1] = ('<g><title>%s (%d instructions, %.2f%%)</title>'
            .. '<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" rx="2"/>')
            :format(escape(node.name), node.count, pct, x, y, w, FRAME_HEIGHT - 1, colour(node.name))
        local chars = math.floor((w - 6) / 7)
        if chars >= 3 then
            local label = #node.name <= chars and node.name or node.name:sub(1, chars - 2) .. ".."
            out[#out + 1] = ('<text x="%.2f" y="%d" font-family="Verdana" font-size="12">%s</text>')
                :format(x + 3, y + FRAME_HEIGHT - 4, escape(label))
        end
        out[#out + 1] = "</g>\n"
        table.sort(node.order)      -- alphabetical, as flamegraph.pl: widths carry the weight
        for _, name in ipairs(node.order) do
            local child = node.children[name]
            frame(child, x, level + 1)
            x = x + child.count * scale
        end
    end
    frame(root, SIDE, 0)
    out[#out + 1] = "</svg>\n"
    return table.concat(out)
end

luahost.on_exit(function()
    local lines = cs:folded(opt.per_vcpu)
    if opt.format == "folded" then
        luahost.outs(table.concat(lines, "\n") .. "\n")
    else
        luahost.outs(svg(lines))
    end
end)
