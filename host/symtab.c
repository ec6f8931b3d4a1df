/*
 * luahost: one file's symbols and source lines, for host/modules.c.
 *
 * An ELF file (or a vDSO image in a memfd) is read with elfutils'
 * libdwfl: symbols from .symtab, else .dynsym; lines from its DWARF or a
 * separate debug file found by build id or .gnu_debuglink in the places
 * gdb and perf look (find_debuginfo below). Not through debuginfod:
 * libdwfl's standard search loads libdebuginfod and libcurl with some
 * twenty libraries (15 ms on xz) and may go to the network mid-run. A System.map gives symbols alone. Addresses here
 * are the file's own (ELF virtual addresses); the module adds its bias.
 *
 * The symbols are read once into an array sorted by address, so that a
 * lookup is a binary search: libdwfl's own dwfl_module_addrinfo scans
 * every symbol (860 us per translated block on xz). Opened on the first
 * question. Not thread-safe: modules.c calls it under its lock.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "luahost.h"

/* A symbol and how well it names its address. */
typedef struct LhSym {
    LhSymbol sym;
    int rank;               /* among aliases, the lowest names the address */
    bool label;             /* untyped (an assembler label): named, never naming */
} LhSym;

struct LhSymtab {
    char *path, *name;
    int fd;                 /* an image to read instead of path, or -1 */
    Dwfl *dwfl;
    Dwfl_Module *dwmod;
    bool open_failed;
    bool system_map;        /* names owned here */
    GArray *syms;           /* LhSym by address, then label, then rank */
    GHashTable *by_name;    /* name -> its best LhSym */
};

#define DEBUG_ROOT "/usr/lib/debug"

/* An open fd of the first path that opens, its name in *found; or -1. */
static int open_first(GPtrArray *paths, char **found)
{
    for (guint i = 0; i < paths->len; i++) {
        int fd = open(g_ptr_array_index(paths, i), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            *found = g_strdup(g_ptr_array_index(paths, i));
            return fd;
        }
    }
    return -1;
}

/*
 * libdwfl's find_debuginfo: DEBUG_ROOT/.build-id/xx/rest.debug, then the
 * .gnu_debuglink name beside the file, in its .debug/, and under
 * DEBUG_ROOT with the file's directory.
 */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink, GElf_Word crc,
                          char **debuginfo_file_name)
{
    GPtrArray *paths = g_ptr_array_new_with_free_func(g_free);
    const unsigned char *id;
    GElf_Addr id_vaddr;
    int n = dwfl_module_build_id(mod, &id, &id_vaddr);
    int fd;

    if (n > 1) {
        GString *path = g_string_new(DEBUG_ROOT "/.build-id/");
        g_string_append_printf(path, "%02x/", id[0]);
        for (int i = 1; i < n; i++) {
            g_string_append_printf(path, "%02x", id[i]);
        }
        g_string_append(path, ".debug");
        g_ptr_array_add(paths, g_string_free(path, FALSE));
    }
    if (debuglink != NULL && file_name != NULL && file_name[0] == '/') {
        char *dir = g_path_get_dirname(file_name);
        g_ptr_array_add(paths, g_build_filename(dir, debuglink, NULL));
        g_ptr_array_add(paths, g_build_filename(dir, ".debug", debuglink, NULL));
        g_ptr_array_add(paths, g_build_filename(DEBUG_ROOT, dir, debuglink, NULL));
        g_free(dir);
    }
    fd = open_first(paths, debuginfo_file_name);
    g_ptr_array_free(paths, TRUE);
    return fd;
}

static const Dwfl_Callbacks dwfl_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

/* An ELF file to read on the first question; fd (or -1) is taken over. */
LhSymtab *lh_symtab_elf(const char *path, const char *name, int fd)
{
    LhSymtab *t = g_new0(LhSymtab, 1);

    t->path = g_strdup(path);
    t->name = g_strdup(name);
    t->fd = fd;
    return t;
}

