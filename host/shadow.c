/*
 * luahost: shadow memory ("luahost.shadow"): the stores of the watched
 * instructions mirrored byte by byte into regions of a power-of-two
 * size, each load compared with the mirror, counted per region, in C.
 *
 * A load that reads a byte other than the last one the shadow saw stored
 * there (0 where it saw none) read memory something unwatched wrote: a
 * device, the kernel in user mode, an instruction not watched. This is
 * the region summary of QEMU's tests/tcg/plugins/mem.c; in Lua it costs
 * a call per access. Here only the first such load of a region calls the
 * script (on_unseen), once. One lock for all vCPUs, as mem.c: loads are
 * checked against stores in the order the accesses took it.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "luahost.h"

static const char LH_SHADOW_MT[] = "luahost.shadow";

typedef struct Region {
    uint64_t base;
    uint64_t reads, writes;
    bool seen_all;          /* no load has read a byte it did not see stored */
    uint8_t data[];         /* the mirror: region_size bytes */
} Region;

typedef struct LhShadow {
    GMutex lock;
    GHashTable *regions;    /* base -> Region */
    uint64_t region_size;
    Region *last;           /* most accesses fall in the previous one's region */
    LhHook *on_unseen;      /* or NULL */
} LhShadow;

typedef struct Unseen {
    unsigned int vcpu;
    uint64_t base, offset;
} Unseen;

/* The region at base, made empty (all 0, seen_all) on first use. Under the lock. */
static Region *region_at(LhShadow *s, uint64_t base)
{
    if (s->last != NULL && s->last->base == base) {
        return s->last;
    }
    Region *r = g_hash_table_lookup(s->regions, &base);
    if (r == NULL) {
        r = g_malloc0(sizeof(Region) + s->region_size);
        r->base = base;
        r->seen_all = true;
        g_hash_table_insert(s->regions, &r->base, r);
    }
    s->last = r;
    return r;
}

/* The access's value, the low 64 bits; false for a 16-byte one, which is not mirrored. */
static bool value_of(qemu_plugin_meminfo_t info, uint64_t *value)
{
    qemu_plugin_mem_value v = qemu_plugin_mem_get_value(info);

    switch (v.type) {
    case QEMU_PLUGIN_MEM_VALUE_U8:
        *value = v.data.u8;
        return true;
    case QEMU_PLUGIN_MEM_VALUE_U16:
        *value = v.data.u16;
        return true;
    case QEMU_PLUGIN_MEM_VALUE_U32:
        *value = v.data.u32;
        return true;
    case QEMU_PLUGIN_MEM_VALUE_U64:
        *value = v.data.u64;
        return true;
    default:
        return false;
    }
}

/*
 * Mirror a store's bytes or compare a load's, in memory order; a byte
 * past the region goes to the next one (mem.c asserts instead). True
 * when a load read a byte the mirror does not hold. Under the lock.
 */
static bool mirror(LhShadow *s, Region *r, uint64_t offset, unsigned int size, uint64_t value,
                   bool big_endian, bool store)
{
    bool unseen = false;

    for (unsigned int i = 0; i < size; i++) {
        uint8_t byte = (uint8_t)(value >> (8 * i));
        uint64_t at = big_endian ? offset + size - 1 - i : offset + i;
        Region *in = r;

        if (at >= s->region_size) {
            in = region_at(s, r->base + s->region_size);
            at -= s->region_size;
        }
        if (store) {
            in->data[at] = byte;
        } else if (in->data[at] != byte) {
            unseen = true;
        }
    }
    s->last = r;
    return unseen;
}

static int push_unseen(lua_State *L, const void *args)
{
    const Unseen *u = args;

    lua_pushinteger(L, u->vcpu);
    lh_push_u64(L, u->base);
    lua_pushinteger(L, (lua_Integer)u->offset);
    return 3;
}

static void on_access(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    LhShadow *s = udata;
    lh_tsan_received(s);
    unsigned int size = 1u << qemu_plugin_mem_size_shift(info);
    bool store = qemu_plugin_mem_is_store(info);
    uint64_t offset = vaddr & (s->region_size - 1);
    uint64_t value = 0;
    bool mirrored = value_of(info, &value);
    bool big_endian = qemu_plugin_mem_is_big_endian(info);
    bool report = false;

    g_mutex_lock(&s->lock);
    Region *r = region_at(s, vaddr - offset);
    if (store) {
        r->writes++;
    } else {
        r->reads++;
    }
    if (mirrored && mirror(s, r, offset, size, value, big_endian, store) && r->seen_all) {
        r->seen_all = false;
        report = s->on_unseen != NULL;
    }
    g_mutex_unlock(&s->lock);
    if (report) {
        Unseen u = { vcpu, vaddr - offset, offset };
        lh_dispatch(s->on_unseen, (int)vcpu, push_unseen, &u);
    }
}

