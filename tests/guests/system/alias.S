/*
 * alias-aarch64: a bare-metal guest for qemu-system-aarch64 (virt board,
 * as sys.S; CPU1 stays off) whose memory accesses have virtual addresses
 * other than their physical ones, for the tests that tell the two apart
 * (scripts/hotpages.lua):
 *
 *     qemu-system-aarch64 -M virt -smp 2 -cpu cortex-a57 -display none \
 *         -monitor none -serial stdio -nic none -kernel alias-aarch64
 *
 * CPU0 turns its MMU on with one level-1 table of 1 GiB blocks: the
 * devices (0 to 1 GiB) and RAM (1 to 2 GiB) where they are, and RAM again
 * at ALIAS_BASE (2 to 3 GiB). It then stores to and loads from
 * alias_data through the alias ALIAS_ITERS times each, prints
 * "alias done" and powers off. So ALIAS_ITERS loads and as many stores
 * have the virtual address alias_data + ALIAS_OFFSET and the physical
 * address alias_data.
 */
#define PL011_BASE      0x09000000
#define PL011_DR        0x00
#define PL011_CR        0x30
#define PL011_CR_ON     0x301
#define PSCI_SYSTEM_OFF 0x84000008
#define RAM_BASE        0x40000000
#define ALIAS_BASE      0x80000000
#define ALIAS_OFFSET    (ALIAS_BASE - RAM_BASE)
#define ALIAS_ITERS     1000
#define BLOCK_DEVICE    0x401           /* block, AttrIndx 0 (device), AF */
#define BLOCK_RAM       0x705           /* block, AttrIndx 1 (normal), inner shareable, AF */
#define MAIR            0xff00          /* attr 0: device nGnRnE; attr 1: normal write-back */
#define TCR             (25 | (1 << 8) | (1 << 10) | (3 << 12) | (1 << 23))
                                        /* 39-bit VAs from level 1, 4 KiB granule,
                                           write-back walks, no TTBR1 walks */

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

        ldr     x0, =level1
        ldr     x1, =BLOCK_DEVICE
        str     x1, [x0]
        ldr     x1, =(RAM_BASE | BLOCK_RAM)
        str     x1, [x0, #8]
        str     x1, [x0, #16]           /* ALIAS_BASE: the same RAM */
        dsb     sy
        msr     ttbr0_el1, x0
        ldr     x1, =MAIR
        msr     mair_el1, x1
        ldr     x1, =TCR
        msr     tcr_el1, x1
        isb
        tlbi    vmalle1
        dsb     sy
        mrs     x1, sctlr_el1
        orr     x1, x1, #1              /* M: the MMU on */
        msr     sctlr_el1, x1
        isb

        ldr     x1, =(alias_data + ALIAS_OFFSET)
        ldr     x0, =ALIAS_ITERS
        .globl alias_loop
alias_loop:
        str     x0, [x1]
        ldr     x2, [x1]
        subs    x0, x2, #1
        b.ne    alias_loop

        adr     x0, done_msg
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
done_msg:
        .asciz  "alias done\n"
exception_msg:
        .asciz  "alias exception\n"

        .data
        .balign 4096
level1:
        .space  4096
        .balign 64
        .globl alias_data
alias_data:
        .quad   0

        .bss
        .balign 16
        .space  4096
stack_top:
