/*
 * luahost: the instruction handle ("luahost.insn").
 *
 * Made by tb:insn()/tb:insns(); valid only inside the same translation
 * callback as its tb.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "luahost.h"

static struct qemu_plugin_insn *check_insn(lua_State *L)
{
    return lh_check_handle(L, 1, LH_INSN_MT, "an insn");
}

void lh_push_insn(lua_State *L, struct qemu_plugin_insn *insn)
{
    lh_push_handle(L, insn, LH_INSN_MT);
}

static int insn_vaddr(lua_State *L)
{
    lh_push_u64(L, qemu_plugin_insn_vaddr(check_insn(L)));
    return 1;
}

static int insn_size(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)qemu_plugin_insn_size(check_insn(L)));
    return 1;
}

/* The instruction's bytes as a string. */
static int insn_data(lua_State *L)
{
    struct qemu_plugin_insn *insn = check_insn(L);
    size_t size = qemu_plugin_insn_size(insn);
    char small[64];
    char *dest = size <= sizeof(small) ? small : g_malloc(size);

    lua_pushlstring(L, dest, qemu_plugin_insn_data(insn, dest, size));
    if (dest != small) {
        g_free(dest);
    }
    return 1;
}

static int insn_disas(lua_State *L)
{
    char *text = qemu_plugin_insn_disas(check_insn(L));

    lua_pushstring(L, text != NULL ? text : "");
    g_free(text);
    return 1;
}

/* The name of the function symbol containing the instruction, or nil. */
static int insn_symbol(lua_State *L)
{
    const char *sym = qemu_plugin_insn_symbol(check_insn(L));

    if (sym == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, sym);
    }
    return 1;
}

/* insn:on_exec(fn [, value]): fn(vcpu_index, value) before it executes. */
static int insn_on_exec(lua_State *L)
{
    struct qemu_plugin_insn *insn = check_insn(L);
    LhHook *hook = lh_hook_new(L, 2, 3, "insn exec callback");

    qemu_plugin_register_vcpu_insn_exec_cb(insn, lh_exec_cb, QEMU_PLUGIN_CB_NO_REGS, hook);
    return 0;
}

/* insn:inline(op, entry, imm): op is "add" or "store"; QEMU runs it. */
static int insn_inline(lua_State *L)
{
    struct qemu_plugin_insn *insn = check_insn(L);
    LhInline in = lh_check_inline(L, 2);

    qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(insn, in.op, in.entry, in.imm);
    return 0;
}

static int insn_tostring(lua_State *L)
{
    LhHandle *h = luaL_checkudata(L, 1, LH_INSN_MT);

    if (h->epoch != lh.live_epoch) {
        lua_pushliteral(L, "insn (expired)");
    } else {
        char *text = qemu_plugin_insn_disas(h->ptr);
        lua_pushfstring(L, "insn (%s)", text != NULL ? text : "?");
        g_free(text);
    }
    return 1;
}

static const luaL_Reg insn_methods[] = {
    { "vaddr", insn_vaddr },
    { "size", insn_size },
    { "data", insn_data },
    { "disas", insn_disas },
    { "symbol", insn_symbol },
    { "on_exec", insn_on_exec },
    { "inline", insn_inline },
    { NULL, NULL },
};

static const luaL_Reg insn_meta[] = {
    { "__tostring", insn_tostring },
    { NULL, NULL },
};

void lh_open_insn(lua_State *L, int raw)
{
    (void)raw;
    lh_new_type(L, LH_INSN_MT, insn_methods, insn_meta);
}
