/*
 * luahost: the end of a run by a signal, reported like any other end.
 *
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

void lh_open_signals(const qemu_info_t *info)
{
    if (!info->system_emulation) {
        lh_listen(LH_AT_TRANSLATE, take_over_signals);
    }
}
