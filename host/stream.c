/*
 * luahost: event streams ("luahost.stream").
 *
 * A stream records block executions, instruction executions and memory
 * accesses into per-vCPU column buffers from C callbacks that never enter
 * Lua nor take the lock, and hands each buffer to the script's on_batch
 * function when it is full, when its vCPU exits, at exit (before the exit
 * hooks) and on a reset or uninstall. Events of one vCPU arrive in the
 * order they happened; batches of different vCPUs interleave.
 *
 * Columns, not records: Lua 5.4 copies only the columns a script reads
 * into reused tables (lua/stream.lua), LuaJIT reads them in place through
 * FFI pointers, which stay valid because a buffer never moves.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "luahost.h"

enum { KIND_TB, KIND_INSN, KIND_LOAD, KIND_STORE };

/* Column names, in the order of the LhColumn enum (and of docs/api.md). */
static const char *const column_names[] = {
    "kind", "size", "id", "pc", "addr", "value", "value_high", "paddr", "device", NULL,
};
enum LhColumn { COL_KIND, COL_SIZE, COL_ID, COL_PC, COL_ADDR, COL_VALUE, COL_VALUE_HIGH,
                COL_PADDR, COL_DEVICE, COL_COUNT };

/* coalesce: the block a vCPU touched last in one set of blocks. */
typedef struct LhLastBlock {
    uint64_t block;
    bool seen;
} LhLastBlock;

/* One vCPU's buffer: allocated on the vCPU's first event, never moved. */
typedef struct LhStreamBuf {
    uint32_t n;             /* events in it */
    uint32_t gen;           /* bumped when a delivery ends: batch liveness */
    bool delivering;        /* its on_batch is running */
    LhLastBlock *last_exec, *last_mem;  /* coalesce: one per set */
    uint64_t coalesced_exec, coalesced_mem;
    uint8_t *kind;
    uint16_t *size;
    uint16_t *device;       /* physical: 0 none, 1 RAM, else a device name */
    uint32_t *id;           /* 32 bits: LuaJIT reads it as a plain number */
    uint64_t *pc;
    uint64_t *addr;
    uint64_t *value;        /* values: the low 64 bits ... */
    uint64_t *value_high;   /* ... and the high ones of 16-byte accesses */
    uint64_t *paddr;
} LhStreamBuf;

/*
 * coalesce = { exec|mem = block size, exec_sets|mem_sets = sets }: an
 * event in the block its vCPU touched last among the blocks of its set
 * (block number modulo sets) is counted, not recorded. To a cache model
 * of that geometry it is a hit on its set's most recent block: a hit that
 * changes nothing under LRU, FIFO or random replacement.
 */
typedef struct LhCoalesce {
    uint64_t mask;          /* ~(block size - 1), or 0: off */
    unsigned int shift;     /* log2(block size) */
    uint32_t sets;          /* 1 to LH_MAX_COALESCE_SETS */
} LhCoalesce;

enum { LH_MAX_COALESCE_SETS = 65536 };

typedef struct LhStream {
    struct qemu_plugin_scoreboard *bufs;    /* LhStreamBuf * per vCPU */
    LhHook *on_batch;
    int *disabled;          /* on_batch's, read on every event */
    uint32_t capacity;
    bool values;
    bool physical;
    bool devices_only;      /* physical = "devices": RAM accesses are not recorded */
    LhCoalesce exec_coalesce, mem_coalesce;
    qemu_plugin_u64 merged; /* stream:insns' fetches counted inline, per vCPU */
    GHashTable *ids;        /* stream:insns: instruction address -> id */
    GArray *insns;          /* stream:insns: LhStreamInsn by id - 1 */
} LhStream;

/*
 * What stream:insn(id) gives of an instruction stream:insns numbered: as
 * it was at its first translation, for a report made after its code may
 * be gone. The symbol is QEMU's, kept by pointer as cache.c keeps it:
 * QEMU never frees its symbol tables.
 */
typedef struct LhStreamInsn {
    uint64_t key;           /* the address it is numbered by */
    uint64_t vaddr;
    const char *symbol;     /* or NULL */
    uint32_t size;          /* its bytes: */
    union {
        uint8_t here[16];   /* up to 16 (x86: 15; a Hexagon packet: 16) */
        uint8_t *there;     /* else allocated */
    } data;
} LhStreamInsn;

