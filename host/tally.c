/*
 * luahost: tallies ("luahost.tally"), 64-bit counters keyed by up to three
 * 64-bit values, counted in C at memory accesses and block executions.
 *
 * Counting per key (per page, per branch and destination) needs a table
 * no inline op can index, and Lua per event costs more than a C plugin's
 * whole callback. Here each vCPU has a table of its own that only its
 * thread writes, so no event takes a lock; Lua reads the rows
 * (tally:rows()). A row is written before the row count that publishes it,
 * and rows live in chunks that never move, so a reader on another thread
 * copies published rows safely while the vCPU adds new ones. Each row
 * keeps when its key was first counted, in one order over all vCPUs.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stdlib.h>
#include <string.h>

#include "luahost.h"

/* Which address a memory access is counted under. */
enum { ADDR_VIRTUAL, ADDR_PHYSICAL, ADDR_DEVICE };
/* What a memory access's keys are (lua/luahost.lua names them). */
enum { FIELD_NONE, FIELD_ADDRESS, FIELD_KIND, FIELD_DEVICE, FIELD_PADDR, FIELD_PC, FIELD_BASE };
/* FIELD_KIND: luahost.LOAD or luahost.STORE. */
enum { KIND_LOAD = 2, KIND_STORE = 3 };

typedef struct Row {
    uint64_t key, key2, key3;
    uint64_t count;         /* written by the vCPU, read by anyone: atomic */
    uint64_t first;         /* when the key was first counted, over all vCPUs */
} Row;

/* Chunk c holds 2^(c + CHUNK0_BITS) rows: memory runs out long before 2^31 rows. */
enum { CHUNK0_BITS = 8, CHUNKS = 32 - CHUNK0_BITS };

typedef struct VcpuTable {
    Row *chunks[CHUNKS];    /* published before the row count that reaches them */
    uint32_t n;             /* rows published: atomic */
    uint32_t *index;        /* open addressing, row number + 1; 0 empty. The vCPU's only */
    uint32_t index_mask;
    Row *last;              /* the row counted last: accesses come in runs */
} VcpuTable;

typedef struct LhTally {
    struct qemu_plugin_scoreboard *tables;  /* VcpuTable * per vCPU */
    uint64_t block_mask;    /* memory: ~(block size - 1) */
    int address;
    int fields[3];          /* a memory access's key, key2, key3 */
    bool needs_hwaddr;      /* a field, or the address, is physical */
    bool needs_pc;          /* a field is the instruction's address */
} LhTally;

/* A memory access site whose keys need the instruction's address. */
typedef struct MemSite {
    LhTally *tally;
    uint64_t pc;
} MemSite;

/* An execution site: the key, from an entry or constant, and the block's pc. */
typedef struct Site {
    LhTally *tally;
    qemu_plugin_u64 key_entry;
    bool key_from_entry;
    uint64_t key;
    uint64_t pc;
} Site;

static uint64_t next_first;     /* atomic */

static inline Row *row_at(VcpuTable *t, uint32_t i)
{
    uint64_t j = (uint64_t)i + (1u << CHUNK0_BITS);
    int c = 63 - __builtin_clzll(j) - CHUNK0_BITS;

    return &t->chunks[c][j - ((uint64_t)1 << (c + CHUNK0_BITS))];
}

