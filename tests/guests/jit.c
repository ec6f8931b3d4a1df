/*
 * jit: threads that keep writing new code and running it, as a JIT
 * compiler does, so that QEMU keeps translating while they run.
 *
 *     jit [THREADS [ROUNDS [FUNCS [CALLERS]]]]
 *         (default 8 threads, 100 rounds, 256 functions, no callers)
 *
 * Each round, each thread writes FUNCS small functions into an executable
 * buffer of its own, each loading an int through its argument and adding
 * a constant of its own, and calls every one: QEMU drops what it had
 * translated from the buffer and translates the new code. After each
 * round a thread makes one write(2) that fails, write(-1, scratch, 16),
 * which tells a syscall callback where bytes of the thread's own are
 * (nothing else reads them). CALLERS more threads make nothing but that
 * write(2), over and over, until the others are done. Exits 1 if a
 * function returned a wrong sum.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STRIDE 32           /* bytes per function */
#define MAX_THREADS 64

static int rounds = 100, funcs = 256;
static char scratch[MAX_THREADS][64];
static volatile int failed, done;

typedef uint32_t (*Fn)(const uint32_t *);

/* fn(p) = *p + k, in the host's own machine code. */
static void emit(uint8_t *at, uint32_t k)
{
#if defined(__x86_64__)
    static const uint8_t code[] = {
        0x8b, 0x07,                     /* mov (%rdi), %eax */
        0x05, 0, 0, 0, 0,               /* add $k, %eax */
        0xc3,                           /* ret */
    };
    memcpy(at, code, sizeof(code));
    memcpy(at + 3, &k, 4);
#elif defined(__aarch64__)
    uint32_t code[] = {
        0xb9400001,                                 /* ldr w1, [x0] */
        0x52800000 | ((k & 0xffff) << 5),           /* movz w0, #lo */
        0x72a00000 | ((k >> 16) << 5),              /* movk w0, #hi, lsl 16 */
        0x0b010000,                                 /* add w0, w0, w1 */
        0xd65f03c0,                                 /* ret */
    };
    memcpy(at, code, sizeof(code));
#elif defined(__riscv) && __riscv_xlen == 64
    uint32_t hi = (k + 0x800) >> 12, lo = (k - (hi << 12)) & 0xfff;
    uint32_t code[] = {
        0x00052583,                                 /* lw a1, 0(a0) */
        (hi << 12) | 0x537,                         /* lui a0, hi */
        (lo << 20) | 0x5051b,                       /* addiw a0, a0, lo */
        0x00b5053b,                                 /* addw a0, a0, a1 */
        0x00008067,                                 /* ret */
    };
    memcpy(at, code, sizeof(code));
#else
#error "jit: x86_64, aarch64 or riscv64 only"
#endif
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    size_t size = (size_t)funcs * STRIDE;
    uint8_t *buf = mmap(NULL, size, PROT_READ | PROT_WRITE | PROT_EXEC,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t base = 7;

    if (buf == MAP_FAILED) {
        perror("mmap");
        failed = 1;
        return NULL;
    }
    for (int r = 0; r < rounds; r++) {
        uint32_t sum = 0, want = 0;
        for (int i = 0; i < funcs; i++) {
            uint32_t k = ((uint32_t)t << 24) ^ (uint32_t)(r * funcs + i);
            emit(buf + (size_t)i * STRIDE, k);
            want += k + base;
        }
        __builtin___clear_cache((char *)buf, (char *)buf + size);
        for (int i = 0; i < funcs; i++) {
            sum += ((Fn)(void *)(buf + (size_t)i * STRIDE))(&base);
        }
        if (sum != want) {
            fprintf(stderr, "jit: thread %d round %d: sum %u, want %u\n", t, r, sum, want);
            failed = 1;
        }
        syscall(SYS_write, -1, scratch[t % MAX_THREADS], 16);
    }
    munmap(buf, size);
    return NULL;
}

static void *caller(void *arg)
{
    int t = (int)(intptr_t)arg;

    while (!done) {
        syscall(SYS_write, -1, scratch[t % MAX_THREADS], 16);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 8;
    int ncallers = argc > 4 ? atoi(argv[4]) : 0;
    pthread_t threads[MAX_THREADS];

    if (argc > 2) {
        rounds = atoi(argv[2]);
    }
    if (argc > 3) {
        funcs = atoi(argv[3]);
    }
    if (nthreads < 1 || ncallers < 0 || nthreads + ncallers > MAX_THREADS || rounds < 1 || funcs < 1) {
        fprintf(stderr, "usage: jit [THREADS [ROUNDS>=1 [FUNCS>=1 [CALLERS]]]], at most 64 threads\n");
        return 2;
    }
    for (int i = 0; i < nthreads + ncallers; i++) {
        if (pthread_create(&threads[i], NULL, i < nthreads ? worker : caller, (void *)(intptr_t)i) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(threads[i], NULL);
    }
    done = 1;
    for (int i = nthreads; i < nthreads + ncallers; i++) {
        pthread_join(threads[i], NULL);
    }
    printf("threads=%d rounds=%d funcs=%d %s\n", nthreads, rounds, funcs, failed ? "FAILED" : "ok");
    return failed;
}
