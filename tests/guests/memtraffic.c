/*
 * memtraffic: memory traffic for cache models, in three phases.
 *
 *     memtraffic [KIB [STRIDE [PASSES [RANDOM [CALLS]]]]]
 *                (default 64 16 4 20000 2000)
 *
 * 1. PASSES sweeps over the first KIB KiB of a 4 MiB array, one byte
 *    loaded and stored every STRIDE bytes;
 * 2. RANDOM loads and stores at places in those KIB KiB picked by a
 *    fixed-seed LCG;
 * 3. CALLS rounds of calls to NFUNCS functions, each aligned to 4 KiB,
 *    so that their code falls in the same set of any instruction cache
 *    with at most 4 KiB per way.
 *
 * Prints a checksum of the array (every STRIDE-th byte).
 */
#include <stdio.h>
#include <stdlib.h>

#define MAX_KIB 4096
#define NFUNCS 8

static unsigned char buf[MAX_KIB * 1024] __attribute__((aligned(4096)));

#define FN(n) \
    static unsigned long __attribute__((noinline, aligned(4096))) f##n(unsigned long x) \
    { \
        return x * (2 * n + 3) + n; \
    }
FN(0) FN(1) FN(2) FN(3) FN(4) FN(5) FN(6) FN(7)

static unsigned long (*const funcs[NFUNCS])(unsigned long) = { f0, f1, f2, f3, f4, f5, f6, f7 };

static void sweep(unsigned long bytes, unsigned long stride, unsigned long passes)
{
    for (unsigned long p = 0; p < passes; p++) {
        for (unsigned long off = 0; off < bytes; off += stride) {
            buf[off] = (unsigned char)(buf[off] * 31 + p);
        }
    }
}

static void scatter(unsigned long bytes, unsigned long count)
{
    unsigned long long x = 12345;

    for (unsigned long i = 0; i < count; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned long off = (unsigned long)(x >> 33) % bytes;
        buf[off] = (unsigned char)(buf[off] + (x >> 56) + 1);
    }
}

static unsigned long call_around(unsigned long rounds)
{
    unsigned long x = 1;

    for (unsigned long r = 0; r < rounds; r++) {
        for (int f = 0; f < NFUNCS; f++) {
            x = funcs[f](x);
        }
    }
    return x;
}

int main(int argc, char **argv)
{
    unsigned long kib = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
    unsigned long stride = argc > 2 ? strtoul(argv[2], NULL, 0) : 16;
    unsigned long passes = argc > 3 ? strtoul(argv[3], NULL, 0) : 4;
    unsigned long random = argc > 4 ? strtoul(argv[4], NULL, 0) : 20000;
    unsigned long calls = argc > 5 ? strtoul(argv[5], NULL, 0) : 2000;
    unsigned long sum = 0;

    if (kib < 1 || kib > MAX_KIB || stride < 1) {
        fprintf(stderr, "usage: memtraffic [KIB (1..%d) [STRIDE>=1 [PASSES [RANDOM [CALLS]]]]]\n", MAX_KIB);
        return 2;
    }
    sweep(kib * 1024, stride, passes);
    scatter(kib * 1024, random);
    sum = call_around(calls);
    for (unsigned long i = 0; i < kib * 1024; i += stride) {
        sum = sum * 7 + buf[i];
    }
    printf("checksum=%lu\n", sum);
    return 0;
}
