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
 * nothing. With follow=on (as strace -f, Valgrind's
 * --trace-children=yes), the host then execs, instead of the guest's
 * program, a QEMU running it with the same options and plugins
 * (follow_command, exec_qemu); else the new program runs without
 * luahost, which one notice says. A report that another process's may
 * be confused with starts with a line naming its process
 * (raw.process_note).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

/*
 * QEMU's handler, after telling the limits (limits.c): a call into Lua
 * that does not end, stuck in a loop, would keep QEMU from acting on the
 * signal, so it is interrupted.
 */
static void (*qemu_action)(int, siginfo_t *, void *);

static void on_ending_signal(int sig, siginfo_t *info, void *uc)
{
    lh_limits_signalled();
    qemu_action(sig, info, uc);
}

static void take_over_signals(void)
{
    struct sigaction qemu;

    if (qemu_handler(&qemu)) {
        qemu_action = qemu.sa_sigaction;
        qemu.sa_sigaction = on_ending_signal;
        for (size_t i = 0; i < G_N_ELEMENTS(reported_signals); i++) {
            struct sigaction old;
            if (sigaction(reported_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
                sigaction(reported_signals[i], &qemu, NULL);
            }
        }
    }
}

/*
 * What a QEMU started by follow=on is handed, in the environment
 * variable LUAHOST_EXEC (which QEMU's -U keeps from the guest): "FD2
 * CWDFD FORKED_FROM N BY SCRIPT", the guest's fd 2 and current directory
 * as inherited descriptors (-1: fd 2 was closed), the parent of a forked
 * child (else 0), the N bytes naming the program that exec'd, and the
 * script a "#!" interpreter runs (else nothing).
 */
#define LH_FOLLOW_ENV "LUAHOST_EXEC"

static int exec_fd2 = -2;          /* -2: not started by follow=on */
static int exec_cwd_fd = -1;
static char *execed_by;            /* the program that exec'd this one (follow=on) */
static char *script;               /* the script its interpreter runs, or NULL */

/*
 * A QEMU started by follow=on runs in the first QEMU's directory, with
 * its stderr on fd 2, so that the relative paths of the plugin
 * arguments and the script's output are those of the first run; the
 * guest's own are put back before its first instruction.
 */
static void put_back_guest_state(void)
{
    if (exec_cwd_fd >= 0) {
        if (fchdir(exec_cwd_fd) != 0) {
            lh_report("warning: cannot enter the directory the program was exec'd in: %s",
                      g_strerror(errno));
        }
        close(exec_cwd_fd);
        exec_cwd_fd = -1;
    }
    if (exec_fd2 >= 0) {
        dup2(exec_fd2, STDERR_FILENO);
        close(exec_fd2);
    } else if (exec_fd2 == -1) {
        close(STDERR_FILENO);
    }
    exec_fd2 = -2;
}

static void first_translation(int vcpu, const void *data)
{
    static gsize done;

    if (!g_once_init_enter(&done)) {
        return;
    }
    take_over_signals();
    put_back_guest_state();
    g_once_init_leave(&done, 1);
}

static const LhSyscalls *sys;      /* the target's numbers of clone, exec and kin */
static const char *target;         /* qemu-TARGET runs this process */
static bool follow;                /* follow=on */

/*
 * QEMU's command line, from /proc/self/cmdline: its options and the
 * program, found as QEMU's parse_args finds it (linux-user/main.c):
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

static GPtrArray *qemu_options;    /* of the command line, NULL: unknown */
static const char *options_why;    /* why unknown */
static char *program;              /* the guest's program, its real path, or NULL */
static char *shown;                /* program, and the script it runs if any; or NULL */
static char *qemu_path;            /* this QEMU, its real path */
static char *start_dir;            /* the directory QEMU started in */

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
    if (errno == 0) {
        options_why = "QEMU was started by binfmt_misc";
        g_ptr_array_unref(args);
        return;
    }
    if (!g_file_get_contents("/proc/self/cmdline", &text, &len, NULL)) {
        options_why = "cannot read /proc/self/cmdline";
        g_ptr_array_unref(args);
        return;
    }
    for (gsize i = 0; i < len; i += strlen(text + i) + 1) {
        g_ptr_array_add(args, text + i);
    }
    qemu_options = g_ptr_array_new_with_free_func(g_free);
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
        g_ptr_array_add(qemu_options, g_strdup(arg));
        if (listed(options_with_value, name) && i + 1 < args->len) {
            g_ptr_array_add(qemu_options, g_strdup(g_ptr_array_index(args, ++i)));
        } else if (!listed(options_alone, name)) {
            break;
        }
    }
    program = prog != NULL ? realpath(prog, NULL) : NULL;
    if (program == NULL) {
        options_why = "cannot find the program in QEMU's command line";
        g_ptr_array_unref(qemu_options);
        qemu_options = NULL;
    }
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
 * follow=on: the command that runs x under QEMU, or NULL and why not.
 *
 *     qemu-ARCH OPTIONS -U LUAHOST_EXEC -0 ARGV0 -- PROGRAM ARGS...
 *
 * qemu-ARCH is this QEMU for the same target, else the one next to it.
 * OPTIONS are this QEMU's (its plugins with their arguments among them)
 * less -0, -E and -U: the new program gets exactly the argv and the
 * environment the guest passed, as from the kernel; for another target,
 * less -L, -cpu, -B and -R too, which are this target's. A script runs
 * as the kernel runs it: its interpreter, the optional argument, the
 * script's path as given, then the arguments after argv[0].
 */
static GPtrArray *follow_command(LhExec *x, char **qemu, const char **why)
{
    static const char *const dropped[] = { "0", "E", "U", NULL };
    static const char *const target_own[] = { "L", "cpu", "B", "R", NULL };
    bool same = x->arch != NULL && strcmp(x->arch, target) == 0;
    GPtrArray *cmd;

    if (qemu_options == NULL) {
        *why = options_why;
        return NULL;
    }
    if (x->arch == NULL) {
        *why = x->nested ? "its interpreter is itself a script"
               : x->interp != NULL ? "its interpreter is not an ELF program QEMU runs"
               : "it is not an ELF program QEMU runs";
        return NULL;
    }
    if (lh_syscalls(x->arch) == NULL) {
        *why = "luahost does not follow the execs of this target's programs";
        return NULL;
    }
    if (same) {
        *qemu = g_strdup(qemu_path);
    } else {
        char *dir = g_path_get_dirname(qemu_path);
        char *name = g_strdup_printf("qemu-%s", x->arch);
        *qemu = g_build_filename(dir, name, NULL);
        g_free(dir);
        g_free(name);
        if (access(*qemu, X_OK) != 0) {
            *why = "there is no qemu-ARCH for it next to this QEMU";
            g_free(*qemu);
            *qemu = NULL;
            return NULL;
        }
    }
    cmd = g_ptr_array_new();
    g_ptr_array_add(cmd, *qemu);
    for (guint i = 0; i < qemu_options->len; i++) {
        const char *opt = g_ptr_array_index(qemu_options, i), *name = opt + 1 + (opt[1] == '-');
        bool value = listed(options_with_value, name);
        if (!listed(dropped, name) && (same || !listed(target_own, name))) {
            g_ptr_array_add(cmd, (char *)opt);
            if (value) {
                g_ptr_array_add(cmd, g_ptr_array_index(qemu_options, i + 1));
            }
        }
        i += value;
    }
    g_ptr_array_add(cmd, "-U");
    g_ptr_array_add(cmd, LH_FOLLOW_ENV);
    g_ptr_array_add(cmd, "-0");
    if (x->interp != NULL) {
        g_ptr_array_add(cmd, x->interp_given);
        g_ptr_array_add(cmd, "--");
        g_ptr_array_add(cmd, x->interp);
        if (x->interp_arg != NULL) {
            g_ptr_array_add(cmd, x->interp_arg);
        }
        g_ptr_array_add(cmd, x->given);
    } else {
        g_ptr_array_add(cmd, x->argv->len > 0 ? g_ptr_array_index(x->argv, 0) : "");
        g_ptr_array_add(cmd, "--");
        g_ptr_array_add(cmd, x->path);
    }
    for (guint i = 1; i < x->argv->len; i++) {
        g_ptr_array_add(cmd, g_ptr_array_index(x->argv, i));
    }
    g_ptr_array_add(cmd, NULL);
    return cmd;
}

