/*
 * luahost: shadow call stacks, the mechanism under stdlib/callstack.lua.
 *
 * Lua decides at translation time what each block is (cs:block(tb, kind,
 * ...): it ends in a call, a return or a jump, and whether it starts a
 * function); C follows every vCPU's calls and returns at execution, with
 * one callback per block and no Lua, and counts, in a calling-context
 * tree per vCPU, the calls of each context and the instructions executed
 * in it. A block's kind applies when the next block starts: a call
 * pushes a context for the block it reached, a return pops to the frame
 * whose return address it reached (a return that matches none, from
 * code entered before tracking began, pops nothing). A function entered
 * without a call (by a jump, or after a block that neither calls nor
 * jumps, as a signal handler is after a system call) is placed by the
 * stack pointer: entered as high in the stack as a call from the
 * innermost frame's caller left it, it replaces that frame (a tail
 * call); deeper, it runs on top of what it interrupted (a signal
 * handler), in a frame that the first return matching no frame pops
 * (the handler's own). A direct call that reaches another block than
 * its target had a signal come first: it is made when its target runs
 * with the stack pointer where the call left it (after sigreturn).
 * Frames left without a return (longjmp, C++
 * exceptions, a context switch in system mode) are found by the stack
 * pointer too, read at each call instruction and at those entries (the
 * one register read): a frame made by a call from as deep in the stack
 * as the new call, or deeper, is dead (a live caller called from higher
 * up: the return address, or on aarch64 the saved link register, is
 * below it). The stack grows down on every target here. The stack never
 * holds more than max_depth frames: past it, a call replaces the
 * innermost frame and is counted as truncated.
 *
 * Each vCPU touches only its own stack and tree; they are read at exit,
 * or by the vCPU itself (cs:frames() in its callbacks). When a vCPU
 * exits (a guest thread ends) its stack is emptied, its tree kept: the
 * next thread QEMU gives its index starts from nothing.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "luahost.h"

enum { KIND_NONE, KIND_CALL, KIND_RET, KIND_JUMP };

typedef struct CsNode {
    uint64_t pc;                /* the function's entry: the block the call reached */
    uint64_t calls;             /* calls into this context */
    uint64_t insns;             /* instructions executed in it, callees apart */
    struct CsNode *parent, *child, *sibling;
} CsNode;

typedef struct CsFrame {
    CsNode *node;               /* the context running in it (a tail call's, after one) */
    CsNode *called;             /* the context the call made */
    uint64_t ret_addr;          /* where its caller resumes; 0: entered without a call */
    uint64_t sp;                /* the caller's stack pointer when it called */
} CsFrame;

#define NODES_PER_CHUNK 4096

typedef struct CsVcpu {
    CsNode root;                /* code outside any call seen */
    CsNode *current;
    CsFrame *frames;
    int depth;
    bool running;               /* a block ran before this one */
    int pending;                /* the kind of the block before */
    uint64_t pending_ret;
    uint64_t pending_sp;
    uint64_t pending_target;    /* the block before is a direct call or jump: its target */
    uint64_t deferred_target;   /* a direct call a signal came before: made when its target runs */
    uint64_t deferred_ret;
    uint64_t deferred_sp;
    uint64_t truncated;         /* calls past max_depth */
    GByteArray *reg_buf;
    GPtrArray *chunks;          /* of CsNode[NODES_PER_CHUNK] */
    int used;                   /* in the last chunk */
    uint64_t n_nodes;
} CsVcpu;

typedef struct LhCallstack {
    int max_depth;
    int call_pushes;            /* bytes a call instruction pushes (its return address) */
    GMutex grow_lock;           /* vcpus grows when a new vCPU first runs */
    CsVcpu **vcpus;             /* read without the lock: atomic loads and stores */
    int n_vcpus;
} LhCallstack;

typedef struct CsBlock {
    LhCallstack *cs;
    uint64_t pc, ret_addr;
    uint64_t target;            /* a direct call's or jump's, 0 if not one */
    uint32_t insns;
    uint8_t kind;
    bool entry;                 /* the block starts a function */
} CsBlock;