void lh_symtab_free(LhSymtab *t)
{
    if (t == NULL) {
        return;
    }
    if (t->dwfl != NULL) {
        dwfl_end(t->dwfl);
    }
    if (t->fd >= 0) {
        close(t->fd);
    }
    if (t->by_name != NULL) {
        g_hash_table_destroy(t->by_name);
    }
    if (t->syms != NULL) {
        for (guint i = 0; t->system_map && i < t->syms->len; i++) {
            g_free((char *)g_array_index(t->syms, LhSym, i).sym.name);
        }
        g_array_free(t->syms, TRUE);
    }
    g_free(t->path);
    g_free(t->name);
    g_free(t);
}

/* libdwfl for t, opened once, at the file's own addresses; NULL if unreadable. */
static Dwfl_Module *dwfl_of(LhSymtab *t)
{
    if (t->dwmod != NULL || t->open_failed || t->system_map) {
        return t->dwmod;
    }
    t->dwfl = dwfl_begin(&dwfl_callbacks);
    if (t->dwfl != NULL) {
        dwfl_report_begin(t->dwfl);
        /* base 0 relative to p_vaddr: at the file's own addresses */
        t->dwmod = dwfl_report_elf(t->dwfl, t->name, t->path, t->fd, 0, true);
        dwfl_report_end(t->dwfl, NULL, NULL);
        if (t->dwmod != NULL) {
            t->fd = -1;     /* libdwfl owns it now */
        }
    }
    t->open_failed = t->dwmod == NULL;
    return t->dwmod;
}

static gint sym_order(gconstpointer a, gconstpointer b)
{
    const LhSym *x = a, *y = b;

    if (x->sym.addr != y->sym.addr) {
        return x->sym.addr < y->sym.addr ? -1 : 1;
    }
    if (x->label != y->label) {
        return x->label ? 1 : -1;
    }
    return x->rank - y->rank;
}

/* Globals name an address before weak symbols, weak ones before locals. */
static int bind_rank(int bind)
{
    return bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;
}

static GArray *syms_of(LhSymtab *t)
{
    if (t->syms != NULL) {
        return t->syms;
    }
    t->syms = g_array_new(FALSE, FALSE, sizeof(LhSym));
    int n = dwfl_of(t) != NULL ? dwfl_module_getsymtab(t->dwmod) : 0;
    for (int i = 1; i < n; i++) {
        GElf_Sym sym;
        GElf_Addr value;
        const char *name = dwfl_module_getsym_info(t->dwmod, i, &sym, &value, NULL, NULL, NULL);
        int type = GELF_ST_TYPE(sym.st_info);
        /* '$' names are ARM mapping symbols ($x, $d): not names of code */
        if (name != NULL && name[0] != '\0' && name[0] != '$' && sym.st_shndx != SHN_UNDEF &&
            sym.st_shndx != SHN_ABS &&
            (type == STT_FUNC || type == STT_GNU_IFUNC || type == STT_OBJECT || type == STT_NOTYPE)) {
            LhSym s = { { value, sym.st_size, name }, bind_rank(GELF_ST_BIND(sym.st_info)),
                        type == STT_NOTYPE };
            g_array_append_val(t->syms, s);
        }
    }
    g_array_sort(t->syms, sym_order);
    return t->syms;
}

/*
 * The symbol containing addr, or NULL: of the symbols at the highest
 * address at or below it, the best ranked; a sized symbol must reach
 * addr, else an enclosing one a few entries before is taken (a function
 * holding a local label). A label (an untyped symbol: assembler code such
 * as ld.so's _start) names addr only when it is the nearest symbol and no
 * typed one encloses it.
 */
