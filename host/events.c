/*
 * luahost: global events (exit, vCPU lifecycle, translation, syscalls,
 * flushes, discontinuities) and the execution-callback trampoline.
 *
 * A QEMU callback is registered only when a script first asks for its
 * event; every entry into Lua below takes the lock, opens a scope (fresh
 * handles, the callback's context) and goes through lh_hook_call, which
 * is the only place errors are handled.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "luahost.h"

typedef enum {
    EV_ATEXIT,
    EV_VCPU_INIT,
    EV_VCPU_EXIT,
    EV_VCPU_IDLE,
    EV_VCPU_RESUME,
    EV_TB_TRANS,
    EV_FLUSH,
    EV_SYSCALL,
    EV_SYSCALL_RET,
    EV_DISCON,
    EV_COUNT,
} LhEvent;

static const char *const event_names[] = {
    "atexit", "vcpu_init", "vcpu_exit", "vcpu_idle", "vcpu_resume", "tb_trans",
    "flush", "syscall", "syscall_ret", "discon", NULL,
};

static const char *const event_what[] = {
    "exit hook", "vcpu init hook", "vcpu exit hook", "vcpu idle hook",
    "vcpu resume hook", "tb translation hook", "flush hook", "syscall hook",
    "syscall return hook", "discontinuity hook",
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
    LhScope saved = lh_enter((int)vcpu_index, hook->regs, hook->func->what);
    if (lh_hook_push(lh.L, hook)) {
        lua_pushinteger(lh.L, vcpu_index);
        lh_hook_call(hook, 1);
    }
    lh_leave(saved);
}

/* Calls every hook of ev; push_args pushes the arguments, nargs of them. */
#define CALL_HOOKS(ev, vcpu, regs, nargs, push_args)                        \
    do {                                                                    \
        LhScope saved_ = lh_enter((vcpu), (regs), event_what[ev]);             \
        for (guint i_ = 0; i_ < hooks[ev]->len; i_++) {                     \
            LhHook *hook = g_ptr_array_index(hooks[ev], i_);                \
            if (lh_hook_push(lh.L, hook)) {                                 \
                lua_State *L = lh.L;                                        \
                (void)L;                                                    \
                push_args;                                                  \
                lh_hook_call(hook, (nargs));                                \
            }                                                               \
        }                                                                   \
        lh_leave(saved_);                                                      \
    } while (0)

/*
 * vcpu init, syscall and discontinuity hooks run on the vCPU's thread:
 * QEMU lets them read and write its registers.
 */
static void on_vcpu_init(qemu_plugin_id_t id, unsigned int vcpu_index)
{
    CALL_HOOKS(EV_VCPU_INIT, (int)vcpu_index, QEMU_PLUGIN_CB_RW_REGS, 1,
               lua_pushinteger(L, vcpu_index));
}

/*
 * vcpu exit, idle and resume may run off the vCPU's own thread (system
 * mode unplug and shutdown, round-robin TCG): no registers or memory.
 */
static void on_vcpu_exit(qemu_plugin_id_t id, unsigned int vcpu_index)
{
    lh_streams_flush_vcpu(vcpu_index);
    CALL_HOOKS(EV_VCPU_EXIT, LH_NO_VCPU, QEMU_PLUGIN_CB_NO_REGS, 1,
               lua_pushinteger(L, vcpu_index));
}

static void on_vcpu_idle(qemu_plugin_id_t id, unsigned int vcpu_index)
{
    CALL_HOOKS(EV_VCPU_IDLE, LH_NO_VCPU, QEMU_PLUGIN_CB_NO_REGS, 1,
               lua_pushinteger(L, vcpu_index));
}

static void on_vcpu_resume(qemu_plugin_id_t id, unsigned int vcpu_index)
{
    CALL_HOOKS(EV_VCPU_RESUME, LH_NO_VCPU, QEMU_PLUGIN_CB_NO_REGS, 1,
               lua_pushinteger(L, vcpu_index));
}

/* stats=on: translations and the time spent in their hooks. */
static uint64_t blocks_translated, translation_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    uint64_t start = lh.stats ? now_ns() : 0;

    CALL_HOOKS(EV_TB_TRANS, LH_SOME_VCPU, QEMU_PLUGIN_CB_NO_REGS, 1, lh_push_tb(L, tb));
    if (lh.stats) {
        uint64_t spent = now_ns() - start;
        lh_lock();
        blocks_translated++;
        translation_ns += spent;
        lh_unlock();
    }
}

