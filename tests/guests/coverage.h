/*
 * Code in a header, for coverage.c: a static inline function that
 * coverage.c calls, whose lines belong to this file.
 */
#ifndef COVERAGE_H
#define COVERAGE_H

static inline int clamp(int value, int low, int high)
{
    if (value < low) {
        return low;
    }
    if (value > high) {
        return high;
    }
    return value;
}

#endif
