/*
 * The one library every process of a sanitizer test run preloads
 * (tests/sanitizers/meson.build); not instrumented, and linked with
 * -z initfirst, so that its constructor runs before every other one.
 *
 * In QEMU only, it puts the sanitizer runtime first: QEMU loads the
 * plugin with dlopen, too late for a runtime (ASan must be first in the
 * process's library list, TSan needs static TLS), so a QEMU started
 * without it is started again, in place, with LD_PRELOAD set to the
 * runtime of LUAHOST_SANITIZER_RUNTIME and this library. Other processes
 * (lua5.4, sh, meson, troff) are left as they are: a runtime in each of
 * them would only slow them down and report their own bugs.
 *
 * In that QEMU it then starts the runtime before any other constructor.
 * Left to start on the first call it intercepts, a runtime starts too
 * late: libp11-kit (through GnuTLS) calls newlocale in its constructor,
 * which holds glibc's locale lock while it mallocs; the runtime, starting
 * inside that malloc, calls dlerror, which takes the same lock and lets
 * go of newlocale's hold. At exit p11-kit's destructor calls freelocale,
 * which then waits for that lock for good: every QEMU that exits through
 * exit() (a plugin refused, a guest that cannot load) hangs.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The runtimes' entry points: null unless one is loaded. */
extern void __asan_init(void) __attribute__((weak));
extern void __tsan_init(void) __attribute__((weak));

/* This process is a QEMU: /proc/self/exe is named qemu-SOMETHING. */
static int is_qemu(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const char *name;

    if (n <= 0) {
        return 0;
    }
    exe[n] = '\0';
    name = strrchr(exe, '/');
    return strncmp(name != NULL ? name + 1 : exe, "qemu-", 5) == 0;
}

/* envp's value of name, or NULL (the constructor runs before getenv can). */
static const char *env_value(char **envp, const char *name)
{
    size_t len = strlen(name);

    for (char **e = envp; *e != NULL; e++) {
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') {
            return *e + len + 1;
        }
    }
    return NULL;
}

/*
 * Runs this QEMU again with LD_PRELOAD set to the runtime, then this
 * library (LD_PRELOAD already names it, alone: tests/sanitizers/).
 */
static void again_with(const char *runtime, char **argv, char **envp)
{
    static char *env[4096];
    const char *self = env_value(envp, "LD_PRELOAD");
    char *preload;
    int n = 0;

    if (self == NULL || asprintf(&preload, "LD_PRELOAD=%s %s", runtime, self) < 0) {
        return;
    }
    env[n++] = preload;
    for (char **e = envp; *e != NULL && n < 4095; e++) {
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0) {
            env[n++] = *e;
        }
    }
    env[n] = NULL;
    execve("/proc/self/exe", argv, env);
    perror("luahost sanitizer preload: execve");    /* then runs on, without */
}

/* glibc passes constructors the program's argc, argv and environment. */
__attribute__((constructor)) static void sanitizer_first(int argc __attribute__((unused)), char **argv, char **envp)
{
    const char *runtime;

    if (__asan_init != NULL) {
        __asan_init();      /* the runtime is here: start it before anyone else */
    } else if (__tsan_init != NULL) {
        __tsan_init();
    } else if ((runtime = env_value(envp, "LUAHOST_SANITIZER_RUNTIME")) != NULL && *runtime != '\0'
               && is_qemu()) {
        again_with(runtime, argv, envp);
    }
}
