/*
 * luahost: hooks on QEMU's global events (exit, vCPU lifecycle,
 * translation, syscalls, flushes, discontinuities), and the host's own
 * work at a vCPU's exit and at exit.
 *
 * A QEMU callback is registered only when a script first asks for its
 * event (exit and vCPU exit: always, for the host's own work); every
 * hook is called through lh_dispatch.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
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
    EV_REPORT,              /* after every exit hook, in QEMU's one exit callback */
    EV_SYSCALL_FILTER,      /* QEMU 11.0: may skip the syscall */
    EV_COUNT,
} LhEvent;

static const char *const event_names[] = {
    "atexit", "vcpu_init", "vcpu_exit", "vcpu_idle", "vcpu_resume", "tb_trans",
    "flush", "syscall", "syscall_ret", "discon", "report", "syscall_filter", NULL,
};

static const char *const event_what[] = {
    "exit hook", "vcpu init hook", "vcpu exit hook", "vcpu idle hook",
    "vcpu resume hook", "tb translation hook", "flush hook", "syscall hook",
    "syscall return hook", "discontinuity hook", "report hook", "syscall filter hook",
};

static GPtrArray *hooks[EV_COUNT];
static GPtrArray *after_reset[EV_COUNT];    /* registered while a reset is pending */
static bool registered[EV_COUNT];
static bool wanted[EV_COUNT];       /* asked for while the script loads, or a reset is pending */

static void register_with_qemu(LhEvent ev);

/*
 * Calls the hooks of ev that want kind (discontinuities; others pass ~0),
 * in registration order, each through the dispatcher. Under the lock: a
 * hook may register another on any thread.
 */
static void call_hooks_of(LhEvent ev, unsigned int kind, int vcpu,
                          LhPushArgs push_args, const void *args)
{
    lh_lock();
    for (guint i = 0; i < hooks[ev]->len; i++) {
        LhHook *hook = g_ptr_array_index(hooks[ev], i);
        if ((hook->mask & kind) != 0) {
            lh_dispatch(hook, vcpu, push_args, args);
        }
    }
    lh_unlock();
}

static void call_hooks(LhEvent ev, int vcpu, LhPushArgs push_args, const void *args)
{
    call_hooks_of(ev, ~0u, vcpu, push_args, args);
}

/*
 * vcpu init, syscall and discontinuity hooks run on the vCPU's thread:
 * QEMU lets them read and write its registers (their hooks ask for it).
 */
static void on_vcpu_init(unsigned int vcpu_index)
{
    call_hooks(EV_VCPU_INIT, (int)vcpu_index, lh_push_vcpu_index, &vcpu_index);
}

/*
 * vcpu exit, idle and resume may run off the vCPU's own thread (system
 * mode unplug and shutdown, round-robin TCG): no registers or memory.
 */
static void on_vcpu_exit(unsigned int vcpu_index)
{
    lh_notify(LH_AT_VCPU_EXIT, (int)vcpu_index, NULL);
    call_hooks(EV_VCPU_EXIT, LH_NO_VCPU, lh_push_vcpu_index, &vcpu_index);
}

static void on_vcpu_idle(unsigned int vcpu_index)
{
    call_hooks(EV_VCPU_IDLE, LH_NO_VCPU, lh_push_vcpu_index, &vcpu_index);
}

static void on_vcpu_resume(unsigned int vcpu_index)
{
    call_hooks(EV_VCPU_RESUME, LH_NO_VCPU, lh_push_vcpu_index, &vcpu_index);
}

/*
 * stats=on: translations, the time spent in their hooks, and the part of
 * it the translating thread waited for the Lua lock (other vCPUs' hooks).
 */
static uint64_t blocks_translated, translation_ns, translation_wait_ns;

static int push_tb(lua_State *L, const void *args)
{
    lh_push_tb(L, (struct qemu_plugin_tb *)args);
    return 1;
}