static CsVcpu *vcpu_new(LhCallstack *cs)
{
    CsVcpu *v = g_new0(CsVcpu, 1);

    v->current = &v->root;
    v->frames = g_new0(CsFrame, cs->max_depth);
    v->chunks = g_ptr_array_new_with_free_func(g_free);
    v->reg_buf = g_byte_array_new();
    return v;
}

/* vcpu's state, made on its first block (other vCPUs read the array: copy, then publish). */
static CsVcpu *vcpu_of(LhCallstack *cs, unsigned int vcpu)
{
    if (G_LIKELY((int)vcpu < __atomic_load_n(&cs->n_vcpus, __ATOMIC_ACQUIRE))) {
        CsVcpu *v = __atomic_load_n(&cs->vcpus, __ATOMIC_ACQUIRE)[vcpu];
        if (G_LIKELY(v != NULL)) {
            return v;
        }
    }
    g_mutex_lock(&cs->grow_lock);
    if ((int)vcpu >= cs->n_vcpus) {
        int n = MAX((int)vcpu + 1, cs->n_vcpus * 2);
        CsVcpu **grown = g_new0(CsVcpu *, n);
        if (cs->n_vcpus > 0) {      /* the first table: nothing to copy, from NULL */
            memcpy(grown, (void *)cs->vcpus, sizeof(CsVcpu *) * cs->n_vcpus);
        }
        __atomic_store_n(&cs->vcpus, grown, __ATOMIC_RELEASE);  /* the old one is kept: read still */
        __atomic_store_n(&cs->n_vcpus, n, __ATOMIC_RELEASE);
    }
    if (cs->vcpus[vcpu] == NULL) {
        __atomic_store_n(&cs->vcpus[vcpu], vcpu_new(cs), __ATOMIC_RELEASE);
    }
    CsVcpu *v = cs->vcpus[vcpu];
    g_mutex_unlock(&cs->grow_lock);
    return v;
}

static CsNode *node_new(CsVcpu *v, CsNode *parent, uint64_t pc)
{
    if (v->chunks->len == 0 || v->used == NODES_PER_CHUNK) {
        g_ptr_array_add(v->chunks, g_new0(CsNode, NODES_PER_CHUNK));
        v->used = 0;
    }
    CsNode *n = (CsNode *)g_ptr_array_index(v->chunks, v->chunks->len - 1) + v->used++;
    n->pc = pc;
    n->parent = parent;
    n->sibling = parent->child;
    parent->child = n;
    v->n_nodes++;
    return n;
}

/* parent's child for the function at pc, made if new; found ones move to the front. */
static CsNode *child_of(CsVcpu *v, CsNode *parent, uint64_t pc)
{
    CsNode *prev = NULL;

    for (CsNode *n = parent->child; n != NULL; prev = n, n = n->sibling) {
        if (n->pc == pc) {
            if (prev != NULL) {
                prev->sibling = n->sibling;
                n->sibling = parent->child;
                parent->child = n;
            }
            return n;
        }
    }
    return node_new(v, parent, pc);
}

/* A frame for the function at pc, called by the current context. */
static void push(CsVcpu *v, uint64_t pc, uint64_t ret_addr, uint64_t sp)
{
    CsNode *n = child_of(v, v->current, pc);

    n->calls++;
    v->frames[v->depth].node = n;
    v->frames[v->depth].called = n;
    v->frames[v->depth].ret_addr = ret_addr;
    v->frames[v->depth].sp = sp;
    v->depth++;
    v->current = n;
}

/*
 * Pops the frames left without a return (longjmp, an exception): those
 * made by a call from deeper in the stack than sp, or (same_level_dead)
 * from as deep.
 */
