-- ips: run each vCPU at most N instructions per second of guest time.
-- A port of QEMU's contrib/plugins/ips.c (system emulation): the plugin
-- takes QEMU's time control; each vCPU's instructions are counted
-- inline, and every quantum of them a conditional callback moves the
-- guest's clock to instructions / N seconds, after sleeping as long as
-- the vCPU ran ahead of that rate. The guest sees time pass at the
-- normal rate; the host's clock, slower.
--
--   ips=N[k|m|g]   instructions per second, per vCPU (default 10^9);
--                  k, m, g multiply by 10^3, 10^6, 10^9 (QEMU 10.2)
--   ipq=N          instructions per quantum, between clock updates
--                  (QEMU 10.2; default ips / 10)
--
-- QEMU 10.0's ips.c takes neither a suffix nor ipq=: on 10.0 this port
-- refuses them. Needs the Lua module "system" (Debian: lua-system) for
-- the host's clock and sleeping.
local args = luahost.args
local new_args = luahost.has("discontinuity")   -- QEMU 10.2's ips.c
local opt = args(new_args and { ips = args.string("1000000000"), ipq = args.string() }
    or { ips = args.string("1000000000") })

local EXACT = 2 ^ 53
local floor = math.floor
local SCALE = { k = 1e3, m = 1e6, g = 1e9 }

-- ips=: digits (as strtoull base 10), then a suffix where QEMU takes one.
local digits, suffix = opt.ips:match("^(%d+)(.*)$")
if not digits then
    luahost.usage_error(("ips parsing failed: not a number: ips=%s"):format(opt.ips))
end
local ips = tonumber(digits)
if suffix ~= "" then
    local scale = new_args and SCALE[suffix:lower()]
    if not scale then
        luahost.usage_error(new_args and ("bad suffix %s (expected k, m or g): ips=%s"):format(suffix, opt.ips)
            or ("QEMU 10.0's ips.c takes no suffix (it would read %s): ips=%s"):format(digits, opt.ips))
    end
    ips = ips * scale
end
if ips >= EXACT then
    luahost.usage_error(("ips out of range (below 2^53): ips=%s"):format(opt.ips))
end

local ipq = floor(ips / 10)
if opt.ipq then
    ipq = opt.ipq:match("^%d+$") and tonumber(opt.ipq) or 0
    if ipq == 0 or ipq >= EXACT then
        luahost.usage_error(("bad ipq value: ipq=%s"):format(opt.ipq))
    end
end
if ipq == 0 then
    luahost.usage_error(("minimum of 10 instructions per second needed: ips=%s"):format(opt.ips))
end

local clock, why = luahost.request_time_control()
if not clock then
    -- ips.c asserts here, and QEMU aborts
    luahost.usage_error(why)
end

local ok, system = pcall(require, "system")
if not ok then
    luahost.usage_error("ips.lua needs the Lua module system for the host's clock and sleeping "
        .. "(Debian: lua-system)")
end
local now, sleep = system.monotime, system.sleep

local quantum = luahost.scoreboard()   -- instructions since the vCPU's last update
local total, started = {}, {}          -- per vCPU: instructions before it; when it began
local virtual_ns = 0                   -- the guest's clock as last set

local function ns_for(insns)
    return floor(insns / ips * 1e9)
end

-- At the end of a quantum: sleep off what the vCPU ran ahead of the rate
-- since it began, then move the clock to what its instructions are worth
-- (never back: another vCPU may have moved it further).
local function update(vcpu, move_clock)
    local done = quantum:get(vcpu)
    local allowed = floor((now() - started[vcpu]) * ips)
    if done >= allowed then
        sleep(floor(ns_for(done - allowed) / 1000) / 1e6)
    end
    total[vcpu] = total[vcpu] + done
    quantum:set(vcpu, 0)
    started[vcpu] = now()
    local ns = ns_for(total[vcpu])
    if move_clock and ns > virtual_ns then
        clock:update_ns(ns)
        virtual_ns = ns
    end
end

local function every_quantum(vcpu)
    update(vcpu, true)
end

luahost.on_vcpu_init(function(vcpu)
    total[vcpu] = 0
    quantum:set(vcpu, 0)
    started[vcpu] = now()
end)

-- Off the vCPU's thread QEMU's clock cannot be moved: only the sleep.
luahost.on_vcpu_exit(function(vcpu)
    update(vcpu, false)
end)

luahost.on_tb_translate(function(tb)
    tb:inline("add", quantum, #tb)
    tb:on_exec_if(quantum, "ge", ipq, every_quantum)
end)