static void on_tb_trans(struct qemu_plugin_tb *tb)
{
    uint64_t start = lh.stats ? lh_now_ns() : 0;
    uint64_t waited = lh_lock_wait_ns;

    lh_notify(LH_AT_TRANSLATE, LH_SOME_VCPU, tb);
    call_hooks(EV_TB_TRANS, LH_SOME_VCPU, push_tb, tb);
    if (lh.stats) {
        uint64_t spent = lh_now_ns() - start;

        waited = lh_lock_wait_ns - waited;
        lh_lock();
        blocks_translated++;
        translation_ns += spent;
        translation_wait_ns += waited;
        lh_unlock();
    }
}

/* One line on stderr (lh_report's copy of it), read by people and by bench/run. */
static void report_stats(void)
{
    uint64_t batches, events;

    lh_streams_stats(&batches, &events);
    FILE *out = lh_report_stream();

    double per_block = blocks_translated > 0 ? 1e3 * blocks_translated : 1;

    fprintf(out, "luahost: stats: %" PRIu64 " blocks translated, %.3f ms in translation hooks "
            "(%.2f us per block), %.3f ms of it waiting for the Lua lock (%.2f us per block); "
            "%" PRIu64 " batches, %" PRIu64 " events streamed\n",
            blocks_translated, translation_ns / 1e6, translation_ns / per_block,
            translation_wait_ns / 1e6, translation_wait_ns / per_block, batches, events);
    fflush(out);
}

/*
 * QEMU has flushed its code cache: what it held of ours in translated
 * code is freed (call.c), then the script's flush hooks run.
 */
static void on_flush(void)
{
    lh_lock();
    lh_flush_records();
    call_hooks(EV_FLUSH, LH_NO_VCPU, NULL, NULL);
    lh_unlock();
}

typedef struct LhSyscall {
    unsigned int vcpu_index;
    int64_t num;
    uint64_t a[8];
} LhSyscall;

static int push_syscall(lua_State *L, const void *args)
{
    const LhSyscall *sc = args;

    lua_pushinteger(L, sc->vcpu_index);
    lh_push_i64(L, sc->num);
    for (int i = 0; i < 8; i++) {
        lh_push_u64(L, sc->a[i]);
    }
    return 10;
}

static void on_syscall(unsigned int vcpu_index, int64_t num, const uint64_t args[8])
{
    LhSyscall sc = { vcpu_index, num, { 0 } };
    LhSyscallEvent ev = { .num = num, .args = sc.a };

    memcpy(sc.a, args, sizeof(sc.a));

    lh_notify(LH_AT_SYSCALL, (int)vcpu_index, &ev);
    call_hooks(EV_SYSCALL, (int)vcpu_index, push_syscall, &sc);
    lh_notify(LH_AT_SYSCALL_HOOKED, (int)vcpu_index, &ev);
}

typedef struct LhSyscallReturn {
    unsigned int vcpu_index;
    int64_t num, ret;
} LhSyscallReturn;

static int push_syscall_return(lua_State *L, const void *args)
{
    const LhSyscallReturn *r = args;

    lua_pushinteger(L, r->vcpu_index);
    lh_push_i64(L, r->num);
    lh_push_i64(L, r->ret);
    return 3;
}

static void on_syscall_ret(unsigned int vcpu_index, int64_t num, int64_t ret)
{
    LhSyscallReturn r = { vcpu_index, num, ret };
    LhSyscallEvent ev = { .num = num, .ret = ret, .returned = true };

    lh_notify(LH_AT_SYSCALL_RETURN, (int)vcpu_index, &ev);
    call_hooks(EV_SYSCALL_RET, (int)vcpu_index, push_syscall_return, &r);
}

/*
 * Syscall filters (QEMU 11.0): the filter's Lua wrapper (lua/luahost.lua)
 * calls raw.skip_syscall(ret) when the script's function returned a
 * result; the first filter that does wins, and QEMU skips the syscall.
 */
static __thread bool skip_requested;
static __thread int64_t skip_ret;

static bool on_syscall_filter(unsigned int vcpu_index, int64_t num, const uint64_t args[8],
                              int64_t *ret)
{
    LhSyscall sc = { vcpu_index, num, { 0 } };

    memcpy(sc.a, args, sizeof(sc.a));
    skip_requested = false;
    call_hooks(EV_SYSCALL_FILTER, (int)vcpu_index, push_syscall, &sc);
    if (!skip_requested) {
        return false;
    }
    skip_requested = false;
    *ret = skip_ret;
    return true;
}

