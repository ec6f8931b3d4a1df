/*
 * luahost: instruction mixes ("luahost.insn_mix").
 *
 * luahost.insn_mix(classify) counts executed instructions by class:
 * classify(insn), in Lua, names the scoreboard entry an encoding (the
 * instruction's bytes) is counted in, once per encoding; mix:count(tb)
 * then registers an inline add of 1 to that entry for each instruction
 * of the block, in C. Done in the script, each instruction cost a handle,
 * a string of its bytes for the key, a table lookup and an insn:inline
 * call: most of howvec.lua's translation hook.
 *
 * classify may name a list of entries instead: an encoding is counted in
 * the one its opcode picks, so that consecutive instructions of a class
 * rarely add to the same memory word. With key = "groups" classify
 * decides from capstone's groups alone and is asked once per set of
 * groups: on x86 nearly every new encoding is a new opcode (its first 4
 * bytes hold displacements), and asking Lua about each was most of
 * howvec.lua's hook.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <stddef.h>

#include "luahost.h"

enum { KEY_MAX = 32 };  /* longer encodings are classified every time */

/*
 * An encoding seen, and what its executions are counted in. One to look
 * up is made on the stack; one kept is allocated only as long as its
 * bytes.
 */
typedef struct Encoding {
    bool counted;
    qemu_plugin_u64 entry;
    uint8_t size;
    uint8_t bytes[KEY_MAX];
} Encoding;

/* What classify answered: not counted (n = 0), or entries to pick from. */
typedef struct Answer {
    uint32_t n;
    qemu_plugin_u64 entries[];
} Answer;

/* key = "groups": a set of capstone group ids, as a bitmap. */
typedef struct GroupSet {
    uint8_t bits[256 / 8];
} GroupSet;

typedef struct LhInsnMix {
    GHashTable *seen;       /* Encoding * -> itself */
    GHashTable *by_groups;  /* key = "groups": GroupSet * -> Answer *; else NULL */
    int classify_ref;
} LhInsnMix;

/* FNV-1a of n bytes. */
static guint fnv1a(const uint8_t *bytes, size_t n)
{
    guint h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ bytes[i]) * 16777619u;
    }
    return h;
}

static guint encoding_hash(gconstpointer p)
{
    const Encoding *e = p;

    return fnv1a(e->bytes, e->size);
}

static gboolean encoding_equal(gconstpointer a, gconstpointer b)
{
    const Encoding *x = a, *y = b;

    return x->size == y->size && memcmp(x->bytes, y->bytes, x->size) == 0;
}

static guint group_set_hash(gconstpointer p)
{
    return fnv1a(((const GroupSet *)p)->bits, sizeof(GroupSet));
}

static gboolean group_set_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, sizeof(GroupSet)) == 0;
}

static LhInsnMix *check_mix(lua_State *L)
{
    return lh_check_box(L, 1, LH_INSN_MIX_MT);
}

/*
 * classify's answer at the top of the stack: false or nil, an entry, or a
 * non-empty list of entries. Allocated; popped.
 */
static Answer *answer_of(lua_State *L)
{
    Answer *a;

    if (!lua_toboolean(L, -1)) {
        a = g_malloc0(sizeof(*a));
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        size_t n = lh_rawlen(L, -1);

        if (n == 0) {
            lh_error(L, "insn_mix: classify returned an empty list");
        }
        a = g_malloc(sizeof(*a) + n * sizeof(a->entries[0]));
        a->n = (uint32_t)n;
        for (size_t i = 0; i < n; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            if (!lh_test_entry(L, -1, &a->entries[i])) {
                const char *type = luaL_typename(L, -1);
                g_free(a);
                lh_error(L, "insn_mix: classify's list must hold scoreboard entries, item %d is a %s",
                         (int)i + 1, type);
            }
            lua_pop(L, 1);
        }
    } else {
        a = g_malloc(sizeof(*a) + sizeof(a->entries[0]));
        a->n = 1;
        if (!lh_test_entry(L, -1, &a->entries[0])) {
            const char *type = luaL_typename(L, -1);
            g_free(a);
            lh_error(L, "insn_mix: classify must return a scoreboard entry, a list of them or false, got %s",
                     type);
        }
    }
    lua_pop(L, 1);
    return a;
}

/*
 * classify(insn), its answer allocated. Its error, traced from where
 * classify raised it, goes on to mix:count's caller: nothing of the mix
 * is half made when it does.
 */
static Answer *ask(lua_State *L, LhInsnMix *mix, struct qemu_plugin_insn *insn)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, mix->classify_ref);
    lh_push_insn(L, insn);
    if (!lh_pcall_nested(L, 1, 1)) {
        lua_error(L);
    }
    return answer_of(L);
}

