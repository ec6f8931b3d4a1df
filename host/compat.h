/*
 * luahost: the differences between Lua 5.4 and LuaJIT, in one place.
 *
 * Guest addresses and counters are unsigned 64-bit. Lua 5.4 holds them
 * exactly in its integers (values >= 2^63 read as negative, and print
 * right with %x). LuaJIT numbers are doubles: values below 2^53 are pushed
 * as numbers, larger ones as uint64_t cdata built by a constructor the
 * runtime registers (lua/compat_jit.lua), so nothing is ever rounded.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#ifndef LUAHOST_COMPAT_H
#define LUAHOST_COMPAT_H

#include <stdbool.h>
#include <stdint.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

/* LuaJIT speaks the 5.1 API; lua.h alone tells the two apart. */
#if LUA_VERSION_NUM == 501
#define LH_LUAJIT 1
#else
#define LH_LUAJIT 0
#endif

#ifndef LUA_OK
#define LUA_OK 0
#endif

#if LH_LUAJIT
#define lh_rawlen(L, i) lua_objlen((L), (i))
#else
#define lh_rawlen(L, i) lua_rawlen((L), (i))
#endif

/*
 * Numbers below 2^53 are exact. 2^53 itself is where doubles start to
 * round (2^53 + 1 == 2^53), so a number that large may already be a
 * rounded result: such values travel as cdata, never as numbers.
 */
#define LH_EXACT_DOUBLE_LIMIT (UINT64_C(1) << 53)

/* Registry slots the runtime fills in under LuaJIT (see plugin.c). */
extern int lh_u64_new_ref;    /* function(hi, lo, signed) -> [u]int64_t cdata */
extern int lh_u64_parts_ref;  /* function(cdata) -> hi, lo or nil */

/* call.c: a call from C that Lua called; the error comes back traced. */
bool lh_pcall_nested(lua_State *L, int nargs, int nresults);

#if LH_LUAJIT
/* A 64-bit cdata from its two halves: uint64_t, or int64_t if is_signed. */
static inline void lh_push_cdata64(lua_State *L, uint64_t v, int is_signed)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, lh_u64_new_ref);
    lua_pushnumber(L, (lua_Number)(uint32_t)(v >> 32));
    lua_pushnumber(L, (lua_Number)(uint32_t)v);
    lua_pushboolean(L, is_signed);
    if (!lh_pcall_nested(L, 3, 1)) {
        lua_error(L);
    }
}
#endif

static inline void lh_push_u64(lua_State *L, uint64_t v)
{
#if LH_LUAJIT
    if (v < LH_EXACT_DOUBLE_LIMIT) {
        lua_pushnumber(L, (lua_Number)v);
        return;
    }
    lh_push_cdata64(L, v, 0);
#else
    lua_pushinteger(L, (lua_Integer)v);
#endif
}

/* Signed 64-bit values (syscall numbers and results). */
static inline void lh_push_i64(lua_State *L, int64_t v)
{
#if LH_LUAJIT
    if (v > -(int64_t)LH_EXACT_DOUBLE_LIMIT && v < (int64_t)LH_EXACT_DOUBLE_LIMIT) {
        lua_pushnumber(L, (lua_Number)v);
        return;
    }
    lh_push_cdata64(L, (uint64_t)v, 1);
#else
    lua_pushinteger(L, (lua_Integer)v);
#endif
}

/*
 * Reads an unsigned 64-bit argument. Lua 5.4 takes any integer (negative
 * ones as two's complement, as string.format("%x") shows them). LuaJIT
 * takes an exact non-negative integral number or a 64-bit cdata.
 */
static inline uint64_t lh_check_u64(lua_State *L, int idx)
{
#if LH_LUAJIT
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(L, idx);
        if (n < 0 || n >= (lua_Number)LH_EXACT_DOUBLE_LIMIT || n != (lua_Number)(uint64_t)n) {
            luaL_argerror(L, idx, "number is not an exact unsigned 64-bit integer");
        }
        return (uint64_t)n;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, lh_u64_parts_ref);
    lua_pushvalue(L, idx);
    if (!lh_pcall_nested(L, 1, 2)) {
        lua_error(L);
    }
    if (lua_isnil(L, -2)) {
        luaL_typerror(L, idx, "integer");
    }
    uint64_t v = ((uint64_t)lua_tonumber(L, -2) << 32) | (uint32_t)lua_tonumber(L, -1);
    lua_pop(L, 2);
    return v;
#else
    return (uint64_t)luaL_checkinteger(L, idx);
#endif
}

#if !LH_LUAJIT
/* LuaJIT has luaL_typerror; Lua 5.4 dropped it. */
static inline int luaL_typerror(lua_State *L, int idx, const char *tname)
{
    const char *msg = lua_pushfstring(L, "%s expected, got %s", tname, luaL_typename(L, idx));
    return luaL_argerror(L, idx, msg);
}
#endif

#endif