static void pop_dead(CsVcpu *v, uint64_t sp, bool same_level_dead)
{
    while (v->depth > 0 && (v->frames[v->depth - 1].sp < sp ||
                            (same_level_dead && v->frames[v->depth - 1].sp == sp))) {
        v->depth--;
    }
    v->current = v->depth > 0 ? v->frames[v->depth - 1].node : &v->root;
}

/* Room for one more frame: past max_depth, the innermost frame gives way. */
static void make_room(LhCallstack *cs, CsVcpu *v)
{
    if (v->depth == cs->max_depth) {
        v->truncated++;
        v->depth--;
        v->current = v->depth > 0 ? v->frames[v->depth - 1].node : &v->root;
    }
}

static void call(LhCallstack *cs, CsVcpu *v, uint64_t pc, uint64_t ret_addr, uint64_t sp)
{
    pop_dead(v, sp, true);
    make_room(cs, v);
    push(v, pc, ret_addr, sp);
}

/*
 * A return to pc: pops to the frame it returns from. One that matches no
 * frame pops the innermost frame if that was entered without a call (a
 * signal handler returning to its trampoline); false if it popped nothing.
 */
static bool ret(CsVcpu *v, uint64_t pc)
{
    for (int k = v->depth - 1; k >= 0; k--) {
        if (v->frames[k].ret_addr == pc) {
            v->depth = k;
            v->current = k > 0 ? v->frames[k - 1].node : &v->root;
            return true;
        }
    }
    if (v->depth > 0 && v->frames[v->depth - 1].ret_addr == 0) {
        v->depth--;
        v->current = v->depth > 0 ? v->frames[v->depth - 1].node : &v->root;
        return true;
    }
    return false;
}

/*
 * A tail call: the function at pc runs in the innermost frame, called (in
 * the tree) by the one that jumped, as the source has it; a return pops
 * them both. A function already in the frame's chain of tail calls (f
 * and g jumping to each other) is that context again: the tree does not
 * grow with the number of jumps.
 */
static void tail_call(CsVcpu *v, uint64_t pc)
{
    CsFrame *f;

    if (v->depth == 0 || v->current->pc == pc) {
        return;
    }
    f = &v->frames[v->depth - 1];
    for (CsNode *n = f->node; n != f->called->parent; n = n->parent) {
        if (n->pc == pc) {
            f->node = v->current = n;
            return;
        }
    }
    CsNode *n = child_of(v, v->current, pc);
    n->calls++;
    f->node = v->current = n;
}

/* The stack pointer's register, found on first use (the same handle on every vCPU). */
static struct qemu_plugin_register *sp_register;
static gsize sp_found;

static struct qemu_plugin_register *find_sp(void)
{
    if (g_once_init_enter(&sp_found)) {
        GArray *regs = qemu_plugin_get_registers();
        for (guint i = 0; i < regs->len; i++) {
            qemu_plugin_reg_descriptor *d = &g_array_index(regs, qemu_plugin_reg_descriptor, i);
            if (strcmp(d->name, "rsp") == 0 || strcmp(d->name, "sp") == 0 || strcmp(d->name, "esp") == 0) {
                sp_register = d->handle;
                break;
            }
        }
        g_array_free(regs, TRUE);
        g_once_init_leave(&sp_found, 1);
    }
    return sp_register;
}

/* The vCPU's stack pointer, in a callback that may read registers; false if unknown. */
static bool read_sp(CsVcpu *v, uint64_t *sp)
{
    struct qemu_plugin_register *reg = find_sp();
    int n;

    if (reg == NULL) {
        return false;
    }
    g_byte_array_set_size(v->reg_buf, 0);
    n = lh_qemu_read_register(reg, v->reg_buf);
    if (n <= 0) {
        return false;
    }
    *sp = 0;
    memcpy(sp, v->reg_buf->data, MIN((size_t)n, sizeof(*sp)));     /* little-endian hosts */
    return true;
}

/*
 * The function at pc entered without a call: by a jump (jumped), or after
 * a block that does not jump (a signal handler, after a system call). sp
 * as a call to it would have been made from: as the innermost frame's,
 * a tail call from it; deeper, a frame on top of it, which no return
 * address leads out of; higher, the frames in between are dead. A jump
 * outside any frame stays outside.
 */
