/*
 * luahost: the guest's modules and what an address is in them.
 *
 * A module is an ELF file mapped in the guest (user mode: the program,
 * its loader, every shared library, the vDSO) or named by the user
 * (symbols=FILE[@BIAS], any mode: a kernel, a bare-metal program, a
 * System.map). An address is symbolized as module, symbol, offsets and
 * source line, from each file's symbols and lines (host/symtab.c,
 * elfutils' libdwfl).
 *
 * User mode has no API for the guest's mappings, so the host reads its
 * own /proc/self/maps, as QEMU does for the guest's: a host mapping is
 * the guest's when the guest can read it at host address - guest_base
 * (guest_base is learnt from the first translated block). A mapping of a
 * file that starts with an ELF header begins a module; a small anonymous
 * one that does is the vDSO. The table is read again after the guest
 * maps a file, unmaps or remaps a module's range or makes memory
 * executable, when the next question needs it (or at once, for scripts
 * that watch modules come and go).
 *
 * Locks: the table has its own mutex, taken after the Lua lock when both
 * are held and held over no call into Lua or QEMU; guest memory is read
 * under neither (reading takes QEMU's mmap_lock, which a translating
 * thread holds before either).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <gelf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "luahost.h"

/*
 * What a script is told of a module: copied out of the table, so that no
 * Lua value is made under table_lock (making one may run the collector,
 * and a finalizer may ask about modules). Names are interned: they
 * outlive the module.
 */
typedef struct LhModuleView {
    const char *path;       /* the host file, or "[vdso]" */
    const char *name;       /* its base name */
    uint64_t start, end;    /* guest addresses [start, end) */
    uint64_t bias;          /* guest address - ELF address */
    uint32_t id;
} LhModuleView;

typedef struct LhModule {
    LhModuleView v;
    uint64_t inode;         /* tells a file mapped anew at the same place */
    bool fixed;             /* named by symbols=: never unmapped */
    LhSymtab *symtab;       /* its symbols and lines */
} LhModule;

/* What an address is, with its line: cached per address until a module goes away. */
typedef struct LhSymbolInfo {
    LhModuleView module;
    const char *symbol;     /* interned, or NULL */
    uint64_t symbol_offset;
    const char *file;       /* interned, or NULL */
    int line;
} LhSymbolInfo;

static GMutex table_lock;
static GPtrArray *table;            /* LhModule *, sorted by start */
static GHashTable *symbol_cache;    /* guest address -> LhSymbolInfo */
static uint32_t next_id = 1;
static uint32_t generation;         /* bumped when the table changes */
static bool user_mode;
static bool guest_base_known;
static uint64_t guest_base;
/* What the guest's syscalls may have changed since the table was read. */
enum { DIRTY_NEW = 1, DIRTY_GONE = 2 };
static int dirty = DIRTY_NEW;
static GPtrArray *module_hooks;     /* luahost.on_module functions */
static const LhSyscalls *sys;      /* the target's numbers of mmap and its kin */

static void module_free(LhModule *m)
{
    lh_symtab_free(m->symtab);
    g_free(m);
}

/* A module of the file at path (its image in fd, if not -1), not yet in the table. */
static LhModule *module_new(const char *path, const char *name, uint64_t start, uint64_t end,
                            uint64_t bias, int fd)
{
    LhModule *m = g_new0(LhModule, 1);

    m->v.path = g_intern_string(path);
    m->v.name = g_intern_string(name != NULL ? name : strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path);
    m->v.start = start;
    m->v.end = end;
    m->v.bias = bias;
    m->symtab = lh_symtab_elf(m->v.path, m->v.name, fd);
    return m;
}

/* The module holding addr, under table_lock. */
static LhModule *module_at(uint64_t addr)
{
    guint lo = 0, hi = table->len;

    while (lo < hi) {
        guint mid = (lo + hi) / 2;
        LhModule *m = g_ptr_array_index(table, mid);
        if (addr < m->v.start) {
            hi = mid;
        } else if (addr >= m->v.end) {
            lo = mid + 1;
        } else {
            return m;
        }
    }
    return NULL;
}

static gint by_start(gconstpointer a, gconstpointer b)
{
    const LhModule *x = *(LhModule *const *)a, *y = *(LhModule *const *)b;

    return x->v.start < y->v.start ? -1 : x->v.start > y->v.start;
}

/* The symbol containing addr in m, and addr's offset in it; NULL if none. */
static const LhSymbol *symbol_in(LhModule *m, uint64_t addr, uint64_t *offset)
{
    uint64_t elf_addr = addr - m->v.bias;
    const LhSymbol *s = lh_symtab_at(m->symtab, elf_addr);

    if (s != NULL) {
        *offset = elf_addr - s->addr;
    }
    return s;
}

/*
 * What addr is, with its source line, under table_lock; NULL outside
 * every module. Cached: the line is the costly part.
 */
static LhSymbolInfo *symbol_info(uint64_t addr)
{
    LhSymbolInfo *info = g_hash_table_lookup(symbol_cache, &addr);
    LhModule *m;
    const char *file;
    int line = 0;

    if (info != NULL || (m = module_at(addr)) == NULL) {
        return info;
    }
    info = g_new0(LhSymbolInfo, 1);
    info->module = m->v;
    const LhSymbol *s = symbol_in(m, addr, &info->symbol_offset);
    if (s != NULL) {
        info->symbol = g_intern_string(s->name);
    }
    if (lh_symtab_line(m->symtab, addr - m->v.bias, &file, &line)) {
        info->file = g_intern_string(file);
        info->line = line;
    }
    uint64_t *key = g_new(uint64_t, 1);
    *key = addr;
    g_hash_table_insert(symbol_cache, key, info);
    return info;
}

/* t.key = value, for the table on top of the stack. */
static void set_string(lua_State *L, const char *key, const char *value)
{
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

static void set_u64(lua_State *L, const char *key, uint64_t value)
{
    lh_push_u64(L, value);
    lua_setfield(L, -2, key);
}

/* A module's description for Lua: a table with its fields. */
static void push_module(lua_State *L, const LhModuleView *m)
{
    lua_createtable(L, 0, 6);
    set_string(L, "name", m->name);
    set_string(L, "path", m->path);
    set_u64(L, "base", m->start);
    set_u64(L, "limit", m->end);
    set_u64(L, "bias", m->bias);
    set_u64(L, "id", m->id);
}

typedef struct LhModuleEvent {
    const char *what;       /* "map" or "unmap" */
    const LhModuleView *module;
} LhModuleEvent;

static int push_module_event(lua_State *L, const void *args)
{
    const LhModuleEvent *ev = args;

    lua_pushstring(L, ev->what);
    push_module(L, ev->module);
    return 2;
}

static void tell_hooks(const char *what, GPtrArray *modules)
{
    for (guint i = 0; i < modules->len; i++) {
        LhModule *m = g_ptr_array_index(modules, i);
        LhModuleEvent ev = { what, &m->v };
        for (guint h = 0; h < module_hooks->len; h++) {
            lh_dispatch(g_ptr_array_index(module_hooks, h), LH_SOME_VCPU, push_module_event, &ev);
        }
    }
}

/* The same file at the same place (its end grows while ld.so maps its segments). */
static bool is_mapping_of(const LhModule *m, const LhMapped *found)
{
    return m->v.start == found->start && m->inode == found->inode && strcmp(m->v.path, found->path) == 0;
}

/* Does [start, end) overlap a module named by symbols=? Under table_lock. */
static bool overlaps_fixed(uint64_t start, uint64_t end)
{
    for (guint i = 0; i < table->len; i++) {
        LhModule *m = g_ptr_array_index(table, i);
        if (m->fixed && start < m->v.end && end > m->v.start) {
            return true;
        }
    }
    return false;
}

/*
 * Reads the guest's mappings again and updates the table; tells the
 * script's module hooks what came and went. On a vCPU thread only.
 */
static void refresh(void)
{
    GPtrArray *found, *added = g_ptr_array_new(), *removed = g_ptr_array_new();
    bool *kept_found;

    g_atomic_int_set(&dirty, 0);    /* before reading: what changes after is seen next time */
    int depth = lh_release();       /* reading guest memory takes mmap_lock */
    found = lh_maps_scan(guest_base);
    lh_reacquire(depth);
    kept_found = g_new0(bool, found->len + 1);
    g_mutex_lock(&table_lock);
    for (guint i = 0; i < table->len; i++) {
        LhModule *old = g_ptr_array_index(table, i);
        bool kept = old->fixed;
        for (guint j = 0; !kept && j < found->len; j++) {
            LhMapped *f = g_ptr_array_index(found, j);
            if (!kept_found[j] && is_mapping_of(old, f)) {
                kept = kept_found[j] = true;
                old->v.end = f->end;
            }
        }
        if (!kept) {
            g_ptr_array_add(removed, old);
        }
    }
    for (guint i = 0; i < removed->len; i++) {
        g_ptr_array_remove(table, g_ptr_array_index(removed, i));
    }
    for (guint j = 0; j < found->len; j++) {
        LhMapped *f = g_ptr_array_index(found, j);
        if (!kept_found[j] && !overlaps_fixed(f->start, f->end)) {
            LhModule *m = module_new(f->path, strcmp(f->path, "[vdso]") == 0 ? "[vdso]" : NULL,
                                     f->start, f->end, f->bias, f->fd);
            f->fd = -1;     /* the module's now */
            m->inode = f->inode;
            m->v.id = next_id++;
            g_ptr_array_add(table, m);
            g_ptr_array_add(added, m);
        }
    }
    g_ptr_array_sort(table, by_start);
    if (removed->len > 0) {
        g_hash_table_remove_all(symbol_cache);
    }
    if (removed->len > 0 || added->len > 0) {
        generation++;
    }
    g_mutex_unlock(&table_lock);

    if (module_hooks->len > 0) {
        tell_hooks("unmap", removed);
        tell_hooks("map", added);
    }
    g_free(kept_found);
    g_ptr_array_unref(found);
    g_ptr_array_foreach(removed, (GFunc)(void (*)(void))module_free, NULL);
    g_ptr_array_free(removed, TRUE);
    g_ptr_array_free(added, TRUE);
}

/* Before a question: the table as the guest's mappings are now, if it can be read here. */
static void bring_up_to_date(bool on_vcpu)
{
    if (user_mode && on_vcpu && guest_base_known && g_atomic_int_get(&dirty)) {
        refresh();
    }
}

/*
 * Before a question about addr: the table needs reading again only if a
 * module may have gone, or addr is in none and one may have come. Most
 * questions are about code in a module already known.
 */
static void bring_up_to_date_for(uint64_t addr, bool on_vcpu)
{
    int d = g_atomic_int_get(&dirty);

    if (d & DIRTY_GONE) {
        bring_up_to_date(on_vcpu);
    } else if (d & DIRTY_NEW) {
        g_mutex_lock(&table_lock);
        bool known = module_at(addr) != NULL;
        g_mutex_unlock(&table_lock);
        if (!known) {
            bring_up_to_date(on_vcpu);
        }
    }
}

static bool on_vcpu_now(void)
{
    return lh_thread()->ctx.vcpu != LH_NO_VCPU;
}

/*
 * LH_AT_TRANSLATE: the first block tells where guest memory is in the
 * host; later ones bring the table up to date for the code they hold, so
 * that it knows every module whose code ran even if nothing asked during
 * the run (the exit hooks cannot read guest memory).
 */
static void watch_translation(int vcpu, const void *data)
{
    const struct qemu_plugin_tb *tb = data;

    if (qemu_plugin_tb_n_insns(tb) == 0) {
        return;
    }
    if (!guest_base_known) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, 0);
        void *haddr = qemu_plugin_insn_haddr(insn);
        if (haddr == NULL) {
            return;
        }
        guest_base = (uint64_t)(uintptr_t)haddr - qemu_plugin_insn_vaddr(insn);
        guest_base_known = true;
    }
    bring_up_to_date_for(qemu_plugin_tb_vaddr(tb), true);
}

