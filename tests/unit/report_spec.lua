-- stdlib/report.lua is pure Lua: tested here without QEMU.
local helper = require("helper")
local report = assert(loadfile(helper.source_root .. "/stdlib/report.lua"))()

describe("report", function()
    it("sorts a map largest first, ties by key, and limits", function()
        local rows = report.sorted({ a = 3, b = 10, c = 3, d = 1 }, { limit = 3 })
        assert.are.same({ { key = "b", value = 10 }, { key = "a", value = 3 }, { key = "c", value = 3 } }, rows)
        assert.are.same({ "d", "a", "c", "b" }, (function()
            local keys = {}
            for i, r in ipairs(report.sorted({ a = 3, b = 10, c = 3, d = 1 }, { ascending = true })) do
                keys[i] = r.key
            end
            return keys
        end)())
    end)

    it("keeps the top records by a field, ties by another, from a list or a map", function()
        local recs = { x = { n = 5, pc = 3 }, y = { n = 9, pc = 2 }, z = { n = 5, pc = 1 }, w = { n = 1, pc = 0 } }
        local top = report.top(recs, "n", 3, "pc")
        assert.are.same({ recs.y, recs.z, recs.x }, top)
        assert.are.same({ recs.y, recs.z, recs.x, recs.w }, report.top(recs, "n", nil, "pc"))
        assert.are.same({ recs.y }, report.top({ recs.w, recs.y }, "n", 1))
        assert.are.same({}, report.top({}, "n", 5))
    end)

    it("keeps the top ids of records in columns, as report.top keeps records", function()
        -- both ways of selecting: a short list, and a sort of all when long
        local n, values, tie, recs = 300, {}, {}, {}
        local seed = 7
        for id = 1, n do
            seed = (seed * 1103515245 + 12345) % 2147483648
            values[id], tie[id] = seed % 17, id * 7919 % 1009   -- ties unique: 1009 is prime
            recs[id] = { n = values[id], pc = tie[id], id = id }
        end
        for _, limit in ipairs({ 0, 1, 5, 64, 65, 299, 300, 400 }) do
            local want = {}
            for i, rec in ipairs(report.top(recs, "n", limit, "pc")) do
                want[i] = rec.id
            end
            assert.are.same(want, report.top_ids(n, values, limit, tie), "limit " .. limit)
        end
        assert.are.equal(n, #report.top_ids(n, values, nil, tie))
        assert.are.same({ 2, 3, 1 }, report.top_ids(3, { 1, 5, 5 }, 5))
        assert.are.same({}, report.top_ids(0, {}, 5))
    end)

    it("aligns text columns: text left, numbers right", function()
        assert.are.equal("name   calls\nread       5\nwrite  12345\n",
            report.text({ "name", "calls" }, { { "read", 5 }, { "write", 12345 } }))
    end)

    it("writes RFC 4180 CSV", function()
        assert.are.equal('key,n\n"a,b",1\n"say ""hi""",2\nplain,2.5\n',
            report.csv({ "key", "n" }, { { "a,b", 1 }, { 'say "hi"', 2 }, { "plain", 2.5 } }))
    end)

    it("encodes JSON: arrays, sorted objects, escapes, integers", function()
        assert.are.equal('{"a":[1,2,3],"b":"x\\"\\n\\u0001","c":true,"d":1.5}',
            report.json({ b = 'x"\n\1', a = { 1, 2, 3 }, c = true, d = 1.5 }))
        assert.are.equal("{}", report.json({}))
        assert.are.equal("9007199254740993", report.json(9007199254740993))
        assert.has_error(function() report.json(0 / 0) end)
    end)

    it("renders rows as JSON objects keyed by column", function()
        assert.are.equal('[{"calls":5,"name":"read"}]\n', report.render("json", { "name", "calls" }, { { "read", 5 } }))
        assert.are.equal("[]\n", report.render("json", { "name" }, {}))
        -- an empty cell is null: every object has every column
        assert.are.equal('[{"calls":5,"module":null,"name":"read"},{"calls":1,"module":"libc.so.6","name":"x"}]\n',
            report.render("json", { "name", "calls", "module" }, { { "read", 5 }, { "x", 1, "libc.so.6" } }))
        assert.has_error(function() report.render("xml", {}, {}) end)
    end)
end)