const LhSymbol *lh_symtab_at(LhSymtab *t, uint64_t addr)
{
    GArray *syms = syms_of(t);
    guint lo = 0, hi = syms->len;

    while (lo < hi) {
        guint mid = (lo + hi) / 2;
        if (g_array_index(syms, LhSym, mid).sym.addr <= addr) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    LhSym *nearest_label = NULL;

    for (guint i = lo, looked = 0; i > 0 && looked < 16; i--, looked++) {
        LhSym *s = &g_array_index(syms, LhSym, i - 1);
        while (i > 1 && g_array_index(syms, LhSym, i - 2).sym.addr == s->sym.addr) {
            s = &g_array_index(syms, LhSym, --i - 1);   /* the best ranked alias */
        }
        if (s->label) {
            if (looked == 0 && (s->sym.size == 0 || addr < s->sym.addr + s->sym.size)) {
                nearest_label = s;
            }
            continue;
        }
        if (s->sym.size == 0 ? looked == 0 : addr < s->sym.addr + s->sym.size) {
            return &s->sym;
        }
    }
    return nearest_label != NULL ? &nearest_label->sym : NULL;
}

/* The symbol called name, typed before labels, then best ranked (rank <= max_rank); or NULL. */
const LhSymbol *lh_symtab_named(LhSymtab *t, const char *name, int max_rank)
{
    if (t->by_name == NULL) {
        GArray *syms = syms_of(t);
        t->by_name = g_hash_table_new(g_str_hash, g_str_equal);
        for (guint i = 0; i < syms->len; i++) {
            LhSym *s = &g_array_index(syms, LhSym, i);
            LhSym *old = g_hash_table_lookup(t->by_name, s->sym.name);
            if (old == NULL || (old->label && !s->label) ||
                (old->label == s->label && s->rank < old->rank)) {
                g_hash_table_insert(t->by_name, (gpointer)s->sym.name, s);
            }
        }
    }
    LhSym *s = g_hash_table_lookup(t->by_name, name);
    return s != NULL && s->rank <= max_rank ? &s->sym : NULL;
}

/* The source file and line of addr, from DWARF; false without line information. */
bool lh_symtab_line(LhSymtab *t, uint64_t addr, const char **file, int *line)
{
    Dwfl_Line *l = dwfl_of(t) != NULL ? dwfl_module_getsrc(t->dwmod, addr) : NULL;

    *file = l != NULL ? dwfl_lineinfo(l, NULL, line, NULL, NULL, NULL) : NULL;
    return *file != NULL;
}

/* What lh_symtab_lines collects: one CU's functions, through dwarf_getfuncs. */
typedef struct LhLinesOut {
    GArray *ranges, *functions;
    GStringChunk *strings;
    Dwarf_Addr bias;
    const char *comp_dir;   /* the CU's, or NULL */
} LhLinesOut;

/* file as an absolute path, if the CU says where relative ones are; kept in out->strings. */
static const char *path_in(LhLinesOut *out, const char *file)
{
    if (file[0] == '/' || out->comp_dir == NULL || out->comp_dir[0] != '/') {
        return g_string_chunk_insert_const(out->strings, file);
    }
    char *path = g_canonicalize_filename(file, out->comp_dir);
    const char *kept = g_string_chunk_insert_const(out->strings, path);
    g_free(path);
    return kept;
}

static int add_function(Dwarf_Die *die, void *arg)
{
    LhLinesOut *out = arg;
    const char *name = dwarf_diename(die), *file = dwarf_decl_file(die);
    Dwarf_Addr entry;
    int line = 0;

    /* declarations and inline-only functions have no code of their own */
    if (name != NULL && file != NULL && dwarf_entrypc(die, &entry) == 0) {
        dwarf_decl_line(die, &line);
        LhFunction f = { g_string_chunk_insert_const(out->strings, name), path_in(out, file), line,
                         entry + out->bias };
        g_array_append_val(out->functions, f);
    }
    return DWARF_CB_OK;
}

/* One CU's line table as ranges: each row up to the next, unless it ends a sequence. */
static void add_ranges(Dwarf_Die *cu, LhLinesOut *out)
{
    Dwarf_Lines *lines;
    size_t n;

    if (dwarf_getsrclines(cu, &lines, &n) != 0) {
        return;
    }
    /* libdw sorts the rows by address, keeping each sequence's order */
    for (size_t i = 0; i + 1 < n; i++) {
        Dwarf_Line *row = dwarf_onesrcline(lines, i);
        Dwarf_Addr start, stop;
        bool ends;
        int line;
        const char *file = dwarf_linesrc(row, NULL, NULL);
        if (dwarf_lineendsequence(row, &ends) != 0 || ends || file == NULL ||
            dwarf_lineaddr(row, &start) != 0 || dwarf_lineno(row, &line) != 0 ||
            dwarf_lineaddr(dwarf_onesrcline(lines, i + 1), &stop) != 0 || stop <= start) {
            continue;   /* an empty range: a row sharing its address with the next */
        }
        LhLineRange r = { start + out->bias, stop + out->bias, path_in(out, file), line };
        g_array_append_val(out->ranges, r);
    }
}

/*
 * The whole DWARF line table, as LhLineRange in ranges (file's own
 * addresses, [start, stop), no empty ones), and the functions with code,
 * as LhFunction; their strings in strings, paths made absolute with their
 * CU's directory. False without line information.
 */
bool lh_symtab_lines(LhSymtab *t, GArray *ranges, GArray *functions, GStringChunk *strings)
{
    LhLinesOut out = { ranges, functions, strings, 0, NULL };
    Dwarf_Die *cu = NULL;

    if (dwfl_of(t) == NULL || dwfl_module_getdwarf(t->dwmod, &out.bias) == NULL) {
        return false;
    }
    while ((cu = dwfl_module_nextcu(t->dwmod, cu, &out.bias)) != NULL) {
        Dwarf_Attribute attr;
        out.comp_dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr));
        add_ranges(cu, &out);
        dwarf_getfuncs(cu, add_function, &out, 0);
    }
    return ranges->len > 0;
}