static void enter(LhCallstack *cs, CsVcpu *v, uint64_t pc, bool jumped)
{
    uint64_t sp;

    if (!read_sp(v, &sp)) {
        if (jumped) {
            tail_call(v, pc);
        }
        return;
    }
    sp += cs->call_pushes;
    pop_dead(v, sp, false);
    if (v->depth > 0 && v->frames[v->depth - 1].sp == sp) {
        tail_call(v, pc);
    } else if (!jumped || v->depth > 0) {
        make_room(cs, v);
        push(v, pc, 0, sp);
    }
}

/*
 * The target of a call a signal came before, run after the handler
 * returned (from sigreturn): the call is made now, if the stack pointer
 * is where the call left it.
 */
static bool resume_call(LhCallstack *cs, CsVcpu *v, uint64_t pc)
{
    uint64_t sp;

    if (!read_sp(v, &sp) || sp + cs->call_pushes != v->deferred_sp) {
        return false;
    }
    v->deferred_target = 0;
    call(cs, v, pc, v->deferred_ret, v->deferred_sp);
    return true;
}

/* Block b starts, after a block of kind v->pending. */
static void follow(CsBlock *b, CsVcpu *v)
{
    switch (v->pending) {
    case KIND_CALL:
        if (v->pending_target != 0 && b->pc != v->pending_target) {
            /* not where the call goes: a signal came first */
            v->deferred_target = v->pending_target;
            v->deferred_ret = v->pending_ret;
            v->deferred_sp = v->pending_sp;
            if (b->entry) {
                enter(b->cs, v, b->pc, false);
            }
        } else {
            call(b->cs, v, b->pc, v->pending_ret, v->pending_sp);
        }
        break;
    case KIND_RET:
        if (!ret(v, b->pc) && b->entry) {
            enter(b->cs, v, b->pc, false);      /* a signal came first */
        }
        break;
    case KIND_JUMP:
        if (b->entry && b->pc == v->pending_target) {
            tail_call(v, b->pc);        /* where the jump goes: no signal came between */
        } else if (b->entry) {
            enter(b->cs, v, b->pc, true);
        }
        break;
    default:
        if (b->entry && v->running) {
            enter(b->cs, v, b->pc, false);
        }
        break;
    }
}

static void on_block(unsigned int vcpu_index, void *udata)
{
    CsBlock *b = udata;
    lh_tsan_received(b);
    CsVcpu *v = vcpu_of(b->cs, vcpu_index);

    if (G_LIKELY(b->pc != v->deferred_target) || v->pending == KIND_CALL || !b->entry ||
        !resume_call(b->cs, v, b->pc)) {
        follow(b, v);
    }
    v->running = true;
    v->current->insns += b->insns;
    v->pending = b->kind;
    v->pending_ret = b->ret_addr;
    v->pending_target = b->target;
}

/* At a call instruction: the stack pointer the call is made from. */
static void on_call(unsigned int vcpu_index, void *udata)
{
    CsBlock *b = udata;
    lh_tsan_received(b);
    CsVcpu *v = vcpu_of(b->cs, vcpu_index);

    if (!read_sp(v, &v->pending_sp)) {
        v->pending_sp = 0;
    }
}

static GPtrArray *callstacks;      /* every one made: a vCPU's exit empties its stacks */

static void on_vcpu_exit(int vcpu, const void *data)
{
    for (guint i = 0; i < callstacks->len; i++) {
        LhCallstack *cs = g_ptr_array_index(callstacks, i);
        /* as vcpu_of reads them: another vCPU may be growing the array */
        if (vcpu < 0 || vcpu >= __atomic_load_n(&cs->n_vcpus, __ATOMIC_ACQUIRE)) {
            continue;
        }
        CsVcpu **vcpus = __atomic_load_n(&cs->vcpus, __ATOMIC_ACQUIRE);
        CsVcpu *v = __atomic_load_n(&vcpus[vcpu], __ATOMIC_ACQUIRE);
        if (v != NULL) {
            v->depth = 0;
            v->current = &v->root;
            v->pending = KIND_NONE;
            v->running = false;
            v->deferred_target = 0;
        }
    }
}

