-- report: tables of results as aligned text, CSV or JSON, so that the
-- output of a script is read by people and merged by programs alike.
--
--     local report = require("report")
--     local opt = luahost.args { format = report.format_arg() }
--     local rows = report.sorted(counts, { limit = 10 })     -- {key=, value=}
--     luahost.outs(report.render(opt.format, { "name", "calls" }, rows_as_lists))
--
-- Pure Lua: no luahost call, so it also runs (and is tested) outside QEMU.
local report = {}

report.FORMATS = { "text", "csv", "json" }

-- The spec of a format= script argument (needs luahost.args).
function report.format_arg(default)
    return require("luahost").args.choice(report.FORMATS, default or "text")
end

local function is_integer(v)
    if type(v) == "number" then
        return v == math.floor(v) and v > -2 ^ 63 and v < 2 ^ 63
    end
    -- LuaJIT's 64-bit integers (cdata) print with %d
    return type(v) == "cdata"
end

-- A cell as text: integers without a fraction, other numbers with up to
-- two decimals, the rest with tostring.
function report.cell(v)
    if v == nil then
        return ""
    elseif is_integer(v) then
        return ("%d"):format(v)
    elseif type(v) == "number" then
        return (("%.2f"):format(v):gsub("%.?0+$", ""))
    end
    return tostring(v)
end