/* One line on stderr (lh_report's copy of it), read by people and by bench/run. */
static void report_stats(void)
{
    uint64_t batches, events;

    lh_streams_stats(&batches, &events);
    FILE *out = lh_report_stream();

    fprintf(out, "luahost: stats: %" PRIu64 " blocks translated, %.3f ms in translation hooks "
            "(%.2f us per block); %" PRIu64 " batches, %" PRIu64 " events streamed\n",
            blocks_translated, translation_ns / 1e6,
            blocks_translated > 0 ? translation_ns / 1e3 / blocks_translated : 0.0,
            batches, events);
    fflush(out);
}

static void on_flush(qemu_plugin_id_t id)
{
    CALL_HOOKS(EV_FLUSH, LH_NO_VCPU, QEMU_PLUGIN_CB_NO_REGS, 0, (void)0);
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num,
                       uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                       uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    CALL_HOOKS(EV_SYSCALL, (int)vcpu_index, QEMU_PLUGIN_CB_RW_REGS, 10, {
        lua_pushinteger(L, vcpu_index);
        lh_push_i64(L, num);
        lh_push_u64(L, a1);
        lh_push_u64(L, a2);
        lh_push_u64(L, a3);
        lh_push_u64(L, a4);
        lh_push_u64(L, a5);
        lh_push_u64(L, a6);
        lh_push_u64(L, a7);
        lh_push_u64(L, a8);
    });
}

static void on_syscall_ret(qemu_plugin_id_t id, unsigned int vcpu_index,
                           int64_t num, int64_t ret)
{
    CALL_HOOKS(EV_SYSCALL_RET, (int)vcpu_index, QEMU_PLUGIN_CB_RW_REGS, 3, {
        lua_pushinteger(L, vcpu_index);
        lh_push_i64(L, num);
        lh_push_i64(L, ret);
    });
}

#if LH_HAVE_DISCON
static const char *discon_name(enum qemu_plugin_discon_type type)
{
    switch (type) {
    case QEMU_PLUGIN_DISCON_INTERRUPT:
        return "interrupt";
    case QEMU_PLUGIN_DISCON_EXCEPTION:
        return "exception";
    case QEMU_PLUGIN_DISCON_HOSTCALL:
        return "hostcall";
    default:
        return "unknown";
    }
}

/* One QEMU registration for all kinds; each hook filters on its own mask. */
static void on_discon(qemu_plugin_id_t id, unsigned int vcpu_index,
                      enum qemu_plugin_discon_type type, uint64_t from_pc, uint64_t to_pc)
{
    LhScope saved = lh_enter((int)vcpu_index, QEMU_PLUGIN_CB_RW_REGS, event_what[EV_DISCON]);
    for (guint i = 0; i < hooks[EV_DISCON]->len; i++) {
        LhHook *hook = g_ptr_array_index(hooks[EV_DISCON], i);
        if ((hook->mask & (unsigned)type) != 0 && lh_hook_push(lh.L, hook)) {
            lua_pushinteger(lh.L, vcpu_index);
            lua_pushstring(lh.L, discon_name(type));
            lh_push_u64(lh.L, from_pc);
            lh_push_u64(lh.L, to_pc);
            lh_hook_call(hook, 4);
        }
    }
    lh_leave(saved);
}
#endif

/*
 * Exit hooks run in registration order. A run in which a callback failed
 * (on_error=disable) may have counted wrong: it ends with status 1.
 */
