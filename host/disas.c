/*
 * luahost: capstone instruction groups, insn:groups().
 *
 * QEMU's disassembly (insn:disas) is text only. The groups capstone
 * assigns an instruction ("jump", "call", "sse2", "neon", ...) come from
 * our own capstone handle, opened once, lazily, for the guest
 * architecture with detail on. Translation callbacks run under the host
 * lock, so one handle and one instruction buffer serve every call.
 *
 * insn:disas() in user mode comes from a second handle set up as QEMU
 * sets up its own (disas/capstone.c: skipdata, AT&T syntax on x86) and
 * printed as QEMU prints it, "mnemonic op_str": the same library gives
 * the same text, while QEMU opens and closes capstone on every call,
 * about 6 us each. System mode keeps QEMU's, which follows the CPU mode
 * (16, 32 or 64-bit x86, AArch32). luahost.disassemble(bytes, vaddr)
 * gives the same text later, from bytes kept at translation.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <string.h>

#include <capstone/capstone.h>

#include "luahost.h"

static char *target_name;   /* from raw.info, kept for the lazy open */
static csh handle;
static cs_insn *decoded;    /* the buffer cs_disasm_iter reuses */
static const char *open_error;
static csh text_handle;     /* as QEMU's, for insn:disas */
static cs_insn *text_decoded;
static bool text_failed;

/* The capstone architecture and mode of the guest; false if luahost has none. */
static bool guest_arch(cs_arch *arch, cs_mode *mode)
{
    if (g_strcmp0(target_name, "x86_64") == 0) {
        *arch = CS_ARCH_X86;
        *mode = CS_MODE_64;
    } else if (g_strcmp0(target_name, "aarch64") == 0) {
        *arch = CS_ARCH_ARM64;
        *mode = CS_MODE_LITTLE_ENDIAN;
    } else {
        return false;
    }
    return true;
}

/* NULL once the handle is open, else why it cannot be. */
static const char *open_capstone(void)
{
    cs_arch arch;
    cs_mode mode;

    if (decoded != NULL || open_error != NULL) {
        return open_error;
    }
    if (!guest_arch(&arch, &mode)) {
        open_error = "no capstone support in luahost for this guest architecture";
        return open_error;
    }
    cs_err err = cs_open(arch, mode, &handle);
    if (err == CS_ERR_OK) {
        err = cs_option(handle, CS_OPT_DETAIL, CS_OPT_ON);
    }
    if (err != CS_ERR_OK) {
        open_error = cs_strerror(err);
        return open_error;
    }
    decoded = cs_malloc(handle);
    return NULL;
}

/*
 * Why this guest has no capstone groups, with its name ("... (riscv64)"),
 * or NULL.
 */
const char *lh_capstone_groups_missing(void)
{
    static char why[160];
    const char *error = open_capstone();

    if (error == NULL) {
        return NULL;
    }
    g_snprintf(why, sizeof(why), "%s (%s)", error, target_name != NULL ? target_name : "?");
    return why;
}

/*
 * The capstone group ids of insn (as many as LH_MAX_GROUPS, as capstone
 * keeps) into ids: their count, 0 if capstone cannot decode it. The
 * handle must be open (lh_capstone_groups_missing() is NULL).
 */
int lh_insn_group_ids(struct qemu_plugin_insn *insn, uint8_t ids[LH_MAX_GROUPS])
{
    uint8_t bytes[16];  /* x86 instructions are at most 15 bytes */
    const uint8_t *code = bytes;
    size_t size = qemu_plugin_insn_data(insn, bytes, sizeof(bytes));
    uint64_t address = qemu_plugin_insn_vaddr(insn);

    if (!cs_disasm_iter(handle, &code, &size, &address, decoded)) {
        return 0;
    }
    const cs_detail *detail = decoded->detail;
    int n = MIN(detail->groups_count, LH_MAX_GROUPS);

    memcpy(ids, detail->groups, (size_t)n);
    return n;
}

/*
 * insn:groups(): the capstone group names of the instruction, a list;
 * empty if capstone cannot decode it.
 */
