/*
 * luahost: global events (exit, vCPU lifecycle, translation) and the
 * execution-callback trampoline.
 *
 * A QEMU callback is registered only when a script first asks for its
 * event; every entry into Lua below takes the lock and goes through
 * lh_hook_call, which is the only place errors are handled.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include "luahost.h"

typedef enum {
    EV_ATEXIT,
    EV_VCPU_INIT,
    EV_VCPU_EXIT,
    EV_TB_TRANS,
    EV_COUNT,
} LhEvent;

static const char *const event_names[] = {
    "atexit", "vcpu_init", "vcpu_exit", "tb_trans", NULL,
};

static const char *const event_what[] = {
    "exit hook", "vcpu init hook", "vcpu exit hook", "tb translation hook",
};

static GPtrArray *hooks[EV_COUNT];
static bool registered[EV_COUNT];

void lh_exec_cb(unsigned int vcpu_index, void *udata)
{
    LhHook *hook = udata;

    /* Unlocked fast path; lh_hook_push checks again under the lock. */
    if (lh_hook_disabled(hook)) {
        return;
    }
    lh_lock();
    if (lh_hook_push(lh.L, hook)) {
        lua_pushinteger(lh.L, vcpu_index);
        lh_hook_call(hook, 1);
    }
    lh_unlock();
}

static void on_vcpu(LhEvent ev, unsigned int vcpu_index)
{
    lh_lock();
    for (guint i = 0; i < hooks[ev]->len; i++) {
        LhHook *hook = g_ptr_array_index(hooks[ev], i);
        if (lh_hook_push(lh.L, hook)) {
            lua_pushinteger(lh.L, vcpu_index);
            lh_hook_call(hook, 1);
        }
    }
    lh_unlock();
}

static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu_index)
{
    on_vcpu(EV_VCPU_INIT, vcpu_index);
}

static void on_vcpu_exit(qemu_plugin_id_t id, unsigned int vcpu_index)
{
    on_vcpu(EV_VCPU_EXIT, vcpu_index);
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    lh_lock();
    uint64_t saved = lh_scope_enter();
    for (guint i = 0; i < hooks[EV_TB_TRANS]->len; i++) {
        LhHook *hook = g_ptr_array_index(hooks[EV_TB_TRANS], i);
        if (lh_hook_push(lh.L, hook)) {
            lh_push_tb(lh.L, tb);
            lh_hook_call(hook, 1);
        }
    }
    lh_scope_leave(saved);
    lh_unlock();
}

/*
 * Exit hooks run in registration order. A run in which a callback failed
 * (on_error=disable) may have counted wrong: it ends with status 1.
 */
static void on_atexit(qemu_plugin_id_t id, void *udata)
{
    lh_lock();
    for (guint i = 0; i < hooks[EV_ATEXIT]->len; i++) {
        LhHook *hook = g_ptr_array_index(hooks[EV_ATEXIT], i);
        if (lh_hook_push(lh.L, hook)) {
            lh_hook_call(hook, 0);
        }
    }
    if (lh.errors > 0) {
        lh_report("%d callback error(s) in this run (on_error=disable): exit status 1", lh.errors);
        lh_stop(EXIT_FAILURE);
    }
    fflush(NULL);
    lh_unlock();
}

static void register_with_qemu(LhEvent ev)
{
    if (registered[ev]) {
        return;
    }
    registered[ev] = true;
    switch (ev) {
    case EV_ATEXIT:
        qemu_plugin_register_atexit_cb(lh.id, on_atexit, NULL);
        break;
    case EV_VCPU_INIT:
        qemu_plugin_register_vcpu_init_cb(lh.id, on_vcpu_init);
        break;
    case EV_VCPU_EXIT:
        qemu_plugin_register_vcpu_exit_cb(lh.id, on_vcpu_exit);
        break;
    case EV_TB_TRANS:
        qemu_plugin_register_vcpu_tb_trans_cb(lh.id, on_tb_trans);
        break;
    default:
        g_assert_not_reached();
    }
}

/* raw.register(event, fn): adds fn to the event's hooks. */
static int event_register(lua_State *L)
{
    LhEvent ev = (LhEvent)luaL_checkoption(L, 1, NULL, event_names);
    LhHook *hook = lh_hook_new(L, 2, 0, event_what[ev]);

    register_with_qemu(ev);
    g_ptr_array_add(hooks[ev], hook);
    return 0;
}

/*
 * The host's own exit work must run even if the script has no exit hook:
 * outfile= output reaches its file (a guest's exit_group ends the process
 * without flushing stdio, but plugin atexit runs first), and a run with
 * callback errors under on_error=disable ends with status 1.
 */
void lh_want_exit_callback(void)
{
    register_with_qemu(EV_ATEXIT);
}

/* raw.flush_at_exit(): for outfile=. */
static int flush_at_exit(lua_State *L)
{
    lh_want_exit_callback();
    return 0;
}

void lh_open_events(lua_State *L, int raw)
{
    for (int ev = 0; ev < EV_COUNT; ev++) {
        hooks[ev] = g_ptr_array_new();
    }
    lua_pushcfunction(L, event_register);
    lua_setfield(L, raw, "register");
    lua_pushcfunction(L, flush_at_exit);
    lua_setfield(L, raw, "flush_at_exit");
}
