/*
 * luahost: the translation-block handle ("luahost.tb").
 *
 * Valid only inside the tb-translation callback that received it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "luahost.h"

static struct qemu_plugin_tb *check_tb(lua_State *L)
{
    return lh_check_handle(L, 1, LH_TB_MT, "a tb");
}

void lh_push_tb(lua_State *L, struct qemu_plugin_tb *tb)
{
    lh_push_handle(L, tb, LH_TB_MT);
}

static int tb_vaddr(lua_State *L)
{
    lh_push_u64(L, qemu_plugin_tb_vaddr(check_tb(L)));
    return 1;
}

static int tb_n_insns(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)qemu_plugin_tb_n_insns(check_tb(L)));
    return 1;
}

/* tb:insn(i), 1-based as everything in Lua. */
static int tb_insn(lua_State *L)
{
    struct qemu_plugin_tb *tb = check_tb(L);
    lua_Integer i = luaL_checkinteger(L, 2);
    size_t n = qemu_plugin_tb_n_insns(tb);

    luaL_argcheck(L, i >= 1 && (size_t)i <= n, 2, "instruction index out of range");
    lh_push_insn(L, qemu_plugin_tb_get_insn(tb, (size_t)i - 1));
    return 1;
}

/*
 * The iterator, a closure over the tb handle (checked once, by tb:insns):
 * a check of its type per instruction was a sixth of the step. The
 * handle still must be live.
 */
static int insns_next(lua_State *L)
{
    struct qemu_plugin_tb *tb = lh_live_handle(L, lua_upvalueindex(1), "a tb");
    lua_Integer i = luaL_checkinteger(L, 2) + 1;

    if (i < 1 || (size_t)i > qemu_plugin_tb_n_insns(tb)) {
        return 0;
    }
    lua_pushinteger(L, i);
    lh_push_insn(L, qemu_plugin_tb_get_insn(tb, (size_t)i - 1));
    return 2;
}

/* for i, insn in tb:insns() do ... end */
static int tb_insns(lua_State *L)
{
    check_tb(L);
    lua_pushvalue(L, 1);
    lua_pushcclosure(L, insns_next, 1);
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    return 3;
}

/*
 * tb:on_exec(fn [, value [, regs]]): fn(vcpu_index, value) each time the
 * block runs; regs "r" or "rw" lets fn read (and write) registers.
 */
static int tb_on_exec(lua_State *L)
{
    struct qemu_plugin_tb *tb = check_tb(L);
    LhHook *hook = lh_callback_new(L, 2, 4, "tb exec callback");

    qemu_plugin_register_vcpu_tb_exec_cb(tb, lh_qemu_exec_cb(hook->regs), hook->regs, hook);
    return 0;
}

/*
 * tb:on_exec_if(entry, cond, imm, fn [, value [, regs]]): as on_exec, but
 * only when the executing vCPU's slot of entry compares to imm as cond
 * says; QEMU does the comparison, so no Lua runs otherwise.
 */
static int tb_on_exec_if(lua_State *L)
{
    struct qemu_plugin_tb *tb = check_tb(L);
    LhCondition c = lh_check_condition(L, 2, "tb exec callback");

    qemu_plugin_register_vcpu_tb_exec_cond_cb(tb, lh_qemu_exec_cb(c.hook->regs), c.hook->regs,
                                              c.cond, c.entry,
                                              c.imm, c.hook);
    return 0;
}

/* tb:inline(op, entry, imm): op is "add" or "store"; QEMU runs it, not Lua. */
static int tb_inline(lua_State *L)
{
    struct qemu_plugin_tb *tb = check_tb(L);
    LhInline in = lh_check_inline(L, 2);

    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(tb, in.op, in.entry, in.imm);
    return 0;
}

static int tb_tostring(lua_State *L)
{
    LhHandle *h = lh_check_udata(L, 1, LH_TB_MT);

    if (h->epoch != lh_thread()->live_epoch) {
        lua_pushliteral(L, "tb (expired)");
    } else {
        lua_pushfstring(L, "tb (%d insns)", (int)qemu_plugin_tb_n_insns(h->ptr));
    }
    return 1;
}

static const luaL_Reg tb_methods[] = {
    { "vaddr", tb_vaddr },
    { "n_insns", tb_n_insns },
    { "insn", tb_insn },
    { "insns", tb_insns },
    { "on_exec", tb_on_exec },
    { "on_exec_if", tb_on_exec_if },
    { "inline", tb_inline },
    { NULL, NULL },
};

static const luaL_Reg tb_meta[] = {
    { "__len", tb_n_insns },
    { "__tostring", tb_tostring },
    { NULL, NULL },
};

void lh_open_tb(lua_State *L, int raw)
{
    (void)raw;
    lh_new_type(L, LH_TB_MT, tb_methods, tb_meta);
}
