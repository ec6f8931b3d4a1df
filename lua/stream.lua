-- stream: luahost.stream{...} and the batch a stream hands to on_batch.
-- The host records events into per-vCPU column buffers (host/stream.c);
-- here a buffer becomes a batch: batch.n events, batch.<column>[1..n].
--
-- Lua 5.4: a column is a table the host fills when the script first reads
-- it in a batch, and reuses for the next batch of the same vCPU. LuaJIT:
-- a column reads the buffer itself through an FFI pointer, shifted so
-- that it too is indexed from 1 (64-bit columns read as plain numbers
-- where they fit, lua/compat.lua), each index checked against batch.n
-- unless the stream is unchecked. Either way a batch and its columns are
-- valid only during the on_batch call that received them.
local raw, compat = ...
local ffi = jit and require("ffi")

local stream = {}

-- batch.kind[i]
stream.kinds = { TB = 0, INSN = 1, LOAD = 2, STORE = 3 }

local COLUMNS = { kind = true, size = true, id = true, pc = true, addr = true, value = true,
    value_high = true, paddr = true, device = true }
local NEEDS = { value = "values", value_high = "values", paddr = "physical", device = "physical" }
-- The narrow columns; the others are uint64_t, read through
-- compat.u64_column as numbers where they fit.
local FFI_TYPES = { kind = "uint8_t *", size = "uint16_t *", device = "uint16_t *",
    id = "uint32_t *" }

local stream_live, stream_column = raw.stream_live, raw.stream_column

-- LuaJIT: a column checks each index against the batch's count (kept in
-- C memory the view owns), so that a read past batch.n is an error, not
-- a wild read; a stream made with unchecked = true hands out the raw
-- pointers (no check, for the last few percent).
local checked_types = {}
local unchecked_fns = setmetatable({}, { __mode = "k" })    -- on_batch functions of such streams
if ffi then
    for name, ctype in pairs({ u8 = "uint8_t", u16 = "uint16_t", u32 = "uint32_t" }) do
        local range_error = compat.column_range_error
        ffi.cdef(("typedef struct { %s *p; int32_t *n; } luahost_column_%s;"):format(ctype, name))
        checked_types[ctype .. " *"] = ffi.metatype("luahost_column_" .. name, {
            __index = function(column, i)
                if not (type(i) == "number" and i >= 1 and i <= column.n[0]) then
                    range_error(i, column.n[0])
                end
                return column.p[i]
            end,
        })
    end
end

-- One view per vCPU buffer, made at its first delivery: buffers live as
-- long as the plugin, and so do their views.
local function new_view(buf, unchecked)
    local view = {}
    local st = { n = 0, gen = -1, cols = {}, filled = {}, view = view }
    local count = not unchecked and ffi and ffi.new("int32_t[1]")
    st.count = count
    local function column(name)
        local col = st.cols[name]
        if ffi then
            if col == nil then
                local p = stream_column(buf, name)
                if p == nil then
                    return nil
                end
                local narrow = FFI_TYPES[name]
                if narrow then
                    col = ffi.cast(narrow, p) - 1
                    if count then
                        col = checked_types[narrow](col, count)
                    end
                else
                    col = compat.u64_column(ffi.cast("uint64_t *", p) - 1, count or nil)
                end
                st.cols[name] = col
            end
        elseif st.filled[name] ~= st.gen then
            col = stream_column(buf, name, col or {})
            if col == nil then
                return nil
            end
            st.cols[name], st.filled[name] = col, st.gen
        end
        return col
    end
    setmetatable(view, {
        __index = function(_, name)
            if not stream_live(buf, st.gen) then
                error("attempt to use a stream batch after the on_batch call that received it returned", 2)
            end
            if name == "n" then
                return st.n
            end
            if not COLUMNS[name] then
                error(("a stream batch has no column '%s'"):format(tostring(name)), 2)
            end
            local col = column(name)
            if col == nil then
                error(("this stream does not record %s: make it with luahost.stream{ %s = true, ... }")
                    :format(name, NEEDS[name]), 2)
            end
            return col
        end,
        __newindex = function()
            error("a stream batch is read-only", 2)
        end,
        __tostring = function()
            return ("stream batch (%d events)"):format(stream_live(buf, st.gen) and st.n or 0)
        end,
    })
    return st
