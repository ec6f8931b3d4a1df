/*
 * luahost: control of the guest's virtual clock ("luahost.clock"), and
 * the host's wall clock.
 *
 * QEMU gives time control to one plugin, once, and only in system
 * emulation (user mode runs on the host's wall clock). The clock object
 * lives for the whole run; moving time forward is queued on the current
 * vCPU, so it needs a callback that runs on one.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <time.h>

#include "luahost.h"

typedef struct LhClock {
    const void *handle;
} LhClock;

/* raw.request_time_control(): a clock, or nil and a message. */
static int request_time_control(lua_State *L)
{
    static bool requested;
    const void *handle;

    if (requested) {
        lua_pushnil(L);
        lua_pushliteral(L, "time control was already requested");
        return 2;
    }
    requested = true;
    handle = qemu_plugin_request_time_control();
    if (handle == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, lh.system_emulation
                       ? "QEMU refused time control (another plugin has it)"
                       : "time control needs system emulation (user mode runs on wall-clock time)");
        return 2;
    }
    LhClock *c = lua_newuserdata(L, sizeof(*c));
    c->handle = handle;
    luaL_getmetatable(L, LH_CLOCK_MT);
    lua_setmetatable(L, -2);
    return 1;
}

/*
 * raw.time_ns(): the host's wall-clock time, nanoseconds since the epoch
 * (CLOCK_REALTIME, what timespec_get(TIME_UTC) gives QEMU's C plugins):
 * timestamps that other tools line up with logs.
 */
static int time_ns(lua_State *L)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    lh_push_u64(L, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    return 1;
}

/* clock:update_ns(ns): the guest's virtual time becomes ns (never earlier). */
static int clock_update_ns(lua_State *L)
{
    LhClock *c = lh_check_udata(L, 1, LH_CLOCK_MT);
    uint64_t ns = lh_check_u64(L, 2);

    luaL_argcheck(L, ns <= INT64_MAX, 2, "time must be below 2^63 ns");
    lh_check_vcpu_context(L, "clock:update_ns");
    qemu_plugin_update_ns(c->handle, (int64_t)ns);
    return 0;
}

static const luaL_Reg clock_methods[] = {
    { "update_ns", clock_update_ns },
    { NULL, NULL },
};

static const luaL_Reg clock_functions[] = {
    { "request_time_control", request_time_control },
    { "time_ns", time_ns },
    { NULL, NULL },
};

void lh_open_clock(lua_State *L, int raw)
{
    lh_new_type(L, LH_CLOCK_MT, clock_methods, NULL);
    lh_set_functions(L, raw, clock_functions);
}
