/*
 * libmodlib: see modlib.h. noipa keeps every function a function of its
 * own, called the number of times the source says (no inlining, no
 * clones with other names).
 */
#include "modlib.h"

static unsigned long mixes;

static __attribute__((noipa)) unsigned long lib_mix(unsigned long x)
{
    mixes++;
    return (x ^ (x >> 3)) * 2654435761u;
}

__attribute__((noipa)) unsigned long lib_apply(unsigned long x, unsigned long (*fn)(unsigned long))
{
    return lib_mix(fn(x)) + lib_mix(x);
}

__attribute__((noipa)) unsigned long lib_mixes(void)
{
    return mixes;
}
