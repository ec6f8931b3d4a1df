/*
 * luahost: every translated block and how often it ran, counted with no
 * Lua at translation or execution (luahost.count_blocks, block_counts).
 *
 * Coverage (drcov.lua, coverage.lua) needs each block's address, size and
 * executions and nothing else; a Lua translation hook per block costs
 * several microseconds, more than the whole of libdrcov.so's work on a
 * short run. Here C records each block as QEMU translates it, and QEMU
 * adds to the block's own slot of a scoreboard inline. Slots come from
 * scoreboards of SLOTS u64s, one more each SLOTS blocks. A block QEMU
 * translates again (after a flush, or in another translation) is a new
 * record, in translation order, as drcov.c lists them.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include "luahost.h"

enum { SLOTS = 1024 };

typedef struct Block {
    uint64_t pc;
    uint32_t size;          /* bytes, from its first instruction to the end of its last */
    uint32_t n_insns;
    qemu_plugin_u64 executions;
} Block;

static GMutex lock;             /* blocks and boards: translations may run in parallel */
static GArray *blocks;          /* Block, in translation order; NULL until asked for */
static struct qemu_plugin_scoreboard *board;    /* the newest; full every SLOTS blocks */

static void on_translate(int vcpu, const void *data)
{
    struct qemu_plugin_tb *tb = (struct qemu_plugin_tb *)data;
    size_t n = qemu_plugin_tb_n_insns(tb);

    if (n == 0) {
        return;
    }
    struct qemu_plugin_insn *last = qemu_plugin_tb_get_insn(tb, n - 1);
    Block b = {
        .pc = qemu_plugin_tb_vaddr(tb),
        .n_insns = (uint32_t)n,
    };
    b.size = (uint32_t)(qemu_plugin_insn_vaddr(last) + qemu_plugin_insn_size(last) - b.pc);

    g_mutex_lock(&lock);
    guint slot = blocks->len % SLOTS;
    if (slot == 0) {
        board = qemu_plugin_scoreboard_new(SLOTS * sizeof(uint64_t));
    }
    b.executions = (qemu_plugin_u64){ .score = board, .offset = slot * sizeof(uint64_t) };
    g_array_append_val(blocks, b);
    g_mutex_unlock(&lock);
    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(tb, QEMU_PLUGIN_INLINE_ADD_U64, b.executions, 1);
}

/*
 * raw.count_blocks(): from now on, record every block translated. Only
 * in a script's main chunk: the host registers for translations when the
 * scripts have loaded. Several scripts may ask: one record each block.
 */
static int count_blocks(lua_State *L)
{
    if (!lh.installing) {
        return lh_error(L, "luahost.count_blocks must be called in the script's main chunk");
    }
    if (blocks == NULL) {
        blocks = g_array_new(FALSE, FALSE, sizeof(Block));
        lh_listen(LH_AT_TRANSLATE, on_translate);
    }
    return 0;
}

/*
 * raw.block_counts(): the blocks recorded so far as columns { pc, size,
 * insns, executions } (executions summed over the vCPUs), in translation
 * order; nil and why if count_blocks was not called.
 */
static int block_counts(lua_State *L)
{
    if (blocks == NULL) {
        return lh_fail(L, "no block was counted: call luahost.count_blocks() in the main chunk");
    }
    /* a copy in Lua's memory: a memory error below leaks nothing, holds no lock */
    g_mutex_lock(&lock);
    guint n = blocks->len;
    g_mutex_unlock(&lock);
    Block *copy = lua_newuserdata(L, (n ? n : 1) * sizeof(Block));
    g_mutex_lock(&lock);
    memcpy(copy, blocks->data, n * sizeof(Block));     /* the first n: records are only appended */
    g_mutex_unlock(&lock);
    lua_createtable(L, 0, 4);
    const char *names[] = { "pc", "size", "insns", "executions" };
    for (int column = 0; column < 4; column++) {
        lua_createtable(L, (int)n, 0);
        for (guint i = 0; i < n; i++) {
            Block *b = &copy[i];
            switch (column) {
            case 0:
                lh_push_u64(L, b->pc);
                break;
            case 1:
                lua_pushinteger(L, b->size);
                break;
            case 2:
                lua_pushinteger(L, b->n_insns);
                break;
            default:
                lh_push_u64(L, qemu_plugin_u64_sum(b->executions));
                break;
            }
            lua_rawseti(L, -2, (int)i + 1);
        }
        lua_setfield(L, -2, names[column]);
    }
    return 1;
}

static const luaL_Reg block_functions[] = {
    { "count_blocks", count_blocks },
    { "block_counts", block_counts },
    { NULL, NULL },
};

void lh_open_blocks(lua_State *L, int raw)
{
    lh_set_functions(L, raw, block_functions);
}
