/*
 * counted_loop(n): a loop whose head executes exactly n times (n >= 1).
 *
 * The head is entered by a jump, so it starts a translation block of its
 * own, and the loop branches back to it: QEMU executes the block at
 * hot_loop_head exactly n times per call. Tests derive expected block
 * counts from this definition.
 */
#ifndef COUNTED_LOOP_H
#define COUNTED_LOOP_H

void counted_loop(unsigned long n);
extern const char hot_loop_head[];

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl counted_loop\n.type counted_loop, @function\n"
        "counted_loop:\n"
        "    jmp hot_loop_head\n"
        ".globl hot_loop_head\n"
        "hot_loop_head:\n"
        "    sub $1, %rdi\n"
        "    jnz hot_loop_head\n"
        "    ret\n"
        ".size counted_loop, .-counted_loop\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl counted_loop\n.type counted_loop, %function\n"
        "counted_loop:\n"
        "    b hot_loop_head\n"
        ".globl hot_loop_head\n"
        "hot_loop_head:\n"
        "    subs x0, x0, #1\n"
        "    b.ne hot_loop_head\n"
        "    ret\n"
        ".size counted_loop, .-counted_loop\n");
#elif defined(__riscv) && __riscv_xlen == 64
__asm__(".text\n"
        ".globl counted_loop\n.type counted_loop, @function\n"
        "counted_loop:\n"
        "    j hot_loop_head\n"
        ".globl hot_loop_head\n"
        "hot_loop_head:\n"
        "    addi a0, a0, -1\n"
        "    bnez a0, hot_loop_head\n"
        "    ret\n"
        ".size counted_loop, .-counted_loop\n");
#else
#error "counted_loop: no implementation for this architecture"
#endif

#endif
