/*
 * hwdev-aarch64: a bare-metal guest for qemu-system-aarch64 -M virt -smp 2
 * (machine as sys.S) that reads and writes three devices from both vCPUs,
 * a different number of times each, for hwprofile.lua's tests:
 *
 *   CPU0: enables the PL011 UART (one write to UARTCR), reads its flag
 *         register HWDEV_FR_READS times, reads the GIC distributor's
 *         GICD_TYPER once;
 *   CPU1: reads the PL031 RTC's data register HWDEV_RTC_READS times and
 *         its peripheral ID register once, writes '1' to the UART, reads
 *         GICD_IIDR once, then sets its done flag;
 *   CPU0 then prints "\nhwdev done\n" (11 writes to UARTDR) and powers
 *         off with PSCI SYSTEM_OFF (status 0).
 *
 * So each device is touched by both vCPUs, and the devices' totals differ
 * (the order of hwprofile's report is by total). An exception prints
 * "hwdev exception" and powers off.
 */
#define PL011_BASE      0x09000000
#define PL011_DR        0x00
#define PL011_FR        0x18
#define PL011_CR        0x30
#define PL011_CR_ON     0x301           /* UARTEN | TXE | RXE */
#define PL031_BASE      0x09010000
#define PL031_DR        0x000
#define PL031_PERIPHID0 0xfe0
#define GICD_BASE       0x08000000
#define GICD_TYPER      0x004
#define GICD_IIDR       0x008
#define PSCI_CPU_ON     0xc4000003
#define PSCI_SYSTEM_OFF 0x84000008
#define HWDEV_FR_READS  20
#define HWDEV_RTC_READS 6

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

        mov     x1, #PL011_BASE
        mov     x3, #HWDEV_FR_READS
1:      ldr     w2, [x1, #PL011_FR]
        subs    x3, x3, #1
        b.ne    1b
        mov     x1, #GICD_BASE
        ldr     w2, [x1, #GICD_TYPER]

        ldr     x1, =cpu1_done
2:      ldar    w0, [x1]
        cbz     w0, 2b
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

        ldr     x1, =PL031_BASE
        mov     x3, #HWDEV_RTC_READS
1:      ldr     w2, [x1, #PL031_DR]
        subs    x3, x3, #1
        b.ne    1b
        ldr     w2, [x1, #PL031_PERIPHID0]
        mov     x1, #PL011_BASE
        mov     w0, #'1'
        str     w0, [x1, #PL011_DR]
        mov     x1, #GICD_BASE
        ldr     w2, [x1, #GICD_IIDR]

        ldr     x1, =cpu1_done
        mov     w0, #1
        stlr    w0, [x1]
        b       halt
        .size cpu1_entry, .-cpu1_entry

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
done_msg:
        .asciz  "\nhwdev done\n"
fail_msg:
        .asciz  "\nhwdev PSCI CPU_ON failed\n"
exception_msg:
        .asciz  "\nhwdev exception\n"

        .data
        .balign 64
cpu1_done:
        .word   0

        .bss
        .balign 16
        .space  4096
stack0_top:
        .space  4096
stack1_top:
