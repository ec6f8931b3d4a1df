/*
 * luahost: a guard against a crash of QEMU's own at the process's exit,
 * in user mode with a multithreaded guest.
 *
 * With a plugin loaded, QEMU's exit_group (qemu_plugin_user_exit) flushes
 * the code cache in an exclusive section, walking the list of vCPUs. A
 * guest thread that ends (exit(2)) wakes its joiner first, and only then
 * unrealizes its vCPU, takes it off that list and frees it; a thread in
 * a syscall does not hold up an exclusive section, so nothing orders the
 * free with the walk, which can step onto the freed vCPU: "QEMU internal
 * SIGSEGV", and no exit callback, so no report. A guest that joins its
 * threads and exits at once meets it: about one run in fifty of
 * tests/integration/load_spec.lua (8 threads, QEMU 10.0 to 11.1; the
 * vCPU's exit hook, QEMU's plugin lock, lines the two threads up).
 *
 * A plugin sees both syscalls before QEMU acts on them. So a thread's
 * exit is noted by its host thread id, and exit_group waits until those
 * threads are gone (a thread is gone only after its vCPU is freed), for
 * a second at most; a thread that calls exit once exit_group has begun
 * waits for the process's end in its syscall hook, keeping its vCPU
 * (unless that exit_group returns: a syscall filter skipped it).
 * The thread group's leader is not waited for: it stays a zombie, as
 * the kernel keeps it, until the process ends.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "luahost.h"

enum {
    WAIT_AT_MOST_US = 1000000,
    POLL_US = 100,
    PRUNE_AT = 64,          /* ended threads kept before the gone ones are dropped */
};

static const LhSyscalls *sys;
static GMutex lock;
static GArray *ended;       /* pid_t: threads that called exit, maybe not gone yet */
static gint process_ending; /* exit_group has begun (set and cleared under lock) */

static bool thread_alive(pid_t tid)
{
    return syscall(SYS_tgkill, getpid(), tid, 0) == 0 || errno != ESRCH;
}

static void drop_gone_threads(void)
{
    for (guint i = ended->len; i-- > 0;) {
        if (!thread_alive(g_array_index(ended, pid_t, i))) {
            g_array_remove_index_fast(ended, i);
        }
    }
}

/* On the thread that calls exit: note it, or wait for the process's end. */
static void note_thread_exit(void)
{
    pid_t tid = gettid();

    g_mutex_lock(&lock);
    bool ending = g_atomic_int_get(&process_ending);
    if (!ending && tid != getpid()) {
        if (ended->len >= PRUNE_AT) {
            drop_gone_threads();
        }
        g_array_append_val(ended, tid);
    }
    g_mutex_unlock(&lock);
    while (ending) {
        g_usleep(1000);     /* till exit_group's _exit ends this thread */
        ending = g_atomic_int_get(&process_ending);
    }
}

/* On the thread that calls exit_group: wait for the noted threads to go. */
static void wait_for_ended_threads(void)
{
    g_mutex_lock(&lock);
    g_atomic_int_set(&process_ending, 1);
    g_mutex_unlock(&lock);
    /* no thread adds to ended from here */
    gint64 deadline = g_get_monotonic_time() + WAIT_AT_MOST_US;
    for (guint i = 0; i < ended->len; i++) {
        pid_t tid = g_array_index(ended, pid_t, i);
        while (thread_alive(tid) && g_get_monotonic_time() < deadline) {
            g_usleep(POLL_US);
        }
    }
}

static void watch_exits(int vcpu, const void *data)
{
    const LhSyscallEvent *ev = data;

    (void)vcpu;
    if (ev->num == sys->exit) {
        note_thread_exit();
    } else if (ev->num == sys->exit_group) {
        wait_for_ended_threads();
    }
}

/* An exit_group that returns was skipped (a syscall filter): the process goes on. */
static void watch_returns(int vcpu, const void *data)
{
    const LhSyscallEvent *ev = data;

    (void)vcpu;
    if (ev->num == sys->exit_group) {
        g_mutex_lock(&lock);
        g_atomic_int_set(&process_ending, 0);
        g_mutex_unlock(&lock);
    }
}

/*
 * A forked child has one thread, and another thread of the parent may have
 * held the lock, or been growing the list, at the fork: both start anew
 * (the old list is left, as it may be half-grown).
 */
static void fork_child(void)
{
    g_mutex_init(&lock);
    ended = g_array_new(FALSE, FALSE, sizeof(pid_t));
    g_atomic_int_set(&process_ending, 0);
}

/* Listens to syscalls in user mode on targets whose numbers luahost knows. */
void lh_open_thread_exits(const qemu_info_t *info)
{
    if (info->system_emulation) {
        return;
    }
    sys = lh_syscalls(info->target_name);
    if (sys != NULL) {
        ended = g_array_new(FALSE, FALSE, sizeof(pid_t));
        pthread_atfork(NULL, NULL, fork_child);
        lh_listen(LH_AT_SYSCALL_HOOKED, watch_exits);
        lh_listen(LH_AT_SYSCALL_RETURN, watch_returns);
    }
}
