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

    *at = VALUE;
    printf("straddle=%p\nloaded=0x%llx\n", (void *)at, (unsigned long long)*at);
    return 0;
}