-- Entries of a map { key = number } as a list of { key =, value = },
-- largest value first (ties by key, so the order is stable).
-- opts: ascending (smallest first), limit (keep the first N).
function report.sorted(map, opts)
    opts = opts or {}
    local rows = {}
    for k, v in pairs(map) do
        rows[#rows + 1] = { key = k, value = v }
    end
    table.sort(rows, function(a, b)
        if a.value ~= b.value then
            if opts.ascending then
                return a.value < b.value
            end
            return a.value > b.value
        end
        return tostring(a.key) < tostring(b.key)
    end)
    if opts.limit and #rows > opts.limit then
        for i = #rows, opts.limit + 1, -1 do
            rows[i] = nil
        end
    end
    return rows
end

-- The records (the values of a table: a list or a map) with the largest
-- record[field] first, at most limit of them (all if nil). Ties by
-- record[tie], smallest first, when tie is given, so the order is stable.
function report.top(records, field, limit, tie)
    local rows = {}
    for _, rec in pairs(records) do
        rows[#rows + 1] = rec
    end
    table.sort(rows, function(a, b)
        if a[field] ~= b[field] then
            return a[field] > b[field]
        end
        return tie ~= nil and a[tie] < b[tie]
    end)
    for i = #rows, (limit or #rows) + 1, -1 do
        rows[i] = nil
    end
    return rows
end

-- The ids 1..n with the largest values[id] first, at most limit of them
-- (all if nil); ties by tie[id], smallest first, when tie is given. For
-- records kept in columns, an array per field: no table per record, and
-- for a short list no sort of all n, only a compare with its last.
function report.top_ids(n, values, limit, tie)
    limit = math.min(limit or n, n)
    local function before(a, b)
        if values[a] ~= values[b] then
            return values[a] > values[b]
        end
        return tie ~= nil and tie[a] < tie[b]
    end
    local top = {}
    if limit > 64 then
        for id = 1, n do
            top[id] = id
        end
        table.sort(top, before)
        for i = n, limit + 1, -1 do
            top[i] = nil
        end
        return top
    end
    for id = 1, limit > 0 and n or 0 do
        local i = #top
        if i < limit or before(id, top[i]) then
            if i == limit then
                i = i - 1           -- the last one drops out
            end
            while i >= 1 and before(id, top[i]) do
                top[i + 1] = top[i]
                i = i - 1
            end
            top[i + 1] = id
        end
    end
    return top
end

-- Aligned columns: text left-aligned, numbers right-aligned, a header line.
function report.text(columns, rows)
    local cells, widths, numeric = {}, {}, {}
    for c, name in ipairs(columns) do
        widths[c] = #name
        numeric[c] = true
    end
    for r, row in ipairs(rows) do
        cells[r] = {}
        for c = 1, #columns do
            local v = row[c]
            local text = report.cell(v)
            cells[r][c] = text
            if v ~= nil and type(v) ~= "number" and type(v) ~= "cdata" then
                numeric[c] = false
            end
            widths[c] = math.max(widths[c], #text)
        end
    end
    local function line(texts)
        local out = {}
        for c, text in ipairs(texts) do
            local pad = (" "):rep(widths[c] - #text)
            if c == #columns and not numeric[c] then
                out[c] = text                   -- no trailing blanks
            elseif numeric[c] then
                out[c] = pad .. text
            else
                out[c] = text .. pad
            end
        end
        return table.concat(out, "  ") .. "\n"
    end
    local out = { line(columns) }
    for r = 1, #rows do
        out[#out + 1] = line(cells[r])
    end
    return table.concat(out)
end

local function csv_field(text)
    if text:find('[,"\r\n]') then
        return '"' .. text:gsub('"', '""') .. '"'
    end
    return text
end

-- RFC 4180 CSV with a header line.
function report.csv(columns, rows)
    local out = {}
    local function line(values, n)
        local fields = {}
        for c = 1, n do
            fields[c] = csv_field(report.cell(values[c]))
        end
        out[#out + 1] = table.concat(fields, ",") .. "\n"
    end
    line(columns, #columns)
    for _, row in ipairs(rows) do
        line(row, #columns)
    end
    return table.concat(out)
end

local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
    ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

local function json_string(s)
    return '"' .. s:gsub('[%c"\\]', function(ch)
        return ESCAPES[ch] or ("\\u%04x"):format(ch:byte())
    end) .. '"'
end

-- A table is an array when its keys are exactly 1..n (an empty table is
-- an object: {}).
local function is_array(t)
    local n = 0
    for _ in pairs(t) do
        n = n + 1
    end
    return n > 0 and #t == n
end

-- JSON text of a Lua value: tables with keys 1..n are arrays, other
-- tables objects with keys sorted (keys that are not strings are written
-- as strings); nil is null. Non-finite numbers are an error.
function report.json(v)
    local t = type(v)
    if v == nil then
        return "null"
    elseif t == "boolean" then
        return tostring(v)
    elseif t == "string" then
        return json_string(v)
    elseif is_integer(v) then
        return ("%d"):format(v)
    elseif t == "number" then
        if v ~= v or v == math.huge or v == -math.huge then
            error("report.json: cannot encode " .. tostring(v), 2)
        end
        return ("%.17g"):format(v)
    elseif t == "table" then
        local out = {}
        if is_array(v) then
            for i = 1, #v do
                out[i] = report.json(v[i])
            end
            return "[" .. table.concat(out, ",") .. "]"
        end
        local keys = {}
        for k in pairs(v) do
            keys[#keys + 1] = k
        end
        table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
        for i, k in ipairs(keys) do
            out[i] = json_string(report.cell(k)) .. ":" .. report.json(v[k])
        end
        return "{" .. table.concat(out, ",") .. "}"
    end
    error("report.json: cannot encode a " .. t, 2)
end

-- Rows as a JSON array of objects, one per row, keyed by column name
-- (sorted, as report.json sorts keys), followed by a newline. Every object
-- has every column: an empty cell (nil) is null.
function report.json_rows(columns, rows)
    local order = {}
    for c = 1, #columns do
        order[c] = c
    end
    table.sort(order, function(a, b) return columns[a] < columns[b] end)
    local objects = {}
    for r, row in ipairs(rows) do
        local fields = {}
        for i, c in ipairs(order) do
            fields[i] = json_string(columns[c]) .. ":" .. report.json(row[c])
        end
        objects[r] = "{" .. table.concat(fields, ",") .. "}"
    end
    return "[" .. table.concat(objects, ",") .. "]\n"
end

-- columns and rows (lists of cell values) in format "text", "csv" or "json".
function report.render(format, columns, rows)
    if format == "csv" then
        return report.csv(columns, rows)
    elseif format == "json" then
        return report.json_rows(columns, rows)
    elseif format == "text" or format == nil then
        return report.text(columns, rows)
    end
    error(("report.render: unknown format %s (expected text, csv or json)"):format(tostring(format)), 2)
end

return report