static inline uint32_t hash(uint64_t key, uint64_t key2, uint64_t key3)
{
    uint64_t h = key * 0x9e3779b97f4a7c15ull ^ (key2 + 0x632be59bd9b4e019ull) * 0xc2b2ae3d27d4eb4full
        ^ (key3 + 0x165667b19e3779f9ull) * 0x85ebca77c2b2ae63ull;

    return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

static void index_grow(VcpuTable *t)
{
    uint32_t size = t->index == NULL ? 1024 : (t->index_mask + 1) * 2;
    uint32_t *index = g_new0(uint32_t, size);

    for (uint32_t i = 0; i < t->n; i++) {
        Row *r = row_at(t, i);
        uint32_t h = hash(r->key, r->key2, r->key3) & (size - 1);
        while (index[h] != 0) {
            h = (h + 1) & (size - 1);
        }
        index[h] = i + 1;
    }
    g_free(t->index);
    t->index = index;
    t->index_mask = size - 1;
}

static Row *row_new(VcpuTable *t, const uint64_t keys[3], uint32_t *slot)
{
    uint32_t i = t->n;
    uint64_t j = (uint64_t)i + (1u << CHUNK0_BITS);
    int c = 63 - __builtin_clzll(j) - CHUNK0_BITS;

    if (t->chunks[c] == NULL) {
        t->chunks[c] = g_new(Row, (size_t)1 << (c + CHUNK0_BITS));
    }
    Row *r = row_at(t, i);
    r->key = keys[0];
    r->key2 = keys[1];
    r->key3 = keys[2];
    r->count = 0;
    r->first = __atomic_fetch_add(&next_first, 1, __ATOMIC_RELAXED);
    *slot = i + 1;
    __atomic_store_n(&t->n, i + 1, __ATOMIC_RELEASE);
    if ((uint64_t)t->n * 2 > t->index_mask) {
        index_grow(t);
    }
    return r;
}

/* Called on the vCPU's own thread only. */
static void count(LhTally *tally, unsigned int vcpu, const uint64_t keys[3], uint64_t n)
{
    VcpuTable **tp = qemu_plugin_scoreboard_find(tally->tables, vcpu);
    VcpuTable *t = *tp;
    Row *r;

    if (G_UNLIKELY(t == NULL)) {
        t = g_new0(VcpuTable, 1);
        index_grow(t);
        __atomic_store_n(tp, t, __ATOMIC_RELEASE);
    }
    r = t->last;
    if (r == NULL || r->key != keys[0] || r->key2 != keys[1] || r->key3 != keys[2]) {
        uint32_t h = hash(keys[0], keys[1], keys[2]) & t->index_mask;
        for (;;) {
            uint32_t at = t->index[h];
            if (at == 0) {
                r = row_new(t, keys, &t->index[h]);
                break;
            }
            r = row_at(t, at - 1);
            if (r->key == keys[0] && r->key2 == keys[1] && r->key3 == keys[2]) {
                break;
            }
            h = (h + 1) & t->index_mask;
        }
        t->last = r;
    }
    __atomic_store_n(&r->count, r->count + n, __ATOMIC_RELAXED);
}

/* Counts an access under its keys; hw is its hwaddr when the tally needs one. */
static void G_GNUC_NO_INLINE count_mem(LhTally *tally, unsigned int vcpu, qemu_plugin_meminfo_t info,
                                       uint64_t vaddr, struct qemu_plugin_hwaddr *hw, uint64_t pc)
{
    uint64_t addr = vaddr, paddr = vaddr, keys[3];
    uint16_t device = 0;    /* as the streams': 0 none (user mode), 1 RAM */

    if (hw != NULL) {
        bool io = qemu_plugin_hwaddr_is_io(hw);
        paddr = qemu_plugin_hwaddr_phys_addr(hw);
        device = io ? lh_device_index(qemu_plugin_hwaddr_device_name(hw)) : 1;
        if (tally->address == ADDR_PHYSICAL && !io) {
            addr = paddr;
        }
    }
    for (int i = 0; i < 3; i++) {
        switch (tally->fields[i]) {
        case FIELD_ADDRESS: keys[i] = addr & tally->block_mask; break;
        case FIELD_KIND: keys[i] = qemu_plugin_mem_is_store(info) ? KIND_STORE : KIND_LOAD; break;
        case FIELD_DEVICE: keys[i] = device; break;
        case FIELD_PADDR: keys[i] = paddr; break;
        case FIELD_PC: keys[i] = pc; break;
        case FIELD_BASE: keys[i] = vaddr - paddr; break;
        default: keys[i] = 0; break;
        }
    }
    count(tally, vcpu, keys, 1);
}

/*
 * The access's hwaddr, if the tally needs one; false for a RAM access to a
 * device tally, found as soon as a C plugin's callback would: most
 * accesses end here, so count_mem is called apart.
 */
static inline bool wanted(LhTally *tally, qemu_plugin_meminfo_t info, uint64_t vaddr,
                          struct qemu_plugin_hwaddr **hw)
{
    *hw = NULL;
    if (!tally->needs_hwaddr) {
        return true;
    }
    *hw = qemu_plugin_get_hwaddr(info, vaddr);
    return tally->address != ADDR_DEVICE || (*hw != NULL && qemu_plugin_hwaddr_is_io(*hw));
}

static void on_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    LhTally *tally = udata;
    struct qemu_plugin_hwaddr *hw;

    lh_tsan_received(tally);
    if (wanted(tally, info, vaddr, &hw)) {
        count_mem(tally, vcpu, info, vaddr, hw, 0);
    }
}

static void on_mem_at(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    MemSite *site = udata;
    struct qemu_plugin_hwaddr *hw;

    lh_tsan_received(site);
    if (wanted(site->tally, info, vaddr, &hw)) {
        count_mem(site->tally, vcpu, info, vaddr, hw, site->pc);
    }
}

static void on_exec(unsigned int vcpu, void *udata)
{
    Site *site = udata;

    lh_tsan_received(site);
    uint64_t keys[3] = { site->key_from_entry ? qemu_plugin_u64_get(site->key_entry, vcpu) : site->key,
                         site->pc, 0 };
    count(site->tally, vcpu, keys, 1);
}

