/*
 * luahost: calls and returns followed by the frame pointer, as uftrace
 * records them ("luahost.fpcalls"), the mechanism under scripts/uftrace.lua.
 *
 * Lua chooses at translation time the instructions to watch (calls:watch:
 * each block's first, and each one after an instruction that names the
 * frame pointer) and which register is the frame pointer; at execution a
 * C callback reads it, with no Lua, and follows QEMU 10.2's uftrace.c:
 * the same frame pointer is the same function; the caller's, a return;
 * one whose frame record holds the current one, a call; anything else is
 * another stack (longjmp, a context switch): the vCPU leaves the whole
 * stack and enters the new one, unwound through the frame records in
 * guest memory (caller's fp, return address) up to a null fp or return
 * address, at most 1024 frames. A zero frame pointer on an empty stack
 * enters the pc as a function (code with no frame yet).
 *
 * Each call and return is a record in one of the vCPU's traces (Lua says
 * how many: one per privilege level, and which is current), as 16 bytes
 * of uftrace's <tid>.dat: the timestamp (CLOCK_REALTIME, ns: luahost.time_ns),
 * then kind | 0b101 << 3 | depth << 6 | pc << 16 (uftrace's
 * libmcount/record.c, and uftrace.c's sum: a depth past 1023 spills into
 * pc, as there). Built here: 2 M records on a Lua interpreter's run would
 * cost more in Lua than the whole C plugin. A trace's records go to Lua's
 * on_records(vcpu, trace, bytes) when it holds capacity of them, and to
 * calls:take at the end; the rest of uftrace.data is Lua's.
 *
 * Which trace is current is Lua's (calls:switch), but watching for a
 * change of privilege level at every block is the host's: the script
 * names bit fields of registers (level_fields) whose values decide the
 * level, calls:watch_level(insn) reads them in C before insn, and Lua's
 * on_level(vcpu, pc) runs only when one differs from that vCPU's last
 * reading (and at its first). A Lua call per block cost uftrace.lua's
 * trace-privilege-level=on about a fifth of the run.
 *
 * Each vCPU touches only its own state; calls:restart (at vCPU init),
 * take and entered (at exit) run when that vCPU does not.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>
#include <time.h>

#include "luahost.h"

#define UNWIND_MAX 1024
#define RECORD_BYTES 16
#define LEVEL_FIELDS_MAX 8

enum { RECORD_ENTRY = 0, RECORD_EXIT = 1, RECORD_MAGIC = 5 };

typedef struct FpVcpu {
    uint64_t *fps, *pcs;        /* the stack, outermost first */
    size_t n, cap;
    int trace;                  /* the current one, 0-based */
    GByteArray **records;       /* per trace: records not yet delivered */
    GByteArray *reg_buf, *mem_buf;
    GHashTable *entered;        /* pcs of every ENTRY record */
    uint64_t level[LEVEL_FIELDS_MAX];   /* the level fields as last read */
    bool level_read;            /* since the last restart */
} FpVcpu;

/* Bits shift .. shift + width - 1 of a register. */
typedef struct FpField {
    struct qemu_plugin_register *reg;
    int shift, width;
} FpField;

typedef struct LhFpcalls {
    struct qemu_plugin_register *fp;
    struct qemu_plugin_scoreboard *vcpus;   /* FpVcpu * per vCPU */
    LhHook *on_records;
    int n_traces;
    guint capacity;             /* bytes in a trace's buffer that make a delivery */
    FpField level_fields[LEVEL_FIELDS_MAX];
    int n_level_fields;
    LhHook *on_level;           /* or NULL: no level_fields */
} LhFpcalls;

/* One watched instruction. */
typedef struct FpSite {
    LhFpcalls *calls;
    uint64_t pc;
} FpSite;

static FpVcpu *vcpu_of(LhFpcalls *c, unsigned int vcpu)
{
    FpVcpu **slot = qemu_plugin_scoreboard_find(c->vcpus, vcpu);

    if (G_UNLIKELY(*slot == NULL)) {
        FpVcpu *v = g_new0(FpVcpu, 1);
        v->cap = 64;
        v->fps = g_new(uint64_t, v->cap);
        v->pcs = g_new(uint64_t, v->cap);
        v->records = g_new0(GByteArray *, c->n_traces);
        for (int i = 0; i < c->n_traces; i++) {
            v->records[i] = g_byte_array_new();
        }
        v->reg_buf = g_byte_array_new();
        v->mem_buf = g_byte_array_new();
        v->entered = g_hash_table_new(NULL, NULL);
        *slot = v;
    }
    return *slot;
}

