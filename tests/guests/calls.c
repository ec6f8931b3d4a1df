/*
 * calls: calls of every shape, each counted by the program itself, for
 * the call-stack tests.
 *
 *     calls [ITERS [THREADS]]      (default 1000 iterations, 1 thread besides main)
 *
 * Every function but main takes the id of its caller and counts the edge
 * (caller, itself) in edges[][]; at exit the program prints each edge it
 * saw as "edge CALLER CALLEE COUNT" (names as in the symbol table), and
 * "depth_loop N": how many times loop_target was called from a loop, to
 * check that a stack does not drift. The shapes: direct calls, recursion
 * (rec), mutual recursion (even, odd), calls through function pointers
 * (via_ptr_a, via_ptr_b), tail calls (tail_from jumps to tail_to: built
 * with -O2, -foptimize-sibling-calls), longjmp out of deep calls
 * (jump_deep), and THREADS threads doing the same.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

enum { MAIN, WORKER, REC, EVEN, ODD, PTR_A, PTR_B, TAIL_FROM, TAIL_TO, JUMP_DEEP, LOOP_TARGET, N_FUNCS };
static const char *const names[N_FUNCS] = {
    "main", "worker", "rec", "even", "odd", "via_ptr_a", "via_ptr_b", "tail_from", "tail_to",
    "jump_deep", "loop_target",
};

static unsigned long edges[N_FUNCS][N_FUNCS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long sink;

#define NOINLINE __attribute__((noinline, noclone))

static void count(int caller, int me)
{
    pthread_mutex_lock(&lock);
    edges[caller][me]++;
    pthread_mutex_unlock(&lock);
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

NOINLINE unsigned long via_ptr_a(int caller, int n)
{
    count(caller, PTR_A);
    return (unsigned long)n * 3;
}

NOINLINE unsigned long via_ptr_b(int caller, int n)
{
    count(caller, PTR_B);
    return (unsigned long)n * 5;
}

static unsigned long (*volatile pointers[2])(int, int) = { via_ptr_a, via_ptr_b };

NOINLINE unsigned long tail_to(int caller, int n)
{
    count(caller, TAIL_TO);
    sink += n;
    return sink;
}

NOINLINE unsigned long tail_from(int caller, int n)
{
    count(caller, TAIL_FROM);
    sink += n;
    return tail_to(TAIL_FROM, n + 1);     /* a jump, at -O2 */
}

static __thread jmp_buf escape;

NOINLINE void jump_out(void)
{
    if (sink != 1) {    /* always: sink only grows past 1 */
        longjmp(escape, 1);
    }
}

NOINLINE void jump_deep(int caller, int n)
{
    count(caller, JUMP_DEEP);
    if (n == 0) {
        jump_out();
        return;
    }
    jump_deep(JUMP_DEEP, n - 1);
    sink++;     /* never reached: keeps the call a call */
}

NOINLINE void loop_target(int caller)
{
    count(caller, LOOP_TARGET);
    sink++;
}

static unsigned long iters = 1000;

/* arg: non-NULL when main calls it (a thread's caller is the C library's). */
NOINLINE void *worker(void *arg)
{
    const int caller = WORKER;

    if (arg != NULL) {
        count(MAIN, WORKER);
    }
    for (unsigned long i = 0; i < iters; i++) {
        sink += rec(caller, (int)(i % 7));
        sink += even(caller, (int)(i % 5));
        sink += pointers[i % 2](caller, (int)i);
        sink += tail_from(caller, (int)i);
        if (setjmp(escape) == 0) {
            jump_deep(caller, (int)(i % 4));
        }
        loop_target(caller);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    pthread_t t[64];

    if (argc > 1) {
        iters = strtoul(argv[1], NULL, 0);
    }
    if (threads < 0 || threads > 64) {
        fprintf(stderr, "usage: calls [ITERS [THREADS<=64]]\n");
        return 2;
    }
    worker((void *)1);
    for (int i = 0; i < threads; i++) {
        pthread_create(&t[i], NULL, worker, NULL);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
    }
    for (int a = 0; a < N_FUNCS; a++) {
        for (int b = 0; b < N_FUNCS; b++) {
            if (edges[a][b] != 0) {
                printf("edge %s %s %lu\n", names[a], names[b], edges[a][b]);
            }
        }
    }
    return 0;
}