static LhTally *check_tally(lua_State *L)
{
    return lh_check_box(L, 1, LH_TALLY_MT);
}

/* tally:mem(insn [, rw]): count each of insn's accesses. */
static int tally_mem(lua_State *L)
{
    LhTally *tally = check_tally(L);
    struct qemu_plugin_insn *insn = lh_check_handle(L, 2, LH_INSN_MT, "an insn");
    enum qemu_plugin_mem_rw rw = lh_check_rw(L, 3);

    if (tally->needs_pc) {
        MemSite *site = lh_new_until_flush(sizeof(*site));  /* QEMU holds it in its TBs */
        site->tally = tally;
        site->pc = qemu_plugin_insn_vaddr(insn);
        lh_tsan_publish(site);
        qemu_plugin_register_vcpu_mem_cb(insn, on_mem_at, QEMU_PLUGIN_CB_NO_REGS, rw, site);
    } else {
        qemu_plugin_register_vcpu_mem_cb(insn, on_mem, QEMU_PLUGIN_CB_NO_REGS, rw, tally);
    }
    return 0;
}

/*
 * tally:exec(tb, key [, entry, cond, imm]): count (key, the block's pc)
 * each time the block runs (and the vCPU's slot of entry compares to imm
 * as cond says); key is a number or a scoreboard entry read then.
 */
static int tally_exec(lua_State *L)
{
    LhTally *tally = check_tally(L);
    struct qemu_plugin_tb *tb = lh_check_handle(L, 2, LH_TB_MT, "a tb");
    Site site = { .tally = tally, .pc = qemu_plugin_tb_vaddr(tb) };

    site.key_from_entry = lh_test_entry(L, 3, &site.key_entry);
    if (!site.key_from_entry) {
        site.key = lh_check_u64(L, 3);
    }
    bool conditional = !lua_isnoneornil(L, 4);
    qemu_plugin_u64 entry = { 0 };
    enum qemu_plugin_cond cond = QEMU_PLUGIN_COND_ALWAYS;
    uint64_t imm = 0;
    if (conditional) {
        entry = lh_check_entry(L, 4);
        cond = lh_check_cond(L, 5);
        imm = lh_check_u64(L, 6);
    }
    Site *copy = memcpy(lh_new_until_flush(sizeof(site)), &site, sizeof(site));   /* QEMU holds it */
    lh_tsan_publish(copy);
    if (conditional) {
        qemu_plugin_register_vcpu_tb_exec_cond_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, cond, entry, imm, copy);
    } else {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, copy);
    }
    return 0;
}

/* tally:add(vcpu, key, key2 [, n]): from a callback of that vCPU. */
static int tally_add(lua_State *L)
{
    LhTally *tally = check_tally(L);
    lua_Integer vcpu = luaL_checkinteger(L, 2);
    uint64_t key = lh_check_u64(L, 3);
    uint64_t key2 = lh_check_u64(L, 4);
    uint64_t n = lua_isnoneornil(L, 5) ? 1 : lh_check_u64(L, 5);
    uint64_t keys[3] = { key, key2, 0 };

    if (vcpu != lh_thread()->ctx.vcpu) {
        return lh_error(L, "tally:add(%d, ...) must be called from a callback of vCPU %d (a vCPU's "
                           "table is written by its own thread only), not from %s",
                        (int)vcpu, (int)vcpu, lh_thread()->ctx.what);
    }
    count(tally, (unsigned int)vcpu, keys, n);
    return 0;
}

typedef struct Copied {
    Row row;
    int vcpu;
} Copied;

static int by_first(const void *a, const void *b)
{
    uint64_t fa = ((const Copied *)a)->row.first, fb = ((const Copied *)b)->row.first;

    return fa < fb ? -1 : fa > fb;
}

/* The rows published so far, of every vCPU, into a userdata on the stack. */
static Copied *copy_rows(lua_State *L, LhTally *tally, size_t *n_rows)
{
    int vcpus = qemu_plugin_num_vcpus();
    uint32_t *ns = lua_newuserdata(L, sizeof(uint32_t) * (vcpus > 0 ? vcpus : 1));
    VcpuTable **tables = lua_newuserdata(L, sizeof(VcpuTable *) * (vcpus > 0 ? vcpus : 1));
    size_t total = 0;

    for (int v = 0; v < vcpus; v++) {
        tables[v] = __atomic_load_n((VcpuTable **)qemu_plugin_scoreboard_find(tally->tables, v),
                                    __ATOMIC_ACQUIRE);
        ns[v] = tables[v] != NULL ? __atomic_load_n(&tables[v]->n, __ATOMIC_ACQUIRE) : 0;
        total += ns[v];
    }
    Copied *rows = lua_newuserdata(L, sizeof(Copied) * (total ? total : 1));
    size_t k = 0;
    for (int v = 0; v < vcpus; v++) {
        for (uint32_t i = 0; i < ns[v]; i++) {
            Row *r = row_at(tables[v], i);
            rows[k].row.key = r->key;
            rows[k].row.key2 = r->key2;
            rows[k].row.key3 = r->key3;
            rows[k].row.first = r->first;
            rows[k].row.count = __atomic_load_n(&r->count, __ATOMIC_RELAXED);
            rows[k].vcpu = v;
            k++;
        }
    }
    qsort(rows, total, sizeof(Copied), by_first);
    *n_rows = total;
    return rows;
}