/* fd, moved above 0, 1 and 2 if it is one of them (the guest closed that one). */
static int above_stdio(int fd)
{
    int moved;

    if (fd < 0 || fd > STDERR_FILENO) {
        return fd;
    }
    moved = fcntl(fd, F_DUPFD, 3);
    close(fd);
    return moved;
}

/*
 * Runs cmd in place of this process: in the directory QEMU started in,
 * with QEMU's own stderr on fd 2, the guest's handed over as
 * descriptors (see LUAHOST_EXEC). Returns only if it cannot: then all
 * is as it was, and why says what failed.
 */
static void exec_qemu(LhExec *x, GPtrArray *cmd, const char **why)
{
    int cwd_fd = above_stdio(open(".", O_PATH | O_DIRECTORY));
    int fd2 = fcntl(STDERR_FILENO, F_DUPFD, 3);     /* -1 with EBADF: the guest closed it */
    bool fd2_kept = fd2 >= 0 || errno == EBADF;
    int report_fd = fileno(lh_report_stream());
    GPtrArray *env;
    char *marker;

    if (cwd_fd < 0 || !fd2_kept || chdir(start_dir) != 0) {
        *why = !fd2_kept ? "cannot keep the guest's stderr for it"
               : "cannot enter the directory QEMU started in";
        if (cwd_fd >= 0) {
            close(cwd_fd);
        }
        if (fd2 >= 0) {
            close(fd2);
        }
        return;
    }
    env = g_ptr_array_new();
    marker = g_strdup_printf("%s=%d %d %d %zu %s %s", LH_FOLLOW_ENV, fd2, cwd_fd, (int)forked_from,
                             strlen(shown != NULL ? shown : ""), shown != NULL ? shown : "",
                             x->interp != NULL ? exec_target : "");
    for (guint i = 0; i < x->envp->len; i++) {
        const char *var = g_ptr_array_index(x->envp, i);
        if (!g_str_has_prefix(var, LH_FOLLOW_ENV "=")) {
            g_ptr_array_add(env, (char *)var);
        }
    }
    g_ptr_array_add(env, marker);
    g_ptr_array_add(env, NULL);
    fflush(NULL);
    if (report_fd != STDERR_FILENO) {
        dup2(report_fd, STDERR_FILENO);
    }
    execve(g_ptr_array_index(cmd, 0), (char **)cmd->pdata, (char **)env->pdata);
    *why = g_strerror(errno);
    if (fd2 >= 0) {
        dup2(fd2, STDERR_FILENO);
        close(fd2);
    } else {
        close(STDERR_FILENO);
    }
    if (fchdir(cwd_fd) != 0) {
        lh_report("warning: cannot go back to the guest's directory: %s", g_strerror(errno));
    }
    close(cwd_fd);
    g_ptr_array_unref(env);
    g_free(marker);
}

/*
 * An exec that will run a program: the report, then the program under
 * QEMU (follow=on) or without luahost. An exec the host cannot check
 * gets the notice it always had: if it runs, no report.
 */
