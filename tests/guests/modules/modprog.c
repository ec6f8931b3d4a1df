/*
 * modprog: a PIE program calling into its shared library (libmodlib),
 * which calls back into the program.
 *
 *     modprog [N]     (default 100)
 *
 * work(N) calls lib_apply N times; each calls prog_callback once and
 * lib_mix twice. Prints work's address and the counts as the program
 * and the library counted them.
 */
#include <stdio.h>
#include <stdlib.h>

#include "modlib.h"

static unsigned long callbacks;

static __attribute__((noipa)) unsigned long prog_callback(unsigned long x)
{
    callbacks++;
    return x * 3 + 1;
}

__attribute__((noipa)) unsigned long work(unsigned long n)
{
    unsigned long acc = 0;

    for (unsigned long i = 0; i < n; i++) {
        acc += lib_apply(i, prog_callback);
    }
    return acc;
}

int main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 0) : 100;
    unsigned long result = work(n);

    printf("work=%p prog_callback=%p lib_apply=%p\n", (void *)work, (void *)prog_callback,
           (void *)lib_apply);
    printf("work_calls=1 lib_apply_calls=%lu prog_callback_calls=%lu lib_mix_calls=%lu result=%lu\n",
           n, callbacks, lib_mixes(), result);
    return 0;
}
