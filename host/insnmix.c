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

typedef struct LhInsnMix {
    GHashTable *seen;   /* Encoding * -> itself */
    int classify_ref;
} LhInsnMix;

/* FNV-1a of the bytes. */
static guint encoding_hash(gconstpointer p)
{
    const Encoding *e = p;
    guint h = 2166136261u;

    for (int i = 0; i < e->size; i++) {
        h = (h ^ e->bytes[i]) * 16777619u;
    }
    return h;
}

static gboolean encoding_equal(gconstpointer a, gconstpointer b)
{
    const Encoding *x = a, *y = b;

    return x->size == y->size && memcmp(x->bytes, y->bytes, x->size) == 0;
}

static LhInsnMix *check_mix(lua_State *L)
{
    return lh_check_box(L, 1, LH_INSN_MIX_MT);
}

/*
 * classify(insn) for one encoding: into e->counted and e->entry. Its
 * error, traced from where classify raised it, goes on to mix:count's
 * caller: nothing of the mix is half made when it does.
 */
static void classify(lua_State *L, LhInsnMix *mix, struct qemu_plugin_insn *insn, Encoding *e)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, mix->classify_ref);
    lh_push_insn(L, insn);
    if (!lh_pcall_nested(L, 1, 1)) {
        lua_error(L);
    }
    e->counted = lua_toboolean(L, -1);
    if (e->counted && !lh_test_entry(L, -1, &e->entry)) {
        lh_error(L, "insn_mix: classify must return a scoreboard entry or false, got %s",
                 luaL_typename(L, -1));
    }
    lua_pop(L, 1);
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

/* raw.insn_mix_new(classify) */
static int insn_mix_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    LhInsnMix *mix = g_new0(LhInsnMix, 1);

    mix->seen = g_hash_table_new(encoding_hash, encoding_equal);
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
