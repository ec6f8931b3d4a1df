/*
 * traps-aarch64: a bare-metal guest for qemu-system-aarch64 -M virt
 * (machine as sys.S; CPU1 stays off) that makes every kind of
 * discontinuity QEMU reports to plugins, for discons.lua's tests:
 *
 *   exceptions: TRAPS_SVCS supervisor calls (svc #0), each returning to
 *               the instruction after it, and TRAPS_BRKS breakpoints
 *               (brk #0), whose handler steps over them;
 *   interrupts: the virtual timer, through the GICv2 (PPI 27), fires
 *               TRAPS_TICKS times, re-armed by the handler until the
 *               last, which turns it off;
 *   host calls: PSCI SYSTEM_OFF through hvc at the end.
 *
 * Prints "traps svc=N brk=N irq=N" (its own counts) on the PL011 UART and
 * powers off (status 0). An unexpected exception prints "traps exception".
 */
#define PL011_BASE      0x09000000
#define PL011_DR        0x00
#define PL011_CR        0x30
#define PL011_CR_ON     0x301
#define GICD_BASE       0x08000000
#define GICC_BASE       0x08010000
#define GICD_CTLR       0x000
#define GICD_ISENABLER0 0x100
#define GICC_CTLR       0x000
#define GICC_PMR        0x004
#define GICC_IAR        0x00c
#define GICC_EOIR       0x010
#define TIMER_PPI       27
#define TIMER_TICKS     2000            /* counter ticks between interrupts */
#define PSCI_SYSTEM_OFF 0x84000008
#define TRAPS_SVCS      5
#define TRAPS_BRKS      3
#define TRAPS_TICKS     4

        .section .text.boot, "ax"
        .globl _start
        .type _start, %function
_start:
        adr     x0, vectors
        msr     vbar_el1, x0
        isb
        ldr     x0, =stack_top
        mov     sp, x0
        mov     x1, #PL011_BASE
        mov     w0, #PL011_CR_ON
        str     w0, [x1, #PL011_CR]

        /* x19, x20, x21: svc, brk and interrupt counts, kept by the handlers */
        mov     x19, #0
        mov     x20, #0
        mov     x21, #0

        mov     x22, #TRAPS_SVCS
1:      svc     #0
        subs    x22, x22, #1
        b.ne    1b
        mov     x22, #TRAPS_BRKS
2:      brk     #0
        subs    x22, x22, #1
        b.ne    2b

        /* the timer's interrupt: GIC distributor and CPU interface on */
        ldr     x1, =GICD_BASE
        mov     w0, #1
        str     w0, [x1, #GICD_CTLR]
        mov     w0, #(1 << TIMER_PPI)
        str     w0, [x1, #GICD_ISENABLER0]
        ldr     x1, =GICC_BASE
        mov     w0, #0xff
        str     w0, [x1, #GICC_PMR]
        mov     w0, #1
        str     w0, [x1, #GICC_CTLR]
        bl      arm_timer
        msr     daifclr, #2             /* unmask IRQs */
3:      cmp     x21, #TRAPS_TICKS
        b.lo    3b
        msr     daifset, #2

        adr     x0, counts_msg
        bl      puts
        mov     x0, x19
        bl      put_digit
        adr     x0, brk_msg
        bl      puts
        mov     x0, x20
        bl      put_digit
        adr     x0, irq_msg
        bl      puts
        mov     x0, x21
        bl      put_digit
        adr     x0, newline
        bl      puts
        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
        b       halt
        .size _start, .-_start

        .type arm_timer, %function
arm_timer:
        mov     x0, #TIMER_TICKS
        msr     cntv_tval_el0, x0
        mov     x0, #1                  /* enabled, not masked */
        msr     cntv_ctl_el0, x0
        isb
        ret
        .size arm_timer, .-arm_timer

/* Synchronous exceptions at EL1: svc returns after itself; brk is stepped
   over; anything else is a failure. */
sync_handler:
        mrs     x9, esr_el1
        lsr     x9, x9, #26             /* exception class */
        cmp     x9, #0x15               /* SVC from AArch64 */
        b.eq    4f
        cmp     x9, #0x3c               /* BRK from AArch64 */
        b.ne    exception
        add     x20, x20, #1
        mrs     x9, elr_el1
        add     x9, x9, #4
        msr     elr_el1, x9
        eret
4:      add     x19, x19, #1
        eret

/* The timer's interrupt: acknowledge, count, re-arm (or, after the
   last one, turn the timer off), end it. */
irq_handler:
        ldr     x10, =GICC_BASE
        ldr     w11, [x10, #GICC_IAR]
        add     x21, x21, #1
        cmp     x21, #TRAPS_TICKS
        b.lo    5f
        msr     cntv_ctl_el0, xzr
        b       6f
5:      mov     x9, #TIMER_TICKS
        msr     cntv_tval_el0, x9
6:      str     w11, [x10, #GICC_EOIR]
        eret

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

/* put_digit(x0 = 0 to 9) */
        .type put_digit, %function
put_digit:
        mov     x1, #PL011_BASE
        add     w0, w0, #'0'
        str     w0, [x1, #PL011_DR]
        ret
        .size put_digit, .-put_digit

exception:
        adr     x0, exception_msg
        bl      puts
        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
halt:
        wfi
        b       halt

        .ltorg

/* EL1 vectors: current EL with SP_EL1 (0x200 sync, 0x280 IRQ) are used;
   every other entry is a failure. */
        .balign 2048
vectors:
        .rept   4
        b       exception
        .balign 0x80
        .endr
        b       sync_handler            /* 0x200 */
        .balign 0x80
        b       irq_handler             /* 0x280 */
        .balign 0x80
        .rept   10
        b       exception
        .balign 0x80
        .endr

        .section .rodata, "a"
counts_msg:
        .asciz  "traps svc="
brk_msg:
        .asciz  " brk="
irq_msg:
        .asciz  " irq="
newline:
        .asciz  "\n"
exception_msg:
        .asciz  "\ntraps exception\n"

        .bss
        .balign 16
        .space  4096
stack_top:
