/*
 * signals: signal handlers that call counted functions, and handlers that
 * leave by siglongjmp, for the call-stack tests.
 *
 *     signals [ITERS [TICKS]]      (default 1000 iterations, no timer)
 *
 * As calls.c: every counted function takes the id of its caller and
 * counts the edge (caller, itself); at exit the program prints each edge
 * it saw as "edge CALLER CALLEE COUNT", and "handled HANDLER N": how many
 * times each handler ran (the kernel, not a function, calls them). Each
 * iteration of worker's loop:
 *   - raise(SIGUSR1), then kill(getpid(), SIGUSR1): on_usr1 calls leaf
 *     and nested, which calls leaf, and returns;
 *   - dig recurses 1 to 3 levels, then raise(SIGUSR2): on_usr2 calls leaf
 *     and siglongjmps back to worker;
 *   - poke stores through a null pointer: on_segv calls leaf and
 *     siglongjmps back to worker;
 * then (TICKS > 0) timed makes calls (recursion, mutual recursion: direct
 * calls only) until a timer (setitimer, every millisecond) has run on_alrm
 * TICKS times: on_alrm calls leaf and returns, wherever the signal came;
 * and probe is called once before all that and once after, so a test
 * can compare the stack at the two. Counts are atomic, not locked: a handler
 * may count.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>

enum {
    MAIN, WORKER, ON_USR1, ON_USR2, ON_SEGV, ON_ALRM, LEAF, NESTED, DIG, POKE, TIMED, REC, EVEN, ODD,
    PROBE, N_FUNCS
};
static const char *const names[N_FUNCS] = {
    "main", "worker", "on_usr1", "on_usr2", "on_segv", "on_alrm", "leaf", "nested", "dig", "poke",
    "timed", "rec", "even", "odd", "probe",
};

static unsigned long edges[N_FUNCS][N_FUNCS];
static unsigned long handled[N_FUNCS];
static volatile unsigned long sink;
static int *volatile nowhere;   /* NULL: poke's store faults */
static sigjmp_buf escape;
static volatile sig_atomic_t ticks;

#define NOINLINE __attribute__((noinline, noclone))

static void count(int caller, int me)
{
    __atomic_fetch_add(&edges[caller][me], 1, __ATOMIC_RELAXED);
}

NOINLINE void leaf(int caller)
{
    count(caller, LEAF);
    sink++;
}

NOINLINE void nested(int caller)
{
    count(caller, NESTED);
    leaf(NESTED);
    sink++;
}

NOINLINE void on_usr1(int sig)
{
    handled[ON_USR1]++;
    leaf(ON_USR1);
    nested(ON_USR1);
    sink += sig;
}

NOINLINE void on_usr2(int sig)
{
    handled[ON_USR2]++;
    leaf(ON_USR2);
    siglongjmp(escape, sig);
}

NOINLINE void on_segv(int sig)
{
    handled[ON_SEGV]++;
    leaf(ON_SEGV);
    siglongjmp(escape, sig);
}

NOINLINE void on_alrm(int sig)
{
    handled[ON_ALRM]++;
    ticks++;
    leaf(ON_ALRM);
    sink += sig;
}

NOINLINE unsigned long rec(int caller, int n)
{
    unsigned long r;

    count(caller, REC);
    if (n == 0) {
        return 1;
    }
    r = rec(REC, n - 1);    /* used twice: no tail call, nor a loop */
    sink += r;
    return r + 1;
}

NOINLINE unsigned long odd(int caller, int n);

NOINLINE unsigned long even(int caller, int n)
{
    unsigned long r;

    count(caller, EVEN);
    if (n == 0) {
        return 1;
    }
    r = odd(EVEN, n - 1);
    sink += r;
    return r + 1;
}

NOINLINE unsigned long odd(int caller, int n)
{
    unsigned long r;

    count(caller, ODD);
    if (n == 0) {
        return 0;
    }
    r = even(ODD, n - 1);
    sink += r;
    return r + 1;
}

NOINLINE void timed(int caller, long n_ticks)
{
    struct itimerval every_ms = { { 0, 1000 }, { 0, 1000 } }, off = { { 0, 0 }, { 0, 0 } };

    count(caller, TIMED);
    ticks = 0;
    setitimer(ITIMER_REAL, &every_ms, NULL);
    for (unsigned long i = 0; ticks < n_ticks; i++) {
        sink += rec(TIMED, (int)(i % 7));
        sink += even(TIMED, (int)(i % 5));
    }
    setitimer(ITIMER_REAL, &off, NULL);
}

NOINLINE void dig(int caller, int n)
{
    count(caller, DIG);
    if (n == 0) {
        raise(SIGUSR2);
        return;
    }
    dig(DIG, n - 1);
    sink++;     /* never reached: keeps the call a call */
}

NOINLINE void poke(int caller)
{
    count(caller, POKE);
    *nowhere = (int)sink;
}

NOINLINE void probe(int caller)
{
    count(caller, PROBE);
    sink++;
}

static void handle(int sig, void (*handler)(int))
{
    struct sigaction sa = { .sa_handler = handler };

    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(1);
    }
}

NOINLINE void worker(unsigned long iters, long n_ticks)
{
    count(MAIN, WORKER);
    probe(WORKER);
    for (unsigned long i = 0; i < iters; i++) {
        raise(SIGUSR1);
        kill(getpid(), SIGUSR1);
        if (sigsetjmp(escape, 1) == 0) {
            dig(WORKER, (int)(i % 3));
        }
        if (sigsetjmp(escape, 1) == 0) {
            poke(WORKER);
        }
    }
    if (n_ticks > 0) {
        timed(WORKER, n_ticks);
    }
    probe(WORKER);
}

int main(int argc, char **argv)
{
    handle(SIGUSR1, on_usr1);
    handle(SIGUSR2, on_usr2);
    handle(SIGSEGV, on_segv);
    handle(SIGALRM, on_alrm);
    worker(argc > 1 ? strtoul(argv[1], NULL, 0) : 1000, argc > 2 ? atol(argv[2]) : 0);
    for (int a = 0; a < N_FUNCS; a++) {
        for (int b = 0; b < N_FUNCS; b++) {
            if (edges[a][b] != 0) {
                printf("edge %s %s %lu\n", names[a], names[b], edges[a][b]);
            }
        }
    }
    for (int h = 0; h < N_FUNCS; h++) {
        if (handled[h] != 0) {
            printf("handled %s %lu\n", names[h], handled[h]);
        }
    }
    return 0;
}