static uint64_t le64(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = MIN(n, 8); i > 0; i--) {
        v = (v << 8) | p[i - 1];
    }
    return v;
}

/* 8 bytes of guest memory, little-endian (x86_64, aarch64); 0 if unreadable. */
static uint64_t read64(FpVcpu *v, uint64_t addr)
{
    g_byte_array_set_size(v->mem_buf, 0);
    if (!qemu_plugin_read_memory_vaddr(addr, v->mem_buf, 8) || v->mem_buf->len < 8) {
        return 0;
    }
    return le64(v->mem_buf->data, 8);
}

static uint64_t read_register(FpVcpu *v, struct qemu_plugin_register *reg)
{
    int n;

    g_byte_array_set_size(v->reg_buf, 0);
    n = lh_qemu_read_register(reg, v->reg_buf);
    return n > 0 ? le64(v->reg_buf->data, (size_t)n) : 0;
}

static uint64_t read_fp(LhFpcalls *c, FpVcpu *v)
{
    return read_register(v, c->fp);
}

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void add(FpVcpu *v, uint64_t ts, uint64_t pc, uint64_t depth, int kind)
{
    uint64_t word = (uint64_t)kind + (RECORD_MAGIC << 3) + (depth << 6) + (pc << 16);
    uint8_t rec[RECORD_BYTES];

    for (int i = 0; i < 8; i++) {
        rec[i] = (uint8_t)(ts >> (8 * i));
        rec[8 + i] = (uint8_t)(word >> (8 * i));
    }
    g_byte_array_append(v->records[v->trace], rec, RECORD_BYTES);
    if (kind == RECORD_ENTRY) {
        g_hash_table_add(v->entered, (gpointer)(uintptr_t)pc);
    }
}

static void push(FpVcpu *v, uint64_t fp, uint64_t pc)
{
    if (v->n == v->cap) {
        v->cap *= 2;
        v->fps = g_renew(uint64_t, v->fps, v->cap);
        v->pcs = g_renew(uint64_t, v->pcs, v->cap);
    }
    v->fps[v->n] = fp;
    v->pcs[v->n] = pc;
    v->n++;
}

static void enter_stack(FpVcpu *v, uint64_t ts)
{
    for (size_t depth = 1; depth <= v->n; depth++) {
        add(v, ts, v->pcs[depth - 1], depth, RECORD_ENTRY);
    }
}

static void exit_stack(FpVcpu *v, uint64_t ts)
{
    for (size_t depth = v->n; depth > 0; depth--) {
        add(v, ts, v->pcs[depth - 1], depth, RECORD_EXIT);
    }
}

/* The stack from fp and pc, as uftrace.c unwinds it (no loop check: its own does nothing). */
static void unwind(FpVcpu *v, uint64_t fp, uint64_t pc)
{
    uint64_t fps[UNWIND_MAX], pcs[UNWIND_MAX];
    size_t depth = 0;

    do {
        fps[depth] = fp;
        pcs[depth] = pc;
        depth++;
        if (fp != 0) {
            fp = read64(v, fp);
        }
        pc = fp != 0 ? read64(v, fp + 8) : 0;  /* at a null fp the loop ends: the read is moot */
    } while (fp != 0 && pc != 0 && depth < UNWIND_MAX);
    v->n = 0;
    while (depth > 0) {
        depth--;
        push(v, fps[depth], pcs[depth]);
    }
}

typedef struct FpBatch {
    unsigned int vcpu;
    int trace;
    GByteArray *bytes;
} FpBatch;

static int push_batch(lua_State *L, const void *args)
{
    const FpBatch *b = args;

    lua_pushinteger(L, b->vcpu);
    lua_pushinteger(L, b->trace + 1);
    lua_pushlstring(L, (const char *)b->bytes->data, b->bytes->len);
    return 3;
}

/* Hands the current trace's records to on_records once it holds capacity of them. */
static void deliver_if_full(LhFpcalls *c, FpVcpu *v, unsigned int vcpu)
{
    GByteArray *bytes = v->records[v->trace];

    if (G_LIKELY(bytes->len < c->capacity)) {
        return;
    }
    FpBatch batch = { vcpu, v->trace, bytes };
    /* emptied by Lua or not, these records are handed over once */
    v->records[v->trace] = g_byte_array_new();
    lh_dispatch(c->on_records, (int)vcpu, push_batch, &batch);
    g_byte_array_free(bytes, TRUE);
}

static void on_watched(unsigned int vcpu_index, void *udata)
{
    FpSite *site = udata;
    lh_tsan_received(site);
    LhFpcalls *c = site->calls;
    FpVcpu *v = vcpu_of(c, vcpu_index);
    uint64_t fp = read_fp(c, v);
    uint64_t pc = site->pc;
    size_t n = v->n;

    if (fp == 0 && n == 0) {
        /* no frame: the pc stands for the function until a real call */
        push(v, fp, pc);
        add(v, now_ns(), pc, 1, RECORD_ENTRY);
    } else {
        uint64_t top = n >= 1 ? v->fps[n - 1] : 0;
        if (G_LIKELY(fp == top)) {
            return;                                     /* the same function */
        }
        if (fp == (n >= 2 ? v->fps[n - 2] : 0)) {       /* a return */
            v->n = n - 1;
            add(v, now_ns(), v->pcs[n - 1], n - 1, RECORD_EXIT);
        } else if ((fp != 0 ? read64(v, fp) : 0) == top) {  /* a call */
            push(v, fp, pc);
            add(v, now_ns(), pc, n + 1, RECORD_ENTRY);
        } else {
            /* another stack (longjmp, a context switch): leave this one, enter that */
            uint64_t ts = now_ns();
            exit_stack(v, ts);
            unwind(v, fp, pc);
            enter_stack(v, ts);
        }
    }
    deliver_if_full(c, v, vcpu_index);
}

typedef struct FpLevelChange {
    unsigned int vcpu;
    uint64_t pc;
} FpLevelChange;

static int push_level_change(lua_State *L, const void *args)
{
    const FpLevelChange *change = args;

    lua_pushinteger(L, change->vcpu);
    lh_push_u64(L, change->pc);
    return 2;
}

/* Before a watched instruction: on_level if a level field changed. */
static void on_level_watched(unsigned int vcpu_index, void *udata)
{
    FpSite *site = udata;
    lh_tsan_received(site);
    LhFpcalls *c = site->calls;
    FpVcpu *v = vcpu_of(c, vcpu_index);
    bool changed = !v->level_read;
    struct qemu_plugin_register *last_reg = NULL;
    uint64_t reg_value = 0;

    for (int i = 0; i < c->n_level_fields; i++) {
        const FpField *f = &c->level_fields[i];
        if (f->reg != last_reg) {       /* fields of one register, read once */
            last_reg = f->reg;
            reg_value = read_register(v, f->reg);
        }
        uint64_t value = (reg_value >> f->shift) & (UINT64_MAX >> (64 - f->width));
        changed = changed || value != v->level[i];
        v->level[i] = value;
    }
    if (G_LIKELY(!changed)) {
        return;
    }
    v->level_read = true;
    FpLevelChange change = { vcpu_index, site->pc };
    lh_dispatch(c->on_level, (int)vcpu_index, push_level_change, &change);
}

static LhFpcalls *check_calls(lua_State *L)
{
    return lh_check_box(L, 1, LH_FPCALLS_MT);
}

static int check_trace(lua_State *L, LhFpcalls *c, int idx)
{
    lua_Integer trace = luaL_checkinteger(L, idx);

    luaL_argcheck(L, trace >= 1 && trace <= c->n_traces, idx, "no such trace");
    return (int)trace - 1;
}

static FpVcpu *check_vcpu(lua_State *L, LhFpcalls *c, int idx)
{
    lua_Integer vcpu = luaL_checkinteger(L, idx);

    luaL_argcheck(L, vcpu >= 0 && vcpu < qemu_plugin_num_vcpus(), idx, "no such vCPU");
    return vcpu_of(c, (unsigned int)vcpu);
}

