/*
 * api: a guest with known memory traffic, register contents, syscalls and
 * a counted loop, for the tests of the plugin API.
 *
 *     api [ITERS]     (default 1000)
 *
 * What it does, in order, and prints (addresses as 0x%lx):
 * - stores BIG (above 2^63) and EXACT (2^53 + 1) to slot[0] and slot[1],
 *   loads them back, loads a signed byte, a short and an int;
 * - calls reg_probe_fn(pattern): at the instruction labelled reg_probe,
 *   rax/x0/a0 hold BIG, rdx/x2/a2 hold EXACT, xmm0/v0 hold the 16 pattern
 *   bytes (loaded from memory by a 16-byte load);
 *   before that it loads pattern[8] (0x88) with a sign-extending byte load
 *   (movsbq, ldrsb, lb);
 * - close(-1) BADCLOSES times (each fails with EBADF), getpid() once,
 *   writes MESSAGE to stdout with one write;
 * - counted_loop(ITERS).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "counted_loop.h"

#define BIG UINT64_C(0xfedcba9876543210)
#define EXACT ((UINT64_C(1) << 53) + 1)
#define BADCLOSES 5
#define MESSAGE "luahost read_memory probe: 0123456789abcdef\n"

void reg_probe_fn(const unsigned char *pattern);
extern const char reg_probe[];

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl reg_probe_fn\n.type reg_probe_fn, @function\n"
        "reg_probe_fn:\n"
        "    movdqu (%rdi), %xmm0\n"
        "    movsbq 8(%rdi), %rcx\n"
        "    movabs $0xfedcba9876543210, %rax\n"
        "    movabs $0x20000000000001, %rdx\n"
        ".globl reg_probe\n"
        "reg_probe:\n"
        "    nop\n"
        "    ret\n"
        ".size reg_probe_fn, .-reg_probe_fn\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl reg_probe_fn\n.type reg_probe_fn, %function\n"
        "reg_probe_fn:\n"
        "    ldr q0, [x0]\n"
        "    ldrsb x3, [x0, #8]\n"
        "    movz x0, #0x3210\n"
        "    movk x0, #0x7654, lsl #16\n"
        "    movk x0, #0xba98, lsl #32\n"
        "    movk x0, #0xfedc, lsl #48\n"
        "    movz x2, #0x1\n"
        "    movk x2, #0x20, lsl #48\n"
        ".globl reg_probe\n"
        "reg_probe:\n"
        "    nop\n"
        "    ret\n"
        ".size reg_probe_fn, .-reg_probe_fn\n");
#elif defined(__riscv) && __riscv_xlen == 64
/* QEMU's default riscv64 CPU has the V extension (v0 is 16 bytes). */
__asm__(".text\n"
        ".globl reg_probe_fn\n.type reg_probe_fn, @function\n"
        "reg_probe_fn:\n"
        "    .option push\n"
        "    .option arch, +v\n"
        "    vsetivli zero, 16, e8, m1, ta, ma\n"
        "    vle8.v v0, (a0)\n"
        "    .option pop\n"
        "    lb a3, 8(a0)\n"
        "    li a0, 0xfedcba9876543210\n"
        "    li a2, 0x20000000000001\n"
        ".globl reg_probe\n"
        "reg_probe:\n"
        "    nop\n"
        "    ret\n"
        ".size reg_probe_fn, .-reg_probe_fn\n");
#endif

volatile uint64_t slot[2];
volatile int8_t signed_byte = -5;
volatile int16_t signed_short = -300;
volatile int32_t signed_int = -70000;
unsigned char pattern[16] __attribute__((aligned(16))) = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};

int main(int argc, char **argv)
{
    unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 1000;
    int64_t sum = 0;

    slot[0] = BIG;
    slot[1] = EXACT;
    sum += (int64_t)(slot[0] ^ slot[1]);
    sum += signed_byte + signed_short + signed_int;
    reg_probe_fn(pattern);
    for (int i = 0; i < BADCLOSES; i++) {
        syscall(SYS_close, -1);
    }
    syscall(SYS_getpid);
    fflush(stdout);
    syscall(SYS_write, 1, MESSAGE, strlen(MESSAGE));
    counted_loop(iters);
    printf("slot=0x%lx\nreg_probe=0x%lx\nhot_loop_head=0x%lx\nmessage=0x%lx\nsum=%ld\n",
           (unsigned long)slot, (unsigned long)reg_probe, (unsigned long)hot_loop_head,
           (unsigned long)MESSAGE, (long)sum);
    return 0;
}
