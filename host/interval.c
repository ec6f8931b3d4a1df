/*
 * luahost: interval hooks, fn() every N seconds of wall-clock time while
 * the guest runs (bpftrace's interval probe), for long runs that report
 * as they go.
 *
 * One thread of the host's own sleeps until the next hook is due and
 * calls it through the dispatcher, off any vCPU (no guest memory or
 * registers), taking the Lua lock like every other hook: a hook runs
 * between two callbacks, never during one. The thread stops when the exit
 * hooks start or an uninstall completes; a forked child has none (threads
 * do not survive fork).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE     /* pthread_setname_np */
#include <pthread.h>
#include <signal.h>

#include "luahost.h"

typedef struct LhInterval {
    LhHook *hook;
    gint64 period_us;
    gint64 due_us;          /* monotonic */
    bool after_reset;       /* registered while a reset is pending: kept by it */
    bool dropped;           /* by a reset; read and written under the Lua lock */
} LhInterval;

static GMutex lock;
static GCond changed;
static GPtrArray *intervals;
static GThread *thread;
static bool stopping;

/*
 * A reset may drop the hook while this thread waits for the Lua lock:
 * it is checked under that lock. A dropped LhInterval is never freed, so
 * that the thread can still read it.
 */
static void call_interval(LhInterval *in)
{
    lh_lock();
    if (!in->dropped) {
        lh_dispatch(in->hook, LH_NO_VCPU, NULL, NULL);
    }
    lh_unlock();
}

static void *run_intervals(void *unused)
{
    pthread_setname_np(pthread_self(), "luahost-ticks");   /* for ps, gdb and the tests */
    g_mutex_lock(&lock);
    while (!stopping) {
        gint64 now = g_get_monotonic_time(), next = G_MAXINT64;
        for (guint i = 0; i < intervals->len && !stopping; i++) {
            LhInterval *in = g_ptr_array_index(intervals, i);
            if (in->due_us <= now) {
                in->due_us = now + in->period_us;
                g_mutex_unlock(&lock);      /* never hold it while Lua runs */
                call_interval(in);
                g_mutex_lock(&lock);
            }
            next = MIN(next, in->due_us);
        }
        if (!stopping) {
            g_cond_wait_until(&changed, &lock, next);
        }
    }
    g_mutex_unlock(&lock);
    return NULL;
}

/* LH_AT_EXIT: no interval hook runs once the exit hooks start. */
static void stop_intervals(int vcpu, const void *data)
{
    g_mutex_lock(&lock);
    stopping = true;
    g_cond_signal(&changed);
    g_mutex_unlock(&lock);
}

/* When an uninstall completes: the dispatcher runs no hook after it. */
void lh_interval_stop(void)
{
    stop_intervals(LH_NO_VCPU, NULL);
}

/*
 * A reset's completion, under the Lua lock: the hooks registered before
 * the request are dropped, those registered since are kept.
 */
void lh_interval_forget(void)
{
    g_mutex_lock(&lock);
    for (guint i = intervals->len; i-- > 0;) {
        LhInterval *in = g_ptr_array_index(intervals, i);
        if (in->after_reset) {
            in->after_reset = false;
        } else {
            in->dropped = true;
            g_ptr_array_remove_index(intervals, i);
        }
    }
    g_mutex_unlock(&lock);
}

/* Reset and uninstall need a vCPU: QEMU completes them at once off one. */
bool lh_on_interval_thread(void)
{
    return thread != NULL && g_thread_self() == thread;
}

/* raw.on_interval(seconds, fn): fn() every seconds (0.01 to 86400). */
static int on_interval(lua_State *L)
{
    lua_Number seconds = luaL_checknumber(L, 1);
    LhInterval *in;

    luaL_argcheck(L, seconds >= 0.01 && seconds <= 86400, 1, "interval must be 0.01 to 86400 seconds");
    in = g_new0(LhInterval, 1);
    in->hook = lh_hook_new(L, 2, 0, "interval hook");
    in->period_us = (gint64)(seconds * G_USEC_PER_SEC);
    in->after_reset = lh.reset_pending;
    g_mutex_lock(&lock);
    in->due_us = g_get_monotonic_time() + in->period_us;
    g_ptr_array_add(intervals, in);
    g_cond_signal(&changed);
    g_mutex_unlock(&lock);
    if (!lh.installing) {
        lh_interval_start();
    }
    return 0;
}

/*
 * Starts the thread once there is a hook and the script has loaded (a
 * script that fails to load must have no hook called).
 */
void lh_interval_start(void)
{
    g_mutex_lock(&lock);
    if (thread == NULL && !stopping && intervals->len > 0) {
        /*
         * The thread takes no signal: QEMU's handler, run on a thread
         * with no vCPU, dereferences a null CPU (a SIGTERM from timeout
         * delivered here killed QEMU without a report).
         */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        thread = g_thread_new("luahost-interval", run_intervals, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    g_mutex_unlock(&lock);
}

static const luaL_Reg interval_functions[] = {
    { "on_interval", on_interval },
    { NULL, NULL },
};

void lh_open_interval(lua_State *L, int raw)
{
    intervals = g_ptr_array_new();
    lh_listen(LH_AT_EXIT, stop_intervals);
    lh_set_functions(L, raw, interval_functions);
}
