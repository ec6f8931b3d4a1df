/*
 * el0-aarch64: a bare-metal guest for qemu-system-aarch64 -M virt
 * (machine as sys.S; CPU1 stays off) that moves between EL1 and EL0, for
 * uftrace.lua's trace-privilege-level tests: from EL1 it erets to EL0,
 * which EL0_ROUNDS times calls a function (with a frame record: x29, x30)
 * and makes a supervisor call (svc #0); the EL1 handler counts it, calls
 * a function of its own and returns to EL0. Then EL0's svc #1 ends the
 * run at EL1.
 *
 * Prints "el0 svc=N" (its own count, in decimal) on the PL011 UART and
 * powers off (status 0). An unexpected exception prints "el0 exception".
 * The MMU stays off: EL0 runs on the same flat memory, and every data
 * access is aligned (with the MMU off they are Device accesses).
 */
#define PL011_BASE      0x09000000
#define PL011_DR        0x00
#define PL011_CR        0x30
#define PL011_CR_ON     0x301
#define PSCI_SYSTEM_OFF 0x84000008
#define EL0_ROUNDS      40

        .section .text.boot, "ax"
        .globl _start
        .type _start, %function
_start:
        adr     x0, vectors
        msr     vbar_el1, x0
        ldr     x0, =stack_top
        mov     sp, x0
        ldr     x0, =el0_stack_top
        msr     sp_el0, x0
        mov     x1, #PL011_BASE
        mov     w0, #PL011_CR_ON
        str     w0, [x1, #PL011_CR]
        mov     x19, #0                 /* svc #0 count, kept by the handler */
        mov     x29, #0                 /* no frame above */
        msr     spsr_el1, xzr           /* EL0t */
        adr     x0, el0_main
        msr     elr_el1, x0
        isb
        eret
        .size _start, .-_start

/* EL0 */
        .type el0_main, %function
el0_main:
        mov     x20, #EL0_ROUNDS
1:      bl      el0_work
        svc     #0
        subs    x20, x20, #1
        b.ne    1b
        svc     #1
        b       .
        .size el0_main, .-el0_main

        .type el0_work, %function
el0_work:
        stp     x29, x30, [sp, #-16]!
        mov     x29, sp
        bl      el0_leaf
        ldp     x29, x30, [sp], #16
        ret
        .size el0_work, .-el0_work

        .type el0_leaf, %function
el0_leaf:
        stp     x29, x30, [sp, #-16]!
        mov     x29, sp
        add     x21, x21, #1
        ldp     x29, x30, [sp], #16
        ret
        .size el0_leaf, .-el0_leaf

/* EL1: a synchronous exception from EL0. svc #0 is counted and returned
   from; svc #1 ends the run; anything else is a failure. */
        .type el1_sync, %function
el1_sync:
        stp     x29, x30, [sp, #-16]!
        mov     x29, sp
        mrs     x9, esr_el1
        lsr     x10, x9, #26            /* exception class */
        cmp     x10, #0x15              /* SVC from AArch64 */
        b.ne    exception
        ands    x10, x9, #0xffff        /* the svc's immediate */
        b.ne    finish
        bl      el1_count
        ldp     x29, x30, [sp], #16
        eret
        .size el1_sync, .-el1_sync

        .type el1_count, %function
el1_count:
        stp     x29, x30, [sp, #-16]!
        mov     x29, sp
        add     x19, x19, #1
        ldp     x29, x30, [sp], #16
        ret
        .size el1_count, .-el1_count

finish:
        adr     x0, counts_msg
        bl      puts
        mov     x0, x19
        bl      put_decimal
        adr     x0, newline
        bl      puts
        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
        b       halt

/* puts(x0 = NUL-terminated string) */
        .type puts, %function
puts:
        mov     x1, #PL011_BASE
1:      ldrb    w2, [x0], #1
        cbz     w2, 2f
        str     w2, [x1, #PL011_DR]
        b       1b
2:      ret
        .size puts, .-puts

/* put_decimal(x0 = 0 to 99) */
        .type put_decimal, %function
put_decimal:
        mov     x1, #PL011_BASE
        mov     x3, #10
        udiv    x2, x0, x3
        msub    x4, x2, x3, x0          /* x0 % 10 */
        cbz     x2, 1f
        add     w2, w2, #'0'
        str     w2, [x1, #PL011_DR]
1:      add     w4, w4, #'0'
        str     w4, [x1, #PL011_DR]
        ret
        .size put_decimal, .-put_decimal

exception:
        adr     x0, exception_msg
        bl      puts
        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
halt:
        wfi
        b       halt

        .ltorg

/* EL1 vectors: a synchronous exception from EL0 in AArch64 (0x400) is
   used; every other entry is a failure. */
        .balign 2048
vectors:
        .rept   8
        b       exception
        .balign 0x80
        .endr
        b       el1_sync                /* 0x400 */
        .balign 0x80
        .rept   7
        b       exception
        .balign 0x80
        .endr

        .section .rodata, "a"
counts_msg:
        .asciz  "el0 svc="
newline:
        .asciz  "\n"
exception_msg:
        .asciz  "\nel0 exception\n"

        .bss
        .balign 16
        .space  4096
stack_top:
        .space  4096
el0_stack_top:
