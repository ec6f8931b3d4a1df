/*
 * faults: a guest that faults in the middle of a block and goes on, for
 * the cflow tests' early exits.
 *
 *     faults [N]       (default 300)
 *
 * fault() runs N times; ten times over, a block of it loads through
 * target and then calls note(), so the load is not the block's last
 * instruction. One run in three target is null: the first load faults,
 * and the SIGSEGV handler counts it and siglongjmps back; the other
 * runs call note() ten times. Prints "caught=N". The block ending with a
 * call, the address after it is inside fault(), never the handler's
 * (which would hide the jump to it).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static sigjmp_buf back;
static volatile unsigned long caught;
static volatile unsigned long sink;
static volatile unsigned long *volatile target;     /* where fault() loads from */

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
    for (unsigned long j = 0; j < 10; j++) {
        sink += *target;
        note(i + j);
    }
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 300;
    struct sigaction sa = { .sa_handler = on_segv };
    volatile unsigned long i;

    sigaction(SIGSEGV, &sa, NULL);
    for (i = 0; i < n; i++) {
        target = i % 3 == 2 ? NULL : &sink;
        if (sigsetjmp(back, 1) == 0) {
            fault(i);
        }
    }
    printf("caught=%lu\n", caught);
    return 0;
}