static const uint8_t *kept_data(const LhStreamInsn *kept)
{
    return kept->size <= sizeof(kept->data.here) ? kept->data.here : kept->data.there;
}

/* One registration: what every event it records shares. */
typedef struct LhSite {
    LhStream *stream;
    uint64_t pc;
    uint32_t id;
    uint16_t size;
    uint8_t kind;
} LhSite;

/* Every stream, for the flushes at vCPU exit, exit, reset and uninstall. */
static GPtrArray *streams;
static int deliver_ref = LUA_NOREF;     /* lua/stream.lua's delivery function */
static uint64_t batches_delivered, events_delivered;

/* Device names (system mode), interned: index 1 is "RAM". */
static GPtrArray *device_names;
static GMutex device_lock;

/*
 * The number of a device name, interned (tally.c keys by it too). QEMU
 * interns its names, so each vCPU thread remembers its last one: a device
 * accessed in a run takes no lock.
 */
uint16_t lh_device_index(const char *name)
{
    static __thread const char *last_name;
    static __thread uint16_t last_index;
    uint16_t index = 0;

    if (name == last_name && last_index != 0) {
        return last_index;
    }
    g_mutex_lock(&device_lock);
    for (guint i = 0; i < device_names->len; i++) {
        if (strcmp(g_ptr_array_index(device_names, i), name) == 0) {
            index = (uint16_t)(i + 1);
            break;
        }
    }
    if (index == 0 && device_names->len < UINT16_MAX) {
        g_ptr_array_add(device_names, g_strdup(name));
        index = (uint16_t)device_names->len;
    }
    g_mutex_unlock(&device_lock);
    last_name = name;
    last_index = index;
    return index;
}

static LhStreamBuf *buf_new(LhStream *s)
{
    LhStreamBuf *b = g_new0(LhStreamBuf, 1);
    size_t cap = s->capacity;

    b->kind = g_new(uint8_t, cap);
    b->size = g_new(uint16_t, cap);
    b->id = g_new(uint32_t, cap);
    b->pc = g_new(uint64_t, cap);
    b->addr = g_new(uint64_t, cap);
    if (s->exec_coalesce.mask != 0) {
        b->last_exec = g_new0(LhLastBlock, s->exec_coalesce.sets);
    }
    if (s->mem_coalesce.mask != 0) {
        b->last_mem = g_new0(LhLastBlock, s->mem_coalesce.sets);
    }
    if (s->values) {
        b->value = g_new(uint64_t, cap);
        b->value_high = g_new(uint64_t, cap);
    }
    if (s->physical) {
        b->paddr = g_new(uint64_t, cap);
        b->device = g_new(uint16_t, cap);
    }
    return b;
}

static inline LhStreamBuf *buf_of(LhStream *s, unsigned int vcpu)
{
    LhStreamBuf **slot = qemu_plugin_scoreboard_find(s->bufs, vcpu);

    if (G_UNLIKELY(*slot == NULL)) {
        *slot = buf_new(s);
    }
    return *slot;
}

typedef struct LhBatch {
    unsigned int vcpu;
    LhStreamBuf *buf;
} LhBatch;

/* After lua/stream.lua's deliver function and on_batch: vcpu, buf, n, gen. */
static int push_batch(lua_State *L, const void *args)
{
    const LhBatch *batch = args;

    lua_pushinteger(L, batch->vcpu);
    lua_pushlightuserdata(L, batch->buf);
    lua_pushinteger(L, batch->buf->n);
    lua_pushinteger(L, batch->buf->gen);
    return 4;
}

/*
 * Hands b's events to on_batch through lua/stream.lua's deliver(fn,
 * vcpu, buf, n, gen), then empties b. vcpu_ctx is the scope's vCPU:
 * the vCPU itself when it filled up on its own thread, LH_NO_VCPU for
 * the flushes at vCPU exit and exit. The lock is held across, for the
 * buffer's state that stream_live reads from any thread.
 */
static void deliver(LhStream *s, LhStreamBuf *b, unsigned int vcpu, int vcpu_ctx)
{
    LhBatch batch = { vcpu, b };

    lh_lock();
    if (b->n > 0 && !b->delivering) {
        b->delivering = true;
        batches_delivered++;
        events_delivered += b->n;
        lh_dispatch(s->on_batch, vcpu_ctx, push_batch, &batch);
        b->n = 0;
        b->gen++;
        b->delivering = false;
    }
    lh_unlock();
}

