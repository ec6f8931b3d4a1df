/*
 * A guest for line coverage (tests/integration/coverage_spec.lua): built
 * with -g -O0 for luahost's coverage.lua, and with --coverage -O0 for
 * gcov, the reference. It has branches never taken, a function never
 * called, a loop, a switch with cases never reached and code in a header.
 *
 *   coverage N   runs the loop N times (N >= 0)
 */
#include <stdio.h>
#include <stdlib.h>

#include "coverage.h"

static int never_called(int x)
{
    int y = x * 3;
    return y + 1;
}

static const char *kind(int i)
{
    switch (i % 4) {
    case 0:
        return "zero";
    case 1:
        return "one";
    case 5:
        return "five";  /* i % 4 is never 5 */
    default:
        break;
    }
    return "other";
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 10;
    long sum = 0;

    if (n < 0) {
        fprintf(stderr, "usage: coverage N (N >= 0)\n");
        return 2;
    }
    for (int i = 0; i < n; i++) {
        sum += clamp(i, 2, 7);
        if (kind(i)[0] == 'o') {
            sum += 100;
        }
    }
    if (argc > 2) {
        sum += never_called(n);
    }
    printf("sum=%ld\n", sum);
    return 0;
}
