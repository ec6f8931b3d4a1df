/*
 * calls-aarch64: a bare-metal guest for qemu-system-aarch64 (virt board,
 * two vCPUs, as sys.S) whose calls count themselves, for the call-stack
 * tests in system mode.
 *
 * CPU0 starts CPU1 (PSCI CPU_ON); each runs work() on a stack of its own:
 * recursion (rec), mutual recursion (even, odd), calls through function
 * pointers (via_ptr_a, via_ptr_b), and probe once before the loop and
 * once after. Every function but the entry points takes the id of its
 * caller and counts the edge (caller, itself), in a table per CPU. When
 * CPU1 is done, CPU0 prints each edge of both tables over the PL011 UART
 * as "edge CALLER CALLEE COUNT" (the sums of the two CPUs), then
 * "calls done", and powers off (PSCI SYSTEM_OFF): QEMU exits with
 * status 0. An unexpected exception prints "calls exception" and powers
 * off. No libc, no atomics: each CPU writes only its own table; CPU1's
 * done flag is a release store, read with an acquire load.
 */
#define PL011_DR        ((volatile unsigned int *)0x09000000)
#define PL011_CR        ((volatile unsigned int *)0x09000030)
#define PL011_CR_ON     0x301           /* UARTEN | TXE | RXE */
#define PSCI_CPU_ON     0xc4000003ul
#define PSCI_SYSTEM_OFF 0x84000008ul
#define ITERS           300

#define NOINLINE __attribute__((noinline, noclone))

enum { WORK, REC, EVEN, ODD, PTR_A, PTR_B, PROBE, N_FUNCS };
static const char *const names[N_FUNCS] = {
    "work", "rec", "even", "odd", "via_ptr_a", "via_ptr_b", "probe",
};

static unsigned long edges[2][N_FUNCS][N_FUNCS];
static volatile unsigned long sink;
static unsigned int cpu1_done;
unsigned long stacks[2][1024] __attribute__((aligned(16)));     /* _start and cpu1_entry use them */

void start(void);
void start_cpu1(void);

/*
 * The entry points: a stack, the exception vectors, then C. QEMU enters
 * the ELF's entry on CPU0 at EL1 with the MMU off; CPU1 enters where
 * CPU_ON says.
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
    "    .balign 2048\n"
    "vectors:\n"
    "    .rept 16\n"
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
    puts_uart("\ncalls exception\n");
    power_off();
}

static unsigned long cpu_id(void)
{
    unsigned long mpidr;

    __asm__ volatile("mrs %0, mpidr_el1" : "=r"(mpidr));
    return mpidr & 0xff;
}

static void count(int caller, int me)
{
    edges[cpu_id()][caller][me]++;
}

NOINLINE unsigned long rec(int caller, int n)
{
    unsigned long r;

    count(caller, REC);
    if (n == 0) {
        return 1;
    }
    r = rec(REC, n - 1);    /* used twice: no tail call, nor a loop */
    sink += r;
    return r + 1;
}

NOINLINE unsigned long odd(int caller, int n);

NOINLINE unsigned long even(int caller, int n)
{
    unsigned long r;

    count(caller, EVEN);
    if (n == 0) {
        return 1;
    }
    r = odd(EVEN, n - 1);
    sink += r;
    return r + 1;
}

NOINLINE unsigned long odd(int caller, int n)
{
    unsigned long r;

    count(caller, ODD);
    if (n == 0) {
        return 0;
    }
    r = even(ODD, n - 1);
    sink += r;
    return r + 1;
}

NOINLINE unsigned long via_ptr_a(int caller, int n)
{
    count(caller, PTR_A);
    return (unsigned long)n * 3;
}

NOINLINE unsigned long via_ptr_b(int caller, int n)
{
    count(caller, PTR_B);
    return (unsigned long)n * 5;
}

static unsigned long (*volatile pointers[2])(int, int) = { via_ptr_a, via_ptr_b };

NOINLINE void probe(int caller)
{
    count(caller, PROBE);
    sink++;
}

NOINLINE void work(unsigned long iters)
{
    probe(WORK);
    for (unsigned long i = 0; i < iters; i++) {
        sink += rec(WORK, (int)(i % 7));
        sink += even(WORK, (int)(i % 5));
        sink += pointers[i % 2](WORK, (int)i);
    }
    probe(WORK);
    sink++;     /* keeps the call a call, not a tail call */
}

void start_cpu1(void)
{
    work(2 * ITERS);
    __atomic_store_n(&cpu1_done, 1, __ATOMIC_RELEASE);
}

extern char cpu1_entry[];

void start(void)
{
    *PL011_CR = PL011_CR_ON;    /* QEMU logs a guest error per character to a disabled UART */
    if (psci(PSCI_CPU_ON, 1, (unsigned long)cpu1_entry, 0) != 0) {
        puts_uart("calls PSCI CPU_ON failed\n");
        power_off();
    }
    work(ITERS);
    while (__atomic_load_n(&cpu1_done, __ATOMIC_ACQUIRE) == 0) {
    }
    for (int a = 0; a < N_FUNCS; a++) {
        for (int b = 0; b < N_FUNCS; b++) {
            unsigned long n = edges[0][a][b] + edges[1][a][b];
            if (n != 0) {
                puts_uart("edge ");
                puts_uart(names[a]);
                puts_uart(" ");
                puts_uart(names[b]);
                puts_uart(" ");
                put_number(n);
                puts_uart("\n");
            }
        }
    }
    puts_uart("calls done\n");
    power_off();
}