static inline void full_check(LhSite *site, LhStreamBuf *b, unsigned int vcpu)
{
    if (G_UNLIKELY(++b->n == site->stream->capacity)) {
        deliver(site->stream, b, vcpu, (int)vcpu);
    }
}

/*
 * coalesce: whether addr's block is the one last touched in its set
 * (counted in *count, then, instead of recorded); else it becomes it.
 */
static inline bool coalesced(const LhCoalesce *c, LhLastBlock *last, uint64_t addr, uint64_t *count)
{
    uint64_t block = addr & c->mask;
    uint64_t number = block >> c->shift;
    uint64_t set = (c->sets & (c->sets - 1)) == 0 ? number & (c->sets - 1) : number % c->sets;
    LhLastBlock *l = &last[set];

    if (l->seen && l->block == block) {
        (*count)++;
        return true;
    }
    l->block = block;
    l->seen = true;
    return false;
}

static void record_exec(unsigned int vcpu, void *udata)
{
    LhSite *site = udata;

    lh_tsan_received(site);
    LhStream *s = site->stream;

    if (G_UNLIKELY(g_atomic_int_get(s->disabled))) {
        return;
    }
    LhStreamBuf *b = buf_of(s, vcpu);
    if (s->exec_coalesce.mask != 0
        && coalesced(&s->exec_coalesce, b->last_exec, site->pc, &b->coalesced_exec)) {
        return;
    }
    uint32_t i = b->n;

    b->kind[i] = site->kind;
    b->size[i] = site->size;
    b->id[i] = site->id;
    b->pc[i] = site->pc;
    b->addr[i] = site->pc;
    if (b->value != NULL) {
        b->value[i] = 0;
        b->value_high[i] = 0;
    }
    if (b->paddr != NULL) {
        b->paddr[i] = 0;
        b->device[i] = 0;
    }
    full_check(site, b, vcpu);
}

static void record_value(LhStreamBuf *b, uint32_t i, qemu_plugin_meminfo_t info)
{
    qemu_plugin_mem_value v = qemu_plugin_mem_get_value(info);

    b->value_high[i] = 0;
    switch (v.type) {
    case QEMU_PLUGIN_MEM_VALUE_U8:
        b->value[i] = v.data.u8;
        break;
    case QEMU_PLUGIN_MEM_VALUE_U16:
        b->value[i] = v.data.u16;
        break;
    case QEMU_PLUGIN_MEM_VALUE_U32:
        b->value[i] = v.data.u32;
        break;
    case QEMU_PLUGIN_MEM_VALUE_U64:
        b->value[i] = v.data.u64;
        break;
    case QEMU_PLUGIN_MEM_VALUE_U128:
        b->value[i] = v.data.u128.low;
        b->value_high[i] = v.data.u128.high;
        break;
    default:
        b->value[i] = 0;
    }
}

/* The physical side of an access; without a hwaddr (user mode) device 0 and paddr = vaddr. */
typedef struct LhPhysical {
    uint64_t paddr;
    uint16_t device;
} LhPhysical;

/* Fills p (left as it is without a hwaddr); false for RAM when devices_only. */
static bool physical_of(qemu_plugin_meminfo_t info, uint64_t vaddr, bool devices_only, LhPhysical *p)
{
    struct qemu_plugin_hwaddr *hw = qemu_plugin_get_hwaddr(info, vaddr);
    bool io = hw != NULL && qemu_plugin_hwaddr_is_io(hw);

    if (devices_only && !io) {
        return false;
    }
    if (hw != NULL) {
        p->paddr = qemu_plugin_hwaddr_phys_addr(hw);
        p->device = io ? lh_device_index(qemu_plugin_hwaddr_device_name(hw)) : 1;
    }
    return true;
}

/*
 * coalesce for memory: by the physical address when the stream records
 * them. Device accesses are never coalesced, nor do they move a set's
 * last block.
 */
static bool coalesced_mem(LhStream *s, LhStreamBuf *b, uint64_t addr, uint16_t device)
{
    return device <= 1 && coalesced(&s->mem_coalesce, b->last_mem, addr, &b->coalesced_mem);
}

static void record_mem(unsigned int vcpu, qemu_plugin_meminfo_t info, uint64_t vaddr, void *udata)
{
    LhSite *site = udata;
    lh_tsan_received(site);
    LhStream *s = site->stream;
    LhPhysical phys = { vaddr, 0 };

    /* a RAM access in a stream of device accesses leaves first, as in hwprofile.c */
    if (s->physical && !physical_of(info, vaddr, s->devices_only, &phys)) {
        return;
    }
    if (G_UNLIKELY(g_atomic_int_get(s->disabled))) {
        return;
    }
    LhStreamBuf *b = buf_of(s, vcpu);
    if (s->mem_coalesce.mask != 0 && coalesced_mem(s, b, phys.paddr, phys.device)) {
        return;
    }
    uint32_t i = b->n;

    b->kind[i] = qemu_plugin_mem_is_store(info) ? KIND_STORE : KIND_LOAD;
    b->size[i] = (uint16_t)(1u << qemu_plugin_mem_size_shift(info));
    b->id[i] = site->id;
    b->pc[i] = site->pc;
    b->addr[i] = vaddr;
    if (b->value != NULL) {
        record_value(b, i, info);
    }
    if (b->paddr != NULL) {
        b->paddr[i] = phys.paddr;
        b->device[i] = phys.device;
    }
    full_check(site, b, vcpu);
}

/* vcpu's buffer if it has recorded anything, else NULL (no vCPU of that index either). */
static LhStreamBuf *existing_buf(LhStream *s, lua_Integer vcpu)
{
    if (vcpu < 0 || vcpu >= qemu_plugin_num_vcpus()) {
        return NULL;
    }
    return *(LhStreamBuf **)qemu_plugin_scoreboard_find(s->bufs, (unsigned int)vcpu);
}

static LhStream *check_stream(lua_State *L)
{
    return lh_check_box(L, 1, LH_STREAM_MT);
}

static void site_init(LhSite *site, LhStream *s, uint64_t pc, uint32_t id, uint8_t kind, uint16_t size)
{
    site->stream = s;
    site->pc = pc;
    site->id = id;
    site->kind = kind;
    site->size = size;
    lh_tsan_publish(site);
}

/* The site's id: the argument at idx, 0 to 2^32 - 1, or 0. */
static LhSite *site_new(lua_State *L, LhStream *s, int id_idx, uint64_t pc, uint8_t kind, uint16_t size)
{
    lua_Number id = luaL_optnumber(L, id_idx, 0);
    LhSite *site;

    luaL_argcheck(L, id >= 0 && id <= UINT32_MAX && id == (lua_Number)(uint32_t)id, id_idx,
                  "id must be an integer from 0 to 2^32 - 1");
    site = lh_new_until_flush(sizeof(*site));   /* QEMU holds it in its TBs */
    site_init(site, s, pc, (uint32_t)id, kind, size);
    return site;
}

/* stream:exec(tb_or_insn [, id]): record each execution. */
static int stream_exec(lua_State *L)
{
    LhStream *s = check_stream(L);
    struct qemu_plugin_insn *insn;
    struct qemu_plugin_tb *tb;

    /* an insn first: most sites are per instruction */
    if ((insn = lh_test_handle(L, 2, LH_INSN_MT, "an insn")) != NULL) {
        LhSite *site = site_new(L, s, 3, qemu_plugin_insn_vaddr(insn), KIND_INSN,
                                (uint16_t)qemu_plugin_insn_size(insn));
        qemu_plugin_register_vcpu_insn_exec_cb(insn, record_exec, QEMU_PLUGIN_CB_NO_REGS, site);
    } else if ((tb = lh_test_handle(L, 2, LH_TB_MT, "a tb")) != NULL) {
        size_t n = qemu_plugin_tb_n_insns(tb);
        LhSite *site = site_new(L, s, 3, qemu_plugin_tb_vaddr(tb), KIND_TB,
                                (uint16_t)MIN(n, UINT16_MAX));
        qemu_plugin_register_vcpu_tb_exec_cb(tb, record_exec, QEMU_PLUGIN_CB_NO_REGS, site);
    } else {
        return luaL_typerror(L, 2, "tb or insn");
    }
    return 0;
}

