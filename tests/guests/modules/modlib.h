/*
 * libmodlib: the shared library of the modules guests. Its static
 * function lib_mix has a symbol only in .symtab, so that a stripped copy
 * leaves it unnamed; lib_apply and lib_mixes are exported (.dynsym).
 */
#ifndef MODLIB_H
#define MODLIB_H

/* lib_mix(fn(x)) + lib_mix(x): one call of fn and two of lib_mix. */
unsigned long lib_apply(unsigned long x, unsigned long (*fn)(unsigned long));

/* How many times lib_mix ran. */
unsigned long lib_mixes(void);

#endif
