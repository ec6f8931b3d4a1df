/*
 * luahost: the runtime's base — the one Lua state and the lock around
 * it, where the host reports, how it stops, and the moments (a vCPU's
 * exit, the process's exit) that lower files listen for.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luahost.h"

LhRuntime lh;
int lh_u64_new_ref = LUA_NOREF;
int lh_u64_parts_ref = LUA_NOREF;

/*
 * Recursive, because a script may call into QEMU from a callback and QEMU
 * may call back synchronously on the same thread (vcpu_for_each, reset).
 */
void lh_lock(void)
{
    g_rec_mutex_lock(&lh.lock);
}

void lh_unlock(void)
{
    g_rec_mutex_unlock(&lh.lock);
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
};
static const LhSyscalls generic_syscalls = {
    .munmap = 215, .mremap = 216, .clone = 220, .execve = 221, .mmap = 222, .mprotect = 226,
    .execveat = 281, .clone3 = 435, .fork = -1, .vfork = -1,
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