/* stream:mem(insn [, id [, rw]]): record each of insn's memory accesses. */
static int stream_mem(lua_State *L)
{
    LhStream *s = check_stream(L);
    struct qemu_plugin_insn *insn = lh_check_handle(L, 2, LH_INSN_MT, "an insn");
    enum qemu_plugin_mem_rw rw = lh_check_rw(L, 4);
    LhSite *site = site_new(L, s, 3, qemu_plugin_insn_vaddr(insn), KIND_LOAD, 0);

    qemu_plugin_register_vcpu_mem_cb(insn, record_mem, QEMU_PLUGIN_CB_NO_REGS, rw, site);
    return 0;
}

/* stream:insns' iterator state: the instructions of tb it saw first, whose ids follow first. */
typedef struct LhNewInsns {
    uint32_t first, n;
    struct { uint32_t index; uint64_t key; } insn[];
} LhNewInsns;

/* The iterator over them: id, insn, key. Its tb handle must still be live. */
static int new_insns_next(lua_State *L)
{
    struct qemu_plugin_tb *tb = lh_live_handle(L, lua_upvalueindex(1), "a tb");
    LhNewInsns *seen = lua_touserdata(L, lua_upvalueindex(2));
    lua_Integer k = luaL_checkinteger(L, 2) + 1 - seen->first;

    if (k < 0 || k >= seen->n) {
        return 0;
    }
    lua_pushinteger(L, seen->first + k);
    lh_push_insn(L, qemu_plugin_tb_get_insn(tb, seen->insn[k].index));
    lh_push_u64(L, seen->insn[k].key);
    return 3;
}

/*
 * The id of insn, keyed at key: numbered from 1 when first seen (then
 * *is_new, and what stream:insn gives of it is kept).
 */
static uint32_t id_of(LhStream *s, struct qemu_plugin_insn *insn, uint64_t key, bool *is_new)
{
    gpointer found;

    if (s->ids == NULL) {
        s->ids = g_hash_table_new(g_direct_hash, g_direct_equal);
        s->insns = g_array_new(FALSE, FALSE, sizeof(LhStreamInsn));
    }
    found = g_hash_table_lookup(s->ids, (gpointer)(uintptr_t)key);
    *is_new = found == NULL && g_hash_table_size(s->ids) < UINT32_MAX - 1;
    if (*is_new) {
        LhStreamInsn kept = { .key = key, .vaddr = qemu_plugin_insn_vaddr(insn),
                              .symbol = qemu_plugin_insn_symbol(insn),
                              .size = (uint32_t)qemu_plugin_insn_size(insn) };
        uint8_t *dest = kept.data.here;

        if (kept.size > sizeof(kept.data.here)) {
            dest = kept.data.there = g_malloc(kept.size);
        }
        qemu_plugin_insn_data(insn, dest, kept.size);
        g_array_append_val(s->insns, kept);
        found = GUINT_TO_POINTER(g_hash_table_size(s->ids) + 1);
        g_hash_table_insert(s->ids, (gpointer)(uintptr_t)key, found);
    }
    return GPOINTER_TO_UINT(found);
}

/*
 * stream:insns(tb [, block]): stream:exec(insn, id) and stream:mem(insn,
 * id) for every instruction of tb in one call, with ids the stream gives:
 * one per instruction address (its host address in a physical stream, as
 * cache.c keys them), from 1 in the order first seen. Returns an iterator
 * (id, insn, address) over the instructions seen for the first time, so
 * that a script notes what it keeps of each once and a block translated
 * again runs no Lua per instruction. With block (a power of two), an
 * instruction in the same block of that many bytes as the one before it
 * in tb records no execution but counts one inline, in
 * stream:coalesced's: its fetch follows a fetch of the same block, a hit
 * that changes no cache.
 */
