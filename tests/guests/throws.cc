/*
 * throws: C++ exceptions thrown through several frames, each call
 * counted by the program itself, for the call-stack tests.
 *
 *     throws [ITERS [THREADS]]     (default 1000 iterations, no thread besides main)
 *
 * As calls.c: every function but main takes the id of its caller and
 * counts the edge (caller, itself); at exit the program prints each edge
 * it saw as "edge CALLER CALLEE COUNT", and "throws N": how many
 * exceptions it threw or rethrew. The functions are extern "C" so
 * that their names are the symbol table's (luahost.describe does not
 * demangle). Each iteration of the loop in worker:
 *   - dive recurses 1 to 4 levels, each level holding a Guard whose
 *     destructor calls unwound (a call from a cleanup landing pad, made
 *     while the exception passes), then throws; worker catches it;
 *   - relay calls dive and catches, counts, and rethrows (throw;) to
 *     worker;
 *   - local_catch throws and catches in its own frame;
 * and probe is called once before the loop and once after, so a test can
 * compare the stack at the two.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum { MAIN, WORKER, DIVE, UNWOUND, RELAY, LOCAL_CATCH, PROBE, N_FUNCS };
static const char *const names[N_FUNCS] = {
    "main", "worker", "dive", "unwound", "relay", "local_catch", "probe",
};

static unsigned long edges[N_FUNCS][N_FUNCS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile unsigned long sink;
static unsigned long thrown;    /* every throw and rethrow */

#define NOINLINE __attribute__((noinline, noclone))

struct Thrown {
    int depth;
};

static void count(int caller, int me)
{
    pthread_mutex_lock(&lock);
    edges[caller][me]++;
    pthread_mutex_unlock(&lock);
}

extern "C" NOINLINE void unwound(int caller)
{
    count(caller, UNWOUND);
    sink++;
}

/* Its destructor runs in the frame that holds it, also when unwinding. */
struct Guard {
    int owner;
    __attribute__((always_inline)) ~Guard() { unwound(owner); }
};

extern "C" NOINLINE void dive(int caller, int n)
{
    Guard guard = { DIVE };

    count(caller, DIVE);
    if (n == 0) {
        __atomic_fetch_add(&thrown, 1, __ATOMIC_RELAXED);
        throw Thrown { (int)sink };
    }
    dive(DIVE, n - 1);
    sink++;     /* never reached: keeps the call a call */
}

extern "C" NOINLINE void relay(int caller, int n)
{
    count(caller, RELAY);
    try {
        dive(RELAY, n);
    } catch (const Thrown &) {
        sink++;
        __atomic_fetch_add(&thrown, 1, __ATOMIC_RELAXED);
        throw;
    }
}

extern "C" NOINLINE unsigned long local_catch(int caller, int n)
{
    count(caller, LOCAL_CATCH);
    try {
        if (sink != 1) {    /* always: sink only grows past 1 */
            __atomic_fetch_add(&thrown, 1, __ATOMIC_RELAXED);
            throw n;
        }
    } catch (int k) {
        return (unsigned long)k;
    }
    printf("throws %lu\n", thrown);
    return 0;
}

extern "C" NOINLINE void probe(int caller)
{
    count(caller, PROBE);
    sink++;
}

static unsigned long iters = 1000;

/* arg: non-NULL when main calls it (a thread's caller is the C library's). */
extern "C" NOINLINE void *worker(void *arg)
{
    if (arg != NULL) {
        count(MAIN, WORKER);
    }
    probe(WORKER);
    for (unsigned long i = 0; i < iters; i++) {
        try {
            dive(WORKER, (int)(i % 4));
        } catch (const Thrown &t) {
            sink += t.depth;
        }
        try {
            relay(WORKER, (int)(i % 3));
        } catch (const Thrown &t) {
            sink += t.depth;
        }
        sink += local_catch(WORKER, (int)i);
    }
    probe(WORKER);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    pthread_t t[64];

    if (argc > 1) {
        iters = strtoul(argv[1], NULL, 0);
    }
    if (threads < 0 || threads > 64) {
        fprintf(stderr, "usage: throws [ITERS [THREADS<=64]]\n");
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
    printf("throws %lu\n", thrown);
    return 0;
}
