/*
 * luahost: the runtime's base — the one Lua state and the lock around
 * it, where the host reports, how it stops, and the moments (a vCPU's
 * exit, the process's exit) that lower files listen for.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luahost.h"

LhRuntime lh;
int lh_u64_new_ref = LUA_NOREF;
int lh_u64_parts_ref = LUA_NOREF;

__thread LhThread *lh_self __attribute__((tls_model("initial-exec")));
LhThread *volatile lh_owner;

/*
 * Threads that have ended leave their LhThread here for the next new
 * one: the pool holds as many as ever ran Lua at once.
 */
static GMutex pool_lock;
static LhThread *pool;
static pthread_key_t thread_key;    /* gives the LhThread back when its thread ends */
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;

static void thread_end(void *p)
{
    LhThread *t = p;

    g_mutex_lock(&pool_lock);
    t->next_free = pool;
    pool = t;
    g_mutex_unlock(&pool_lock);
}

static void fork_prepare(void);
static void fork_parent(void);
static void fork_child(void);

static void thread_key_new(void)
{
    pthread_key_create(&thread_key, thread_end);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/*
 * On L (lh.L): a Lua thread, anchored in the registry; its reference.
 * The traceback handler stays at the bottom of its stack
 * (LH_HANDLER_INDEX), so that a callback need not push it.
 */
static int new_lua_thread(lua_State *L)
{
    lua_State *thread = lua_newthread(L);

    lua_pushcfunction(thread, lh_message_handler);
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
    return 1;
}

/*
 * The calling thread's LhThread, under the Lua lock. Made on lh.L, which
 * runs nothing else, in a protected call: past memlimit= the allocation
 * may fail (a full collection first, then a second try).
 */
static G_GNUC_NO_INLINE LhThread *thread_new(void)
{
    LhThread *t;

    g_mutex_lock(&pool_lock);
    t = pool;
    if (t != NULL) {
        pool = t->next_free;
    }
    g_mutex_unlock(&pool_lock);
    if (t == NULL) {
        int ref = LUA_NOREF;
        for (int attempt = 0; attempt < 2 && ref == LUA_NOREF; attempt++) {
            lua_pushcfunction(lh.L, new_lua_thread);
            if (lua_pcall(lh.L, 0, 1, 0) == LUA_OK) {
                ref = (int)lua_tointeger(lh.L, -1);
            } else {
                lua_gc(lh.L, LUA_GCCOLLECT, 0);
            }
            lua_pop(lh.L, 1);
        }
        if (ref == LUA_NOREF) {
            lh_report("cannot make a Lua thread for a new thread (out of memory): stopping");
            lh_stop(EXIT_FAILURE);
        }
        t = g_new0(LhThread, 1);
        lua_rawgeti(lh.L, LUA_REGISTRYINDEX, ref);
        t->L = lua_tothread(lh.L, -1);
        lua_pop(lh.L, 1);
        t->buffer = g_byte_array_new();
        t->since_interrupt = -1;
    }
    t->live_epoch = 0;
    t->ctx.vcpu = LH_NO_VCPU;
    t->ctx.regs = QEMU_PLUGIN_CB_NO_REGS;
    t->ctx.what = "the host";
    pthread_once(&thread_key_once, thread_key_new);
    pthread_setspecific(thread_key, t);
    lh_self = t;
    return t;
}

/*
 * The Lua lock: one mutex, and how deep this thread holds it. Recursive,
 * because the host holds it over a series of calls into Lua (the hooks of
 * one event, the exit work), and a script's luahost.exit runs the exit
 * work inside the callback that called it. Where QEMU calls back on the
 * same thread from inside a script's call into it (vcpu_for_each, a reset
 * before any vCPU exists), the lock was let go for that call: the
 * callback takes it again.
 */
static GMutex lua_lock;
static __thread int held __attribute__((tls_model("initial-exec")));
__thread uint64_t lh_lock_wait_ns __attribute__((tls_model("initial-exec")));

/*
 * stats=on: how long this thread waited for the lock, so that the time
 * of a hook can be told from the time other threads' hooks kept it out.
 */
static void take_lua_lock(void)
{
    if (G_LIKELY(!lh.stats)) {
        g_mutex_lock(&lua_lock);
    } else if (!g_mutex_trylock(&lua_lock)) {
        uint64_t start = lh_now_ns();

        g_mutex_lock(&lua_lock);
        lh_lock_wait_ns += lh_now_ns() - start;
    }
}

void lh_lock(void)
{
    if (held++ == 0) {
        take_lua_lock();
        if (G_UNLIKELY(lh_self == NULL)) {
            thread_new();
        }
        __atomic_store_n(&lh_owner, lh_self, __ATOMIC_RELEASE);   /* limits.c's watchdog reads it */
    }
}

void lh_unlock(void)
{
    if (--held == 0) {
        __atomic_store_n(&lh_owner, NULL, __ATOMIC_RELEASE);
        g_mutex_unlock(&lua_lock);
    }
}

int lh_release(void)
{
    int depth = held;

    if (depth > 0) {
        held = 0;
        __atomic_store_n(&lh_owner, NULL, __ATOMIC_RELEASE);
        g_mutex_unlock(&lua_lock);
    }
    return depth;
}

void lh_reacquire(int depth)
{
    if (depth > 0) {
        take_lua_lock();
        held = depth;
        __atomic_store_n(&lh_owner, lh_self, __ATOMIC_RELEASE);   /* limits.c's watchdog reads it */
    }
}

/*
 * A fork while another thread holds the Lua lock would leave the child a
 * lock that nobody can let go (the child has only the forking thread), and
 * the child's first callback would hang: the forking thread takes it
 * first. In user mode QEMU forks with its own locks held (fork_start:
 * exclusive, mmap_lock, the plugin lock), which is the order of
 * docs/threading.md; the holder finishes or lets go of it at its next call
 * into QEMU.
 */
static int held_at_fork;

static void fork_prepare(void)
{
    held_at_fork = held;
    lh_lock();
}

static void fork_parent(void)
{
    lh_unlock();
}

static void fork_child(void)
{
    g_mutex_init(&lua_lock);
    g_mutex_init(&pool_lock);
    held = 0;
    __atomic_store_n(&lh_owner, NULL, __ATOMIC_RELEASE);
    lh_reacquire(held_at_fork);
}

/*
 * Errors always reach stderr: QEMU's log is off unless -d plugin is given.
 * A copy of it, taken at install: in user mode the guest shares QEMU's
 * file descriptors, and programs such as xz close their stderr before
 * exiting, which would lose what the host reports at exit.
 */
static FILE *report_stream;
static dev_t stderr_dev;
static ino_t stderr_ino;

void lh_open_report_stream(void)
{
    int fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
    struct stat st;

    report_stream = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (report_stream == NULL) {
        report_stream = stderr;
    } else if (fstat(fd, &st) == 0) {
        stderr_dev = st.st_dev;
        stderr_ino = st.st_ino;
    }
}

/*
 * fd 2 as QEMU's own stderr again, if the guest closed or moved it:
 * returns what to hand to lh_stderr_put_back (a copy of the guest's fd 2,
 * LH_FD2_CLOSED, or LH_FD2_UNCHANGED).
 */
enum { LH_FD2_UNCHANGED = -2, LH_FD2_CLOSED = -1 };

int lh_stderr_restore(void)
{
    struct stat now;
    int saved;

    if (report_stream == NULL || report_stream == stderr ||
        (fstat(STDERR_FILENO, &now) == 0 && now.st_dev == stderr_dev && now.st_ino == stderr_ino)) {
        return LH_FD2_UNCHANGED;
    }
    saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
    if (saved < 0) {
        saved = LH_FD2_CLOSED;
    }
    fflush(stderr);
    dup2(fileno(report_stream), STDERR_FILENO);
    return saved;
}

void lh_stderr_put_back(int saved)
{
    if (saved == LH_FD2_UNCHANGED) {
        return;
    }
    fflush(stderr);
    if (saved == LH_FD2_CLOSED) {
        close(STDERR_FILENO);
    } else {
        dup2(saved, STDERR_FILENO);
        close(saved);
    }
}

FILE *lh_report_stream(void)
{
    return report_stream != NULL ? report_stream : stderr;
}

void lh_report(const char *fmt, ...)
{
    FILE *out = lh_report_stream();
    va_list ap;

    fputs("luahost: ", out);
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

/*
 * The documented exit path when emulation must stop (a callback failed
 * under on_error=abort, or a script asked to stop): flush what was written
 * and end the process without running exit hooks on half-counted data.
 */
void lh_stop(int status)
{
    fflush(NULL);
    _exit(status);
}

/*
 * The Linux syscalls the host follows (modules.c, process.c), by their
 * numbers on the guest's target: x86_64's own, and the generic table
 * of aarch64, riscv64 and loongarch64. -1: the target has no such call.
 */
static const LhSyscalls x86_64_syscalls = {
    .mmap = 9, .mprotect = 10, .munmap = 11, .mremap = 25,
    .clone = 56, .fork = 57, .vfork = 58, .execve = 59, .execveat = 322, .clone3 = 435,
    .exit = 60, .exit_group = 231,
};
static const LhSyscalls generic_syscalls = {
    .munmap = 215, .mremap = 216, .clone = 220, .execve = 221, .mmap = 222, .mprotect = 226,
    .execveat = 281, .clone3 = 435, .fork = -1, .vfork = -1, .exit = 93, .exit_group = 94,
};

const LhSyscalls *lh_syscalls(const char *target)
{
    if (g_strcmp0(target, "x86_64") == 0) {
        return &x86_64_syscalls;
    }
    if (g_strcmp0(target, "aarch64") == 0 || g_strcmp0(target, "riscv64") == 0 ||
        g_strcmp0(target, "loongarch64") == 0) {
        return &generic_syscalls;
    }
    return NULL;
}

/*
 * Listeners: a file below the global events (a stream, say) that must act
 * when a vCPU or the process exits registers here, and the events layer
 * notifies, so that no lower file calls a higher one.
 */
enum { LH_MAX_LISTENERS = 4 };
static LhListener listeners[LH_MOMENTS][LH_MAX_LISTENERS];
static int n_listeners[LH_MOMENTS];

void lh_listen(LhMoment moment, LhListener fn)
{
    g_assert(n_listeners[moment] < LH_MAX_LISTENERS);
    listeners[moment][n_listeners[moment]++] = fn;
}

bool lh_listening(LhMoment moment)
{
    return n_listeners[moment] > 0;
}

void lh_notify(LhMoment moment, int vcpu, const void *data)
{
    for (int i = 0; i < n_listeners[moment]; i++) {
        listeners[moment][i](vcpu, data);
    }
}