/* Does [addr, addr + len) touch a module? */
static bool touches_module(uint64_t addr, uint64_t len)
{
    bool touches = false;

    g_mutex_lock(&table_lock);
    for (guint i = 0; i < table->len && !touches; i++) {
        LhModule *m = g_ptr_array_index(table, i);
        touches = !m->fixed && addr < m->v.end && addr + len > m->v.start;
    }
    g_mutex_unlock(&table_lock);
    return touches;
}

/* The syscalls that change what is mapped, per vCPU until they return. */
static GHashTable *pending_refresh;

/* LH_AT_SYSCALL and LH_AT_SYSCALL_RETURN. */
static void watch_syscall(int vcpu, const void *data)
{
    const LhSyscallEvent *ev = data;

    if (!ev->returned) {
        const uint64_t *a = ev->args;
        int kind = 0;
        if ((ev->num == sys->mmap && (int64_t)a[4] >= 0 && (a[3] & MAP_ANONYMOUS) == 0) ||
            (ev->num == sys->mprotect && (a[2] & PROT_EXEC) != 0)) {
            kind = DIRTY_NEW;
        } else if ((ev->num == sys->munmap || ev->num == sys->mremap) && touches_module(a[0], a[1])) {
            kind = DIRTY_GONE | DIRTY_NEW;
        }
        if (kind != 0) {
            g_mutex_lock(&table_lock);
            g_hash_table_insert(pending_refresh, GINT_TO_POINTER(vcpu + 1), GINT_TO_POINTER(kind));
            g_mutex_unlock(&table_lock);
        }
        return;
    }
    g_mutex_lock(&table_lock);
    int kind = GPOINTER_TO_INT(g_hash_table_lookup(pending_refresh, GINT_TO_POINTER(vcpu + 1)));
    g_hash_table_remove(pending_refresh, GINT_TO_POINTER(vcpu + 1));
    g_mutex_unlock(&table_lock);
    if (kind != 0 && ev->ret >= 0) {
        g_atomic_int_or(&dirty, kind);
        if (module_hooks->len > 0) {
            bring_up_to_date(true);
        }
    }
}

/* ----- what scripts and other files ask ----- */

/*
 * The name of the symbol containing addr, in any module, copied into
 * buf (cut to size); false if none. For insn:symbol(), at translation:
 * no cache, as each address is asked about about once.
 */
bool lh_symbol_name(uint64_t addr, char *buf, size_t size)
{
    const LhSymbol *s = NULL;
    uint64_t offset;

    bring_up_to_date_for(addr, on_vcpu_now());
    g_mutex_lock(&table_lock);
    LhModule *m = module_at(addr);
    if (m != NULL && (s = symbol_in(m, addr, &offset)) != NULL) {
        g_strlcpy(buf, s->name, size);
    }
    g_mutex_unlock(&table_lock);
    return s != NULL;
}

/* raw.modules(): every module, as tables, by address. */
static int modules_list(lua_State *L)
{
    GArray *views = g_array_new(FALSE, FALSE, sizeof(LhModuleView));

    bring_up_to_date(on_vcpu_now());
    g_mutex_lock(&table_lock);
    for (guint i = 0; i < table->len; i++) {
        LhModule *m = g_ptr_array_index(table, i);
        g_array_append_val(views, m->v);
    }
    g_mutex_unlock(&table_lock);
    lua_createtable(L, (int)views->len, 0);
    for (guint i = 0; i < views->len; i++) {
        push_module(L, &g_array_index(views, LhModuleView, i));
        lua_rawseti(L, -2, (int)i + 1);
    }
    g_array_free(views, TRUE);
    return 1;
}