/* key = "groups": the answer for insn's set of groups, asked once per set. */
static const Answer *answer_by_groups(lua_State *L, LhInsnMix *mix, struct qemu_plugin_insn *insn)
{
    uint8_t ids[LH_MAX_GROUPS];
    int n = lh_insn_group_ids(insn, ids);
    GroupSet set = { { 0 } };

    for (int i = 0; i < n; i++) {
        set.bits[ids[i] / 8] |= (uint8_t)(1u << (ids[i] % 8));
    }
    Answer *a = g_hash_table_lookup(mix->by_groups, &set);
    if (a == NULL) {
        a = ask(L, mix, insn);
        g_hash_table_insert(mix->by_groups, g_memdup2(&set, sizeof(set)), a);
    }
    return a;
}

/* The entry of the answer insn's opcode (insn:opcode()) picks. */
static qemu_plugin_u64 pick(const Answer *a, struct qemu_plugin_insn *insn)
{
    return a->n == 1 ? a->entries[0] : a->entries[lh_insn_opcode(insn) % a->n];
}

/* What e's executions are counted in: into e->counted and e->entry. */
static void classify(lua_State *L, LhInsnMix *mix, struct qemu_plugin_insn *insn, Encoding *e)
{
    Answer *asked = NULL;   /* an answer for this encoding alone */
    const Answer *a = mix->by_groups != NULL ? answer_by_groups(L, mix, insn) : (asked = ask(L, mix, insn));

    e->counted = a->n > 0;
    if (e->counted) {
        e->entry = pick(a, insn);
    }
    g_free(asked);
}

/* The encoding of insn, classified the first time it is seen. */
static const Encoding *encoding_of(lua_State *L, LhInsnMix *mix, struct qemu_plugin_insn *insn,
                                   Encoding *probe)
{
    size_t size = qemu_plugin_insn_size(insn);

    if (size > KEY_MAX) {
        classify(L, mix, insn, probe);
        return probe;
    }
    probe->size = (uint8_t)qemu_plugin_insn_data(insn, probe->bytes, size);
    const Encoding *known = g_hash_table_lookup(mix->seen, probe);
    if (known != NULL) {
        return known;
    }
    classify(L, mix, insn, probe);
    size_t length = offsetof(Encoding, bytes) + probe->size;
    Encoding *e = g_malloc(length);
    memcpy(e, probe, length);
    g_hash_table_add(mix->seen, e);
    return e;
}

/* mix:count(tb): each instruction's executions added to its class's entry. */
static int mix_count(lua_State *L)
{
    LhInsnMix *mix = check_mix(L);
    struct qemu_plugin_tb *tb = lh_check_handle(L, 2, LH_TB_MT, "a tb");
    size_t n = qemu_plugin_tb_n_insns(tb);
    Encoding probe;

    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        const Encoding *e = encoding_of(L, mix, insn, &probe);
        if (e->counted) {
            qemu_plugin_register_vcpu_insn_exec_inline_per_vcpu(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                                e->entry, 1);
        }
    }
    return 0;
}

/* mix:encodings(): how many encodings classify was asked about. */
static int mix_encodings(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)g_hash_table_size(check_mix(L)->seen));
    return 1;
}

static int mix_tostring(lua_State *L)
{
    lua_pushfstring(L, "insn_mix (%d encodings)", (int)g_hash_table_size(check_mix(L)->seen));
    return 1;
}

/* raw.insn_mix_new(classify, by_groups) */
static int insn_mix_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    bool by_groups = lua_toboolean(L, 2);
    const char *why = by_groups ? lh_capstone_groups_missing() : NULL;

    if (why != NULL) {
        return lh_error(L, "luahost.insn_mix: key = \"groups\" needs capstone's groups: %s", why);
    }
    LhInsnMix *mix = g_new0(LhInsnMix, 1);

    mix->seen = g_hash_table_new(encoding_hash, encoding_equal);
    if (by_groups) {
        mix->by_groups = g_hash_table_new(group_set_hash, group_set_equal);
    }
    lua_pushvalue(L, 1);
    mix->classify_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lh_push_box(L, mix, LH_INSN_MIX_MT);
    return 1;
}

static const luaL_Reg mix_methods[] = {
    { "count", mix_count },
    { "encodings", mix_encodings },
    { NULL, NULL },
};

static const luaL_Reg mix_meta[] = {
    { "__tostring", mix_tostring },
    { NULL, NULL },
};

static const luaL_Reg mix_functions[] = {
    { "insn_mix_new", insn_mix_new },
    { NULL, NULL },
};

void lh_open_insn_mix(lua_State *L, int raw)
{
    lh_new_type(L, LH_INSN_MIX_MT, mix_methods, mix_meta);
    lh_set_functions(L, raw, mix_functions);
}