static void on_atexit(qemu_plugin_id_t id, void *udata)
{
    lh_streams_flush_all();
    CALL_HOOKS(EV_ATEXIT, LH_NO_VCPU, QEMU_PLUGIN_CB_NO_REGS, 0, (void)0);
    lh_lock();
    if (lh.stats) {
        report_stats();
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
    case EV_VCPU_IDLE:
        qemu_plugin_register_vcpu_idle_cb(lh.id, on_vcpu_idle);
        break;
    case EV_VCPU_RESUME:
        qemu_plugin_register_vcpu_resume_cb(lh.id, on_vcpu_resume);
        break;
    case EV_TB_TRANS:
        qemu_plugin_register_vcpu_tb_trans_cb(lh.id, on_tb_trans);
        break;
    case EV_FLUSH:
        qemu_plugin_register_flush_cb(lh.id, on_flush);
        break;
    case EV_SYSCALL:
        qemu_plugin_register_vcpu_syscall_cb(lh.id, on_syscall);
        break;
    case EV_SYSCALL_RET:
        qemu_plugin_register_vcpu_syscall_ret_cb(lh.id, on_syscall_ret);
        break;
    case EV_DISCON:
#if LH_HAVE_DISCON
        qemu_plugin_register_vcpu_discon_cb(lh.id, QEMU_PLUGIN_DISCON_ALL, on_discon);
#endif
        break;
    default:
        g_assert_not_reached();
    }
}

/*
 * raw.register(event, fn [, mask]): adds fn to the event's hooks; mask
 * (discontinuities only) is a bit set of kinds.
 */
static int event_register(lua_State *L)
{
    LhEvent ev = (LhEvent)luaL_checkoption(L, 1, NULL, event_names);
    LhHook *hook;

    if (ev == EV_DISCON && !LH_HAVE_DISCON) {
        return luaL_error(L, "discontinuity callbacks need QEMU 10.2 (plugin API 5); "
                          "this luahost was built for API %d", QEMU_PLUGIN_VERSION);
    }
    hook = lh_hook_new(L, 2, 0, event_what[ev]);
    hook->mask = (unsigned)luaL_optinteger(L, 3, -1);
    register_with_qemu(ev);
    g_ptr_array_add(hooks[ev], hook);
    return 0;
}

/*
 * After qemu_plugin_reset QEMU has dropped every callback: forget the
 * hooks too, so that new registrations register again.
 */
void lh_events_forget(void)
{
    for (int ev = 0; ev < EV_COUNT; ev++) {
        g_ptr_array_set_size(hooks[ev], 0);
        registered[ev] = false;
    }
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

/* Streams deliver a vCPU's last events when it exits. */
void lh_want_vcpu_exit_callback(void)
{
    register_with_qemu(EV_VCPU_EXIT);
}

/* raw.enable_stats(): for stats=on. */
static int enable_stats(lua_State *L)
{
    lh.stats = true;
    lh_want_exit_callback();
    return 0;
}

/* raw.flush_at_exit(): for outfile=. */
static int flush_at_exit(lua_State *L)
{
    lh.flush_at_exit = true;
    lh_want_exit_callback();
    return 0;
}

/* The regs argument of exec and memory callbacks: nil, "r" or "rw". */
enum qemu_plugin_cb_flags lh_check_regs(lua_State *L, int idx)
{
    static const char *const names[] = { "none", "r", "rw", NULL };
    static const enum qemu_plugin_cb_flags flags[] = {
        QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS,
    };

    return flags[luaL_checkoption(L, idx, "none", names)];
}

enum qemu_plugin_cond lh_check_cond(lua_State *L, int idx)
{
    static const char *const names[] = {
        "never", "always", "eq", "ne", "lt", "le", "gt", "ge", NULL,
    };
    static const enum qemu_plugin_cond conds[] = {
        QEMU_PLUGIN_COND_NEVER, QEMU_PLUGIN_COND_ALWAYS, QEMU_PLUGIN_COND_EQ,
        QEMU_PLUGIN_COND_NE, QEMU_PLUGIN_COND_LT, QEMU_PLUGIN_COND_LE,
        QEMU_PLUGIN_COND_GT, QEMU_PLUGIN_COND_GE,
    };

    return conds[luaL_checkoption(L, idx, NULL, names)];
}

enum qemu_plugin_mem_rw lh_check_rw(lua_State *L, int idx)
{
    static const char *const names[] = { "r", "w", "rw", NULL };
    static const enum qemu_plugin_mem_rw rws[] = {
        QEMU_PLUGIN_MEM_R, QEMU_PLUGIN_MEM_W, QEMU_PLUGIN_MEM_RW,
    };

    return rws[luaL_checkoption(L, idx, "rw", names)];
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
    lua_pushcfunction(L, enable_stats);
    lua_setfield(L, raw, "enable_stats");
}
