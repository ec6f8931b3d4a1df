/*
 * clock-aarch64: a bare-metal guest for qemu-system-aarch64 (virt board,
 * two vCPUs, as sys.S) that times a known number of instructions with
 * its own clock, for the time-control tests (scripts/ips.lua):
 *
 *     qemu-system-aarch64 -M virt -smp 2 -cpu cortex-a57 -display none \
 *         -monitor none -serial stdio -nic none -kernel clock-aarch64
 *
 * CPU0 starts CPU1 (PSCI CPU_ON through HVC); each CPU reads the virtual
 * counter (CNTVCT_EL0, which QEMU drives from its virtual clock), runs
 * timed_loop LOOP_ITERS times (2 instructions per iteration: with the
 * branch into it and the isb after it, 2 * LOOP_ITERS + 2 instructions
 * from one counter read to the other), reads the counter again and
 * keeps the difference. CPU0 waits for CPU1,
 * prints
 *
 *     cntfrq=N        (counter ticks per second, CNTFRQ_EL0)
 *     ticks0=N        (CPU0's loop, in ticks)
 *     ticks1=N        (CPU1's)
 *     insns=N         (instructions each loop executed)
 *     clock done
 *
 * in decimal on the PL011 and powers off (PSCI SYSTEM_OFF).
 */
#define PL011_BASE      0x09000000
#define PL011_DR        0x00
#define PL011_CR        0x30
#define PL011_CR_ON     0x301
#define PSCI_CPU_ON     0xc4000003
#define PSCI_SYSTEM_OFF 0x84000008
#define LOOP_ITERS      2000000

        .section .text.boot, "ax"
        .globl _start
        .type _start, %function
_start:
        adr     x0, vectors
        msr     vbar_el1, x0
        isb
        ldr     x0, =stack0_top
        mov     sp, x0
        mov     x1, #PL011_BASE
        mov     w0, #PL011_CR_ON
        str     w0, [x1, #PL011_CR]

        ldr     x0, =PSCI_CPU_ON
        mov     x1, #1
        adr     x2, cpu1_entry
        mov     x3, #0
        hvc     #0
        cbnz    x0, fail

        ldr     x1, =ticks0
        bl      timed

        ldr     x1, =cpu1_done
1:      ldar    w0, [x1]
        cbz     w0, 1b

        adr     x0, frq_msg
        mrs     x1, cntfrq_el0
        bl      put_field
        adr     x0, t0_msg
        ldr     x1, =ticks0
        ldr     x1, [x1]
        bl      put_field
        adr     x0, t1_msg
        ldr     x1, =ticks1
        ldr     x1, [x1]
        bl      put_field
        adr     x0, insns_msg
        ldr     x1, =(2 * LOOP_ITERS + 2)
        bl      put_field
        adr     x0, done_msg
        bl      puts

        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
        b       halt
        .size _start, .-_start

        .type cpu1_entry, %function
cpu1_entry:
        adr     x0, vectors
        msr     vbar_el1, x0
        isb
        ldr     x0, =stack1_top
        mov     sp, x0
        ldr     x1, =ticks1
        bl      timed
        ldr     x1, =cpu1_done
        mov     w0, #1
        stlr    w0, [x1]
        b       halt
        .size cpu1_entry, .-cpu1_entry

/* timed(x1 = &result): *x1 = the counter ticks timed_loop takes. */
        .type timed, %function
timed:
        ldr     x0, =LOOP_ITERS
        isb
        mrs     x2, cntvct_el0
        b       timed_loop
timed_loop:
        subs    x0, x0, #1
        b.ne    timed_loop
        isb
        mrs     x3, cntvct_el0
        sub     x3, x3, x2
        str     x3, [x1]
        ret
        .size timed, .-timed

/* put_field(x0 = label, x1 = value): prints label, value in decimal, '\n'. */
        .type put_field, %function
put_field:
        stp     x29, x30, [sp, #-48]!
        mov     x29, sp
        str     x1, [sp, #16]
        bl      puts
        ldr     x0, [sp, #16]
        add     x3, sp, #47             /* digits end here, backwards */
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

fail:
        adr     x0, fail_msg
        b       report
exception:
        adr     x0, exception_msg
report:
        bl      puts
        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
halt:
        wfi
        b       halt

        .ltorg

        .balign 2048
vectors:
        .rept   16
        b       exception
        .balign 0x80
        .endr

        .section .rodata, "a"
frq_msg:
        .asciz  "cntfrq="
t0_msg:
        .asciz  "ticks0="
t1_msg:
        .asciz  "ticks1="
insns_msg:
        .asciz  "insns="
newline:
        .asciz  "\n"
done_msg:
        .asciz  "clock done\n"
fail_msg:
        .asciz  "clock PSCI CPU_ON failed\n"
exception_msg:
        .asciz  "clock exception\n"

        .data
        .balign 64
ticks0:
        .quad   0
        .balign 64
ticks1:
        .quad   0
        .balign 64
cpu1_done:
        .word   0

        .bss
        .balign 16
        .space  4096
stack0_top:
        .space  4096
stack1_top:
