/*
 * loop: a single-threaded CPU loop with calls, branches and a counted loop.
 *
 *     loop [ITERS]     (default 100000)
 *
 * Prints the address of hot_loop_head and a checksum.
 */
#include <stdio.h>
#include <stdlib.h>

#include "counted_loop.h"

static unsigned long __attribute__((noinline)) mix(unsigned long x, unsigned long i)
{
    return (i & 1) ? x * 3 + i : x ^ (i << 2);
}

int main(int argc, char **argv)
{
    unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 100000;
    unsigned long x = 1;

    for (unsigned long i = 0; i < iters; i++) {
        x = mix(x, i);
    }
    counted_loop(iters);
    printf("counted_loop=%p\nhot_loop_head=%p\nchecksum=%lu\n", (void *)counted_loop, (void *)hot_loop_head, x);
    return 0;
}