static void watch_insn(lua_State *L, LhFpcalls *c, qemu_plugin_vcpu_udata_cb_t cb)
{
    struct qemu_plugin_insn *insn = lh_check_handle(L, 2, LH_INSN_MT, "an insn");
    FpSite *site = lh_new_until_flush(sizeof(*site));   /* QEMU holds it in the block */

    site->calls = c;
    site->pc = qemu_plugin_insn_vaddr(insn);
    lh_tsan_publish(site);
    qemu_plugin_register_vcpu_insn_exec_cb(insn, cb, QEMU_PLUGIN_CB_R_REGS, site);
}

/* calls:watch(insn): follow the frame pointer before insn runs. */
static int fpcalls_watch(lua_State *L)
{
    watch_insn(L, check_calls(L), on_watched);
    return 0;
}

/* calls:watch_level(insn): before insn runs, on_level if a level field changed. */
static int fpcalls_watch_level(lua_State *L)
{
    LhFpcalls *c = check_calls(L);

    if (c->on_level == NULL) {
        return lh_error(L, "calls:watch_level: this tracker was made without level_fields");
    }
    watch_insn(L, c, on_level_watched);
    return 0;
}

/*
 * calls:switch(trace, pc): the running vCPU moves to another trace (a
 * privilege level): it leaves its stack in the current trace and enters,
 * in trace, the stack unwound from its frame pointer and pc. In a
 * callback that may read registers.
 */
static int fpcalls_switch(lua_State *L)
{
    LhFpcalls *c = check_calls(L);
    int trace = check_trace(L, c, 2);
    uint64_t pc = lh_check_u64(L, 3);
    int vcpu = lh_thread()->ctx.vcpu;

    lh_check_vcpu_context(L, "fpcalls:switch");
    lh_check_regs_context(L, false);
    FpVcpu *v = vcpu_of(c, (unsigned int)vcpu);
    uint64_t ts = now_ns();
    exit_stack(v, ts);
    v->trace = trace;
    unwind(v, read_fp(c, v), pc);
    enter_stack(v, ts);
    return 0;
}

/*
 * calls:restart(vcpu, trace): vcpu starts over (QEMU gives its index to a
 * new thread): its stack empty, its records not yet delivered dropped,
 * trace current. At vCPU init.
 */
static int fpcalls_restart(lua_State *L)
{
    LhFpcalls *c = check_calls(L);
    FpVcpu *v = check_vcpu(L, c, 2);
    int trace = check_trace(L, c, 3);

    v->n = 0;
    v->trace = trace;
    v->level_read = false;
    for (int i = 0; i < c->n_traces; i++) {
        g_byte_array_set_size(v->records[i], 0);
    }
    return 0;
}

/* calls:take(vcpu, trace): the records not yet delivered, as bytes; then none. */
static int fpcalls_take(lua_State *L)
{
    LhFpcalls *c = check_calls(L);
    FpVcpu *v = check_vcpu(L, c, 2);
    int trace = check_trace(L, c, 3);
    GByteArray *bytes = v->records[trace];

    lua_pushlstring(L, (const char *)bytes->data, bytes->len);
    g_byte_array_set_size(bytes, 0);
    return 1;
}

/* calls:entered(): every pc an ENTRY record named, as a set { [pc] = true }. */
static int fpcalls_entered(lua_State *L)
{
    LhFpcalls *c = check_calls(L);
    GHashTable *all = g_hash_table_new(NULL, NULL);
    GHashTableIter iter;
    gpointer key;

    for (int vcpu = 0; vcpu < qemu_plugin_num_vcpus(); vcpu++) {
        FpVcpu *v = *(FpVcpu **)qemu_plugin_scoreboard_find(c->vcpus, (unsigned int)vcpu);
        if (v == NULL) {
            continue;
        }
        g_hash_table_iter_init(&iter, v->entered);
        while (g_hash_table_iter_next(&iter, &key, NULL)) {
            g_hash_table_add(all, key);
        }
    }
    lua_createtable(L, 0, (int)g_hash_table_size(all));
    g_hash_table_iter_init(&iter, all);
    while (g_hash_table_iter_next(&iter, &key, NULL)) {
        lh_push_u64(L, (uint64_t)(uintptr_t)key);
        lua_pushboolean(L, 1);
        lua_settable(L, -3);
    }
    g_hash_table_destroy(all);
    return 1;
}

