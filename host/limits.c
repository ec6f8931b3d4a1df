/*
 * luahost: the limits Lua runs under — the memory the script's Lua may
 * use (memlimit=), how long one call into Lua may run (hook_timeout=),
 * and Ctrl-C (SIGINT, SIGTERM, SIGHUP) during a call that does not end.
 *
 * A limit stops Lua the way lua.c's Ctrl-C does: a hook set from outside
 * (lua_sethook may be called asynchronously) raises an ordinary error at
 * the next instruction, so the message has the script's file:line and a
 * traceback, and nothing costs anything until a limit is reached. A
 * watchdog thread, ticking every WATCH_TICK_US, sees a call that has not
 * ended: each call into Lua bumps a counter, and a counter that has not
 * moved while a call is in progress is a call that still runs.
 *
 * LuaJIT does not run hooks in code it compiled: a compiled loop that
 * never ends cannot be interrupted. After a grace period the watchdog
 * then ends the process with a message, the only alternative being a
 * hang (the exit hooks need the Lua state the loop holds).
 *
 * Memory: the allocator counts what Lua holds (it runs under the Lua lock
 * only: plain counters). Past memlimit= it arms the hook; past the limit
 * by HARD_MARGIN it refuses allocations, which Lua raises as "not enough
 * memory" (a single huge allocation: the hook has no chance to fire).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "luahost.h"

#define WATCH_TICK_US (100 * 1000)
#define SIGNAL_GRACE_US (200 * 1000)    /* a call this long past a signal is interrupted */
#define JIT_GRACE_US (3 * 1000 * 1000)  /* past an interrupt LuaJIT did not act on */

enum { LIMIT_NONE, LIMIT_MEMORY, LIMIT_TIME, LIMIT_SIGNAL };

/* The allocator's count; under the Lua lock. */
static size_t mem_used, mem_limit = LH_DEFAULT_MEMLIMIT, mem_hard;
static bool mem_over;
static size_t mem_refused;              /* the size of the last allocation refused */

/*
 * Calls into Lua are counted per thread (LhThread: calls, in_lua), which
 * writes its own without atomics: this is on every callback's path. The
 * watchdog reads them without the Lua lock (a stale read only delays an
 * interrupt by a tick), and watches the thread that holds the lock
 * (lh_owner) while it runs Lua: a thread that has let go of the lock for
 * a call into QEMU is not running Lua, and its time waiting there is not
 * counted against it. LhThreads are never freed, so a stale pointer is
 * harmless. What threads share here without the Lua lock is read and
 * written with relaxed atomics: the same loads and stores as volatile
 * ones on x86 and arm64, but ones the C memory model (and ThreadSanitizer)
 * allows; lh_owner is published with release and read with acquire, as
 * the LhThread it points to may be new.
 */
#define SHARED_LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define SHARED_STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static volatile gint n_pending;         /* threads with an interrupt pending */
static volatile sig_atomic_t signalled; /* a signal arrived during the call ... */
static LhThread *volatile signalled_thread;     /* ... of this thread, */
static volatile guint signalled_at;     /* ... numbered this */
static gint64 timeout_us = (gint64)LH_DEFAULT_HOOK_TIMEOUT * G_USEC_PER_SEC;

static GThread *watchdog;
static volatile sig_atomic_t forked;    /* threads do not survive fork: start again */

static size_t hard_limit(size_t limit)
{
    size_t margin = MAX(limit / 8, (size_t)16 << 20);

    return limit == 0 ? 0 : limit + margin;
}

static void limit_hook(lua_State *L, lua_Debug *ar);

/*
 * Takes back t's pending interrupt, if any; true if there was one. The
 * hook is per Lua thread in Lua 5.4, but one for every coroutine in
 * LuaJIT: there it stays while another thread's interrupt is pending.
 */
static bool take_pending(LhThread *t, lua_State *L, int *why)
{
    *why = g_atomic_int_exchange(&t->pending, LIMIT_NONE);
    if (*why != LIMIT_NONE) {
        g_atomic_int_add(&n_pending, -1);
    }
    if (lua_gethook(L) == limit_hook && (!LH_LUAJIT || g_atomic_int_get(&n_pending) == 0)) {
        lua_sethook(L, NULL, 0, 0);
    }
    return *why != LIMIT_NONE;
}

