/*
 * faults: a guest that faults in the middle of a block and goes on, for
 * the cflow tests' early exits.
 *
 *     faults [N]       (default 100)
 *
 * N times, fault() loads through a null pointer between two other
 * statements, so the load is not the last instruction of its block; the
 * SIGSEGV handler counts it and siglongjmps back. Prints "caught=N".
 * The load's block ends with a call, so the address after it is inside
 * fault(), never the handler's (which would hide the jump to it).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static sigjmp_buf back;
static volatile unsigned long caught;
static volatile unsigned long sink;
static volatile unsigned long *volatile nowhere;    /* null, unknown to the compiler */

static void on_segv(int sig)
{
    (void)sig;
    caught++;
    siglongjmp(back, 1);
}

static void __attribute__((noinline)) note(unsigned long i)
{
    sink ^= i;
}

static void __attribute__((noinline)) fault(unsigned long i)
{
    sink += i;
    sink += *nowhere;
    note(i);
    sink += i * 3;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 100;
    struct sigaction sa = { .sa_handler = on_segv };
    volatile unsigned long i;

    sigaction(SIGSEGV, &sa, NULL);
    for (i = 0; i < n; i++) {
        if (sigsetjmp(back, 1) == 0) {
            fault(i);
        }
    }
    printf("caught=%lu\n", caught);
    return 0;
}
