-- bench/workloads/sqlite.lua: the sqlite3 workload's data and queries, for
-- bench/run (loaded with dofile; returns one function).
--
-- make(dir, rows) writes dir/data.sql, a shop's database: customers,
-- products and `rows` orders (a fixed-seed LCG: the same bytes on every
-- run and machine), with an index on orders(customer) and on
-- products(category); and dir/queries.sql, read-only queries that do real
-- work: three-way joins, GROUP BY with HAVING, ORDER BY on computed
-- values, LIKE scans, a correlated subquery and a window function. Every
-- ORDER BY ends on a key, so the output is the same on every run. bench/run
-- builds the database natively from data.sql and times
-- `sqlite3 -readonly DB < queries.sql` under QEMU.

local FIRST = { "ann", "bob", "carla", "dmitri", "eve", "farid", "gina", "hiro", "ines", "jon",
    "kemal", "lena", "mario", "nadia", "oscar", "petra", "quinn", "rosa", "sven", "tanja" }
local LAST = { "adams", "berger", "chen", "diaz", "evans", "fischer", "garcia", "hansen", "ivanov",
    "jones", "kowalski", "larsen", "moreau", "novak", "olsen", "patel", "rossi", "schmidt" }
local CITIES = { "aachen", "bergen", "cork", "delft", "essen", "faro", "graz", "hull", "izmir",
    "jena", "krakow", "lyon", "malmo", "nantes", "oslo", "porto", "riga", "split", "turku", "ulm" }
local CATEGORIES = { "books", "garden", "kitchen", "music", "office", "outdoor", "tools", "toys" }
local PARTS = { "blue", "brass", "compact", "deluxe", "folding", "green", "heavy", "mini", "oak",
    "pro", "red", "steel", "travel", "ultra", "wide" }
local THINGS = { "bottle", "brush", "chair", "clamp", "drum", "guide", "kettle", "lamp", "novel",
    "planter", "puzzle", "rake", "ruler", "stapler", "tent", "whistle" }

local QUERIES = [[
-- revenue per city and category: a three-way join, grouped
SELECT c.city, p.category, count(*), sum(o.qty), round(sum(o.qty * p.price), 2) AS revenue
  FROM orders o JOIN customers c ON c.id = o.customer JOIN products p ON p.id = o.product
 GROUP BY c.city, p.category ORDER BY revenue DESC, c.city, p.category;
-- the best customers whose name contains "an", by money spent
SELECT c.id, c.name, c.city, round(sum(o.qty * p.price), 2) AS spent
  FROM customers c JOIN orders o ON o.customer = c.id JOIN products p ON p.id = o.product
 WHERE c.name LIKE '%an%'
 GROUP BY c.id HAVING count(*) >= 3 ORDER BY spent DESC, c.id LIMIT 50;
-- products by a pattern in the name, with their order counts
SELECT p.name, p.category, count(o.id) AS n, coalesce(sum(o.qty), 0)
  FROM products p LEFT JOIN orders o ON o.product = p.id
 WHERE p.name LIKE '%e%l%' OR p.name LIKE 'pro %'
 GROUP BY p.id ORDER BY n DESC, p.id LIMIT 40;
-- monthly totals
SELECT o.day / 30 AS month, count(*), sum(o.qty), round(avg(p.price), 3)
  FROM orders o JOIN products p ON p.id = o.product
 GROUP BY month ORDER BY month;
-- customers above their city's average number of orders: a correlated
-- subquery per customer (through the index) against a grouped CTE
WITH city_avg AS (
  SELECT c.city, count(o.id) * 1.0 / count(DISTINCT c.id) AS avg_n
    FROM customers c LEFT JOIN orders o ON o.customer = c.id GROUP BY c.city)
SELECT c.id, c.name, c.city, n FROM (
  SELECT c.*, (SELECT count(*) FROM orders o WHERE o.customer = c.id) AS n FROM customers c) c
  JOIN city_avg a ON a.city = c.city
 WHERE n > a.avg_n ORDER BY n DESC, c.id LIMIT 30;
-- each customer's rank in their city by quantity: a window function
SELECT city, name, total, rk FROM (
  SELECT c.city, c.name, sum(o.qty) AS total,
         rank() OVER (PARTITION BY c.city ORDER BY sum(o.qty) DESC, c.id) AS rk
    FROM customers c JOIN orders o ON o.customer = c.id GROUP BY c.id)
 WHERE rk <= 3 ORDER BY city, rk;
-- the largest orders by value: a sort of the whole join
SELECT o.id, o.day, p.name, o.qty * p.price AS value
  FROM orders o JOIN products p ON p.id = o.product
 ORDER BY value DESC, o.id LIMIT 25;
]]

return function(dir, rows)
    local state = 20240607
    local function rnd(m)                 -- 31-bit LCG, fixed seed
        state = (state * 1103515245 + 12345) % 2147483648
        return (state >> 8) % m
    end
    local function pick(t)
        return t[1 + rnd(#t)]
    end
    local customers, products = math.max(20, rows // 20), math.max(20, math.min(500, rows // 10))
    local out = {
        "PRAGMA journal_mode = OFF;",
        "BEGIN;",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT, joined INTEGER);",
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER, product INTEGER, qty INTEGER, day INTEGER);",
    }
    for id = 1, customers do
        out[#out + 1] = ("INSERT INTO customers VALUES (%d, '%s %s', '%s', %d);")
            :format(id, pick(FIRST), pick(LAST), pick(CITIES), rnd(3650))
    end
    for id = 1, products do
        out[#out + 1] = ("INSERT INTO products VALUES (%d, '%s %s %s', '%s', %d.%02d);")
            :format(id, pick(PARTS), pick(PARTS), pick(THINGS), pick(CATEGORIES), 1 + rnd(200), rnd(100))
    end
    for id = 1, rows do
        local r = rnd(customers)          -- some customers order much more than others
        out[#out + 1] = ("INSERT INTO orders VALUES (%d, %d, %d, %d, %d);")
            :format(id, 1 + r * r // customers, 1 + rnd(products), 1 + rnd(9), rnd(720))
    end
    out[#out + 1] = "CREATE INDEX orders_customer ON orders (customer);"
    out[#out + 1] = "CREATE INDEX products_category ON products (category);"
    out[#out + 1] = "COMMIT;"
    out[#out + 1] = "ANALYZE;"
    local f = assert(io.open(dir .. "/data.sql", "wb"))
    f:write(table.concat(out, "\n"), "\n")
    f:close()
    f = assert(io.open(dir .. "/queries.sql", "wb"))
    f:write(QUERIES)
    f:close()
end