static int stream_insns(lua_State *L)
{
    LhStream *s = check_stream(L);
    struct qemu_plugin_tb *tb = lh_check_handle(L, 2, LH_TB_MT, "a tb");
    lua_Integer block = luaL_optinteger(L, 3, 0);
    size_t n = qemu_plugin_tb_n_insns(tb);
    LhNewInsns *seen;
    LhSite *sites;
    uint64_t prev_block = 0;

    luaL_argcheck(L, block >= 0 && (block & (block - 1)) == 0, 3, "block must be a power of two");
    lua_settop(L, 2);
    seen = lua_newuserdata(L, sizeof(*seen) + n * sizeof(seen->insn[0]));
    seen->first = s->ids != NULL ? g_hash_table_size(s->ids) + 1 : 1;
    seen->n = 0;
    sites = n > 0 ? lh_new_until_flush(n * sizeof(*sites)) : NULL;   /* QEMU holds them in its TBs */
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t vaddr = qemu_plugin_insn_vaddr(insn);
        uint64_t key = s->physical ? (uintptr_t)qemu_plugin_insn_haddr(insn) : vaddr;
        uint64_t key_block = block != 0 ? key / (uint64_t)block : 0;
        bool is_new;
        uint32_t id = id_of(s, insn, key, &is_new);
        LhSite *site = &sites[i];

        site_init(site, s, vaddr, id, KIND_INSN, (uint16_t)qemu_plugin_insn_size(insn));
        qemu_plugin_register_vcpu_mem_cb(insn, record_mem, QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_MEM_RW, site);
        if (block != 0 && i > 0 && key_block == prev_block) {
            qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(insn, QEMU_PLUGIN_INLINE_ADD_U64, s->merged, 1);
        } else {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, record_exec, QEMU_PLUGIN_CB_NO_REGS, site);
        }
        prev_block = key_block;
        if (is_new) {
            seen->insn[seen->n].index = (uint32_t)i;
            seen->insn[seen->n++].key = key;
        }
    }
    lua_pushcclosure(L, new_insns_next, 2);     /* upvalues: tb, seen */
    lua_pushnil(L);
    lua_pushinteger(L, (lua_Integer)seen->first - 1);
    return 3;
}

/*
 * stream:insn(id): the address stream:insns numbered the instruction by,
 * its bytes and QEMU's symbol for it (or nil), as at its first
 * translation, and its guest address.
 */
static int stream_insn(lua_State *L)
{
    LhStream *s = check_stream(L);
    lua_Integer id = luaL_checkinteger(L, 2);
    guint n = s->insns != NULL ? s->insns->len : 0;

    if (id < 1 || id > (lua_Integer)n) {
        return luaL_argerror(L, 2, lua_pushfstring(L, "not an id stream:insns gave (it numbered %d, from 1)",
                                                   (int)n));
    }
    const LhStreamInsn *kept = &g_array_index(s->insns, LhStreamInsn, id - 1);

    lh_push_u64(L, kept->key);
    lua_pushlstring(L, (const char *)kept_data(kept), kept->size);
    if (kept->symbol != NULL) {
        lua_pushstring(L, kept->symbol);
    } else {
        lua_pushnil(L);
    }
    lh_push_u64(L, kept->vaddr);
    return 4;
}

/* stream:numbered(): how many instructions stream:insns has numbered. */
static int stream_numbered(lua_State *L)
{
    LhStream *s = check_stream(L);

    lua_pushinteger(L, s->insns != NULL ? (lua_Integer)s->insns->len : 0);
    return 1;
}

/* stream:flush(): deliver the running vCPU's events now. */
static int stream_flush(lua_State *L)
{
    LhStream *s = check_stream(L);
    int vcpu = lh_thread()->ctx.vcpu;

    if (vcpu < 0) {
        return lh_error(L, "stream:flush() delivers the running vCPU's events: call it from "
                           "a callback with a vCPU index (execution, memory, syscall), not from %s",
                        lh_thread()->ctx.what);
    }
    LhStreamBuf *b = buf_of(s, (unsigned int)vcpu);
    if (b->delivering) {
        return lh_error(L, "stream:flush() called from this vCPU's own on_batch");
    }
    deliver(s, b, (unsigned int)vcpu, vcpu);
    return 0;
}

/*
 * stream:coalesced(vcpu): the events coalesce= counted and left out, exec
 * and mem; the executions stream:insns counted inline are with exec.
 */
static int stream_coalesced(lua_State *L)
{
    LhStream *s = check_stream(L);
    lua_Integer vcpu = luaL_checkinteger(L, 2);
    LhStreamBuf *b = existing_buf(s, vcpu);
    uint64_t merged = 0;

    if (vcpu >= 0 && vcpu < qemu_plugin_num_vcpus()) {
        merged = qemu_plugin_u64_get(s->merged, (unsigned int)vcpu);
    }
    lh_push_u64(L, (b != NULL ? b->coalesced_exec : 0) + merged);
    lh_push_u64(L, b != NULL ? b->coalesced_mem : 0);
    return 2;
}

static int stream_tostring(lua_State *L)
{
    LhStream *s = check_stream(L);

    lua_pushfstring(L, "stream (%d events per vCPU batch)", (int)s->capacity);
    return 1;
}