int lh_insn_groups(lua_State *L)
{
    struct qemu_plugin_insn *insn = lh_check_handle(L, 1, LH_INSN_MT, "an insn");
    const char *why = lh_capstone_groups_missing();
    uint8_t ids[LH_MAX_GROUPS];

    if (why != NULL) {
        return lh_error(L, "insn:groups: %s", why);
    }
    int count = lh_insn_group_ids(insn, ids);
    int n = 0;

    lua_createtable(L, count, 0);    /* sized once, not grown per name */
    for (int i = 0; i < count; i++) {
        const char *name = cs_group_name(handle, ids[i]);
        if (name != NULL) {
            lua_pushstring(L, name);
            lua_rawseti(L, -2, ++n);
        }
    }
    return 1;
}

/* Opens the text handle once; false if this guest has none. */
static bool open_text_capstone(void)
{
    cs_arch arch;
    cs_mode mode;

    if (text_decoded != NULL || text_failed) {
        return !text_failed;
    }
    text_failed = true;
    if (!guest_arch(&arch, &mode) || cs_open(arch, mode, &text_handle) != CS_ERR_OK) {
        return false;
    }
    if (arch == CS_ARCH_X86) {
        cs_option(text_handle, CS_OPT_SYNTAX, CS_OPT_SYNTAX_ATT);
    }
    cs_option(text_handle, CS_OPT_SKIPDATA, CS_OPT_ON);
    text_decoded = cs_malloc(text_handle);
    text_failed = text_decoded == NULL;
    return !text_failed;
}

/*
 * Pushes insn's disassembly as QEMU's qemu_plugin_insn_disas gives it, and
 * returns true; false (nothing pushed) where QEMU's own must be used.
 */
static bool push_text(lua_State *L, const uint8_t *code, size_t size, uint64_t address)
{
    if (lh.system_emulation || !open_text_capstone()) {
        return false;
    }
    if (cs_disasm_iter(text_handle, &code, &size, &address, text_decoded)) {
        /* "mnemonic op_str": lua_pushfstring's format parsing was a fifth of this */
        char text[sizeof(text_decoded->mnemonic) + 1 + sizeof(text_decoded->op_str)];
        size_t m = strnlen(text_decoded->mnemonic, sizeof(text_decoded->mnemonic));
        size_t o = strnlen(text_decoded->op_str, sizeof(text_decoded->op_str));

        memcpy(text, text_decoded->mnemonic, m);
        text[m] = ' ';
        memcpy(text + m + 1, text_decoded->op_str, o);
        lua_pushlstring(L, text, m + 1 + o);
    } else {
        lua_pushliteral(L, "");
    }
    return true;
}

bool lh_push_disas(lua_State *L, struct qemu_plugin_insn *insn)
{
    uint8_t bytes[32];
    size_t size = qemu_plugin_insn_data(insn, bytes, sizeof(bytes));

    return push_text(L, bytes, size, qemu_plugin_insn_vaddr(insn));
}

/*
 * raw.disassemble(bytes, vaddr): insn:disas()'s text for an instruction's
 * bytes (insn:data()) at vaddr, made at any time, so that a script can
 * keep the bytes at translation and disassemble the few instructions its
 * report shows; nil where insn:disas() is QEMU's (system mode, guests
 * other than x86_64 and aarch64).
 */
static int disassemble(lua_State *L)
{
    size_t size;
    const char *bytes = luaL_checklstring(L, 1, &size);
    uint64_t address = lh_check_u64(L, 2);

    if (!push_text(L, (const uint8_t *)bytes, size, address)) {
        lua_pushnil(L);
    }
    return 1;
}

static const luaL_Reg disas_functions[] = {
    { "disassemble", disassemble },
    { NULL, NULL },
};

/* Called by lh_open_insn, once raw.info exists. */
void lh_disas_init(lua_State *L, int raw)
{
    lua_getfield(L, raw, "info");
    lua_getfield(L, -1, "target_name");
    g_free(target_name);
    target_name = g_strdup(lua_tostring(L, -1));
    lua_pop(L, 2);
    lh_set_functions(L, raw, disas_functions);
}
