/*
 * bench/workloads/system.c: bench/run's system-mode workload, a bare-metal
 * guest for qemu-system-aarch64 -M virt -cpu cortex-a57 (-smp 1 or 2),
 * linked by tests/guests/system/sys.ld and built by bench/run with
 * -DROUNDS=N.
 *
 * CPU0 starts CPU1 (PSCI CPU_ON; with -smp 1 that fails and CPU0 works
 * alone). Each CPU runs ROUNDS rounds on a table of its own: a round is
 * CHURN steps of a xorshift generator updating and reading the table
 * (loads and stores to RAM), one read of a device register (CPU0 the
 * PL011's flag register, CPU1 the PL031 RTC's data register: MMIO for
 * hwprofile) and one supervisor call (svc #0: an exception and its return,
 * for traps and discons). Nothing depends on what a device returns, and
 * no interrupt is enabled, so with one vCPU every run executes the same
 * blocks (lockstep needs that). When both are done CPU0 prints
 * "system done SUM" over the PL011 and powers off (PSCI SYSTEM_OFF).
 * An unexpected exception prints "system exception" and powers off too:
 * bench/run checks the line, not the exit status.
 */
#define PL011_DR        ((volatile unsigned int *)0x09000000)
#define PL011_FR        ((volatile unsigned int *)0x09000018)
#define PL011_CR        ((volatile unsigned int *)0x09000030)
#define PL011_CR_ON     0x301           /* UARTEN | TXE | RXE */
#define PL031_DR        ((volatile unsigned int *)0x09010000)
#define PSCI_CPU_ON     0xc4000003ul
#define PSCI_SYSTEM_OFF 0x84000008ul
#define TABLE           4096            /* words per CPU */
#define CHURN           256             /* generator steps per round */

#ifndef ROUNDS
#define ROUNDS          1000
#endif

static unsigned int table[2][TABLE];
static unsigned long sums[2];
static volatile unsigned int sink;
static unsigned int cpu1_done;
unsigned long stacks[2][1024] __attribute__((aligned(16)));     /* the entry points use them */

void start(void);
void start_cpu1(void);

/*
 * Entry points and vectors. The vector for a synchronous exception at
 * EL1 with SP_EL1 (offset 0x200) returns from an SVC (ESR_EL1.EC 0x15)
 * with x16 and x17 as scratch (the caller's asm clobbers them); every
 * other vector, and any other synchronous exception, is unexpected.
 */
__asm__(
    "    .section .text.boot, \"ax\"\n"
    "    .globl _start\n"
    "_start:\n"
    "    adr x0, vectors\n"
    "    msr vbar_el1, x0\n"
    "    isb\n"
    "    adrp x0, stacks + 8192\n"
    "    add x0, x0, :lo12:stacks + 8192\n"
    "    mov sp, x0\n"
    "    bl start\n"
    "1:  wfi\n"
    "    b 1b\n"
    "    .globl cpu1_entry\n"
    "cpu1_entry:\n"
    "    adr x0, vectors\n"
    "    msr vbar_el1, x0\n"
    "    isb\n"
    "    adrp x0, stacks + 16384\n"
    "    add x0, x0, :lo12:stacks + 16384\n"
    "    mov sp, x0\n"
    "    bl start_cpu1\n"
    "2:  wfi\n"
    "    b 2b\n"
    "svc_return:\n"
    "    mrs x16, esr_el1\n"
    "    lsr x16, x16, #26\n"
    "    cmp x16, #0x15\n"
    "    b.ne exception\n"
    "    eret\n"
    "    .balign 2048\n"
    "vectors:\n"
    "    .rept 4\n"
    "    b exception\n"
    "    .balign 0x80\n"
    "    .endr\n"
    "    b svc_return\n"
    "    .balign 0x80\n"
    "    .rept 11\n"
    "    b exception\n"
    "    .balign 0x80\n"
    "    .endr\n"
    "    .text\n");

static unsigned long psci(unsigned long fn, unsigned long a1, unsigned long a2, unsigned long a3)
{
    register unsigned long x0 __asm__("x0") = fn;
    register unsigned long x1 __asm__("x1") = a1;
    register unsigned long x2 __asm__("x2") = a2;
    register unsigned long x3 __asm__("x3") = a3;

    __asm__ volatile("hvc #0" : "+r"(x0) : "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}

static void puts_uart(const char *s)
{
    while (*s != '\0') {
        *PL011_DR = (unsigned char)*s++;
    }
}

static void put_number(unsigned long n)
{
    char digits[24];
    int i = sizeof(digits) - 1;

    digits[i] = '\0';
    do {
        digits[--i] = (char)('0' + n % 10);
        n /= 10;
    } while (n != 0);
    puts_uart(&digits[i]);
}

static void power_off(void)
{
    psci(PSCI_SYSTEM_OFF, 0, 0, 0);
    for (;;) {
        __asm__ volatile("wfi");
    }
}

void exception(void)
{
    puts_uart("\nsystem exception\n");
    power_off();
}

static void work(int cpu, volatile unsigned int *device)
{
    unsigned int *t = table[cpu];
    unsigned int x = 2463534242u + cpu;
    unsigned long sum = 0;

    for (unsigned long r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < CHURN; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            t[x % TABLE] += x >> 7;
            sum += t[(x >> 12) % TABLE];
        }
        sink = *device;
        __asm__ volatile("svc #0" ::: "x16", "x17", "memory");
    }
    sums[cpu] = sum;
}

void start_cpu1(void)
{
    work(1, PL031_DR);
    __atomic_store_n(&cpu1_done, 1, __ATOMIC_RELEASE);
}

void start(void)
{
    extern char cpu1_entry[];
    int two = 0;

    *PL011_CR = PL011_CR_ON;
    if (psci(PSCI_CPU_ON, 1, (unsigned long)cpu1_entry, 0) == 0) {
        two = 1;
    }
    work(0, PL011_FR);
    while (two && !__atomic_load_n(&cpu1_done, __ATOMIC_ACQUIRE)) {
        continue;
    }
    puts_uart("system done ");
    put_number(sums[0] + sums[1]);
    puts_uart("\n");
    power_off();
}
