/*
 * execs: a guest that execs, for the tests of the report at an exec and
 * of follow=on (tests/integration/processes_spec.lua).
 *
 *     execs [OPTIONS] [PROGRAM [ARGS...]]
 *
 *   -p WORD    first prints "WORD pid=P argv0=ARGV0"
 *   -v VAR     prints "VAR=VALUE" of its environment ("VAR unset")
 *   -f         tries execs that fail, each as the kernel refuses it: a
 *              missing file, a directory, a file without the x bit, an
 *              executable file that is neither ELF nor "#!", a script whose
 *              interpreter is missing, a bad argv pointer; prints
 *              "failed execs: N" (all of them: 6)
 *   -k         forks: the child execs PROGRAM, the parent waits for it,
 *              prints "child status=S" and exits with its status
 *   -0 NAME    PROGRAM's argv[0] is NAME (else PROGRAM)
 *   -E VAR=VAL PROGRAM's environment is this one variable (else this one's)
 *   -s N       with no PROGRAM, exits with status N (else 0)
 *
 * Each first runs a counted loop, so that there is something to report.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile unsigned long sink;

static void work(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        sink += i;
    }
}

/* A temporary file with text, mode 0755; its path (static). */
static const char *temp_file(const char *text)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/execs-%d-XXXXXX", (int)getpid());
    fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fchmod(fd, 0755) != 0) {
        perror("execs: temporary file");
        exit(2);
    }
    close(fd);
    return path;
}

/* 1 if the exec failed. The raw syscall, argv as a number: it may be a bad pointer. */
static int try_exec(const char *path, long argv)
{
    char *env[] = { NULL };

    return syscall(SYS_execve, path, argv, env) == -1 ? 1 : 0;
}

static int failing_execs(void)
{
    char *args[] = { "x", NULL };
    long argv = (long)args;
    const char *path;
    int failed = 0;

    failed += try_exec("/nonexistent/luahost-execs", argv);
    failed += try_exec("/", argv);
    failed += try_exec("/etc/passwd", argv);
    path = temp_file("neither ELF nor a script\n");
    failed += try_exec(path, argv);
    unlink(path);
    path = temp_file("#!/nonexistent/interpreter\n");
    failed += try_exec(path, argv);
    unlink(path);
    failed += try_exec("/proc/self/exe", 8);
    return failed;
}

int main(int argc, char **argv)
{
    const char *argv0 = NULL;
    char *one_var[2] = { NULL, NULL };
    int status = 0, fork_first = 0, opt;

    work(1000);
    while ((opt = getopt(argc, argv, "+p:v:fk0:E:s:")) != -1) {
        switch (opt) {
        case 'p':
            printf("%s pid=%d argv0=%s\n", optarg, (int)getpid(), argv[0]);
            break;
        case 'v':
            if (getenv(optarg) != NULL) {
                printf("%s=%s\n", optarg, getenv(optarg));
            } else {
                printf("%s unset\n", optarg);
            }
            break;
        case 'f':
            printf("failed execs: %d\n", failing_execs());
            break;
        case 'k':
            fork_first = 1;
            break;
        case '0':
            argv0 = optarg;
            break;
        case 'E':
            one_var[0] = optarg;
            break;
        case 's':
            status = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    fflush(stdout);
    if (optind >= argc) {
        return status;
    }
    if (fork_first) {
        pid_t child = fork();
        int st;
        if (child < 0) {
            perror("execs: fork");
            return 2;
        }
        if (child > 0) {
            if (waitpid(child, &st, 0) != child) {
                perror("execs: waitpid");
                return 2;
            }
            status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            printf("child status=%d\n", status);
            return status;
        }
    }
    const char *program = argv[optind];
    if (argv0 != NULL) {
        argv[optind] = (char *)argv0;
    }
    execve(program, argv + optind, one_var[0] != NULL ? one_var : environ);
    fprintf(stderr, "execs: cannot exec %s: %s\n", program, strerror(errno));
    return 127;
}