/* The addresses the ELF file loads at, [low, high); false if it cannot be read. */
bool lh_symtab_extent(LhSymtab *t, uint64_t *low, uint64_t *high)
{
    Dwarf_Addr lo, hi;

    if (dwfl_of(t) == NULL) {
        return false;
    }
    dwfl_module_info(t->dwmod, NULL, &lo, &hi, NULL, NULL, NULL, NULL);
    *low = lo;
    *high = hi;
    return hi > lo;
}

/*
 * One System.map line, "ADDRESS TYPE NAME" (hex, a letter, a name without
 * blanks; /proc/kallsyms adds "\t[module]"), strictly: a file of other
 * lines (/etc/passwd's "daemon:x:1:1" read as address da, type e) is not
 * one.
 */
static bool map_line(const char *line, uint64_t *addr, char *type, char *name, size_t size)
{
    char *end;
    size_t n;

    if (!g_ascii_isxdigit(line[0])) {
        return false;
    }
    *addr = g_ascii_strtoull(line, &end, 16);
    if (*end != ' ' || !g_ascii_isalpha(end[1]) || end[2] != ' ') {
        return false;
    }
    *type = end[1];
    line = end + 3;
    n = strcspn(line, " \t\r\n");
    if (n == 0 || n >= size) {
        return false;
    }
    memcpy(name, line, n);
    name[n] = '\0';
    line += n;
    return line[strspn(line, "\r\n")] == '\0' || line[0] == '\t';
}

/*
 * A System.map ("ADDRESS TYPE NAME" lines) as symbols, and their range
 * [low, high); NULL if it has none or a line that is not one. Text
 * symbols name code before data ones at the same address.
 */
LhSymtab *lh_symtab_system_map(FILE *f, const char *path, uint64_t *low, uint64_t *high)
{
    LhSymtab *t = lh_symtab_elf(path, path, -1);
    char line[1024], name[512];
    uint64_t addr, code_low = 0;
    char type;
    bool have_code = false;

    t->system_map = true;
    t->syms = g_array_new(FALSE, FALSE, sizeof(LhSym));
    while (fgets(line, sizeof(line), f) != NULL) {
        if (line[strspn(line, " \t\r\n")] == '\0') {
            continue;
        }
        if (!map_line(line, &addr, &type, name, sizeof(name))) {
            g_array_set_size(t->syms, 0);       /* not a System.map */
            break;
        }
        if (type == 'A' || type == 'a') {
            continue;       /* an absolute value (_kernel_size_le_hi32), not a place */
        }
        bool code = strchr("TtWw", type) != NULL;
        LhSym s = { { addr, 0, g_strdup(name) }, code ? 0 : 1, false };
        g_array_append_val(t->syms, s);
        /*
         * The extent starts at the lowest code: x86_64's per-CPU
         * variables are data symbols at offsets from 0, which would
         * claim all low memory (firmware, boot code) for the kernel.
         */
        if (code && (!have_code || addr < code_low)) {
            code_low = addr;
            have_code = true;
        }
    }
    g_array_sort(t->syms, sym_order);
    if (t->syms->len == 0) {
        lh_symtab_free(t);
        return NULL;
    }
    *low = have_code ? code_low : g_array_index(t->syms, LhSym, 0).sym.addr;
    *high = g_array_index(t->syms, LhSym, t->syms->len - 1).sym.addr + 1;
    return t;
}