/* raw.module_at(addr): the module holding addr, or nil. */
static int module_at_lua(lua_State *L)
{
    uint64_t addr = lh_check_u64(L, 1);

    bring_up_to_date_for(addr, on_vcpu_now());
    g_mutex_lock(&table_lock);
    LhModule *m = module_at(addr);
    LhModuleView view = m != NULL ? m->v : (LhModuleView){ 0 };
    g_mutex_unlock(&table_lock);
    if (m != NULL) {
        push_module(L, &view);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

/*
 * raw.symbolize(addr): { module, path, offset (the ELF address: addr -
 * bias), symbol, symbol_offset, file, line } (symbol, file and line only
 * when known), or nil outside every module.
 */
static int symbolize(lua_State *L)
{
    uint64_t addr = lh_check_u64(L, 1);
    LhSymbolInfo info;

    bring_up_to_date_for(addr, on_vcpu_now());
    g_mutex_lock(&table_lock);
    LhSymbolInfo *cached = symbol_info(addr);
    if (cached != NULL) {
        info = *cached;
    }
    g_mutex_unlock(&table_lock);
    if (cached == NULL) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 7);
    set_string(L, "module", info.module.name);
    set_string(L, "path", info.module.path);
    set_u64(L, "offset", addr - info.module.bias);
    if (info.symbol != NULL) {
        set_string(L, "symbol", info.symbol);
        set_u64(L, "symbol_offset", info.symbol_offset);
    }
    if (info.file != NULL) {
        set_string(L, "file", info.file);
        set_u64(L, "line", (uint64_t)info.line);
    }
    return 1;
}

/* Does module m answer to name (its path, base name, or base name up to its first dot)? */
static bool module_named(const LhModule *m, const char *name)
{
    size_t stem = strcspn(m->v.name, ".");

    return strcmp(m->v.path, name) == 0 || strcmp(m->v.name, name) == 0 ||
           (stem > 0 && strlen(name) == stem && strncmp(m->v.name, name, stem) == 0);
}

/* name's ELF address and size in m, if defined there with at most that rank. */
static bool symbol_address(LhModule *m, const char *name, int rank, uint64_t *addr, uint64_t *size)
{
    const LhSymbol *s = lh_symtab_named(m->symtab, name, rank);

    if (s != NULL) {
        *addr = s->addr;
        *size = s->size;
    }
    return s != NULL;
}

/*
 * raw.resolve(module or nil, symbol or nil, offset): the guest address
 * of symbol (+ offset) in the named module, or in the first module by
 * address that defines it globally, else locally; without a symbol, of
 * the module's ELF address offset. Then the module's name and the
 * symbol's size (0 if unknown). nil and why when nothing mapped now
 * matches.
 */
static int resolve(lua_State *L)
{
    const char *module = luaL_optstring(L, 1, NULL);
    const char *symbol = luaL_optstring(L, 2, NULL);
    uint64_t offset = lh_check_u64(L, 3);
    LhModule *found = NULL;
    uint64_t addr = 0, size = 0;

    bring_up_to_date(on_vcpu_now());
    g_mutex_lock(&table_lock);
    for (int rank = 1; rank <= 2 && found == NULL; rank++) {
        for (guint i = 0; i < table->len && found == NULL; i++) {
            LhModule *m = g_ptr_array_index(table, i);
            if (module != NULL && !module_named(m, module)) {
                continue;
            }
            if (symbol == NULL) {
                addr = m->v.bias + offset;
                found = m;
            } else if (symbol_address(m, symbol, rank, &addr, &size)) {
                addr += m->v.bias + offset;
                found = m;
            }
        }
    }
    const char *found_name = found != NULL ? found->v.name : NULL;
    g_mutex_unlock(&table_lock);
    if (found_name != NULL) {
        lh_push_u64(L, addr);
        lua_pushstring(L, found_name);
        lh_push_u64(L, size);
    }
    if (found_name == NULL) {
        return lh_fail(L, module != NULL && symbol == NULL ? "no such module is mapped"
                          : module != NULL ? "no such symbol in a module of that name"
                          : "no mapped module defines it");
    }
    return 3;
}

/* The module numbered id, or else called name (as resolve takes it); under table_lock. */
static LhModule *module_by(lua_Integer id, const char *name)
{
    for (guint i = 0; i < table->len; i++) {
        LhModule *m = g_ptr_array_index(table, i);
        if (name != NULL ? module_named(m, name) : m->v.id == id) {
            return m;
        }
    }
    return NULL;
}

/* t[key] = a list of n values, each pushed by push(L, i). */
#define SET_COLUMN(L, key, n, push) do {                      \
        lua_createtable(L, (int)(n), 0);                    \
        for (guint i_ = 0; i_ < (n); i_++) {                \
            push;                                           \
            lua_rawseti(L, -2, (int)i_ + 1);                \
        }                                                   \
        lua_setfield(L, -2, key);                           \
    } while (0)

