/*
 * irqs-aarch64: a bare-metal guest for qemu-system-aarch64 (virt board,
 * as sys.S; CPU1 stays off) that takes a known number of exceptions and
 * interrupts, for the discontinuity tests (scripts/traps.lua):
 *
 *     qemu-system-aarch64 -M virt -smp 2 -cpu cortex-a57 -display none \
 *         -monitor none -serial stdio -nic none -kernel irqs-aarch64
 *
 * CPU0 makes SVCS supervisor calls (svc #0: each one synchronous
 * exception, taken to sync_handler at EL1), then takes TICKS interrupts
 * of the virtual timer (PPI 27 through the GICv2): it arms the timer,
 * spins until the IRQ handler has counted the interrupt (the handler
 * stops the timer), and again. The handlers count what they take; CPU0
 * prints
 *
 *     svcs=N          (supervisor calls its handler took)
 *     irqs=N          (timer interrupts its handler took)
 *     traps done
 *
 * on the PL011 and powers off with PSCI SYSTEM_OFF (an HVC that QEMU
 * handles itself: a host call). Anything else that traps prints
 * "traps exception" and powers off.
 */
#define PL011_BASE      0x09000000
#define PL011_DR        0x00
#define PL011_CR        0x30
#define PL011_CR_ON     0x301
#define GICD_BASE       0x08000000
#define GICD_CTLR       0x000
#define GICD_ISENABLER0 0x100
#define GICC_BASE       0x08010000
#define GICC_CTLR       0x00
#define GICC_PMR        0x04
#define GICC_IAR        0x0c
#define GICC_EOIR       0x10
#define TIMER_PPI       27              /* the virtual timer's interrupt */
#define PSCI_SYSTEM_OFF 0x84000008
#define EC_SVC64        0x15
#define SVCS            5
#define TICKS           3

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

        mov     x19, #SVCS
1:      svc     #0
        subs    x19, x19, #1
        b.ne    1b

        mov     x1, #GICD_BASE
        mov     w0, #1
        str     w0, [x1, #GICD_CTLR]
        mov     w0, #(1 << TIMER_PPI)
        str     w0, [x1, #GICD_ISENABLER0]
        ldr     x1, =GICC_BASE
        mov     w0, #0xff
        str     w0, [x1, #GICC_PMR]
        mov     w0, #1
        str     w0, [x1, #GICC_CTLR]
        msr     daifclr, #2             /* unmask IRQs */

        ldr     x2, =irq_count
        mov     w19, #0
2:      add     w19, w19, #1
        mov     x0, #1000               /* ticks from now */
        msr     cntv_tval_el0, x0
        mov     x0, #1                  /* ENABLE, interrupt not masked */
        msr     cntv_ctl_el0, x0
        isb
3:      ldr     w1, [x2]
        cmp     w1, w19
        b.lo    3b
        cmp     w19, #TICKS
        b.lo    2b
        msr     daifset, #2

        adr     x0, svcs_msg
        ldr     x1, =svc_count
        ldr     w1, [x1]
        bl      put_field
        adr     x0, irqs_msg
        ldr     x1, =irq_count
        ldr     w1, [x1]
        bl      put_field
        adr     x0, done_msg
        bl      puts
        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
        b       halt
        .size _start, .-_start

/* A synchronous exception: an SVC is counted and returned from (ELR_EL1
   is the instruction after it); anything else is a failure. */
        .type sync_handler, %function
sync_handler:
        stp     x0, x1, [sp, #-16]!
        mrs     x0, esr_el1
        lsr     x0, x0, #26
        cmp     x0, #EC_SVC64
        b.ne    exception
        ldr     x1, =svc_count
        ldr     w0, [x1]
        add     w0, w0, #1
        str     w0, [x1]
        ldp     x0, x1, [sp], #16
        eret
        .size sync_handler, .-sync_handler

/* An IRQ: acknowledge it, stop the timer, count it, end it. */
        .type irq_handler, %function
irq_handler:
        stp     x0, x1, [sp, #-16]!
        ldr     x1, =GICC_BASE
        ldr     w0, [x1, #GICC_IAR]
        msr     cntv_ctl_el0, xzr
        isb
        str     w0, [x1, #GICC_EOIR]
        ldr     x1, =irq_count
        ldr     w0, [x1]
        add     w0, w0, #1
        str     w0, [x1]
        ldp     x0, x1, [sp], #16
        eret
        .size irq_handler, .-irq_handler

/* put_field(x0 = label, x1 = value): prints label, value in decimal, '\n'. */
        .type put_field, %function
put_field:
        stp     x29, x30, [sp, #-48]!
        mov     x29, sp
        str     x1, [sp, #16]
        bl      puts
        ldr     x0, [sp, #16]
        add     x3, sp, #47
        strb    wzr, [x3]
        mov     x2, #10
1:      udiv    x4, x0, x2
        msub    x5, x4, x2, x0
        add     w5, w5, #'0'
        sub     x3, x3, #1
        strb    w5, [x3]
        mov     x0, x4
        cbnz    x0, 1b
        mov     x0, x3
        bl      puts
        adr     x0, newline
        bl      puts
        ldp     x29, x30, [sp], #48
        ret
        .size put_field, .-put_field

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

exception:
        msr     daifset, #2
        adr     x0, exception_msg
        bl      puts
        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
halt:
        wfi
        b       halt

        .ltorg

/* EL1 with SP_EL0 (0x000) or SP_EL1 (0x200): synchronous and IRQ
   handled; everything else, and anything from a lower EL, fails. */
        .balign 2048
vectors:
        b       sync_handler            /* 0x000 */
        .balign 0x80
        b       irq_handler             /* 0x080 */
        .balign 0x80
        b       exception
        .balign 0x80
        b       exception
        .balign 0x80
        b       sync_handler            /* 0x200 */
        .balign 0x80
        b       irq_handler             /* 0x280 */
        .balign 0x80
        .rept   10
        b       exception
        .balign 0x80
        .endr

        .section .rodata, "a"
svcs_msg:
        .asciz  "svcs="
irqs_msg:
        .asciz  "irqs="
newline:
        .asciz  "\n"
done_msg:
        .asciz  "traps done\n"
exception_msg:
        .asciz  "traps exception\n"

        .data
        .balign 64
svc_count:
        .word   0
        .balign 64
irq_count:
        .word   0

        .bss
        .balign 16
        .space  4096
stack_top:
