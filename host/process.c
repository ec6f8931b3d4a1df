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
 * An exec ends the program as an exit does, so its report is written
 * then: at an execve that will succeed, the exit path runs (LH_AT_EXEC,
 * once: QEMU's exit callbacks never run after an exec). Whether it will
 * succeed is found as the kernel would find it (exec.c), so that a shell
 * trying each directory of PATH (most attempts fail with ENOENT) changes
 * nothing. The new program runs without luahost, which one notice says.
 * A report that another process's may be confused with starts with a
 * line naming its process (raw.process_note).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
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

static void take_over_signals(void)
{
    struct sigaction qemu;

    if (qemu_handler(&qemu)) {
        for (size_t i = 0; i < G_N_ELEMENTS(reported_signals); i++) {
            struct sigaction old;
            if (sigaction(reported_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
                sigaction(reported_signals[i], &qemu, NULL);
            }
        }
    }
}

static void first_translation(int vcpu, const void *data)
{
    static gsize done;

    if (!g_once_init_enter(&done)) {
        return;
    }
    take_over_signals();
    g_once_init_leave(&done, 1);
}

static const LhSyscalls *sys;      /* the target's numbers of clone, exec and kin */

/*
 * QEMU's command line, from /proc/self/cmdline: the program, found as
 * QEMU's parse_args finds it (linux-user/main.c) after its options:
 * options, each with a value or not, up to the first argument that is
 * not one or after "--". QEMU refuses an option it does not know, so the
 * table below must hold every option that takes a value; an unknown one
 * makes the command line unknown rather than misread. The program's
 * real path is checked to exist, as QEMU resolves it. Not known when
 * QEMU was started by binfmt_misc (its options are in the environment).
 */
static const char *const options_with_value[] = {
    "g", "L", "s", "cpu", "E", "U", "0", "r", "B", "R", "t", "d", "dfilter", "D", "p",
    "tb-size", "seed", "trace", "plugin", NULL,
};
static const char *const options_alone[] = {
    "h", "help", "one-insn-per-tb", "singlestep", "strace", "version", "perfmap", "jitdump",
    "xtensa-abi-call0", NULL,
};

static char *program;              /* the guest's program, its real path, or NULL */

static bool listed(const char *const *list, const char *name)
{
    for (int i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static void read_command_line(void)
{
    gchar *text;
    gsize len;
    GPtrArray *args = g_ptr_array_new();
    const char *prog = NULL;

    errno = 0;
    getauxval(AT_EXECFD);
    if (errno == 0 || !g_file_get_contents("/proc/self/cmdline", &text, &len, NULL)) {
        g_ptr_array_unref(args);
        return;
    }
    for (gsize i = 0; i < len; i += strlen(text + i) + 1) {
        g_ptr_array_add(args, text + i);
    }
    for (guint i = 1; i < args->len; i++) {
        const char *arg = g_ptr_array_index(args, i), *name = arg + 1;
        if (arg[0] != '-') {
            prog = arg;
            break;
        }
        if (strcmp(arg, "--") == 0) {
            prog = i + 1 < args->len ? g_ptr_array_index(args, i + 1) : NULL;
            break;
        }
        name += name[0] == '-';
        if (listed(options_with_value, name) && i + 1 < args->len) {
            i++;
        } else if (!listed(options_alone, name)) {
            break;
        }
    }
    program = prog != NULL ? realpath(prog, NULL) : NULL;
    g_ptr_array_unref(args);
    g_free(text);
}

/* The process a report describes (raw.process_note). */
static pid_t pid;                  /* as of the last fork */
static pid_t forked_from;          /* in a forked child: the parent, else 0 */
static bool has_forked;
static char *exec_target;          /* the program this one execs, once it does */
static bool exec_reported;         /* the exit path ran at an exec */

enum { LH_CLONE_VM = 0x100, LH_CLONE_VFORK = 0x4000 };

/* QEMU runs a vfork as a fork, and a clone with CLONE_VM but not CLONE_VFORK as a thread. */
static bool is_fork(const LhSyscallEvent *ev)
{
    if (ev->num == sys->clone) {
        return (ev->args[0] & LH_CLONE_VM) == 0 || (ev->args[0] & LH_CLONE_VFORK) != 0;
    }
    return ev->num == sys->fork || ev->num == sys->vfork;
}

static bool is_exec(int64_t num)
{
    return num == sys->execve || num == sys->execveat;
}

/*
 * An exec that will run a program: the report, then the program runs
 * without luahost. An exec the host cannot check gets the notice it
 * always had: if it runs, no report.
 */
static void watch_exec(int vcpu, const LhSyscallEvent *ev)
{
    static gsize told;
    LhExec x = { 0 };
    const char *why = NULL;
    LhExecFate fate = lh_exec_fate(ev->args, ev->num == sys->execveat, program, &x, &why);

    if (fate == LH_EXEC_FAILS || exec_reported) {
        lh_exec_clear(&x);
        return;
    }
    if (fate == LH_EXEC_UNKNOWN) {
        if (g_once_init_enter(&told)) {
            lh_report("warning: process %d execs another program (%s), which runs without luahost; "
                      "this process's exit hooks will not run", (int)getpid(), why);
            g_once_init_leave(&told, 1);
        }
        lh_exec_clear(&x);
        return;
    }
    if (!x.nested && !lh_host_runs(x.arch)) {
        lh_exec_clear(&x);     /* the kernel refuses it: ENOEXEC */
        return;
    }
    exec_target = g_canonicalize_filename(x.path, NULL);
    lh_notify(LH_AT_EXEC, vcpu, NULL);
    exec_reported = true;
    if (g_once_init_enter(&told)) {
        lh_report("process %d execs %s, which runs without luahost; the report covers %s up "
                  "to the exec", (int)getpid(), exec_target,
                  program != NULL ? program : "the program before");
        g_once_init_leave(&told, 1);
    }
    fflush(NULL);
    lh_exec_clear(&x);
}

/*
 * After the script's syscall hooks (so that what they write is in the
 * report, and is flushed once): before a fork, what the script wrote
 * and the host buffered is flushed, else the child, which inherits the
 * buffers, writes it a second time at its exit; an exec runs watch_exec.
 */
static void watch_process(int vcpu, const void *data)
{
    const LhSyscallEvent *ev = data;

    if (is_fork(ev) || ev->num == sys->clone3) {
        has_forked = has_forked || is_fork(ev);
        fflush(NULL);
    } else if (is_exec(ev->num)) {
        watch_exec(vcpu, ev);
    }
}

/*
 * A fork returns in the child too, where the process id has changed; an
 * exec that returns has failed, after the report if the host wrote it.
 */
static void watch_return(int vcpu, const void *data)
{
    const LhSyscallEvent *ev = data;
    static gsize told;

    if ((ev->num == sys->clone || ev->num == sys->fork || ev->num == sys->vfork ||
         ev->num == sys->clone3) && getpid() != pid) {
        forked_from = pid;
        pid = getpid();
    }
    if (is_exec(ev->num) && exec_reported && g_once_init_enter(&told)) {
        lh_report("warning: process %d: the exec of %s failed (%s) after luahost wrote this "
                  "program's report; what it does from here is not reported", (int)getpid(),
                  exec_target, g_strerror((int)-ev->ret));
        g_once_init_leave(&told, 1);
    }
}

/*
 * raw.process_note(): which process a report describes, when another's
 * may go to the same place (this process forked or is a forked child);
 * else nil.
 */
static int process_note(lua_State *L)
{
    GString *s;

    if (!has_forked && forked_from == 0) {
        lua_pushnil(L);
        return 1;
    }
    s = g_string_new(NULL);
    g_string_append_printf(s, "process %d", (int)getpid());
    if (program != NULL) {
        g_string_append_printf(s, " (%s)", program);
    }
    if (forked_from != 0) {
        g_string_append_printf(s, ", forked from %d", (int)forked_from);
    }
    if (exec_target != NULL) {
        g_string_append_printf(s, ", up to its exec of %s", exec_target);
    }
    lua_pushlstring(L, s->str, s->len);
    g_string_free(s, TRUE);
    return 1;
}

static const luaL_Reg process_functions[] = {
    { "process_note", process_note },
    { NULL, NULL },
};

void lh_open_process(lua_State *L, int raw, const qemu_info_t *info)
{
    if (!info->system_emulation) {
        pid = getpid();
        read_command_line();
        lh_listen(LH_AT_TRANSLATE, first_translation);
        sys = lh_syscalls(info->target_name);
        if (sys != NULL) {
            lh_listen(LH_AT_SYSCALL_HOOKED, watch_process);
            lh_listen(LH_AT_SYSCALL_RETURN, watch_return);
        }
    }
    lh_set_functions(L, raw, process_functions);
}