/* A syscall result: negative ones are errors (-errno). */
static int64_t check_i64(lua_State *L, int idx)
{
#if LH_LUAJIT
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Number n = lua_tonumber(L, idx);
        luaL_argcheck(L, n > -(lua_Number)LH_EXACT_DOUBLE_LIMIT &&
                      n < (lua_Number)LH_EXACT_DOUBLE_LIMIT && n == (lua_Number)(int64_t)n,
                      idx, "number is not an exact integer");
        return (int64_t)n;
    }
#endif
    return (int64_t)lh_check_u64(L, idx);
}

/* raw.skip_syscall(ret): only from a syscall filter hook, once. */
static int skip_syscall(lua_State *L)
{
    int64_t ret = check_i64(L, 1);

    if (lh_thread()->ctx.what != event_what[EV_SYSCALL_FILTER]) {
        return lh_error(L, "raw.skip_syscall outside a syscall filter hook");
    }
    if (!skip_requested) {
        skip_requested = true;
        skip_ret = ret;
    }
    return 0;
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

typedef struct LhDiscon {
    unsigned int vcpu_index;
    enum qemu_plugin_discon_type type;
    uint64_t from_pc, to_pc;
} LhDiscon;

static int push_discon(lua_State *L, const void *args)
{
    const LhDiscon *d = args;

    lua_pushinteger(L, d->vcpu_index);
    lua_pushstring(L, discon_name(d->type));
    lh_push_u64(L, d->from_pc);
    lh_push_u64(L, d->to_pc);
    return 4;
}

/*
 * Discontinuity counters (luahost.on_discontinuity(board)): scoreboard
 * entries on_discon adds 1 to, one per kind, with no Lua call and no Lua
 * lock. Appended under the Lua lock and published by a release store of
 * their number; emptied only by a reset's completion, when no vCPU runs.
 * fn_hooks says whether on_discon must take the lock for Lua hooks.
 */
enum { DISCON_KINDS = 3, MAX_DISCON_COUNTERS = 16 };

typedef struct DisconCounter {
    qemu_plugin_u64 entry[DISCON_KINDS];
    bool counts[DISCON_KINDS];
} DisconCounter;

typedef struct DisconCounters {
    DisconCounter c[MAX_DISCON_COUNTERS];
    unsigned int n;
} DisconCounters;

static DisconCounters counters, counters_after_reset;
static unsigned int fn_hooks;

/* QEMU's kinds are bits 1, 2, 4: interrupt, exception, hostcall. */
static int discon_kind_index(int type)
{
    switch (type) {
    case QEMU_PLUGIN_DISCON_INTERRUPT:
        return 0;
    case QEMU_PLUGIN_DISCON_EXCEPTION:
        return 1;
    case QEMU_PLUGIN_DISCON_HOSTCALL:
        return 2;
    default:
        return -1;
    }
}

static void count_discon(unsigned int vcpu_index, int type)
{
    unsigned int n = __atomic_load_n(&counters.n, __ATOMIC_ACQUIRE);
    int k = discon_kind_index(type);

    if (k < 0) {
        return;
    }
    for (unsigned int i = 0; i < n; i++) {
        if (counters.c[i].counts[k]) {
            qemu_plugin_u64_add(counters.c[i].entry[k], vcpu_index, 1);
        }
    }
}

/* One QEMU registration for all kinds; each hook filters on its own mask. */
static void on_discon(unsigned int vcpu_index, int type, uint64_t from_pc, uint64_t to_pc)
{
    LhDiscon d = { vcpu_index, (enum qemu_plugin_discon_type)type, from_pc, to_pc };

    count_discon(vcpu_index, type);
    if (__atomic_load_n(&fn_hooks, __ATOMIC_ACQUIRE) > 0) {
        call_hooks_of(EV_DISCON, (unsigned int)type, (int)vcpu_index, push_discon, &d);
    }
}

/*
 * raw.count_discon(interrupt, exception, hostcall): each a scoreboard
 * entry or nil (that kind is not counted). While a reset is pending the
 * counter is for after it, as hooks are.
 */
static int count_discon_register(lua_State *L)
{
    DisconCounters *to = lh.reset_pending ? &counters_after_reset : &counters;
    DisconCounter c = { 0 };

    for (int k = 0; k < DISCON_KINDS; k++) {
        if (!lua_isnoneornil(L, k + 1)) {
            c.entry[k] = lh_check_entry(L, k + 1);
            c.counts[k] = true;
        }
    }
    if (lh.uninstalling ||
        (lh.uninstall_scope != 0 && lh.uninstall_scope == lh_thread()->live_epoch)) {
        return lh_error(L, "no discontinuity counter can be registered after luahost.uninstall "
                        "(the plugin is being unloaded)");
    }
    if (to->n == MAX_DISCON_COUNTERS) {
        return lh_error(L, "too many scoreboards count discontinuities (at most %d)",
                        MAX_DISCON_COUNTERS);
    }
    to->c[to->n] = c;
    __atomic_store_n(&to->n, to->n + 1, __ATOMIC_RELEASE);
    if (!lh.reset_pending) {
        register_with_qemu(EV_DISCON);
    }
    return 0;
}

/* At a reset's completion (no vCPU runs): keep those made since it was asked for. */
static void forget_discon_counters(void)
{
    counters = counters_after_reset;
    counters_after_reset.n = 0;
    fn_hooks = hooks[EV_DISCON]->len;
}
#endif

/*
 * The host's exit work: what streams still hold is delivered, exit hooks
 * run in registration order, and a run in which a callback failed
 * (on_error=disable) may have counted wrong, so it ends with status 1.
 * outfile= output reaches its file here too: a guest's exit_group ends
 * the process without flushing stdio, but plugin atexit runs first.
 *
 * It runs once, complete: at QEMU's exit, or earlier when the process
 * execs a program (process.c, LH_AT_EXEC), after which QEMU's exit never
 * comes (or, if the exec fails after all, must not report again). An
 * exit racing an exec waits for the report instead of ending the process
 * in its middle (a hook may let go of the Lua lock to call QEMU, so the
 * lock alone does not keep it out), with the Lua lock let go. At an exec
 * the status is the new program's: the error count is only said.
 */
enum { EXIT_WORK_NONE, EXIT_WORK_RUNNING, EXIT_WORK_DONE };
static int exit_work_state;         /* under the Lua lock and exit_work_lock */
static LhThread *exit_work_thread;
static GMutex exit_work_lock;
static GCond exit_work_done;

static void set_exit_work_state(int state)
{
    g_mutex_lock(&exit_work_lock);
    exit_work_state = state;
    g_cond_broadcast(&exit_work_done);
    g_mutex_unlock(&exit_work_lock);
}

static void wait_for_exit_work(void)
{
    int depth = lh_release();

    g_mutex_lock(&exit_work_lock);
    while (exit_work_state != EXIT_WORK_DONE) {
        g_cond_wait(&exit_work_done, &exit_work_lock);
    }
    g_mutex_unlock(&exit_work_lock);
    lh_reacquire(depth);
}

static void exit_work(bool at_exec)
{
    lh_lock();
    if (exit_work_state == EXIT_WORK_RUNNING && exit_work_thread != lh_thread()) {
        wait_for_exit_work();
    }
    if (exit_work_state != EXIT_WORK_NONE) {
        lh_unlock();    /* done, or running further up this thread's stack (luahost.exit) */
        return;
    }
    exit_work_thread = lh_thread();
    set_exit_work_state(EXIT_WORK_RUNNING);
    lh_notify(LH_AT_EXIT, LH_NO_VCPU, NULL);
    call_hooks(EV_ATEXIT, LH_NO_VCPU, NULL, NULL);
    call_hooks(EV_REPORT, LH_NO_VCPU, NULL, NULL);
    if (lh.stats) {
        report_stats();
    }
    if (lh.errors > 0 && at_exec) {
        lh_report("%d callback error(s) in this program (on_error=disable); it execs another, "
                  "whose exit status is its own", lh.errors);
    } else if (lh.errors > 0 && !lh.exiting && !lh.system_emulation) {
        /* the guest dies of a signal: 128 + N says more than 1 (QEMU raises it next) */
        lh_report("%d callback error(s) in this run (on_error=disable); the guest dies of a signal, "
                  "and QEMU ends with its status", lh.errors);
    } else if (lh.errors > 0) {
        lh_report("%d callback error(s) in this run (on_error=disable): exit status 1", lh.errors);
        lh_stop(EXIT_FAILURE);
    }
    fflush(NULL);
    set_exit_work_state(EXIT_WORK_DONE);
    lh_unlock();
}

static void on_atexit(void)
{
    if (lh.refused) {
        return;     /* a later -plugin of this plugin was refused: nothing ran */
    }
    exit_work(false);
}

static void exit_work_at_exec(int vcpu, const void *data)
{
    exit_work(true);
}

/*
 * Registers ev's QEMU callback, once. While the script loads, only notes
 * it: a script that fails to load must leave no callback behind (QEMU
 * runs exit callbacks even of a plugin it refused). Registering takes
 * QEMU's plugin lock, which QEMU holds while it waits for the Lua lock
 * (a reset's completion): the Lua lock is let go meanwhile.
 */
static void register_with_qemu(LhEvent ev)
{
    if (lh.installing) {
        wanted[ev] = true;
        return;
    }
    if (registered[ev]) {
        return;
    }
    registered[ev] = true;
    int depth = lh_release();
    switch (ev) {
    case EV_ATEXIT:
        lh_qemu_on_atexit(lh.id, on_atexit);
        break;
    case EV_VCPU_INIT:
        lh_qemu_on_vcpu_init(lh.id, on_vcpu_init);
        break;
    case EV_VCPU_EXIT:
        lh_qemu_on_vcpu_exit(lh.id, on_vcpu_exit);
        break;
    case EV_VCPU_IDLE:
        lh_qemu_on_vcpu_idle(lh.id, on_vcpu_idle);
        break;
    case EV_VCPU_RESUME:
        lh_qemu_on_vcpu_resume(lh.id, on_vcpu_resume);
        break;
    case EV_TB_TRANS:
        lh_qemu_on_tb_trans(lh.id, on_tb_trans);
        break;
    case EV_FLUSH:
        lh_qemu_on_flush(lh.id, on_flush);
        break;
    case EV_SYSCALL:
        lh_qemu_on_syscall(lh.id, on_syscall);
        break;
    case EV_SYSCALL_RET:
        lh_qemu_on_syscall_ret(lh.id, on_syscall_ret);
        break;
    case EV_REPORT:
        break;      /* on_atexit calls them, registered always */
    case EV_SYSCALL_FILTER:
        if (LH_HAVE_SYSCALL_FILTER) {
            lh_qemu_on_syscall_filter(lh.id, on_syscall_filter);
        }
        break;
    case EV_DISCON:
#if LH_HAVE_DISCON
        lh_qemu_on_discon(lh.id, on_discon);
#endif
        break;
    default:
        g_assert_not_reached();
    }
    lh_reacquire(depth);
}

/* Hooks on a vCPU's own thread may read and write its registers. */
static enum qemu_plugin_cb_flags event_regs(LhEvent ev)
{
    switch (ev) {
    case EV_VCPU_INIT:
    case EV_SYSCALL:
    case EV_SYSCALL_RET:
    case EV_SYSCALL_FILTER:
    case EV_DISCON:
        return QEMU_PLUGIN_CB_RW_REGS;
    default:
        return QEMU_PLUGIN_CB_NO_REGS;
    }
}

/*
 * raw.register(event, fn [, mask]): adds fn to the event's hooks; mask
 * (discontinuities only) is a bit set of kinds. While a reset is pending,
 * a hook is for after it: QEMU is about to drop every callback.
 */
static int event_register(lua_State *L)
{
    LhEvent ev = (LhEvent)luaL_checkoption(L, 1, NULL, event_names);
    LhHook *hook;

    if (ev == EV_DISCON && !LH_HAVE_DISCON) {
        return lh_error(L, "discontinuity callbacks need QEMU 10.2 (plugin API 5); "
                        "this luahost was built for API %d", QEMU_PLUGIN_VERSION);
    }
    if (ev == EV_SYSCALL_FILTER && !LH_HAVE_SYSCALL_FILTER) {
        return lh_error(L, "luahost.on_syscall_filter needs QEMU 11.0 (plugin API 6); "
                        "this luahost was built for API %d", QEMU_PLUGIN_VERSION);
    }
    hook = lh_hook_new(L, 2, 0, event_what[ev]);
    hook->regs = event_regs(ev);
    hook->mask = (unsigned)luaL_optinteger(L, 3, -1);
    if (lh.reset_pending) {
        g_ptr_array_add(after_reset[ev], hook);
        return 0;
    }
    g_ptr_array_add(hooks[ev], hook);   /* first: a reset while QEMU registers drops it */
#if LH_HAVE_DISCON
    if (ev == EV_DISCON) {
        __atomic_store_n(&fn_hooks, hooks[ev]->len, __ATOMIC_RELEASE);
    }
#endif
    register_with_qemu(ev);
    return 0;
}

/*
 * The host's own work at a vCPU's exit, at a flush and at exit
 * (listeners, records of translated code, stats=, outfile=,
 * on_error=disable), and the translations and syscalls listeners watch,
 * run whatever the script registered: from a successful install on, and
 * again after a reset. (A translation callback costs QEMU a little per
 * translated block and nothing per executed one; a flush callback,
 * nothing until a flush.)
 */
void lh_hooks_start(void)
{
    for (int ev = 0; ev < EV_COUNT; ev++) {
        if (wanted[ev]) {
            wanted[ev] = false;
            register_with_qemu(ev);
        }
    }
    register_with_qemu(EV_ATEXIT);
    register_with_qemu(EV_VCPU_EXIT);
    register_with_qemu(EV_FLUSH);
    if (lh_listening(LH_AT_TRANSLATE)) {
        register_with_qemu(EV_TB_TRANS);
    }
    if (lh_listening(LH_AT_SYSCALL) || lh_listening(LH_AT_SYSCALL_RETURN) ||
        lh_listening(LH_AT_SYSCALL_HOOKED)) {
        register_with_qemu(EV_SYSCALL);
        register_with_qemu(EV_SYSCALL_RET);
    }
}

/*
 * After qemu_plugin_reset QEMU has dropped every callback: forget the
 * hooks too, so that new registrations register again, and keep those
 * made since the reset was asked for, which lh_hooks_start registers.
 */
void lh_hooks_forget(void)
{
    for (int ev = 0; ev < EV_COUNT; ev++) {
        g_ptr_array_set_size(hooks[ev], 0);
        registered[ev] = false;
        for (guint i = 0; i < after_reset[ev]->len; i++) {
            g_ptr_array_add(hooks[ev], g_ptr_array_index(after_reset[ev], i));
            wanted[ev] = true;
        }
        g_ptr_array_set_size(after_reset[ev], 0);
    }
#if LH_HAVE_DISCON
    forget_discon_counters();
    if (counters.n > 0) {
        wanted[EV_DISCON] = true;
    }
#endif
}

/* raw.enable_stats(): for stats=on. */
static int enable_stats(lua_State *L)
{
    lh.stats = true;
    return 0;
}

static const luaL_Reg hooks_functions[] = {
    { "register", event_register },
    { "enable_stats", enable_stats },
    { "skip_syscall", skip_syscall },
#if LH_HAVE_DISCON
    { "count_discon", count_discon_register },
#endif
    { NULL, NULL },
};

void lh_open_hooks(lua_State *L, int raw)
{
    for (int ev = 0; ev < EV_COUNT; ev++) {
        hooks[ev] = g_ptr_array_new();
        after_reset[ev] = g_ptr_array_new();
    }
    lh_listen(LH_AT_EXEC, exit_work_at_exec);
    lh_set_functions(L, raw, hooks_functions);
}
