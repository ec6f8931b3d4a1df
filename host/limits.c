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
 * The call in progress: written under the Lua lock (every call into Lua
 * holds it), read by the watchdog without it (a stale read only delays
 * an interrupt by a tick). Plain stores: this is on every callback's path.
 */
static lua_State *volatile running;
static volatile int calls_in_progress;
static volatile guint call_count;
static volatile gint pending;           /* the limit the hook raises */
static volatile sig_atomic_t signalled; /* a signal arrived during the call numbered signalled_at */
static volatile guint signalled_at;
static bool took_signal;                /* the error just raised was a signal's interruption */
static gint64 timeout_us = (gint64)LH_DEFAULT_HOOK_TIMEOUT * G_USEC_PER_SEC;

static GThread *watchdog;
static volatile sig_atomic_t forked;    /* threads do not survive fork: start again */

static size_t hard_limit(size_t limit)
{
    size_t margin = MAX(limit / 8, (size_t)16 << 20);

    return limit == 0 ? 0 : limit + margin;
}

/* Raises the pending limit's error, located where Lua was (the hook's ar). */
static void limit_hook(lua_State *L, lua_Debug *ar)
{
    int why = g_atomic_int_exchange(&pending, LIMIT_NONE);
    int seconds = (int)(timeout_us / G_USEC_PER_SEC);

    lua_sethook(L, NULL, 0, 0);
    if (why == LIMIT_NONE) {
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
        took_signal = true;
        lua_pushliteral(L, "interrupted! (a signal ends the run: the exit hooks still run)");
        break;
    }
    lua_concat(L, 2);
    lua_error(L);
}

/* Makes Lua raise why at its next instruction, if a call is running. */
static void interrupt(int why)
{
    lua_State *L = running;

    if (L != NULL) {
        g_atomic_int_set(&pending, why);
        lua_sethook(L, limit_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
    }
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
            if (!mem_over) {
                mem_over = true;
                interrupt(LIMIT_MEMORY);
            }
        } else {
            mem_over = false;
        }
    }
    return p;
}

/* The watchdog: interrupts a call that runs too long, or past a signal. */
static gpointer watch(gpointer unused)
{
    guint last = 0;
    gint64 still = 0;       /* how long the call in progress has run */
    gint64 since_interrupt = -1;

    for (;;) {
        g_usleep(WATCH_TICK_US);
        guint count = call_count;
        if (signalled && count != signalled_at) {
            signalled = 0;      /* that call ended: the signal does its work */
        }
        if (calls_in_progress == 0 || count != last) {
            last = count;
            still = 0;
            since_interrupt = -1;
            continue;
        }
        still += WATCH_TICK_US;
        if (since_interrupt >= 0) {
            since_interrupt += WATCH_TICK_US;
            if (LH_LUAJIT && since_interrupt >= JIT_GRACE_US) {
                lh_report("a call into Lua has run for %d s in code LuaJIT compiled, which cannot be "
                          "interrupted: ending the process (the exit hooks cannot run)",
                          (int)(still / G_USEC_PER_SEC));
                fflush(NULL);
                _exit(EXIT_FAILURE);
            }
        } else if (signalled && still >= SIGNAL_GRACE_US) {
            interrupt(LIMIT_SIGNAL);
            since_interrupt = 0;
        } else if (timeout_us > 0 && still >= timeout_us) {
            interrupt(LIMIT_TIME);
            since_interrupt = 0;
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

/* Around every call into Lua, under the Lua lock. */
void lh_limits_enter(lua_State *L)
{
    if (G_UNLIKELY(forked)) {
        forked = 0;
        start_watchdog();
    }
    running = L;
    call_count++;
    calls_in_progress++;
}

void lh_limits_leave(lua_State *L, lua_State *outer)
{
    if (--calls_in_progress == 0 && lua_gethook(L) == limit_hook) {
        lua_sethook(L, NULL, 0, 0);     /* an interrupt that came too late */
        g_atomic_int_set(&pending, LIMIT_NONE);
    }
    call_count++;
    running = outer;
}

lua_State *lh_limits_running(void)
{
    return running;
}

/* Whether the error the dispatcher just got was a signal's interruption (once). */
bool lh_limits_took_signal(void)
{
    bool took = took_signal;

    took_signal = false;
    return took;
}

/* Appended to Lua's "not enough memory" when the limit refused it. */
const char *lh_limits_memory_note(void)
{
    static char note[96];

    if (mem_hard == 0) {
        return "";
    }
    snprintf(note, sizeof(note), " (memlimit=%dM: Lua holds %d MiB and asked for %d MiB more)",
             (int)(mem_limit >> 20), (int)(mem_used >> 20), (int)(mem_refused >> 20));
    return note;
}

/*
 * From a signal handler (process.c): async-signal-safe. The call in
 * progress, if it has not ended SIGNAL_GRACE_US later, is interrupted;
 * calls after it (the exit hooks the signal leads to) are not.
 */
void lh_limits_signalled(void)
{
    signalled_at = call_count;
    signalled = 1;
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
