/*
 * luahost: what an execve of the guest's will run, in user mode, found
 * as the kernel finds it (fs/exec.c, fs/binfmt_elf.c, fs/binfmt_script.c),
 * before the call: the file, executable and regular, an ELF program or
 * a "#!" script with its interpreter, and the arguments and environment
 * read from guest memory. process.c writes a program's report at an exec
 * that will succeed; a shell trying each directory of PATH makes many
 * that fail (ENOENT), which must change nothing.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "luahost.h"

/* e_machine values of the targets QEMU's user mode runs, as qemu-ARCH (as tools/luahost). */
static const struct {
    int machine;
    const char *arch;
} machines[] = {
    { 3, "i386" }, { 8, "mips" }, { 20, "ppc" }, { 21, "ppc64" }, { 22, "s390x" },
    { 40, "arm" }, { 43, "sparc64" }, { 62, "x86_64" }, { 183, "aarch64" },
    { 243, "riscv64" }, { 258, "loongarch64" },
};

void lh_exec_clear(LhExec *x)
{
    g_free(x->path);
    g_free(x->given);
    g_free(x->interp);
    g_free(x->interp_given);
    g_free(x->interp_arg);
    if (x->argv != NULL) {
        g_ptr_array_unref(x->argv);
    }
    if (x->envp != NULL) {
        g_ptr_array_unref(x->envp);
    }
}

/*
 * Guest memory: a NUL-terminated string, or NULL if some of it cannot be
 * read or it is longer than max. Read a piece at a time, never across a
 * page, so that a string that ends before an unmapped page is read.
 */
enum { LH_PIECE = 256, LH_MAX_STRING = 128 * 1024, LH_MAX_STRINGS = 64 * 1024 };

static char *guest_string(GByteArray *buf, uint64_t addr, size_t max)
{
    GString *s = g_string_new(NULL);

    while (s->len <= max) {
        size_t n = MIN(LH_PIECE, 4096 - (addr & 4095));
        if (!qemu_plugin_read_memory_vaddr(addr, buf, n)) {
            break;
        }
        const guint8 *nul = memchr(buf->data, 0, n);
        g_string_append_len(s, (const char *)buf->data, nul != NULL ? nul - buf->data : (gssize)n);
        if (nul != NULL) {
            return g_string_free(s, FALSE);
        }
        addr += n;
    }
    g_string_free(s, TRUE);
    return NULL;
}

/* The strings of a NULL-terminated array of 64-bit little-endian pointers; NULL: a fault. */
static GPtrArray *guest_strings(GByteArray *buf, uint64_t addr)
{
    GPtrArray *list = g_ptr_array_new_with_free_func(g_free);

    for (int i = 0; addr != 0 && i < LH_MAX_STRINGS; i++, addr += 8) {
        uint64_t p;
        char *s;
        if (!qemu_plugin_read_memory_vaddr(addr, buf, 8)) {
            break;
        }
        memcpy(&p, buf->data, 8);
        p = GUINT64_FROM_LE(p);
        if (p == 0) {
            return list;
        }
        s = guest_string(buf, p, LH_MAX_STRING);
        if (s == NULL) {
            break;
        }
        g_ptr_array_add(list, s);
    }
    if (addr == 0) {
        return list;        /* Linux takes a NULL argv or envp as empty */
    }
    g_ptr_array_unref(list);
    return NULL;
}

static char *absolute(const char *path)
{
    char *cwd, *abs;

    if (path[0] == '/') {
        return g_strdup(path);
    }
    cwd = g_get_current_dir();
    abs = g_build_filename(cwd, path, NULL);
    g_free(cwd);
    return abs;
}

/* QEMU runs its own program for /proc/self/exe and /proc/PID/exe (is_proc_myself). */
static bool is_own_exe(const char *path)
{
    char mine[32];

    snprintf(mine, sizeof(mine), "/proc/%d/exe", (int)getpid());
    return strcmp(path, "/proc/self/exe") == 0 || strcmp(path, mine) == 0;
}

/* The first bytes of an executable regular file, or 0 if it cannot run. */
enum { LH_BINPRM_BUF = 256 };

static size_t executable_head(const char *path, char *head)
{
    struct stat st;
    int fd;
    ssize_t n;

    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
        faccessat(AT_FDCWD, path, X_OK, AT_EACCESS) != 0) {
        return 0;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    n = read(fd, head, LH_BINPRM_BUF);
    close(fd);
    return n > 0 ? (size_t)n : 0;
}

/* An ELF file's qemu-ARCH, or NULL for a machine QEMU's user mode does not run. */
static const char *elf_arch(const char *head)
{
    const unsigned char *h = (const unsigned char *)head;
    int machine = h[5] == 2 ? h[18] << 8 | h[19] : h[19] << 8 | h[18];

    for (size_t i = 0; i < G_N_ELEMENTS(machines); i++) {
        if (machines[i].machine == machine) {
            /* RISC-V's 32 and 64-bit ELF share the machine: the class tells. */
            if (machine == 243 && h[4] == 1) {
                return "riscv32";
            }
            return machines[i].arch;
        }
    }
    return NULL;
}

/*
 * A "#!" line as the kernel reads it (fs/binfmt_script.c): the
 * interpreter up to a blank, then one optional argument, the rest of the
 * line without surrounding blanks. false: the line does not fit.
 */