static LhShadow *check_shadow(lua_State *L)
{
    return lh_check_box(L, 1, LH_SHADOW_MT);
}

/* shadow:mem(insn [, rw]): mirror or check each access of insn of kind rw. */
static int shadow_mem(lua_State *L)
{
    LhShadow *s = check_shadow(L);
    struct qemu_plugin_insn *insn = lh_check_handle(L, 2, LH_INSN_MT, "an insn");
    enum qemu_plugin_mem_rw rw = lh_check_rw(L, 3);

    qemu_plugin_register_vcpu_mem_cb(insn, on_access, QEMU_PLUGIN_CB_NO_REGS, rw, s);
    return 0;
}

/* What shadow:regions() tells of a region. */
typedef struct RegionRow {
    uint64_t base, reads, writes;
    bool seen_all;
} RegionRow;

static int by_base(const void *a, const void *b)
{
    uint64_t x = ((const RegionRow *)a)->base, y = ((const RegionRow *)b)->base;

    return x < y ? -1 : x > y;
}

/*
 * shadow:regions(): every region accessed, lowest address first, each
 * { base, reads, writes, seen_all }: the counts as of now (vCPUs may be
 * running: they are copied under the lock).
 */
static int shadow_regions(lua_State *L)
{
    LhShadow *s = check_shadow(L);

    /* sized before the lock, in Lua's memory: a memory error leaks nothing, holds no lock */
    g_mutex_lock(&s->lock);
    guint n = g_hash_table_size(s->regions);
    g_mutex_unlock(&s->lock);
    RegionRow *rows = lua_newuserdata(L, (n ? n : 1) * sizeof(RegionRow));
    GHashTableIter it;
    gpointer value;
    guint i = 0;

    g_mutex_lock(&s->lock);
    g_hash_table_iter_init(&it, s->regions);
    while (i < n && g_hash_table_iter_next(&it, NULL, &value)) {
        const Region *r = value;
        rows[i++] = (RegionRow){ r->base, r->reads, r->writes, r->seen_all };
    }
    g_mutex_unlock(&s->lock);
    n = i;
    qsort(rows, n, sizeof(*rows), by_base);
    lua_createtable(L, (int)n, 0);
    for (i = 0; i < n; i++) {
        lua_createtable(L, 0, 4);
        lh_push_u64(L, rows[i].base);
        lua_setfield(L, -2, "base");
        lh_push_u64(L, rows[i].reads);
        lua_setfield(L, -2, "reads");
        lh_push_u64(L, rows[i].writes);
        lua_setfield(L, -2, "writes");
        lua_pushboolean(L, rows[i].seen_all);
        lua_setfield(L, -2, "seen_all");
        lua_rawseti(L, -2, (int)i + 1);
    }
    return 1;
}

static int shadow_tostring(lua_State *L)
{
    LhShadow *s = check_shadow(L);

    lua_pushfstring(L, "shadow (regions of %d bytes)", (int)s->region_size);
    return 1;
}

/*
 * raw.shadow_new(region_size, on_unseen or nil): a shadow. It lives as
 * long as the plugin: QEMU keeps it in translated code.
 */
static int shadow_new(lua_State *L)
{
    lua_Integer size = luaL_checkinteger(L, 1);

    luaL_argcheck(L, size >= 1 && size <= (1 << 30) && (size & (size - 1)) == 0, 1,
                  "region size must be a power of two from 1 to 2^30");
    LhShadow *s = g_new0(LhShadow, 1);
    g_mutex_init(&s->lock);
    s->regions = g_hash_table_new(g_int64_hash, g_int64_equal);
    s->region_size = (uint64_t)size;
    if (!lua_isnoneornil(L, 2)) {
        s->on_unseen = lh_hook_new(L, 2, 0, "shadow on_unseen callback");
    }
    lh_tsan_publish(s);
    lh_push_box(L, s, LH_SHADOW_MT);
    return 1;
}

static const luaL_Reg shadow_methods[] = {
    { "mem", shadow_mem },
    { "regions", shadow_regions },
    { NULL, NULL },
};

static const luaL_Reg shadow_meta[] = {
    { "__tostring", shadow_tostring },
    { NULL, NULL },
};

static const luaL_Reg shadow_functions[] = {
    { "shadow_new", shadow_new },
    { NULL, NULL },
};

void lh_open_shadow(lua_State *L, int raw)
{
    lh_new_type(L, LH_SHADOW_MT, shadow_methods, shadow_meta);
    lh_set_functions(L, raw, shadow_functions);
}