static LhCallstack *check_cs(lua_State *L)
{
    return lh_check_udata(L, 1, LH_CALLSTACK_MT);
}

/*
 * raw.callstack_new(max_depth [, call_pushes]): a callstack, living until
 * exit. call_pushes: the bytes a call instruction pushes (8 on x86_64, 4
 * on i386, 0 where it does not: aarch64).
 */
static int callstack_new(lua_State *L)
{
    lua_Integer max_depth = luaL_checkinteger(L, 1);
    lua_Integer call_pushes = luaL_optinteger(L, 2, 0);
    LhCallstack *cs;

    luaL_argcheck(L, max_depth >= 1 && max_depth <= 1 << 20, 1, "max_depth must be 1 to 2^20");
    luaL_argcheck(L, call_pushes >= 0 && call_pushes <= 64, 2, "call_pushes must be 0 to 64");
    cs = lua_newuserdata(L, sizeof(*cs));
    memset(cs, 0, sizeof(*cs));
    cs->max_depth = (int)max_depth;
    cs->call_pushes = (int)call_pushes;
    g_mutex_init(&cs->grow_lock);
    luaL_setmetatable(L, LH_CALLSTACK_MT);
    g_ptr_array_add(callstacks, cs);
    lua_pushvalue(L, -1);
    luaL_ref(L, LUA_REGISTRYINDEX);     /* its blocks point to it: it lives until exit */
    return 1;
}

/*
 * cs:block(tb, kind, entry [, ret_addr] [, target]): follow tb's
 * executions. kind: "call" (ret_addr: where the call returns), "ret",
 * "jump" or "none", of its last instruction; target: a direct call's or
 * jump's (nil for an indirect one); entry: the block starts a function.
 */
static int callstack_block(lua_State *L)
{
    static const char *const kinds[] = { "none", "call", "ret", "jump", NULL };
    LhCallstack *cs = check_cs(L);
    struct qemu_plugin_tb *tb = lh_check_handle(L, 2, LH_TB_MT, "a tb");
    int kind = luaL_checkoption(L, 3, NULL, kinds);
    uint64_t ret_addr = kind == KIND_CALL ? lh_check_u64(L, 5) : 0;
    uint64_t target = (kind == KIND_CALL || kind == KIND_JUMP) && !lua_isnoneornil(L, 6) ? lh_check_u64(L, 6) : 0;
    CsBlock *b = lh_new_until_flush(sizeof(*b));     /* QEMU holds it in the block */

    b->cs = cs;
    b->pc = qemu_plugin_tb_vaddr(tb);
    b->insns = (uint32_t)qemu_plugin_tb_n_insns(tb);
    b->kind = (uint8_t)kind;
    b->entry = lua_toboolean(L, 4);
    b->ret_addr = ret_addr;
    b->target = target;
    lh_tsan_publish(b);
    /* a function's start may read the stack pointer (enter): at a block's
       start nothing is held in host registers yet, so reading costs nothing more */
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, b->entry ? QEMU_PLUGIN_CB_R_REGS : QEMU_PLUGIN_CB_NO_REGS, b);
    if (kind == KIND_CALL) {
        struct qemu_plugin_insn *last = qemu_plugin_tb_get_insn(tb, b->insns - 1);
        qemu_plugin_register_vcpu_insn_exec_cb(last, on_call, QEMU_PLUGIN_CB_R_REGS, b);
    }
    return 0;
}

