/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_plugin_symbols.c -- load libnccl-net-nangila.so the way NCCL does
 * (dlopen RTLD_NOW | RTLD_LOCAL: any unresolved symbol fails here, where
 * NCCL would only skip the plugin with an INFO line) and check that its
 * dynamic symbol table defines exactly the intended global symbols.
 *
 * The table is read from the file with our own small ELF64 reader, so the
 * test needs no binutils.
 *
 * usage: test_plugin_symbols <path to libnccl-net-nangila.so>
 */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const expected[] = {"ncclNetPlugin_v8", "ncclCollNetPlugin_v8"};
#define N_EXPECTED (sizeof expected / sizeof expected[0])

/* Libraries the plugin may depend on: no CUDA, no NCCL; hwloc for the
 * topology (engine/include/ngl_topo.h). */
static const char *const allowed_needed[] = {
    "libc.so",    "libm.so",     "libpthread.so", "libdl.so",    "libzstd.so",  "libhwloc.so",
    "libasan.so", "libubsan.so", "ld-linux",      "libgcc_s.so", "libstdc++.so"};

static int fail_count;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL: " __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                                   \
            fail_count++;                                                                          \
        }                                                                                          \
    } while (0)

static int is_expected(const char *name)
{
    for (size_t i = 0; i < N_EXPECTED; i++) {
        if (strcmp(name, expected[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int needed_ok(const char *name)
{
    for (size_t i = 0; i < sizeof allowed_needed / sizeof allowed_needed[0]; i++) {
        if (strncmp(name, allowed_needed[i], strlen(allowed_needed[i])) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Walk .dynsym and DT_NEEDED of the mapped ELF file. @return 0 on success. */
static int check_elf(const unsigned char *img, size_t size)
{
    if (size < sizeof(Elf64_Ehdr) || memcmp(img, ELFMAG, SELFMAG) != 0 ||
        img[EI_CLASS] != ELFCLASS64) {
        fprintf(stderr, "FAIL: not an ELF64 file\n");
        return -1;
    }
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)(const void *)img;
    if (eh->e_shoff == 0 || eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > size) {
        fprintf(stderr, "FAIL: no section headers\n");
        return -1;
    }
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(const void *)(img + eh->e_shoff);
    int found[N_EXPECTED] = {0};
    int saw_dynsym = 0;
    for (int s = 0; s < eh->e_shnum; s++) {
        if (sh[s].sh_type == SHT_DYNSYM) {
            saw_dynsym = 1;
            const Elf64_Sym *sym = (const Elf64_Sym *)(const void *)(img + sh[s].sh_offset);
            const char *str = (const char *)img + sh[sh[s].sh_link].sh_offset;
            size_t n = sh[s].sh_size / sizeof(Elf64_Sym);
            for (size_t i = 1; i < n; i++) {
                unsigned bind = ELF64_ST_BIND(sym[i].st_info);
                unsigned type = ELF64_ST_TYPE(sym[i].st_info);
                if (sym[i].st_shndx == SHN_UNDEF || bind == STB_LOCAL) {
                    continue;
                }
                const char *name = str + sym[i].st_name;
                if (is_expected(name)) {
                    for (size_t e = 0; e < N_EXPECTED; e++) {
                        found[e] |= strcmp(name, expected[e]) == 0;
                    }
                    CHECK(type == STT_OBJECT, "%s is not a data object", name);
                    continue;
                }
                CHECK(0, "unexpected exported symbol '%s'", name);
            }
        }
        if (sh[s].sh_type == SHT_DYNAMIC) {
            const Elf64_Dyn *d = (const Elf64_Dyn *)(const void *)(img + sh[s].sh_offset);
            const char *str = (const char *)img + sh[sh[s].sh_link].sh_offset;
            for (size_t i = 0; i < sh[s].sh_size / sizeof(Elf64_Dyn) && d[i].d_tag != DT_NULL;
                 i++) {
                if (d[i].d_tag == DT_NEEDED) {
                    CHECK(needed_ok(str + d[i].d_un.d_val), "unexpected dependency %s",
                          str + d[i].d_un.d_val);
                }
            }
        }
    }
    CHECK(saw_dynsym, "no .dynsym section");
    for (size_t e = 0; e < N_EXPECTED; e++) {
        CHECK(found[e], "%s is not exported", expected[e]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <plugin.so>\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];

    /* 1. NCCL's load: every symbol must resolve now. */
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "FAIL: dlopen: %s\n", dlerror());
        return 1;
    }
    for (size_t e = 0; e < N_EXPECTED; e++) {
        CHECK(dlsym(lib, expected[e]) != NULL, "dlsym(%s) failed", expected[e]);
    }
    /* Internal names must not be reachable. */
    const char *hidden[] = {"ngl_plugin_setup",    "ngl_tcp_isend", "ngl_coll_iallreduce",
                            "ngl_encoder_create",  "ngl_tcp_table", "ncclNetPlugin_v9",
                            "ncclCollNetPlugin_v7"};
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++) {
        CHECK(dlsym(lib, hidden[i]) == NULL, "%s is visible", hidden[i]);
    }
    dlclose(lib);

    /* 2. The dynamic symbol table holds exactly the two tables. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror("open");
        return 1;
    }
    void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (img == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    if (check_elf(img, (size_t)st.st_size) != 0) {
        fail_count++;
    }
    munmap(img, (size_t)st.st_size);
    if (fail_count) {
        fprintf(stderr, "%d check(s) failed\n", fail_count);
        return 1;
    }
    printf("ok: %s loads with RTLD_NOW and exports exactly ncclNetPlugin_v8, "
           "ncclCollNetPlugin_v8\n",
           path);
    return 0;
}
