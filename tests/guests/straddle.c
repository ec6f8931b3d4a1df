/*
 * straddle: an 8-byte store and load that cross a 16 KiB boundary, for
 * mem.c's region-summary=on, which keeps memory in 16 KiB regions.
 *
 *     straddle
 *
 * Stores VALUE 4 bytes before the boundary in a buffer aligned to 16 KiB,
 * loads it back, and prints the store's address and what it loaded.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define REGION 16384
#define VALUE UINT64_C(0x1122334455667788)

static unsigned char buf[2 * REGION] __attribute__((aligned(REGION)));

int main(void)
{
    volatile uint64_t *at = (volatile uint64_t *)(buf + REGION - 4);
    uint64_t loaded;

#if defined(__riscv)
    /* GCC splits a misaligned 8-byte access into two here: one sd, one ld */
    __asm__ volatile("sd %1, 0(%2)\n\tld %0, 0(%2)" : "=&r"(loaded) : "r"(VALUE), "r"(at) : "memory");
#else
    *at = VALUE;
    loaded = *at;
#endif
    printf("straddle=%p\nloaded=0x%llx\n", (void *)at, (unsigned long long)loaded);
    return 0;
}
