/* SPDX-License-Identifier: Apache-2.0 */
/*
 * replay_main -- runs a fuzz target without libFuzzer: every file named on
 * the command line, or found (not recursively) in a directory named there,
 * is passed once to LLVMFuzzerTestOneInput(), in name order. This is how the
 * committed corpora run in plain `meson test` (suite fuzz), in the normal
 * and the sanitizer builds. A failing input aborts; an empty corpus fails.
 */
#include "fuzz_helpers.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    long n = -1;
    uint8_t *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        n = ftell(f);
    }
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        goto fail;
    }
    /* exactly n bytes, so that ASan catches reads past the input */
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        goto fail;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
fail:
    fprintf(stderr, "replay: cannot read %s\n", path);
    free(buf);
    fclose(f);
    return -1;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays the regular files of @p dir; returns how many, or -1. */
static long replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        perror(dir);
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    long done = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **grown = realloc(names, cap * sizeof(*names));
            if (grown == NULL) {
                done = -1;
                goto out;
            }
            names = grown;
        }
        names[n] = strdup(e->d_name);
        if (names[n] == NULL) {
            done = -1;
            goto out;
        }
        n++;
    }
    qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            continue;
        }
        if (replay_file(path) != 0) {
            done = -1;
            goto out;
        }
        done++;
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    closedir(d);
    return done;
}

int main(int argc, char **argv)
{
    long total = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            perror(argv[i]);
            return 1;
        }
        long n = S_ISDIR(sb.st_mode) ? replay_dir(argv[i]) : (replay_file(argv[i]) == 0 ? 1 : -1);
        if (n < 0) {
            return 1;
        }
        total += n;
    }
    printf("replayed %ld inputs\n", total);
    return total > 0 ? 0 : 1;
}
