-- bench/workloads/cpu.lua: a CPU workload for the Lua interpreter, run by
-- bench/run as `qemu-x86_64 /usr/bin/lua5.4 bench/workloads/cpu.lua N`.
--
-- N rounds of three kernels, each a kind of work an interpreter spends its
-- time on: floating point in tight loops (spectral norm), string building
-- and matching (format, concat, gsub, find), and table churn (hash inserts
-- and deletes, array insert/remove, sort with a Lua comparator). Work grows
-- linearly with N; a round is small (about 25 ms under qemu-x86_64 on a
-- 2020s x86_64 core) so that N can size the work finely. Deterministic: no clock, no os.time, a fixed-seed LCG,
-- and the output (a checksum per kernel) is the same on every run.

local n = tonumber(arg[1]) or error("usage: cpu.lua N")

-- A 31-bit LCG with a fixed seed, so the work and the output never vary.
local state = 12345
local function rnd(m)
    state = (state * 1103515245 + 12345) % 2147483648
    return (state >> 8) % m
end

-- Spectral norm of the infinite matrix A(i, j) = 1 / ((i+j)(i+j+1)/2 + i + 1),
-- on a size x size section, by 10 steps of the power method.
local function a(i, j)
    local ij = i + j
    return 1.0 / (ij * (ij + 1) * 0.5 + i + 1)
end
local function av(x, y, size)
    for i = 0, size - 1 do
        local s = 0.0
        for j = 0, size - 1 do
            s = s + a(i, j) * x[j + 1]
        end
        y[i + 1] = s
    end
end
local function atv(x, y, size)
    for i = 0, size - 1 do
        local s = 0.0
        for j = 0, size - 1 do
            s = s + a(j, i) * x[j + 1]
        end
        y[i + 1] = s
    end
end
local function spectral(size)
    local u, v, t = {}, {}, {}
    for i = 1, size do
        u[i] = 1.0
    end
    for _ = 1, 10 do
        av(u, t, size); atv(t, v, size)
        av(v, t, size); atv(t, u, size)
    end
    local vbv, vv = 0.0, 0.0
    for i = 1, size do
        vbv = vbv + u[i] * v[i]
        vv = vv + v[i] * v[i]
    end
    return math.sqrt(vbv / vv)
end

-- Strings: build lines of made-up words and numbers, join them, count and
-- rewrite words by pattern, and hash the result.
local function strings(lines)
    local out = {}
    for l = 1, lines do
        local words = {}
        for w = 1, 6 + rnd(6) do
            local len = 2 + rnd(7)
            local chars = {}
            for c = 1, len do
                chars[c] = string.char(97 + rnd(26))
            end
            words[w] = table.concat(chars)
        end
        out[l] = string.format("%05d %s %.3f", l, table.concat(words, " "), rnd(100000) / 7)
    end
    local text = table.concat(out, "\n")
    local vowels = select(2, text:gsub("[aeiou]", ""))
    local upper = text:gsub("%f[%a](%a)(%a*)", function(first, rest) return first:upper() .. rest end)
    local found, at = 0, 1
    while true do
        local s, e = upper:find("%u%l%l ", at)
        if not s then
            break
        end
        found, at = found + 1, e + 1
    end
    local h = 0
    for i = 1, #upper, 7 do
        h = (h * 31 + upper:byte(i)) % 4294967296
    end
    return vowels + found + h
end

-- Tables: a hash of string keys filled and thinned, an array grown and
-- shrunk in the middle, and a sort of records by two fields.
local function tables(count)
    local hash, keys = {}, {}
    for i = 1, count do
        local k = "k" .. rnd(count * 4)
        hash[k] = (hash[k] or 0) + i
        keys[#keys + 1] = k
    end
    for i = 1, #keys, 3 do
        hash[keys[i]] = nil
    end
    local live = 0
    for _, v in pairs(hash) do
        live = live + v % 1000
    end
    local arr = {}
    for i = 1, count // 4 do
        table.insert(arr, 1 + rnd(#arr + 1), i)
        if i % 5 == 0 then
            table.remove(arr, 1 + rnd(#arr))
        end
    end
    local recs = {}
    for i = 1, count do
        recs[i] = { a = rnd(50), b = rnd(100000), id = i }
    end
    table.sort(recs, function(x, y)
        if x.a ~= y.a then
            return x.a < y.a
        end
        if x.b ~= y.b then
            return x.b < y.b
        end
        return x.id < y.id
    end)
    return live + #arr + recs[1].id + recs[count].id
end

local sum_spectral, sum_strings, sum_tables = 0.0, 0, 0
for _ = 1, n do
    sum_spectral = sum_spectral + spectral(24)
    sum_strings = (sum_strings + strings(40)) % 4294967296
    sum_tables = (sum_tables + tables(400)) % 4294967296
end
print(("spectral %.9f strings %d tables %d"):format(sum_spectral, sum_strings, sum_tables))