/*
 * raw.line_table(module): the module's DWARF line table and functions, as
 * columns at guest addresses: { start, stop, file, line, files,
 * functions = { name, file, line, entry } } (file: an index into files).
 * nil and why without line information or such a module.
 */
static int line_table(lua_State *L)
{
    GArray *ranges = g_array_new(FALSE, FALSE, sizeof(LhLineRange));
    GArray *functions = g_array_new(FALSE, FALSE, sizeof(LhFunction));
    GStringChunk *strings = g_string_chunk_new(4096);
    const char *why = NULL;
    uint64_t bias = 0, low = 0, high = 0;

    lua_Integer id = -1;
    const char *name = NULL;

    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "id");       /* read before the lock: it may run Lua */
        id = lua_type(L, -1) == LUA_TNUMBER ? lua_tointeger(L, -1) : -1;
        lua_pop(L, 1);
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        name = lua_tostring(L, 1);
    } else {
        return luaL_typerror(L, 1, "module or module name");
    }
    bring_up_to_date(on_vcpu_now());
    g_mutex_lock(&table_lock);
    LhModule *m = module_by(id, name);
    if (m == NULL) {
        why = "no such module is mapped";
    } else if (!lh_symtab_lines(m->symtab, ranges, functions, strings) ||
               !lh_symtab_extent(m->symtab, &low, &high)) {
        why = "no line information (built without -g, or stripped with no debug file found)";
    } else {
        bias = m->v.bias;
    }
    g_mutex_unlock(&table_lock);
    if (why != NULL) {
        g_array_free(ranges, TRUE);
        g_array_free(functions, TRUE);
        g_string_chunk_free(strings);
        return lh_fail(L, why);
    }
    /* code the linker discarded keeps its rows, at addresses outside the file */
    guint kept = 0;
    for (guint i = 0; i < ranges->len; i++) {
        LhLineRange *r = &g_array_index(ranges, LhLineRange, i);
        if (r->start >= low && r->stop <= high && r->start != 0) {
            g_array_index(ranges, LhLineRange, kept++) = *r;
        }
    }
    g_array_set_size(ranges, kept);
    kept = 0;
    for (guint i = 0; i < functions->len; i++) {
        LhFunction *f = &g_array_index(functions, LhFunction, i);
        if (f->entry >= low && f->entry < high && f->entry != 0) {
            g_array_index(functions, LhFunction, kept++) = *f;
        }
    }
    g_array_set_size(functions, kept);
    /* files by first appearance, numbered from 1 */
    GHashTable *file_index = g_hash_table_new(NULL, NULL);
    GPtrArray *files = g_ptr_array_new();
    for (guint i = 0; i < ranges->len; i++) {
        const char *file = g_array_index(ranges, LhLineRange, i).file;
        if (!g_hash_table_contains(file_index, file)) {
            g_ptr_array_add(files, (gpointer)file);
            g_hash_table_insert(file_index, (gpointer)file, GUINT_TO_POINTER(files->len));
        }
    }
    lua_createtable(L, 0, 6);
    SET_COLUMN(L, "start", ranges->len, lh_push_u64(L, g_array_index(ranges, LhLineRange, i_).start + bias));
    SET_COLUMN(L, "stop", ranges->len, lh_push_u64(L, g_array_index(ranges, LhLineRange, i_).stop + bias));
    SET_COLUMN(L, "file", ranges->len,
               lua_pushinteger(L, GPOINTER_TO_UINT(g_hash_table_lookup(file_index,
                                   g_array_index(ranges, LhLineRange, i_).file))));
    SET_COLUMN(L, "line", ranges->len, lua_pushinteger(L, g_array_index(ranges, LhLineRange, i_).line));
    SET_COLUMN(L, "files", files->len, lua_pushstring(L, g_ptr_array_index(files, i_)));
    lua_createtable(L, 0, 4);
    SET_COLUMN(L, "name", functions->len, lua_pushstring(L, g_array_index(functions, LhFunction, i_).name));
    SET_COLUMN(L, "file", functions->len, lua_pushstring(L, g_array_index(functions, LhFunction, i_).file));
    SET_COLUMN(L, "line", functions->len, lua_pushinteger(L, g_array_index(functions, LhFunction, i_).line));
    SET_COLUMN(L, "entry", functions->len,
               lh_push_u64(L, g_array_index(functions, LhFunction, i_).entry + bias));
    lua_setfield(L, -2, "functions");
    g_hash_table_destroy(file_index);
    g_ptr_array_free(files, TRUE);
    g_array_free(ranges, TRUE);
    g_array_free(functions, TRUE);
    g_string_chunk_free(strings);
    return 1;
}