/* cs:frames(): the current vCPU's stack, outermost first: function entries. */
static int callstack_frames(lua_State *L)
{
    LhCallstack *cs = check_cs(L);
    CsVcpu *v;

    lh_check_vcpu_context(L, "callstack:frames()");
    v = vcpu_of(cs, (unsigned int)lh_thread()->ctx.vcpu);
    lua_createtable(L, v->depth, 0);
    for (int k = 0; k < v->depth; k++) {
        lh_push_u64(L, v->frames[k].node->pc);
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

static void set_column(lua_State *L, int t, const char *name, int col)
{
    lua_pushvalue(L, col);
    lua_setfield(L, t, name);
}

/*
 * cs:tree(): every vCPU's calling-context tree as columns, nodes 1..n:
 * { n, pc, parent (0: a root), calls, insns, vcpu }, plus truncated (calls
 * past max_depth). Roots are the code outside any call seen (pc 0).
 * Meant for exit: counts of running vCPUs keep moving.
 */
static int callstack_tree(lua_State *L)
{
    LhCallstack *cs = check_cs(L);
    uint64_t truncated = 0;
    lua_Integer id = 0;
    int t, pc, parent, calls, insns, vcpu;

    lua_newtable(L);
    t = lua_gettop(L);
    for (int i = 0; i < 5; i++) {
        lua_newtable(L);
    }
    pc = t + 1, parent = t + 2, calls = t + 3, insns = t + 4, vcpu = t + 5;
    GHashTable *ids = g_hash_table_new(NULL, NULL);
    for (int i = 0; i < cs->n_vcpus; i++) {
        CsVcpu *v = cs->vcpus[i];
        if (v == NULL) {
            continue;
        }
        truncated += v->truncated;
        /* depth first from the root, parents before children */
        CsNode *n = &v->root;
        while (n != NULL) {
            lua_Integer my_id = ++id;
            g_hash_table_insert(ids, n, GSIZE_TO_POINTER(my_id));
            lh_push_u64(L, n->pc);
            lua_rawseti(L, pc, my_id);
            lua_pushinteger(L, n->parent != NULL
                                   ? (lua_Integer)GPOINTER_TO_SIZE(g_hash_table_lookup(ids, n->parent))
                                   : 0);
            lua_rawseti(L, parent, my_id);
            lh_push_u64(L, n->calls);
            lua_rawseti(L, calls, my_id);
            lh_push_u64(L, n->insns);
            lua_rawseti(L, insns, my_id);
            lua_pushinteger(L, i);
            lua_rawseti(L, vcpu, my_id);
            if (n->child != NULL) {
                n = n->child;
            } else {
                while (n != NULL && n->sibling == NULL) {
                    n = n->parent;
                }
                n = n != NULL ? n->sibling : NULL;
            }
        }
    }
    g_hash_table_destroy(ids);
    lua_pushinteger(L, id);
    lua_setfield(L, t, "n");
    lh_push_u64(L, truncated);
    lua_setfield(L, t, "truncated");
    set_column(L, t, "pc", pc);
    set_column(L, t, "parent", parent);
    set_column(L, t, "calls", calls);
    set_column(L, t, "insns", insns);
    set_column(L, t, "vcpu", vcpu);
    lua_settop(L, t);
    return 1;
}

static int callstack_tostring(lua_State *L)
{
    LhCallstack *cs = check_cs(L);

    lua_pushfstring(L, "callstack (max_depth %d)", cs->max_depth);
    return 1;
}

static const luaL_Reg callstack_methods[] = {
    { "block", callstack_block },
    { "frames", callstack_frames },
    { "tree", callstack_tree },
    { NULL, NULL },
};

static const luaL_Reg callstack_meta[] = {
    { "__tostring", callstack_tostring },
    { NULL, NULL },
};

static const luaL_Reg callstack_functions[] = {
    { "callstack_new", callstack_new },
    { NULL, NULL },
};

void lh_open_callstack(lua_State *L, int raw)
{
    callstacks = g_ptr_array_new();
    lh_listen(LH_AT_VCPU_EXIT, on_vcpu_exit);
    lh_new_type(L, LH_CALLSTACK_MT, callstack_methods, callstack_meta);
    lh_set_functions(L, raw, callstack_functions);
}