/*
 * tally:rows(): columns { vcpu, key, key2, key3, count, first } and n, one
 * row per vCPU and keys, in the order the keys were first counted (first:
 * that order's number, over all tallies). Keys of 2^53
 * or more are interned cdata under LuaJIT (lua/compat.lua): one value,
 * one object, however many rows it comes in.
 */
static int tally_rows(lua_State *L)
{
    LhTally *tally = check_tally(L);
    size_t n;
    Copied *rows = copy_rows(L, tally, &n);
    int copy = lua_gettop(L);

    luaL_argcheck(L, n <= INT32_MAX, 1, "too many rows");
    lua_createtable(L, 0, 7);
    const char *names[] = { "vcpu", "key", "key2", "key3", "count", "first" };
    for (int column = 0; column < 6; column++) {
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            switch (column) {
            case 0:
                lua_pushinteger(L, rows[i].vcpu);
                break;
            case 1:
                lh_push_u64(L, rows[i].row.key);
                break;
            case 2:
                lh_push_u64(L, rows[i].row.key2);
                break;
            case 3:
                lh_push_u64(L, rows[i].row.key3);
                break;
            case 4:
                lh_push_u64(L, rows[i].row.count);
                break;
            default:
                lh_push_u64(L, rows[i].row.first);
                break;
            }
            lua_rawseti(L, -2, (int)i + 1);
        }
        lua_setfield(L, -2, names[column]);
    }
    lua_pushinteger(L, (lua_Integer)n);
    lua_setfield(L, -2, "n");
    lua_remove(L, copy);
    return 1;
}

static int tally_tostring(lua_State *L)
{
    check_tally(L);
    lua_pushliteral(L, "tally");
    return 1;
}

/*
 * raw.tally_new(address, block, key, key2, key3): a tally; address
 * "virtual", "physical" or "device", block a power of two, the keys what a
 * memory access is counted under (FIELD_*, named below). Tallies live as
 * long as the plugin: QEMU keeps them in translated code.
 */
static int tally_new(lua_State *L)
{
    static const char *const addresses[] = { "virtual", "physical", "device", NULL };
    static const char *const fields[] = { "none", "address", "kind", "device", "paddr", "pc", "base", NULL };
    int address = luaL_checkoption(L, 1, NULL, addresses);
    uint64_t block = lh_check_u64(L, 2);
    int keys[3];
    LhTally *tally;

    luaL_argcheck(L, block != 0 && (block & (block - 1)) == 0, 2, "block must be a power of two");
    for (int i = 0; i < 3; i++) {
        keys[i] = luaL_checkoption(L, 3 + i, NULL, fields);
    }
    tally = g_new0(LhTally, 1);
    tally->address = address;
    tally->block_mask = ~(block - 1);
    tally->needs_hwaddr = address != ADDR_VIRTUAL;
    for (int i = 0; i < 3; i++) {
        tally->fields[i] = keys[i];
        tally->needs_hwaddr |= keys[i] == FIELD_DEVICE || keys[i] == FIELD_PADDR || keys[i] == FIELD_BASE;
        tally->needs_pc |= keys[i] == FIELD_PC;
    }
    int depth = lh_release();   /* QEMU's plugin lock (docs/threading.md) */
    tally->tables = qemu_plugin_scoreboard_new(sizeof(VcpuTable *));
    lh_reacquire(depth);
    lh_tsan_publish(tally);
    lh_push_box(L, tally, LH_TALLY_MT);
    return 1;
}

static const luaL_Reg tally_methods[] = {
    { "mem", tally_mem },
    { "exec", tally_exec },
    { "add", tally_add },
    { "rows", tally_rows },
    { NULL, NULL },
};

static const luaL_Reg tally_meta[] = {
    { "__tostring", tally_tostring },
    { NULL, NULL },
};

static const luaL_Reg tally_functions[] = {
    { "tally_new", tally_new },
    { NULL, NULL },
};

void lh_open_tally(lua_State *L, int raw)
{
    lh_new_type(L, LH_TALLY_MT, tally_methods, tally_meta);
    lh_set_functions(L, raw, tally_functions);
}