/* Coalescing: a block size at idx (0: off, or a power of two) and sets at sets_idx (default 1). */
static LhCoalesce check_coalesce(lua_State *L, int idx, int sets_idx)
{
    lua_Integer size = luaL_optinteger(L, idx, 0);
    lua_Integer sets = luaL_optinteger(L, sets_idx, 1);
    LhCoalesce c = { 0, 0, (uint32_t)sets };

    luaL_argcheck(L, size >= 0 && (size & (size - 1)) == 0, idx,
                  "a coalescing block size must be a power of two");
    luaL_argcheck(L, sets >= 1 && sets <= LH_MAX_COALESCE_SETS, sets_idx,
                  "coalescing sets must be from 1 to 65536");
    if (size != 0) {
        c.mask = ~(uint64_t)(size - 1);
        c.shift = (unsigned int)__builtin_ctzll((unsigned long long)size);
    }
    return c;
}

/*
 * raw.stream_new(on_batch, capacity, values, physical, exec_block,
 * mem_block, devices_only, exec_sets, mem_sets): a stream. Streams live as
 * long as the plugin: QEMU keeps their sites in translated code.
 */
static int stream_new(lua_State *L)
{
    lua_Integer capacity = luaL_checkinteger(L, 2);
    LhCoalesce exec_coalesce = check_coalesce(L, 5, 8);
    LhCoalesce mem_coalesce = check_coalesce(L, 6, 9);
    LhStream *s;

    luaL_argcheck(L, capacity >= 1 && capacity <= (1 << 24), 2, "capacity must be 1 to 2^24");
    s = g_new0(LhStream, 1);
    s->exec_coalesce = exec_coalesce;
    s->mem_coalesce = mem_coalesce;
    s->on_batch = lh_hook_new(L, 1, 0, "stream batch callback");
    s->on_batch->via_ref = deliver_ref;
    s->disabled = &s->on_batch->func->disabled;
    s->capacity = (uint32_t)capacity;
    s->values = lua_toboolean(L, 3);
    s->physical = lua_toboolean(L, 4);
    s->devices_only = lua_toboolean(L, 7);
    int depth = lh_release();   /* QEMU's plugin lock (docs/threading.md) */
    s->bufs = qemu_plugin_scoreboard_new(sizeof(LhStreamBuf *));
    s->merged.score = qemu_plugin_scoreboard_new(sizeof(uint64_t));
    lh_reacquire(depth);
    lh_push_box(L, s, LH_STREAM_MT);
    g_ptr_array_add(streams, s);
    return 1;
}

