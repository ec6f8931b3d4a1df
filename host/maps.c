/*
 * luahost: the ELF files the guest has mapped, in user mode.
 *
 * QEMU's plugin API does not tell what the guest maps, so this reads the
 * host's /proc/self/maps, as QEMU does to answer the guest's: a host
 * mapping is the guest's when the guest can read it at host address -
 * guest_base. A mapping of a file at offset 0 that starts with an ELF
 * header is a file's first page; a small anonymous one that does is the
 * vDSO, whose image is copied to a memfd for libdwfl. The load bias and
 * the extent come from the program headers read in guest memory (the
 * mappings alone miss segments QEMU maps apart, with holes between).
 * Only such first pages are read: a mapping past the end of its file
 * would fault (SIGBUS) when read.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#define _GNU_SOURCE
#include <gelf.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "luahost.h"

static uint64_t guest_base;

/* The vDSO is a page or two; QEMU maps it anonymously. */
#define VDSO_MAX (64 * 1024)

typedef struct LhMapping {
    uint64_t start, end, offset, inode;     /* guest addresses */
    char *path;                             /* NULL: anonymous */
} LhMapping;

/*
 * The host's mappings that may begin an ELF file of the guest's, at
 * guest addresses: those of files at offset 0, and small anonymous ones
 * (the vDSO), that the guest can read.
 */
static GArray *guest_mappings(GByteArray *buf)
{
    GArray *maps = g_array_new(FALSE, FALSE, sizeof(LhMapping));
    FILE *f = fopen("/proc/self/maps", "re");
    char line[4096 + 128];

    if (f == NULL) {
        return maps;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        uint64_t start, end, offset, inode;
        char perms[8];
        int path_at = 0;
        if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %*x:%*x %" SCNu64 " %n",
                   &start, &end, perms, &offset, &inode, &path_at) < 5 || start < guest_base) {
            continue;
        }
        char *path = line + path_at;
        path[strcspn(path, "\n")] = '\0';
        if (path[0] == '/' ? offset != 0 : (path[0] != '\0' || end - start > VDSO_MAX)) {
            continue;   /* later pages of a file, [heap] or [stack] of the host, large anonymous memory */
        }
        LhMapping map = { start - guest_base, end - guest_base, offset, inode, NULL };
        if (!qemu_plugin_read_memory_vaddr(map.start, buf, 1)) {
            continue;   /* QEMU's own, or not readable by the guest */
        }
        if (path[0] == '/') {
            map.path = g_strdup(path);
        }
        g_array_append_val(maps, map);
    }
    fclose(f);
    return maps;
}

/*
 * ELF header and program headers read from the guest at start: the load
 * bias and the end of the last segment (guest addresses), or false.
 */
static bool elf_layout(GByteArray *buf, uint64_t start, uint64_t size, uint64_t *bias, uint64_t *end)
{
    size_t len = MIN(size, 4096);
    Elf *elf;
    GElf_Ehdr ehdr;
    size_t n;
    bool found = false;

    if (!qemu_plugin_read_memory_vaddr(start, buf, len) || memcmp(buf->data, ELFMAG, SELFMAG) != 0) {
        return false;
    }
    elf = elf_memory((char *)buf->data, len);
    if (elf == NULL) {
        return false;
    }
    if (gelf_getehdr(elf, &ehdr) != NULL && elf_getphdrnum(elf, &n) == 0) {
        uint64_t lowest = UINT64_MAX, highest = 0, file0 = 0;
        for (size_t i = 0; i < n; i++) {
            GElf_Phdr ph;
            if (gelf_getphdr(elf, (int)i, &ph) == NULL || ph.p_type != PT_LOAD) {
                continue;
            }
            if (ph.p_vaddr < lowest) {
                lowest = ph.p_vaddr;
                file0 = ph.p_vaddr - ph.p_offset;   /* the ELF address of file offset 0 */
            }
            highest = MAX(highest, ph.p_vaddr + ph.p_memsz);
            found = true;
        }
        if (found) {
            *bias = start - file0;
            *end = MAX(start + size, *bias + highest);
        }
    }
    elf_end(elf);
    return found;
}

/* A memfd holding the vDSO's image, for libdwfl, or -1. */
static int vdso_image(GByteArray *buf, uint64_t start, uint64_t size)
{
    int fd;

    if (!qemu_plugin_read_memory_vaddr(start, buf, size)) {
        return -1;
    }
    fd = memfd_create("luahost-vdso", MFD_CLOEXEC);
    if (fd >= 0 && write(fd, buf->data, size) != (ssize_t)size) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void mapped_free(gpointer p)
{
    LhMapped *m = p;

    if (m->fd >= 0) {
        close(m->fd);
    }
    g_free(m->path);
    g_free(m);
}

static LhMapped *mapped_new(const char *path, uint64_t start, uint64_t end, uint64_t bias,
                            uint64_t inode, int fd)
{
    LhMapped *m = g_new0(LhMapped, 1);

    m->path = g_strdup(path);
    m->start = start;
    m->end = end;
    m->bias = bias;
    m->inode = inode;
    m->fd = fd;
    return m;
}

/*
 * The ELF files the guest has mapped now, sorted by start (a vCPU
 * thread only: guest memory is read). Free with g_ptr_array_unref.
 */
GPtrArray *lh_maps_scan(uint64_t base)
{
    GByteArray *buf = g_byte_array_new();
    GArray *maps;
    GPtrArray *found = g_ptr_array_new_with_free_func(mapped_free);

    guest_base = base;
    maps = guest_mappings(buf);

    for (guint i = 0; i < maps->len; i++) {
        LhMapping *map = &g_array_index(maps, LhMapping, i);
        LhMapped *last = found->len > 0 ? g_ptr_array_index(found, found->len - 1) : NULL;
        uint64_t bias, end;

        if (last != NULL && map->start < last->end) {
            continue;   /* the first page mapped again inside a file (ld.so maps it twice) */
        }
        if (!elf_layout(buf, map->start, map->end - map->start, &bias, &end)) {
            continue;
        }
        if (map->path != NULL) {
            g_ptr_array_add(found, mapped_new(map->path, map->start, end, bias, map->inode, -1));
        } else {
            /*
             * QEMU's vDSO images are linked at 0 and relocated in the guest's
             * copy, but libdwfl reads their symbols at the link addresses:
             * so are the offsets, the same in every run.
             */
            int fd = vdso_image(buf, map->start, map->end - map->start);
            if (fd >= 0) {
                g_ptr_array_add(found, mapped_new("[vdso]", map->start, map->end, map->start, 0, fd));
            }
        }
    }
    for (guint i = 0; i < maps->len; i++) {
        g_free(g_array_index(maps, LhMapping, i).path);
    }
    g_array_free(maps, TRUE);
    g_byte_array_free(buf, TRUE);
    return found;
}