/* raw.modules_generation(): changes whenever a module comes or goes. */
static int modules_generation(lua_State *L)
{
    bring_up_to_date(on_vcpu_now());
    lua_pushinteger(L, g_atomic_int_get(&generation));
    return 1;
}

/* raw.on_module(fn): fn("map" or "unmap", module) as modules come and go. */
static int on_module(lua_State *L)
{
    g_ptr_array_add(module_hooks, lh_hook_new(L, 1, 0, "module hook"));
    return 0;
}

/*
 * raw.add_symbols(path, bias): the file (an ELF file, or a System.map)
 * as a module whose addresses are its own plus bias. true, or nil and why.
 */
static int add_symbols(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    uint64_t bias = lh_check_u64(L, 2);
    char magic[4] = { 0 };
    FILE *f = fopen(path, "re");
    bool ok;

    if (f == NULL) {
        return lh_fail(L, g_strerror(errno));
    }
    LhModule *m = module_new(path, NULL, 0, 0, bias, -1);
    uint64_t low, high;
    m->fixed = true;
    if (fread(magic, 1, sizeof(magic), f) == sizeof(magic) && memcmp(magic, ELFMAG, SELFMAG) == 0) {
        ok = lh_symtab_extent(m->symtab, &low, &high);
    } else {
        rewind(f);
        lh_symtab_free(m->symtab);
        m->symtab = lh_symtab_system_map(f, path, &low, &high);
        ok = m->symtab != NULL;
    }
    fclose(f);
    m->v.start = low + bias;
    m->v.end = high + bias;
    if (!ok) {
        module_free(m);
        return lh_fail(L, "neither an ELF file with loadable segments nor a System.map");
    }
    g_mutex_lock(&table_lock);
    for (guint i = 0; i < table->len && ok; i++) {
        LhModule *other = g_ptr_array_index(table, i);
        ok = m->v.end <= other->v.start || m->v.start >= other->v.end;
    }
    if (ok) {
        m->v.id = next_id++;
        g_ptr_array_add(table, m);
        g_ptr_array_sort(table, by_start);
        generation++;
    }
    g_mutex_unlock(&table_lock);
    if (!ok) {
        module_free(m);
        return lh_fail(L, "its addresses overlap those of another symbols= file");
    }
    lua_pushboolean(L, 1);
    return 1;
}

static const luaL_Reg modules_functions[] = {
    { "modules", modules_list },
    { "module_at", module_at_lua },
    { "symbolize", symbolize },
    { "resolve", resolve },
    { "modules_generation", modules_generation },
    { "line_table", line_table },
    { "on_module", on_module },
    { "add_symbols", add_symbols },
    { NULL, NULL },
};

void lh_open_modules(lua_State *L, int raw, const qemu_info_t *info)
{
    elf_version(EV_CURRENT);
    table = g_ptr_array_new();
    symbol_cache = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, g_free);
    module_hooks = g_ptr_array_new();
    pending_refresh = g_hash_table_new(NULL, NULL);
    user_mode = !info->system_emulation;
    if (user_mode) {
        sys = lh_syscalls(info->target_name);
        lh_listen(LH_AT_TRANSLATE, watch_translation);
        if (sys != NULL) {
            lh_listen(LH_AT_SYSCALL, watch_syscall);
            lh_listen(LH_AT_SYSCALL_RETURN, watch_syscall);
        }
    }
    lh_set_functions(L, raw, modules_functions);
}
