-- agg: bpftrace-style aggregations, printed by themselves at exit.
--
--     local agg = require("agg")
--     local calls = agg.count("calls")      -- @calls[key]: N
--     local sizes = agg.hist("size")        -- power-of-two histogram
--     calls:add(key)                        -- at run time, from a hook
--     calls:inline(insn, sym)               -- at translation time: QEMU counts
--
-- A key known at translation time (a block, an instruction, its symbol)
-- goes through :inline/:mem_inline: the map hands the tb or insn a
-- scoreboard entry of its own and QEMU adds to it in the generated code,
-- so counting from any number of vCPUs is exact and never enters Lua. A
-- key known only at run time (a syscall number, an access's address) goes
-- through :add, a Lua table updated under luahost's global lock.
-- Totals are both parts added up, read at exit.
local report = require("report")

local agg = {}

local maps = {}                  -- every map, in creation order
local settings = { format = "text", auto = true }
local exit_hook_registered = false

-- The key of a map used without keys (bpftrace's @name = count()).
local NOKEY = setmetatable({}, { __tostring = function() return "" end })
agg.NOKEY = NOKEY

local function luahost()
    return require("luahost")
end

-- Scoreboard entries come from boards of 64 fields (stdlib/entries.lua).
local new_entry = require("entries").new

local function check_handle(h, method)
    local t = type(h)
    if (t ~= "userdata" and t ~= "table") or h.inline == nil then
        error(("%s expects a tb or insn handle, got %s"):format(method, type(h)), 3)
    end
end

local function check_integer(v, what, level)
    if type(v) ~= "number" or v ~= math.floor(v) then
        error(("%s must be an integer, got %s"):format(what, tostring(v)), level + 1)
    end
end

local function entry_of(cells, key)
    local e = cells[key]
    if not e then
        e = new_entry()
        cells[key] = e
    end
    return e
end

local function key_of(key)
    if key == nil then
        return NOKEY
    end
    return key
end

local function sorted_keys(t)
    local keys = {}
    for k in pairs(t) do
        keys[#keys + 1] = k
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    return keys
end

local function label(map, key)
    if key == NOKEY then
        return "@" .. map.name
    end
    return ("@%s[%s]"):format(map.name, report.cell(key))
end

---------------------------------------------------------------------------
-- Counters and sums: one u64 per key.

local Counter = {}
Counter.__index = Counter

-- At run time: adds n (default 1) to key.
function Counter:add(key, n)
    key = key_of(key)
    self.lua[key] = (self.lua[key] or 0) + (n or 1)
end

-- At translation time: QEMU adds n (default 1) to key each time the tb or
-- insn executes.
function Counter:inline(handle, key, n)
    check_handle(handle, "inline")
    handle:inline("add", entry_of(self.cells, key_of(key)), n or 1)
end

-- At translation time: QEMU adds n (default 1) to key on each memory
-- access of insn of kind rw ("r", "w", "rw"; default "rw").
function Counter:mem_inline(insn, key, n, rw)
    check_handle(insn, "mem_inline")
    insn:mem_inline("add", entry_of(self.cells, key_of(key)), n or 1, rw)
end

-- The scoreboard entry key is counted in, for adds registered another way
-- (luahost.insn_mix's classify returns it); its counts are key's.
function Counter:entry(key)
    return entry_of(self.cells, key_of(key))
end

-- { key = total } (keys never counted are absent; NOKEY for no key).
function Counter:values()
    local out = {}
    for k, v in pairs(self.lua) do
        out[k] = v
    end
    for k, e in pairs(self.cells) do
        local s = e:sum()
        if s ~= 0 or out[k] == nil then
            out[k] = (out[k] or 0) + s
        end
    end
    return out
end

function Counter:get(key)
    return self:values()[key_of(key)] or 0
end

function Counter:rows()
    local rows = {}
    for _, r in ipairs(report.sorted(self:values(), { limit = self.limit })) do
        rows[#rows + 1] = { key = r.key, value = r.value }
    end
    return rows
end

function Counter:text()
    local rows = self:rows()
    local out = {}
    -- bpftrace's order: smallest first, so the largest ends next to the prompt
    for i = #rows, 1, -1 do
        out[#out + 1] = ("%s: %s\n"):format(label(self, rows[i].key), report.cell(rows[i].value))
    end
    return table.concat(out)
end

function Counter:tidy()
    local out = {}
    for _, r in ipairs(self:rows()) do
        out[#out + 1] = { r.key, self.kind, r.value }
    end
    return out
end

function Counter:data()
    local values = self:values()
    if next(values) ~= nil and values[NOKEY] ~= nil and next(values, next(values)) == nil then
        return values[NOKEY]
    end
    return values
end

---------------------------------------------------------------------------
-- Stats: count, sum, min, max and average of values, per key.

local Stats = {}
Stats.__index = Stats

-- At run time: one value for key.
function Stats:add(value, key)
    key = key_of(key)
    local s = self.lua[key]
    if not s then
        self.lua[key] = { count = 1, sum = value, min = value, max = value }
        return
    end
    s.count = s.count + 1
    s.sum = s.sum + value
    if value < s.min then s.min = value end
    if value > s.max then s.max = value end
end

-- At translation time: value (an integer known now, e.g. an instruction's
-- size) counts once each time the tb or insn executes. One entry per
-- (key, value) pair; min and max are those values that ran at least once.
function Stats:inline(handle, value, key)
    check_handle(handle, "inline")
    check_integer(value, "a stats value given to inline", 2)
    key = key_of(key)
    local by_value = self.cells[key]
    if not by_value then
        by_value = {}
        self.cells[key] = by_value
    end
    handle:inline("add", entry_of(by_value, value), 1)
end

-- { key = { count, sum, min, max, avg } }
function Stats:values()
    local out = {}
    local function merge(key, count, sum, min, max)
        local s = out[key]
        if not s then
            out[key] = { count = count, sum = sum, min = min, max = max }
            return
        end
        s.count = s.count + count
        s.sum = s.sum + sum
        if min < s.min then s.min = min end
        if max > s.max then s.max = max end
    end
    for k, s in pairs(self.lua) do
        merge(k, s.count, s.sum, s.min, s.max)
    end
    for k, by_value in pairs(self.cells) do
        for value, e in pairs(by_value) do
            local n = e:sum()
            if n ~= 0 then
                merge(k, n, value * n, value, value)
            end
        end
    end
    for _, s in pairs(out) do
        s.avg = s.sum / s.count
    end
    return out
end

function Stats:rows()
    local counts = {}
    local values = self:values()
    for k, s in pairs(values) do
        counts[k] = s.count
    end
    local rows = {}
    for _, r in ipairs(report.sorted(counts, { limit = self.limit })) do
        rows[#rows + 1] = { key = r.key, value = values[r.key] }
    end
    return rows
end

function Stats:text()
    local rows = self:rows()
    local out = {}
    for i = #rows, 1, -1 do
        local s = rows[i].value
        out[#out + 1] = ("%s: count %s, min %s, max %s, average %s, total %s\n"):format(
            label(self, rows[i].key), report.cell(s.count), report.cell(s.min), report.cell(s.max),
            report.cell(s.avg), report.cell(s.sum))
    end
    return table.concat(out)
end

function Stats:tidy()
    local out = {}
    for _, r in ipairs(self:rows()) do
        for _, stat in ipairs({ "count", "sum", "min", "max", "avg" }) do
            out[#out + 1] = { r.key, stat, r.value[stat] }
        end
    end
    return out
end

function Stats:data()
    local values = self:values()
    if values[NOKEY] and next(values, next(values)) == nil then
        return values[NOKEY]
    end
    return values
end

---------------------------------------------------------------------------
-- Histograms: counts per bucket of values, per key. A bucket is an
-- integer index; the map's shape turns values into indices and back.

local SUFFIXES = { "", "K", "M", "G", "T", "P", "E" }

-- 1024 -> "1K", as bpftrace labels power-of-two buckets.
local function pow2_text(v)
    local i = 1
    while v >= 1024 and v % 1024 == 0 and i < #SUFFIXES do
        v = v / 1024
        i = i + 1
    end
    return ("%d%s"):format(v, SUFFIXES[i])
end

-- Power-of-two buckets: -1 is (..., 0), 0 is [0], k >= 1 is
-- [2^(k-1), 2^k).
local Pow2 = {}

function Pow2.index(v)
    if v < 0 then
        return -1
    elseif v < 1 then
        return 0
    end
    local k, low = 1, 1
    while k < 64 and v >= low * 2 do
        low = low * 2
        k = k + 1
    end
    return k
end

function Pow2.bounds(i)
    if i < 0 then
        return nil, 0
    elseif i == 0 then
        return 0, 1
    end
    local low = 2 ^ (i - 1)
    return low, low * 2
end

function Pow2.label(i)
    if i < 0 then
        return "(..., 0)"
    elseif i == 0 then
        return "[0]"
    elseif i == 1 then
        return "[1]"
    end
    local low = 2 ^ (i - 1)
    return ("[%s, %s)"):format(pow2_text(low), pow2_text(low * 2))
end

-- Linear buckets of width step from min to max: -1 is below min, n is
-- max and above.
local function linear(min, max, step)
    local n = math.ceil((max - min) / step)
    local shape = {}
    function shape.index(v)
        if v < min then
            return -1
        elseif v >= max then
            return n
        end
        return math.floor((v - min) / step)
    end
    function shape.bounds(i)
        if i < 0 then
            return nil, min
        elseif i >= n then
            return max, nil
        end
        return min + i * step, math.min(min + (i + 1) * step, max)
    end
    function shape.label(i)
        local low, high = shape.bounds(i)
        if not low then
            return ("(..., %s)"):format(report.cell(high))
        elseif not high then
            return ("[%s, ...)"):format(report.cell(low))
        end
        return ("[%s, %s)"):format(report.cell(low), report.cell(high))
    end
    return shape
end

local Hist = {}
Hist.__index = Hist

-- At run time: one value for key.
function Hist:add(value, key)
    key = key_of(key)
    local buckets = self.lua[key]
    if not buckets then
        buckets = {}
        self.lua[key] = buckets
    end
    local i = self.shape.index(value)
    buckets[i] = (buckets[i] or 0) + 1
end

-- At translation time: value (known now) is counted each time the tb or
-- insn executes; mem_inline counts it on each memory access of insn.
function Hist:inline(handle, value, key)
    check_handle(handle, "inline")
    key = key_of(key)
    local cells = self.cells[key] or {}
    self.cells[key] = cells
    handle:inline("add", entry_of(cells, self.shape.index(value)), 1)
end

function Hist:mem_inline(insn, value, key, rw)
    check_handle(insn, "mem_inline")
    key = key_of(key)
    local cells = self.cells[key] or {}
    self.cells[key] = cells
    insn:mem_inline("add", entry_of(cells, self.shape.index(value)), 1, rw)
end

-- { key = { [bucket index] = count } }
function Hist:values()
    local out = {}
    for k, buckets in pairs(self.lua) do
        local b = {}
        for i, n in pairs(buckets) do
            b[i] = n
        end
        out[k] = b
    end
    for k, cells in pairs(self.cells) do
        local b = out[k] or {}
        for i, e in pairs(cells) do
            local n = e:sum()
            if n ~= 0 then
                b[i] = (b[i] or 0) + n
            end
        end
        if next(b) ~= nil then
            out[k] = b
        end
    end
    return out
end

-- Buckets of one key as a list from the lowest used to the highest used,
-- the empty ones between included: { index =, label =, low =, high =, count = }.
function Hist:buckets(key)
    local b = self:values()[key_of(key)] or {}
    local lo, hi
    for i in pairs(b) do
        if not lo or i < lo then lo = i end
        if not hi or i > hi then hi = i end
    end
    local out = {}
    if lo then
        for i = lo, hi do
            local low, high = self.shape.bounds(i)
            out[#out + 1] = { index = i, label = self.shape.label(i), low = low, high = high, count = b[i] or 0 }
        end
    end
    return out
end

local BAR = 52

function Hist:text()
    local out = {}
    for _, k in ipairs(sorted_keys(self:values())) do
        local buckets = self:buckets(k)
        local most = 0
        for _, b in ipairs(buckets) do
            if b.count > most then most = b.count end
        end
        out[#out + 1] = label(self, k) .. ":\n"
        for _, b in ipairs(buckets) do
            local width = most > 0 and math.floor(b.count * BAR / most) or 0
            out[#out + 1] = ("%-16s%8s |%s%s|\n"):format(b.label, report.cell(b.count),
                ("@"):rep(width), (" "):rep(BAR - width))
        end
        out[#out + 1] = "\n"
    end
    return table.concat(out)
end

function Hist:tidy()
    local out = {}
    for _, k in ipairs(sorted_keys(self:values())) do
        for _, b in ipairs(self:buckets(k)) do
            out[#out + 1] = { k, b.label, b.count }
        end
    end
    return out
end

function Hist:data()
    local out = {}
    for k in pairs(self:values()) do
        local list = {}
        for _, b in ipairs(self:buckets(k)) do
            list[#list + 1] = { low = b.low, high = b.high, count = b.count }
        end
        out[k] = list
    end
    if out[NOKEY] and next(out, next(out)) == nil then
        return out[NOKEY]
    end
    return out
end

---------------------------------------------------------------------------
-- Making maps and printing them.

local function print_all()
    if settings.auto then
        luahost().outs(agg.render(settings.format))
    end
end

local function new_map(class, kind, name, opts)
    if type(name) ~= "string" or name == "" then
        error(("agg.%s expects a map name, got %s"):format(kind, type(name)), 3)
    end
    for _, m in ipairs(maps) do
        if m.name == name then
            error(("agg.%s: a map named %s exists already"):format(kind, name), 3)
        end
    end
    opts = opts or {}
    local map = setmetatable({ name = name, kind = kind, lua = {}, cells = {},
        limit = opts.limit, print = opts.print ~= false }, class)
    maps[#maps + 1] = map
    if not exit_hook_registered then
        exit_hook_registered = true
        luahost().on_report(print_all)     -- after the script's exit hooks
    end
    return map
end

-- Keyed counter: :add(key [, n]), :inline(handle, key [, n]),
-- :mem_inline(insn, key [, n [, rw]]). opts: limit (print the N largest),
-- print (false: not printed at exit).
function agg.count(name, opts)
    return new_map(Counter, "count", name, opts)
end

-- As count; printed and exported as a sum.
function agg.sum(name, opts)
    return new_map(Counter, "sum", name, opts)
end

-- count, sum, min, max, average: :add(value [, key]), :inline(handle, value [, key]).
function agg.stats(name, opts)
    return new_map(Stats, "stats", name, opts)
end

-- Power-of-two histogram: :add(value [, key]), :inline(handle, value [, key]),
-- :mem_inline(insn, value [, key [, rw]]).
function agg.hist(name, opts)
    local map = new_map(Hist, "hist", name, opts)
    map.shape = Pow2
    return map
end

-- Linear histogram: buckets of width step from min up to max.
function agg.lhist(name, min, max, step, opts)
    for _, v in ipairs({ min, max, step }) do
        check_integer(v, "agg.lhist's min, max and step", 2)
    end
    if step <= 0 or max <= min then
        error("agg.lhist expects min < max and step > 0", 2)
    end
    local map = new_map(Hist, "lhist", name, opts)
    map.shape = linear(min, max, step)
    return map
end

-- Format of the report printed at exit: "text" (bpftrace's), "csv" or
-- "json". auto = false: nothing printed at exit (call agg.render yourself).
function agg.set_format(format)
    if format ~= "text" and format ~= "csv" and format ~= "json" then
        error(("agg.set_format: unknown format %s (expected text, csv or json)"):format(tostring(format)), 2)
    end
    settings.format = format
end

function agg.set_auto(on)
    settings.auto = on and true or false
end

-- Every map that prints, in creation order. CSV is tidy (one value per
-- line, map,key,stat,value: files of several runs concatenate and merge);
-- JSON is one object { "@name": data }.
function agg.render(format)
    format = format or settings.format
    local printed = {}
    for _, m in ipairs(maps) do
        if m.print then
            printed[#printed + 1] = m
        end
    end
    if format == "csv" then
        local rows = {}
        for _, m in ipairs(printed) do
            for _, r in ipairs(m:tidy()) do
                rows[#rows + 1] = { "@" .. m.name, r[1] == NOKEY and "" or r[1], r[2], r[3] }
            end
        end
        return report.csv({ "map", "key", "stat", "value" }, rows)
    elseif format == "json" then
        local doc = {}
        for _, m in ipairs(printed) do
            doc["@" .. m.name] = m:data()
        end
        return (next(doc) == nil and "{}" or report.json(doc)) .. "\n"
    end
    local out = {}
    for i, m in ipairs(printed) do
        local text = m:text()
        if text ~= "" then
            if m.kind == "hist" or m.kind == "lhist" then
                out[#out + 1] = text
            else
                out[#out + 1] = text .. (i < #printed and "\n" or "")
            end
        end
    end
    return table.concat(out)
end

-- Forgets every map (for tests).
function agg._reset()
    maps = {}
    require("entries")._reset()
    exit_hook_registered = false
    settings = { format = "text", auto = true }
end

return agg