end

local views = {}    -- views[buf] = the state of buf's view

-- Called by the host for each batch: deliver(on_batch, vcpu, buf, n, gen).
local function deliver(on_batch, vcpu, buf, n, gen)
    local st = views[buf]
    if st == nil then
        st = new_view(buf, unchecked_fns[on_batch])
        views[buf] = st
    end
    st.n, st.gen = n, gen
    local count = st.count
    if count then
        count[0] = n
        on_batch(vcpu, st.view)
        count[0] = 0        -- a column kept past the call reads nothing
    else
        on_batch(vcpu, st.view)
    end
end
raw.stream_set_deliver(deliver)

local OPTIONS = { on_batch = "function", capacity = "number", values = "boolean", physical = "boolean",
    coalesce = "table", unchecked = "boolean" }

-- luahost.stream{ on_batch = fn [, capacity = 4096] [, values = false]
-- [, physical = false | true | "devices"]
-- [, coalesce = { exec = bytes, mem = bytes [, exec_sets = n] [, mem_sets = n] }]
-- [, unchecked = false] }: a stream; stream:exec(tb or insn [, id]) and
-- stream:mem(insn [, id [, rw]]) add events to it at translation time.
function stream.new(options)
    if type(options) ~= "table" then
        error("luahost.stream expects a table of options, got " .. type(options), 3)
    end
    for key, value in pairs(options) do
        local want = OPTIONS[key]
        if not want then
            error(("luahost.stream: unknown option %s (expected on_batch, capacity, values, physical, coalesce, "
                .. "unchecked)")
                :format(tostring(key)), 3)
        elseif type(value) ~= want and not (key == "physical" and value == "devices") then
            local what = key == "physical" and 'boolean or "devices"' or want
            error(("luahost.stream: option %s must be a %s, got %s"):format(key, what, type(value)), 3)
        end
    end
    if options.on_batch == nil then
        error("luahost.stream: option on_batch (a function) is required", 3)
    end
    local capacity = options.capacity or 4096
    if capacity < 1 or capacity > 2 ^ 24 or capacity % 1 ~= 0 then
        error(("luahost.stream: capacity must be an integer from 1 to 2^24, got %s"):format(capacity), 3)
    end
    local coalesce = options.coalesce or {}
    for key, n in pairs(coalesce) do
        local class = key == "exec_sets" and "exec" or key == "mem_sets" and "mem" or nil
        if class then
            if type(n) ~= "number" or n < 1 or n > 65536 or n % 1 ~= 0 then
                error(("luahost.stream: coalesce %s must be an integer from 1 to 65536, got %s")
                    :format(key, tostring(n)), 3)
            elseif coalesce[class] == nil then
                error(("luahost.stream: coalesce %s needs %s = (a block size)"):format(key, class), 3)
            end
        elseif (key ~= "exec" and key ~= "mem") or type(n) ~= "number" or n < 1 or n % 1 ~= 0
                or 2 ^ math.floor(math.log(n, 2) + 0.5) ~= n then
            error(("luahost.stream: coalesce takes exec = and mem = block sizes, powers of two, "
                .. "and exec_sets = and mem_sets = counts; got %s = %s")
                :format(tostring(key), tostring(n)), 3)
        end
    end
    if options.unchecked then
        unchecked_fns[options.on_batch] = true
    end
    local physical = options.physical == true or options.physical == "devices"
    return raw.stream_new(options.on_batch, capacity, options.values == true, physical,
        coalesce.exec, coalesce.mem, options.physical == "devices", coalesce.exec_sets, coalesce.mem_sets)
end

stream.device_name = raw.stream_device_name

return stream
