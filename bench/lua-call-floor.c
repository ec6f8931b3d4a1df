/*
 * bench/lua-call-floor.c: what entering Lua from C costs with nothing
 * else around it, ns per call of an empty Lua function, each line adding
 * one step of luahost's dispatcher (host/call.c) to the one before. The
 * best of 5 runs of 10 M calls, in CPU time. Not part of the build:
 *
 *     gcc -O2 -o /tmp/floor bench/lua-call-floor.c $(pkg-config --cflags --libs lua5.4 glib-2.0)
 *
 * (luajit for lua5.4: the LuaJIT build.)
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <glib.h>
#include <stdio.h>
#include <time.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

enum { CALLS = 10000000, RUNS = 5 };

static double cpu_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int handler(lua_State *L)
{
    return 1;
}

static const char *const steps[] = {
    "lua_call",
    "lua_pcall",
    "+ a traceback handler (from the registry)",
    "+ the function's value (from the registry)",
    "+ an integer argument (the vCPU index)",
    "+ a mutex locked and unlocked",
};

int main(void)
{
    lua_State *L = luaL_newstate();
    GMutex lock;
    int fn, value, handler_ref;

    g_mutex_init(&lock);
    luaL_openlibs(L);
    if (luaL_dostring(L, "return function() end") != 0) {
        return 1;
    }
    fn = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushcfunction(L, handler);
    handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    value = luaL_ref(L, LUA_REGISTRYINDEX);
    for (int step = 0; step < (int)G_N_ELEMENTS(steps); step++) {
        double best = 1e30;
        for (int run = 0; run < RUNS; run++) {
            double start = cpu_ns();
            for (int i = 0; i < CALLS; i++) {
                int base = lua_gettop(L) + 1, nargs = 0;
                if (step >= 5) {
                    g_mutex_lock(&lock);
                }
                if (step >= 2) {
                    lua_rawgeti(L, LUA_REGISTRYINDEX, handler_ref);
                }
                lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
                if (step >= 4) {
                    lua_pushinteger(L, i);
                    nargs++;
                }
                if (step >= 3) {
                    lua_rawgeti(L, LUA_REGISTRYINDEX, value);
                    nargs++;
                }
                if (step == 0) {
                    lua_call(L, nargs, 0);
                } else {
                    lua_pcall(L, nargs, 0, step >= 2 ? base : 0);
                }
                lua_settop(L, base - 1);
                if (step >= 5) {
                    g_mutex_unlock(&lock);
                }
            }
            double ns = (cpu_ns() - start) / CALLS;
            best = ns < best ? ns : best;
        }
        printf("%-44s %5.1f ns\n", steps[step], best);
    }
    lua_close(L);
    return 0;
}