static bool parse_shebang(const char *head, size_t n, LhExec *x)
{
    const char *end = memchr(head, '\n', n), *p = head + 2, *q;

    if (end == NULL) {
        end = head + n;
    }
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    for (q = p; q < end && *q != ' ' && *q != '\t' && *q != '\0'; q++) {
    }
    if (q == p || (q == head + n && memchr(head, '\n', n) == NULL)) {
        return false;
    }
    x->interp_given = g_strndup(p, q - p);
    while (q < end && (*q == ' ' || *q == '\t')) {
        q++;
    }
    while (end > q && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\0')) {
        end--;
    }
    if (end > q) {
        x->interp_arg = g_strndup(q, end - q);
    }
    return true;
}

/*
 * Whether the host's kernel runs an ELF program of arch itself, as it
 * does when QEMU's execve hands it one: of its own machine (and i386 on
 * x86_64), or of one binfmt_misc hands to an emulator under the name
 * Debian's qemu-user-binfmt registers (qemu-ARCH). Else the exec fails
 * (ENOEXEC), unless follow=on runs it under QEMU.
 */
static const char *host_arch;      /* the host's machine, as qemu-ARCH names it */

bool lh_host_runs(const char *arch)
{
    static gsize known;
    char path[64], *text = NULL;
    bool on;

    if (g_once_init_enter(&known)) {
        char head[LH_BINPRM_BUF];
        host_arch = executable_head("/proc/self/exe", head) >= 20 ? elf_arch(head) : NULL;
        g_once_init_leave(&known, 1);
    }
    if (arch == NULL) {
        return false;
    }
    if (host_arch != NULL && (strcmp(arch, host_arch) == 0 ||
                              (strcmp(host_arch, "x86_64") == 0 && strcmp(arch, "i386") == 0))) {
        return true;
    }
    snprintf(path, sizeof(path), "/proc/sys/fs/binfmt_misc/qemu-%s", arch);
    on = g_file_get_contents(path, &text, NULL, NULL) && g_str_has_prefix(text, "enabled");
    g_free(text);
    return on;
}

/*
 * What an execve (or, at, an execveat) of these arguments will do: run
 * a program (x filled in), fail (no program, not executable, not ELF or
 * "#!", a bad pointer), or LH_EXEC_UNKNOWN (*why says why) for what the
 * host does not check: an execveat of a descriptor (AT_EMPTY_PATH).
 * own is this process's program, which QEMU runs for /proc/self/exe.
 * Free x with lh_exec_clear, whatever the answer.
 */
LhExecFate lh_exec_fate(const uint64_t *args, bool at, const char *own, LhExec *x, const char **why)
{
    int dirfd = at ? (int)(int32_t)args[0] : AT_FDCWD;
    uint64_t flags = at ? args[4] : 0;
    GByteArray *buf = g_byte_array_new();
    char head[LH_BINPRM_BUF];
    size_t n;
    struct stat st;
    char *given;

    given = guest_string(buf, args[at ? 1 : 0], PATH_MAX);
    x->argv = guest_strings(buf, args[at ? 2 : 1]);
    x->envp = guest_strings(buf, args[at ? 3 : 2]);
    g_byte_array_free(buf, TRUE);
    if (given == NULL || x->argv == NULL || x->envp == NULL) {
        g_free(given);
        return LH_EXEC_FAILS;      /* EFAULT */
    }
    x->given = given;
    if (given[0] == '\0') {
        if (at && (flags & AT_EMPTY_PATH) != 0) {
            *why = "an execveat of a file descriptor";
            return LH_EXEC_UNKNOWN;
        }
        return LH_EXEC_FAILS;      /* ENOENT */
    }
    if (is_own_exe(given)) {
        if (own == NULL) {
            *why = "an exec of /proc/self/exe";
            return LH_EXEC_UNKNOWN;
        }
        x->path = g_strdup(own);
    } else if (given[0] != '/' && dirfd != AT_FDCWD) {
        char link[32];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
        char *dir = g_file_read_link(link, NULL);
        if (dir != NULL && dir[0] == '/') {
            x->path = g_build_filename(dir, given, NULL);
        }
        g_free(dir);
        if (x->path == NULL) {
            return LH_EXEC_FAILS;  /* EBADF, ENOTDIR */
        }
    } else {
        x->path = absolute(given);
    }
    if ((flags & AT_SYMLINK_NOFOLLOW) != 0 && lstat(x->path, &st) == 0 && S_ISLNK(st.st_mode)) {
        return LH_EXEC_FAILS;      /* ELOOP */
    }
    n = executable_head(x->path, head);
    if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0) {
        x->arch = n >= 20 ? elf_arch(head) : NULL;
        return LH_EXEC_RUNS;
    }
    if (n < 2 || head[0] != '#' || head[1] != '!' || !parse_shebang(head, n, x)) {
        return LH_EXEC_FAILS;      /* EACCES, ENOENT, ENOEXEC */
    }
    x->interp = absolute(x->interp_given);
    n = executable_head(x->interp, head);
    if (n >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0) {
        x->arch = n >= 20 ? elf_arch(head) : NULL;
        return LH_EXEC_RUNS;
    }
    /* an interpreter that is itself a script runs, but is not followed */
    x->nested = n >= 2 && head[0] == '#' && head[1] == '!';
    return x->nested ? LH_EXEC_RUNS : LH_EXEC_FAILS;
}
