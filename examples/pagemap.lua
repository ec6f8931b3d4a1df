-- pagemap: the pages the program's loads and stores touched, in address
-- order, with the number of each, and how many pages in all.
--
--   page=BYTES             page size (default 4096)
--   format=text|csv|json   report format (default: text)
local report = require("report")

local opt = luahost.args { page = 4096, format = report.format_arg() }
if opt.page < 1 then
    luahost.usage_error(("page must be at least 1: page=%d"):format(opt.page))
end

local pages = {}            -- page number -> { loads, stores }

local function on_access(_, vaddr, _, is_store)
    local n = math.floor(vaddr / opt.page)
    local p = pages[n]
    if not p then
        p = { 0, 0 }
        pages[n] = p
    end
    local i = is_store and 2 or 1
    p[i] = p[i] + 1
end

luahost.on_tb_translate(function(tb)
    for _, insn in tb:insns() do
        insn:on_access(on_access)
    end
end)

luahost.on_exit(function()
    local numbers = {}
    for n in pairs(pages) do
        numbers[#numbers + 1] = n
    end
    table.sort(numbers)   -- user-mode addresses are below 2^63
    local rows = {}
    for i, n in ipairs(numbers) do
        rows[i] = { ("0x%x"):format(n * opt.page), pages[n][1], pages[n][2] }
    end
    luahost.outs(report.render(opt.format, { "page", "loads", "stores" }, rows))
    if opt.format == "text" then
        luahost.printf("%d pages touched\n", #rows)
    end
end)
