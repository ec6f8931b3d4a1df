/*
 * A library that moddl opens with dlopen: built twice, as libmoddl1
 * (ENTRY dl1_entry) and libmoddl2 (ENTRY dl2_entry).
 */
static __attribute__((noipa)) unsigned long dl_step(unsigned long x)
{
    return x * 5 + 3;
}

__attribute__((noipa)) unsigned long ENTRY(unsigned long n)
{
    unsigned long x = 1;

    for (unsigned long i = 0; i < n; i++) {
        x = dl_step(x);
    }
    return x;
}