static int fpcalls_tostring(lua_State *L)
{
    LhFpcalls *c = check_calls(L);

    lua_pushfstring(L, "fpcalls (%d traces per vCPU)", c->n_traces);
    return 1;
}

/* The level fields { { reg_handle, shift, width }, ... } at idx; how many. */
static int check_level_fields(lua_State *L, int idx, FpField *fields)
{
    int n = (int)lh_rawlen(L, idx);

    luaL_argcheck(L, n >= 1 && n <= LEVEL_FIELDS_MAX, idx, "1 to 8 level fields");
    for (int i = 0; i < n; i++) {
        FpField *f = &fields[i];
        lua_rawgeti(L, idx, i + 1);
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        lua_rawgeti(L, -3, 3);
        luaL_argcheck(L, lua_islightuserdata(L, -3), idx, "a level field's register");
        f->reg = lua_touserdata(L, -3);
        f->shift = (int)luaL_checkinteger(L, -2);
        f->width = (int)luaL_checkinteger(L, -1);
        luaL_argcheck(L, f->shift >= 0 && f->width >= 1 && f->shift + f->width <= 64, idx,
                      "a level field's bits must lie in 0 to 63");
        lua_pop(L, 4);
    }
    return n;
}

/*
 * raw.fpcalls_new(fp_handle, traces, capacity, on_records [, level_fields,
 * on_level]): a tracker, living until exit (QEMU keeps its sites in
 * translated code).
 */
static int fpcalls_new(lua_State *L)
{
    lua_Integer traces = luaL_checkinteger(L, 2);
    lua_Integer capacity = luaL_checkinteger(L, 3);
    FpField fields[LEVEL_FIELDS_MAX];
    int n_fields = 0;
    LhFpcalls *c;

    luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
    luaL_argcheck(L, traces >= 1 && traces <= 64, 2, "traces must be 1 to 64");
    luaL_argcheck(L, capacity >= 1 && capacity <= (1 << 24), 3, "capacity must be 1 to 2^24");
    if (!lua_isnoneornil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        luaL_checktype(L, 6, LUA_TFUNCTION);
        n_fields = check_level_fields(L, 5, fields);
    }
    c = g_new0(LhFpcalls, 1);
    c->fp = lua_touserdata(L, 1);
    c->n_traces = (int)traces;
    c->capacity = (guint)capacity * RECORD_BYTES;
    if (n_fields > 0) {
        memcpy(c->level_fields, fields, sizeof(fields));
        c->n_level_fields = n_fields;
        c->on_level = lh_hook_new(L, 6, 0, "fpcalls level callback");
        c->on_level->regs = QEMU_PLUGIN_CB_R_REGS;  /* it reads the level's registers */
    }
    c->on_records = lh_hook_new(L, 4, 0, "fpcalls records callback");
    int depth = lh_release();   /* QEMU's plugin lock (docs/threading.md) */
    c->vcpus = qemu_plugin_scoreboard_new(sizeof(FpVcpu *));
    lh_reacquire(depth);
    lh_push_box(L, c, LH_FPCALLS_MT);
    return 1;
}

static const luaL_Reg fpcalls_methods[] = {
    { "watch", fpcalls_watch },
    { "watch_level", fpcalls_watch_level },
    { "switch", fpcalls_switch },
    { "restart", fpcalls_restart },
    { "take", fpcalls_take },
    { "entered", fpcalls_entered },
    { NULL, NULL },
};

static const luaL_Reg fpcalls_meta[] = {
    { "__tostring", fpcalls_tostring },
    { NULL, NULL },
};

static const luaL_Reg fpcalls_functions[] = {
    { "fpcalls_new", fpcalls_new },
    { NULL, NULL },
};

void lh_open_fpcalls(lua_State *L, int raw)
{
    lh_new_type(L, LH_FPCALLS_MT, fpcalls_methods, fpcalls_meta);
    lh_set_functions(L, raw, fpcalls_functions);
}
