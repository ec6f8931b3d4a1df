/*
 * luahost: the guest process's life as the host must follow it, in user
 * mode: its end by a signal, its forks and its execs.
 *
 * The end by a signal is reported like any other end.
 * QEMU (linux-user) lets SIGINT, SIGTERM and SIGHUP kill the process at
 * once, without its exit path, when the guest has no handler for them:
 * it traps only the signals that dump core. So Ctrl-C, kill and
 * timeout(1) ended a run with no exit report. Once QEMU has set up its
 * signal handling (by the first translated block), the host gives these
 * signals QEMU's own handler, as the guest would by installing one:
 * QEMU then queues them to the guest, and a guest that does not handle
 * them dies the way QEMU kills a guest, through its exit path (every
 * plugin's exit callbacks, this host's reports) and then by the same
 * signal, so the status is the one a shell expects (128 + N). A signal
 * ignored when QEMU started (nohup) stays ignored.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "luahost.h"

static const int reported_signals[] = { SIGINT, SIGTERM, SIGHUP };

/* QEMU's handler, as it installed it for SIGQUIT and SIGILL (both dump core); or false. */
static bool qemu_handler(struct sigaction *act)
{
    struct sigaction ill;

    if (sigaction(SIGQUIT, NULL, act) != 0 || sigaction(SIGILL, NULL, &ill) != 0) {
        return false;
    }
    return (act->sa_flags & SA_SIGINFO) != 0 && act->sa_sigaction == ill.sa_sigaction &&
           act->sa_sigaction != NULL;
}

static void take_over_signals(int vcpu, const void *data)
{
    static gsize done;
    struct sigaction qemu;

    if (!g_once_init_enter(&done)) {
        return;
    }
    if (qemu_handler(&qemu)) {
        for (size_t i = 0; i < G_N_ELEMENTS(reported_signals); i++) {
            struct sigaction old;
            if (sigaction(reported_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
                sigaction(reported_signals[i], &qemu, NULL);
            }
        }
    }
    g_once_init_leave(&done, 1);
}

static const LhSyscalls *sys;      /* the target's numbers of clone, exec and kin */

enum { LH_CLONE_VM = 0x100 };

/*
 * Before a fork, what the script wrote and the host buffered is flushed:
 * else the child, which inherits the buffers, writes it a second time at
 * its exit. Before an exec, one notice: the new program runs without the
 * plugin (QEMU runs it natively, or under a QEMU of its own), and this
 * process's exit hooks will not run.
 */
static void watch_process(int vcpu, const void *data)
{
    const LhSyscallEvent *ev = data;
    static gsize exec_told;

    if ((ev->num == sys->clone && (ev->args[0] & LH_CLONE_VM) == 0) || ev->num == sys->fork ||
        ev->num == sys->vfork || ev->num == sys->clone3) {
        fflush(NULL);
    } else if ((ev->num == sys->execve || ev->num == sys->execveat) &&
               g_once_init_enter(&exec_told)) {
        lh_report("warning: process %d execs another program, which runs without luahost; "
                  "this process's exit hooks will not run", (int)getpid());
        fflush(NULL);
        g_once_init_leave(&exec_told, 1);
    }
}

void lh_open_process(const qemu_info_t *info)
{
    if (!info->system_emulation) {
        lh_listen(LH_AT_TRANSLATE, take_over_signals);
        sys = lh_syscalls(info->target_name);
        if (sys != NULL) {
            lh_listen(LH_AT_SYSCALL, watch_process);
        }
    }
}