static int set_deliver(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    deliver_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static LhStreamBuf *check_buf(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
    return lua_touserdata(L, 1);
}

/* raw.stream_live(buf, gen): is the batch of this generation being delivered? */
static int stream_live(lua_State *L)
{
    LhStreamBuf *b = check_buf(L);

    lua_pushboolean(L, b->delivering && b->gen == (uint32_t)luaL_checkinteger(L, 2));
    return 1;
}

/* A column's data and the width of its elements in bytes. */
typedef struct LhColumnData {
    const void *data;
    size_t width;
} LhColumnData;

static LhColumnData column_of(LhStreamBuf *b, int col)
{
    switch (col) {
    case COL_KIND: return (LhColumnData){ b->kind, 1 };
    case COL_SIZE: return (LhColumnData){ b->size, 2 };
    case COL_DEVICE: return (LhColumnData){ b->device, 2 };
    case COL_ID: return (LhColumnData){ b->id, 4 };
    case COL_PC: return (LhColumnData){ b->pc, 8 };
    case COL_ADDR: return (LhColumnData){ b->addr, 8 };
    case COL_VALUE: return (LhColumnData){ b->value, 8 };
    case COL_VALUE_HIGH: return (LhColumnData){ b->value_high, 8 };
    case COL_PADDR: return (LhColumnData){ b->paddr, 8 };
    default: return (LhColumnData){ NULL, 0 };
    }
}

/* table[1..n] = the column's first n values; one loop per width (Lua 5.4's hot path). */
#define FILL(type, push)                                        \
    for (uint32_t i = 0; i < n; i++) {                          \
        push(L, ((const type *)c.data)[i]);                     \
        lua_rawseti(L, t, (lua_Integer)i + 1);                  \
    }

/*
 * table[1..n] = the column's values, and nil after n: a batch smaller than
 * the one before must not show the old one's values past batch.n.
 */
static void fill_table(lua_State *L, int t, LhColumnData c, uint32_t n)
{
    lua_Integer old_n = (lua_Integer)lh_rawlen(L, t);

    for (lua_Integer i = old_n; i > (lua_Integer)n; i--) {
        lua_pushnil(L);
        lua_rawseti(L, t, i);
    }
    switch (c.width) {
    case 1: FILL(uint8_t, lua_pushinteger); break;
    case 2: FILL(uint16_t, lua_pushinteger); break;
    case 4: FILL(uint32_t, lua_pushinteger); break;
    default: FILL(uint64_t, lh_push_u64); break;
    }
}
#undef FILL

/*
 * raw.stream_column(buf, name [, table]): the column's first element as a
 * light userdata (LuaJIT: lua/stream.lua casts it), or with a table (Lua
 * 5.4) the batch's values copied into table[1..n]. nil: not recorded.
 */
static int stream_column(lua_State *L)
{
    LhStreamBuf *b = check_buf(L);
    LhColumnData c = column_of(b, luaL_checkoption(L, 2, NULL, column_names));

    if (c.data == NULL) {
        lua_pushnil(L);
    } else if (lua_isnoneornil(L, 3)) {
        lua_pushlightuserdata(L, (void *)c.data);
    } else {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_settop(L, 3);
        fill_table(L, 3, c, b->n);
    }
    return 1;
}

/* raw.stream_device_name(k): the name of device index k, or nil. */
static int stream_device_name(lua_State *L)
{
    lua_Integer k = luaL_checkinteger(L, 1);
    const char *name = NULL;

    g_mutex_lock(&device_lock);     /* no Lua under it: the collector may run a finalizer */
    if (k >= 1 && k <= (lua_Integer)device_names->len) {
        name = g_ptr_array_index(device_names, k - 1);  /* names are never freed */
    }
    g_mutex_unlock(&device_lock);
    lua_pushstring(L, name);
    return 1;
}

/* Delivers what vcpu's buffers hold (at its exit: its index may be reused). */
static void flush_vcpu(int vcpu, const void *data)
{
    for (guint i = 0; i < streams->len; i++) {
        LhStream *s = g_ptr_array_index(streams, i);
        LhStreamBuf *b = existing_buf(s, vcpu);
        if (b != NULL) {
            deliver(s, b, (unsigned int)vcpu, LH_NO_VCPU);
        }
    }
}

/* Delivers everything still buffered, vCPU by vCPU: no vCPU runs now. */
void lh_streams_flush_all(void)
{
    int n = qemu_plugin_num_vcpus();

    for (int vcpu = 0; vcpu < n; vcpu++) {
        flush_vcpu(vcpu, NULL);
    }
}

static void flush_all_at_exit(int vcpu, const void *data)
{
    lh_streams_flush_all();
}

void lh_streams_stats(uint64_t *batches, uint64_t *events)
{
    *batches = batches_delivered;
    *events = events_delivered;
}

static const luaL_Reg stream_methods[] = {
    { "exec", stream_exec },
    { "mem", stream_mem },
    { "insns", stream_insns },
    { "insn", stream_insn },
    { "numbered", stream_numbered },
    { "flush", stream_flush },
    { "coalesced", stream_coalesced },
    { NULL, NULL },
};

static const luaL_Reg stream_meta[] = {
    { "__tostring", stream_tostring },
    { NULL, NULL },
};

static const luaL_Reg stream_functions[] = {
    { "stream_new", stream_new },
    { "stream_set_deliver", set_deliver },
    { "stream_live", stream_live },
    { "stream_column", stream_column },
    { "stream_device_name", stream_device_name },
    { NULL, NULL },
};

void lh_open_stream(lua_State *L, int raw)
{
    streams = g_ptr_array_new();
    lh_listen(LH_AT_VCPU_EXIT, flush_vcpu);
    lh_listen(LH_AT_EXIT, flush_all_at_exit);
    device_names = g_ptr_array_new();
    g_ptr_array_add(device_names, g_strdup("RAM"));
    lh_new_type(L, LH_STREAM_MT, stream_methods, stream_meta);
    lh_set_functions(L, raw, stream_functions);
}
