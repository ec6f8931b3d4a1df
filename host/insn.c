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

/*
 * The first 4 bytes as a little-endian number, zero-padded: what QEMU's
 * howvec.c and execlog.c read as the opcode. One call where
 * insnclass.opcode(insn:data()) made a string and took it apart, a third
 * of execlog.lua's translation hook.
 */
/* The first 4 bytes of insn as a little-endian word, zero-padded: howvec.c's opcode. */
uint32_t lh_insn_opcode(struct qemu_plugin_insn *insn)
{
    uint8_t bytes[4] = { 0 };

    qemu_plugin_insn_data(insn, bytes, sizeof(bytes));
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

static int insn_opcode(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)lh_insn_opcode(check_insn(L)));
    return 1;
}

static int insn_disas(lua_State *L)
{
    struct qemu_plugin_insn *insn = check_insn(L);

    if (lh_push_disas(L, insn)) {
        return 1;
    }
    char *text = qemu_plugin_insn_disas(insn);

    lua_pushstring(L, text != NULL ? text : "");
    g_free(text);
    return 1;
}

/*
 * The name of the function symbol containing the instruction, in any
 * module (host/modules.c); else QEMU's answer; else nil.
 */
static int insn_symbol(lua_State *L)
{
    struct qemu_plugin_insn *insn = check_insn(L);
    char name[1024];    /* longer names (C++ templates) are cut */
    const char *sym = lh_symbol_name(qemu_plugin_insn_vaddr(insn), name, sizeof(name))
                      ? name : qemu_plugin_insn_symbol(insn);

    if (sym == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, sym);
    }
    return 1;
}

/*
 * QEMU's own answer (the program's symbols only): what the C plugins
 * print, for the ports whose output must match theirs.
 */
static int insn_qemu_symbol(lua_State *L)
{
    const char *sym = qemu_plugin_insn_symbol(check_insn(L));

    if (sym == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, sym);
    }
    return 1;
}

/* insn:on_exec(fn [, value [, regs]]): fn(vcpu_index, value) before it executes. */
static int insn_on_exec(lua_State *L)
{
    struct qemu_plugin_insn *insn = check_insn(L);
    LhHook *hook = lh_callback_new(L, 2, 4, "insn exec callback");

    qemu_plugin_register_vcpu_insn_exec_cb(insn, lh_qemu_exec_cb(hook->regs), hook->regs, hook);
    return 0;
}

/* insn:on_exec_if(entry, cond, imm, fn [, value [, regs]]): see tb:on_exec_if. */
static int insn_on_exec_if(lua_State *L)
{
    struct qemu_plugin_insn *insn = check_insn(L);
    LhCondition c = lh_check_condition(L, 2, "insn exec callback");

    qemu_plugin_register_vcpu_insn_exec_cond_cb(insn, lh_qemu_exec_cb(c.hook->regs), c.hook->regs,
                                                c.cond, c.entry,
                                                c.imm, c.hook);
    return 0;
}

/* A memory callback of insn's, from fn [, value [, rw [, regs]]] on. */
static int register_mem_cb(lua_State *L, qemu_plugin_vcpu_mem_cb_t trampoline)
{
    struct qemu_plugin_insn *insn = check_insn(L);
    enum qemu_plugin_mem_rw rw = lh_check_rw(L, 4);
    LhHook *hook;

    luaL_argcheck(L, lua_type(L, 5) != LUA_TSTRING || strcmp(lua_tostring(L, 5), "pc") != 0, 5,
                  "a memory callback cannot set the PC (use an exec callback with regs=\"pc\")");
    hook = lh_callback_new(L, 2, 5, "memory callback");

    qemu_plugin_register_vcpu_mem_cb(insn, trampoline, hook->regs, rw, hook);
    return 0;
}

/*
 * insn:on_mem(fn [, value [, rw [, regs]]]): fn(vcpu_index, mem, vaddr,
 * value) after each of its memory accesses of kind rw ("r", "w" or "rw",
 * the default); mem is a luahost.mem handle valid during the call.
 */
static int insn_on_mem(lua_State *L)
{
    return register_mem_cb(L, lh_mem_cb);
}

/*
 * insn:on_access(fn [, value [, rw [, regs]]]): fn(vcpu_index, vaddr,
 * size, is_store, value), as on_mem but with plain values: no handle is
 * made (and collected) per access, nor its methods called.
 */
static int insn_on_access(lua_State *L)
{
    return register_mem_cb(L, lh_access_cb);
}

/* insn:mem_inline(op, entry, imm [, rw]): QEMU applies op on each access. */
static int insn_mem_inline(lua_State *L)
{
    struct qemu_plugin_insn *insn = check_insn(L);
    LhInline in = lh_check_inline(L, 2);
    enum qemu_plugin_mem_rw rw = lh_check_rw(L, 5);

    qemu_plugin_register_vcpu_mem_inline_per_vcpu(insn, rw, in.op, in.entry, in.imm);
    return 0;
}

/*
 * The host address of the instruction's bytes, or nil (system mode, code
 * not in RAM). In user mode it is QEMU's mapping of the guest page.
 */
static int insn_haddr(lua_State *L)
{
    void *haddr = qemu_plugin_insn_haddr(check_insn(L));

    if (haddr == NULL) {
        lua_pushnil(L);
    } else {
        lh_push_u64(L, (uint64_t)(uintptr_t)haddr);
    }
    return 1;
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
    LhHandle *h = lh_check_udata(L, 1, LH_INSN_MT);

    if (h->epoch != lh_thread()->live_epoch) {
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
    { "opcode", insn_opcode },
    { "disas", insn_disas },
    { "symbol", insn_symbol },
    { "qemu_symbol", insn_qemu_symbol },
    { "groups", lh_insn_groups },
    { "haddr", insn_haddr },
    { "on_exec", insn_on_exec },
    { "on_exec_if", insn_on_exec_if },
    { "inline", insn_inline },
    { "on_mem", insn_on_mem },
    { "on_access", insn_on_access },
    { "mem_inline", insn_mem_inline },
    { NULL, NULL },
};

static const luaL_Reg insn_meta[] = {
    { "__tostring", insn_tostring },
    { NULL, NULL },
};

void lh_open_insn(lua_State *L, int raw)
{
    lh_disas_init(L, raw);
    lh_new_type(L, LH_INSN_MT, insn_methods, insn_meta);
}
