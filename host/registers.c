/*
 * luahost: vCPU registers. The raw functions here hand out QEMU's
 * register handles (stable for the whole run and the same for every
 * vCPU) as light userdata; lua/luahost.lua wraps them in register
 * objects.
 *
 * QEMU reads registers from its current vCPU, in the target's byte
 * order, only where the callback asked for register access: the context
 * check comes first, so a script gets a Lua error, not a QEMU assertion.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "luahost.h"

/* One buffer for all reads: they happen under the lock. */
static GByteArray *buffer;

/* raw.get_registers(): { {name=, feature=, handle=}, ... } */
static int get_registers(lua_State *L)
{
    GArray *regs;

    lh_check_vcpu_context(L, "luahost.registers()");
    regs = qemu_plugin_get_registers();
    lua_createtable(L, (int)regs->len, 0);
    for (guint i = 0; i < regs->len; i++) {
        qemu_plugin_reg_descriptor *d = &g_array_index(regs, qemu_plugin_reg_descriptor, i);
        lua_createtable(L, 0, 3);
        lua_pushstring(L, d->name);
        lua_setfield(L, -2, "name");
        if (d->feature != NULL) {
            lua_pushstring(L, d->feature);
            lua_setfield(L, -2, "feature");
        }
        lua_pushlightuserdata(L, d->handle);
        lua_setfield(L, -2, "handle");
        if (LH_HAVE_READONLY_REGS) {
            lua_pushboolean(L, lh_qemu_register_is_readonly(d));
            lua_setfield(L, -2, "readonly");
        }
        lua_rawseti(L, -2, (int)i + 1);
    }
    g_array_free(regs, TRUE);
    return 1;
}

/* Bytes in target order to an integer: exact for up to 8 bytes. */
static uint64_t bytes_to_u64(const uint8_t *p, size_t n, bool big_endian)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++) {
        size_t at = big_endian ? i : n - 1 - i;
        v = (v << 8) | p[at];
    }
    return v;
}

/*
 * Reads the register handle at index 1 into buffer, once the context
 * allows it (writing too, if write); returns its size in bytes, or 0
 * when QEMU could not read it.
 */
static int read_into_buffer(lua_State *L, bool write, struct qemu_plugin_register **reg)
{
    luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
    *reg = lua_touserdata(L, 1);
    lh_check_regs_context(L, write);
    g_byte_array_set_size(buffer, 0);
    return lh_qemu_read_register(*reg, buffer);
}

/*
 * raw.read_register(handle, big_endian): a u64 for registers of up to 8
 * bytes, else the bytes as a string (in target order); then the size in
 * bytes, which the u64 alone does not tell. nil and a message when QEMU
 * cannot read it.
 */
static int read_register(lua_State *L)
{
    struct qemu_plugin_register *reg;
    bool big_endian = lua_toboolean(L, 2);
    int n = read_into_buffer(L, false, &reg);

    if (n == 0) {
        return lh_fail(L, "QEMU could not read this register");
    }
    if (n <= 8) {
        lh_push_u64(L, bytes_to_u64(buffer->data, (size_t)n, big_endian));
    } else {
        lua_pushlstring(L, (const char *)buffer->data, (size_t)n);
    }
    lua_pushinteger(L, n);
    return 2;
}

#if LH_HAVE_API5
/*
 * raw.write_register(handle, value, big_endian): value is a u64 (for
 * registers of up to 8 bytes) or a string of exactly the register's size.
 * true, or nil and a message when QEMU refuses.
 */
static int write_register(lua_State *L)
{
    struct qemu_plugin_register *reg;
    bool big_endian = lua_toboolean(L, 3);
    int n = read_into_buffer(L, true, &reg);        /* for its size */

    if (n == 0) {
        return lh_fail(L, "QEMU could not read this register");
    }
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, 2, &len);
        luaL_argcheck(L, len == (size_t)n, 2, "string length differs from the register's size");
        memcpy(buffer->data, s, len);
    } else {
        uint64_t v = lh_check_u64(L, 2);
        luaL_argcheck(L, n <= 8, 2, "a register wider than 8 bytes takes a string");
        for (int i = 0; i < n; i++) {
            int at = big_endian ? n - 1 - i : i;
            buffer->data[at] = (uint8_t)(v >> (8 * i));
        }
    }
    if (!lh_qemu_write_register(reg, buffer)) {
        return lh_fail(L, "QEMU refused to write this register");
    }
    lua_pushboolean(L, 1);
    return 1;
}
#endif

/*
 * raw.set_pc(vaddr): the vCPU resumes at vaddr once the running callback
 * returns (qemu_api.c); only in an exec callback registered with
 * regs="pc", where QEMU allows it. A later call in the same callback wins.
 */
static int set_pc(lua_State *L)
{
#if LH_HAVE_SET_PC
    uint64_t pc = lh_check_u64(L, 1);
    const LhContext *ctx = &lh_thread()->ctx;

    if (ctx->vcpu == LH_NO_VCPU || ctx->regs != QEMU_PLUGIN_CB_RW_REGS_PC) {
        return lh_error(L, "luahost.set_pc in %s: only an exec callback registered with "
                        "regs=\"pc\" may set the PC", ctx->what);
    }
    lh_qemu_request_pc(pc);
    return 0;
#else
    return lh_error(L, "luahost.set_pc needs QEMU 11.0 (plugin API 6); "
                    "this luahost was built for API %d", LH_API);
#endif
}

static const luaL_Reg registers_functions[] = {
    { "get_registers", get_registers },
    { "read_register", read_register },
    { "set_pc", set_pc },
#if LH_HAVE_API5
    { "write_register", write_register },
#endif
    { NULL, NULL },
};

void lh_open_registers(lua_State *L, int raw)
{
    buffer = g_byte_array_new();
    lh_set_functions(L, raw, registers_functions);
}