static void watch_exec(int vcpu, const LhSyscallEvent *ev)
{
    static gsize told;
    LhExec x = { 0 };
    const char *why = NULL;
    char *qemu = NULL;
    GPtrArray *cmd = NULL;
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
    if (follow) {
        cmd = follow_command(&x, &qemu, &why);
    }
    if (cmd == NULL && !x.nested && !lh_host_runs(x.arch)) {
        lh_exec_clear(&x);     /* the kernel refuses it: ENOEXEC */
        return;
    }
    exec_target = g_canonicalize_filename(x.path, NULL);
    lh_notify(LH_AT_EXEC, vcpu, NULL);
    exec_reported = true;
    if (cmd != NULL) {
        exec_qemu(&x, cmd, &why);
        g_ptr_array_unref(cmd);
    }
    if (follow) {
        lh_report("warning: process %d execs %s, which runs without luahost: %s",
                  (int)getpid(), exec_target, why);
    } else if (g_once_init_enter(&told)) {
        lh_report("process %d execs %s, which runs without luahost (follow=on would run it "
                  "under luahost too); the report covers %s up to the exec", (int)getpid(),
                  exec_target, shown != NULL ? shown : "the program before");
        g_once_init_leave(&told, 1);
    }
    fflush(NULL);
    g_free(qemu);
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

    /* atomic stores: several of the guest's threads may fork or exit at once */
    if (is_fork(ev) || ev->num == sys->clone3) {
        if (is_fork(ev)) {
            __atomic_store_n(&has_forked, true, __ATOMIC_RELAXED);
        }
        fflush(NULL);
    } else if (ev->num == sys->exit_group || ev->num == sys->exit) {
        __atomic_store_n(&lh.exiting, true, __ATOMIC_RELAXED);    /* by its choice, not a signal */
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

/* raw.set_follow(on): follow=on or off; true, or nil and why it cannot be on. */
static int set_follow(lua_State *L)
{
    bool on = lua_toboolean(L, 1);

    if (on && sys == NULL) {
        return lh_fail(L, target == NULL ? "follow=on: only user mode runs programs that exec"
                          : "follow=on: luahost does not know this target's syscalls");
    }
    follow = on;
    lua_pushboolean(L, 1);
    return 1;
}

/*
 * raw.process_note(): which process a report describes, when another's
 * may go to the same place (this process forked or is a forked child,
 * or follow=on); else nil.
 */
static int process_note(lua_State *L)
{
    GString *s;

    if (!follow && !has_forked && forked_from == 0 && execed_by == NULL) {
        lua_pushnil(L);
        return 1;
    }
    s = g_string_new(NULL);
    g_string_append_printf(s, "process %d", (int)getpid());
    if (shown != NULL) {
        g_string_append_printf(s, " (%s)", shown);
    }
    if (forked_from != 0) {
        g_string_append_printf(s, ", forked from %d", (int)forked_from);
    }
    if (execed_by != NULL) {
        g_string_append_printf(s, ", exec'd by %s", execed_by);
    }
    if (exec_target != NULL) {
        g_string_append_printf(s, ", up to its exec of %s", exec_target);
    }
    lua_pushlstring(L, s->str, s->len);
    g_string_free(s, TRUE);
    return 1;
}

/* raw.execed_by(): the program that exec'd this one under follow=on, or nil. */
static int get_execed_by(lua_State *L)
{
    lua_pushstring(L, execed_by);
    return 1;
}

static const luaL_Reg process_functions[] = {
    { "set_follow", set_follow },
    { "process_note", process_note },
    { "execed_by", get_execed_by },
    { NULL, NULL },
};

/* A QEMU that follow=on started: what the QEMU before it handed over. */
static void read_exec_marker(void)
{
    const char *marker = g_getenv(LH_FOLLOW_ENV);
    int parent, at = 0;
    size_t n;

    if (marker != NULL &&
        sscanf(marker, "%d %d %d %zu %n", &exec_fd2, &exec_cwd_fd, &parent, &n, &at) == 4 &&
        at > 0 && strlen(marker + at) > n && marker[at + n] == ' ') {
        forked_from = parent;
        execed_by = n > 0 ? g_strndup(marker + at, n) : g_strdup("?");
        script = marker[at + n + 1] != '\0' ? g_strdup(marker + at + n + 1) : NULL;
    } else {
        exec_fd2 = -2;
        exec_cwd_fd = -1;
    }
    g_unsetenv(LH_FOLLOW_ENV);
}

void lh_open_process(lua_State *L, int raw, const qemu_info_t *info)
{
    if (!info->system_emulation) {
        target = g_strdup(info->target_name);
        pid = getpid();
        read_exec_marker();
        qemu_path = realpath("/proc/self/exe", NULL);
        start_dir = g_get_current_dir();
        read_command_line();
        if (program != NULL) {
            shown = script != NULL ? g_strdup_printf("%s %s", program, script) : g_strdup(program);
        }
        lh_listen(LH_AT_TRANSLATE, first_translation);
        sys = lh_syscalls(info->target_name);
        if (sys != NULL) {
            lh_listen(LH_AT_SYSCALL_HOOKED, watch_process);
            lh_listen(LH_AT_SYSCALL_RETURN, watch_return);
        }
    }
    lh_set_functions(L, raw, process_functions);
}