/*
 * Raises the calling thread's pending limit's error, located where Lua
 * was (the hook's ar). LuaJIT runs the hook on whichever thread runs Lua
 * next: one with nothing pending carries on.
 */
static void limit_hook(lua_State *L, lua_Debug *ar)
{
    LhThread *t = lh_thread();
    int why = LIMIT_NONE;
    int seconds = (int)(timeout_us / G_USEC_PER_SEC);

    if (t == NULL || !take_pending(t, L, &why)) {
        return;
    }
    lh_push_where(L, 0);   /* the first Lua frame's line: Lua may be in string.rep */
    switch (why) {
    case LIMIT_MEMORY:
        lua_pushfstring(L, "memory limit reached: the script's Lua holds %d MiB (memlimit=%dM)",
                        (int)(mem_used >> 20), (int)(mem_limit >> 20));
        break;
    case LIMIT_TIME:
        lua_pushfstring(L, "interrupted: ran longer than %d s (hook_timeout=%d; 0 turns the limit off)",
                        seconds, seconds);
        break;
    default:
        t->took_signal = true;
        lua_pushliteral(L, "interrupted! (a signal ends the run: the exit hooks still run)");
        break;
    }
    lua_concat(L, 2);
    lua_error(L);
}

/* Makes t's Lua raise why at its next instruction, if it runs a call. */
static void interrupt(LhThread *t, int why)
{
    lua_State *L = SHARED_LOAD(t->running);

    if (L == NULL) {
        return;
    }
    if (g_atomic_int_exchange(&t->pending, why) == LIMIT_NONE) {
        g_atomic_int_inc(&n_pending);
    }
    lua_sethook(L, limit_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

void *lh_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    size_t old = ptr != NULL ? osize : 0;   /* else osize is the object's type */
    void *p;

    if (nsize == 0) {
        free(ptr);
        mem_used -= old;
        return NULL;
    }
    if (nsize > old && mem_hard != 0 && mem_used - old + nsize > mem_hard) {
        mem_refused = nsize;
        return NULL;
    }
    p = realloc(ptr, nsize);
    if (p != NULL) {
        mem_used = mem_used - old + nsize;
        if (mem_limit != 0 && mem_used > mem_limit) {
            LhThread *t = lh_thread();
            if (!mem_over && t != NULL && t->in_lua > 0) {
                mem_over = true;
                interrupt(t, LIMIT_MEMORY);
            }
        } else {
            mem_over = false;
        }
    }
    return p;
}

/* Whether the call a signal arrived in has ended (or there was none). */
static bool signalled_call_ended(void)
{
    LhThread *t = SHARED_LOAD(signalled_thread);

    return t == NULL || SHARED_LOAD(t->calls) != SHARED_LOAD(signalled_at);
}

/* One tick of the watchdog on t, which holds the Lua lock and runs Lua. */
static void watch_thread(LhThread *t)
{
    guint count = SHARED_LOAD(t->calls);

    if (count != t->seen) {
        t->seen = count;
        t->still = 0;
        t->since_interrupt = -1;
        return;
    }
    t->still += WATCH_TICK_US;
    if (t->since_interrupt >= 0) {
        t->since_interrupt += WATCH_TICK_US;
        if (LH_LUAJIT && t->since_interrupt >= JIT_GRACE_US) {
            lh_report("a call into Lua has run for %d s in code LuaJIT compiled, which cannot be "
                      "interrupted: ending the process (the exit hooks cannot run)",
                      (int)(t->still / G_USEC_PER_SEC));
            fflush(NULL);
            _exit(EXIT_FAILURE);
        }
    } else if (SHARED_LOAD(signalled) && SHARED_LOAD(signalled_thread) == t
               && t->still >= SIGNAL_GRACE_US) {
        interrupt(t, LIMIT_SIGNAL);
        t->since_interrupt = 0;
    } else if (timeout_us > 0 && t->still >= timeout_us) {
        interrupt(t, LIMIT_TIME);
        t->since_interrupt = 0;
    }
}

/* The watchdog: interrupts a call that runs too long, or past a signal. */
static gpointer watch(gpointer unused)
{
    for (;;) {
        g_usleep(WATCH_TICK_US);
        if (SHARED_LOAD(signalled) && signalled_call_ended()) {
            SHARED_STORE(signalled, 0);     /* that call ended: the signal does its work */
        }
        LhThread *t = __atomic_load_n(&lh_owner, __ATOMIC_ACQUIRE);
        if (t != NULL && SHARED_LOAD(t->in_lua) > 0) {
            watch_thread(t);
        }
    }
    return NULL;
}

static void start_watchdog(void)
{
    sigset_t all, old;

    sigfillset(&all);       /* no signal handler may run here (see interval.c) */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    watchdog = g_thread_new("luahost-watch", watch, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void after_fork_in_child(void)
{
    forked = 1;
}

/*
 * Around every call into Lua, under the Lua lock: t is the calling
 * thread's, L the Lua thread the call runs on, outer what t->running was.
 */
void lh_limits_enter(LhThread *t, lua_State *L)
{
    if (G_UNLIKELY(forked)) {
        forked = 0;
        start_watchdog();
    }
    SHARED_STORE(t->running, L);
    SHARED_STORE(t->calls, t->calls + 1);
    SHARED_STORE(t->in_lua, t->in_lua + 1);
}

void lh_limits_leave(LhThread *t, lua_State *outer)
{
    lua_State *L = t->running;
    int why;

    SHARED_STORE(t->in_lua, t->in_lua - 1);
    if (t->in_lua == 0 && G_UNLIKELY(t->pending != LIMIT_NONE || lua_gethook(L) == limit_hook)) {
        take_pending(t, L, &why);       /* an interrupt that came too late */
    }
    SHARED_STORE(t->calls, t->calls + 1);
    SHARED_STORE(t->running, outer);
}

/* Whether the error the dispatcher just got was a signal's interruption (once). */
bool lh_limits_took_signal(void)
{
    LhThread *t = lh_thread();
    bool took = t->took_signal;

    t->took_signal = false;
    return took;
}

/* Appended to Lua's "not enough memory" when the limit refused it. */
const char *lh_limits_memory_note(void)
{
    static char note[96];

    if (mem_hard == 0) {
        return "";
    }
    snprintf(note, sizeof(note), " (memlimit=%dM: Lua holds %d MiB and asked for %d KiB more)",
             (int)(mem_limit >> 20), (int)(mem_used >> 20), (int)(mem_refused >> 10));
    return note;
}

/*
 * From a signal handler (process.c): async-signal-safe. The call in
 * progress, if it has not ended SIGNAL_GRACE_US later, is interrupted;
 * calls after it (the exit hooks the signal leads to) are not.
 */
void lh_limits_signalled(void)
{
    LhThread *t = __atomic_load_n(&lh_owner, __ATOMIC_ACQUIRE);

    SHARED_STORE(signalled_thread, t);
    SHARED_STORE(signalled_at, t != NULL ? SHARED_LOAD(t->calls) : 0);
    SHARED_STORE(signalled, 1);
}

/*
 * raw.set_limits(memlimit_bytes, hook_timeout_seconds): 0 turns a limit
 * off, -1 keeps the default. Takes effect at once (what the main chunk
 * allocated so far counts).
 */
static int set_limits(lua_State *L)
{
    lua_Integer bytes = luaL_checkinteger(L, 1);
    lua_Integer seconds = luaL_checkinteger(L, 2);

    luaL_argcheck(L, bytes >= -1, 1, "memlimit must be 0 (off) or a size");
    luaL_argcheck(L, seconds >= -1 && seconds <= 86400, 2, "hook_timeout must be 0 (off) to 86400 s");
    if (bytes >= 0) {
        mem_limit = (size_t)bytes;
        mem_hard = hard_limit(mem_limit);
    }
    if (seconds >= 0) {
        timeout_us = (gint64)seconds * G_USEC_PER_SEC;
    }
    return 0;
}

/* raw.memory_used(): the bytes the Lua state holds (the allocator's count). */
static int memory_used(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)mem_used);
    return 1;
}

static const luaL_Reg limits_functions[] = {
    { "set_limits", set_limits },
    { "memory_used", memory_used },
    { NULL, NULL },
};

void lh_open_limits(lua_State *L, int raw)
{
    mem_hard = hard_limit(mem_limit);
    pthread_atfork(NULL, NULL, after_fork_in_child);
    start_watchdog();
    lh_set_functions(L, raw, limits_functions);
}
