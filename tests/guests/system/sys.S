/*
 * sys-aarch64: a bare-metal guest for qemu-system-aarch64 on the virt board
 * with two vCPUs, for system-mode tests:
 *
 *     qemu-system-aarch64 -M virt -smp 2 -cpu cortex-a57 -display none \
 *         -monitor none -serial stdio -nic none -kernel sys-aarch64
 *
 * (the UART on stdout, nothing on stdin that QEMU would read; -nographic
 * works too but multiplexes the monitor onto stdio.)
 *
 * QEMU enters an ELF -kernel at its entry point on CPU0, at EL1 with the
 * MMU off (so virtual = physical addresses); virt without EL2/EL3 emulates
 * PSCI through HVC and keeps CPU1 powered off until PSCI CPU_ON.
 *
 * CPU0 starts CPU1; CPU0 runs counted_loop 1000 times on sys_data0, CPU1
 * 2000 times on sys_data1: the block at sys_loop_head executes exactly
 * that often per vCPU, each time one 8-byte store and one 8-byte load to
 * that CPU's variable (RAM). Then each CPU writes one character to the
 * PL011 data register (MMIO, device "pl011") from the instruction at
 * sys_uart_store: CPU1 '1' before it sets its done flag, CPU0 '0' after
 * seeing the flag, so the output is always "10\nsys done\n". CPU0 then
 * powers off with PSCI SYSTEM_OFF: QEMU exits with status 0.
 *
 * Tests read these symbols' addresses from the ELF (nm): sys_loop_head,
 * sys_uart_store, sys_data0, sys_data1. An unexpected exception prints
 * "sys exception" and powers off, so a broken run ends at once without
 * "sys done".
 */
#define PL011_BASE      0x09000000
#define PL011_DR        0x00            /* data register */
#define PL011_CR        0x30            /* control register */
#define PL011_CR_ON     0x301           /* UARTEN | TXE | RXE */
#define PSCI_CPU_ON     0xc4000003      /* SMC64/HVC64 function IDs */
#define PSCI_SYSTEM_OFF 0x84000008
#define CPU0_ITERS      1000
#define CPU1_ITERS      2000

        .section .text.boot, "ax"
        .globl _start
        .type _start, %function
_start:
        adr     x0, vectors
        msr     vbar_el1, x0
        isb
        ldr     x0, =stack0_top
        mov     sp, x0
        /* The UART resets disabled; QEMU prints anyway but logs a guest
           error for every character written to a disabled one. */
        mov     x1, #PL011_BASE
        mov     w0, #PL011_CR_ON
        str     w0, [x1, #PL011_CR]

        ldr     x0, =PSCI_CPU_ON
        mov     x1, #1                  /* target MPIDR: Aff0 = 1 */
        adr     x2, cpu1_entry
        mov     x3, #0                  /* context id */
        hvc     #0
        cbnz    x0, fail                /* PSCI_SUCCESS is 0 */

        mov     x0, #CPU0_ITERS
        ldr     x1, =sys_data0
        bl      counted_loop

        ldr     x1, =cpu1_done
1:      ldar    w0, [x1]
        cbz     w0, 1b
        mov     w0, #'0'
        bl      uart_mark
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

        mov     x0, #CPU1_ITERS
        ldr     x1, =sys_data1
        bl      counted_loop

        mov     w0, #'1'
        bl      uart_mark
        ldr     x1, =cpu1_done
        mov     w0, #1
        stlr    w0, [x1]
        b       halt
        .size cpu1_entry, .-cpu1_entry

/* counted_loop(x0 = n >= 1, x1 = &variable): the head is entered by a
   jump, so it starts a translation block of its own, executed n times. */
        .type counted_loop, %function
counted_loop:
        b       sys_loop_head
        .globl sys_loop_head
sys_loop_head:
        str     x0, [x1]
        ldr     x2, [x1]
        subs    x0, x2, #1
        b.ne    sys_loop_head
        ret
        .size counted_loop, .-counted_loop

/* uart_mark(w0 = character): the one store to the UART from sys_uart_store. */
        .type uart_mark, %function
uart_mark:
        mov     x1, #PL011_BASE
        .globl sys_uart_store
sys_uart_store:
        str     w0, [x1, #PL011_DR]
        ret
        .size uart_mark, .-uart_mark

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

/* Every exception (there should be none) goes to the same report. */
        .balign 2048
vectors:
        .rept   16
        b       exception
        .balign 0x80
        .endr

        .section .rodata, "a"
done_msg:
        .asciz  "\nsys done\n"
fail_msg:
        .asciz  "\nsys PSCI CPU_ON failed\n"
exception_msg:
        .asciz  "\nsys exception\n"

        .data
/* One 64-byte line each; .data is on its own page, away from the code,
   so stores never hit a page QEMU has translated code from. */
        .balign 64
        .globl sys_data0
sys_data0:
        .quad   0
        .balign 64
        .globl sys_data1
sys_data1:
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
