/*
 * patchme-aarch64: a bare-metal guest for qemu-system-aarch64 -M virt
 * (machine as sys.S; CPU1 stays off) for patch.lua's tests, as QEMU's
 * tests/tcg/x86_64/system/patch-target.c is for patch.c: a loop adds 1 to
 * x9 PATCHME_ITERS times with the instruction at patchme_add,
 * "add x9, x9, #1" (bytes 29 05 00 91; no other instruction of the guest
 * has them), then prints "Value: N" on the PL011 UART and powers off with
 * PSCI SYSTEM_OFF (status 0).
 *
 * Unpatched it prints "Value: 100". A plugin that replaces the add with a
 * NOP (1f 20 03 d5) when the add's block first starts makes QEMU drop the
 * block, which has just modified its own code, before its add has run,
 * and go on from the patched memory: "Value: 0", as patch.c makes it
 * (QEMU's own x86_64 test of patch.c, on its own guest, expects 1).
 */
#define PL011_BASE      0x09000000
#define PL011_DR        0x00
#define PL011_CR        0x30
#define PL011_CR_ON     0x301           /* UARTEN | TXE | RXE */
#define PSCI_SYSTEM_OFF 0x84000008
#define PATCHME_ITERS   100

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

        mov     x9, #0
        mov     x10, #PATCHME_ITERS
patchme_loop:
        .globl  patchme_add
patchme_add:
        add     x9, x9, #1
        subs    x10, x10, #1
        b.ne    patchme_loop

        adr     x0, value_msg
        bl      puts
        mov     x0, x9
        bl      put_decimal
        adr     x0, newline
        bl      puts
        ldr     x0, =PSCI_SYSTEM_OFF
        hvc     #0
        b       halt
        .size _start, .-_start

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

/* put_decimal(x0 = value): its decimal digits, built backwards in digits. */
        .type put_decimal, %function
put_decimal:
        mov     x1, #PL011_BASE
        ldr     x5, =digits_end
        mov     x6, x5
        mov     x3, #10
1:      udiv    x4, x0, x3
        msub    x2, x4, x3, x0
        add     w2, w2, #'0'
        strb    w2, [x6, #-1]!
        mov     x0, x4
        cbnz    x0, 1b
2:      ldrb    w2, [x6], #1
        str     w2, [x1, #PL011_DR]
        cmp     x6, x5
        b.ne    2b
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

        .balign 2048
vectors:
        .rept   16
        b       exception
        .balign 0x80
        .endr

        .section .rodata, "a"
value_msg:
        .asciz  "Value: "
newline:
        .asciz  "\n"
exception_msg:
        .asciz  "\npatchme exception\n"

        .bss
        .balign 16
digits:
        .space  24
digits_end:
        .space  4096
stack_top:
