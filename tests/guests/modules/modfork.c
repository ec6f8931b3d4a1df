/*
 * modfork: forks; the child and then the parent (after the child has
 * exited) each run a loop in libmodlib, through functions of their own
 * that neither ran before the fork.
 *
 *     modfork [N]     (default 100)
 *
 * Prints "child pid=P result=R" and "parent pid=P child=C result=R".
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "modlib.h"

static __attribute__((noipa)) unsigned long child_callback(unsigned long x)
{
    return x + 7;
}

static __attribute__((noipa)) unsigned long parent_callback(unsigned long x)
{
    return x + 11;
}

static __attribute__((noipa)) unsigned long run(unsigned long n, unsigned long (*fn)(unsigned long))
{
    unsigned long acc = 0;

    for (unsigned long i = 0; i < n; i++) {
        acc += lib_apply(i, fn);
    }
    return acc;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 100;
    int status;

    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        printf("child pid=%d result=%lu\n", (int)getpid(), run(n, child_callback));
        return 0;
    }
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "modfork: the child failed\n");
        return 1;
    }
    printf("parent pid=%d child=%d result=%lu\n", (int)getpid(), (int)child, run(n, parent_callback));
    return 0;
}
