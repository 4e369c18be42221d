/* SPDX-License-Identifier: Apache-2.0 */
/*
 * golden_util.h -- the manifest format of tests/golden/, shared by the
 * generator (gen_golden.c) and the test (test_golden.c). Public API only.
 *
 * valid/MANIFEST, one stream per line:
 *   NAME codec=C dtype=D pred=P lossless=L block=B beta=HEX ef=E topk=HEX
 *        mask=HEX eps=HEX seed=S stream=ID count=N steps=T override=O
 * where HEX is a C99 hexadecimal float (exact), O = 1 means the case applies
 * NAME/skip.bin (ceil(nblocks/8) bytes per step) with
 * ngl_encoder_set_block_mask() before each step. Files per case, in
 * valid/NAME/: input.bin (steps x count elements of dtype, little-endian),
 * output.bin (what the decoder writes, same shape), frame-NNN.bin (step NNN).
 *
 * invalid/MANIFEST, one frame per line:
 *   NAME STATUS base=CASE after=K  # what is wrong
 * The frame is invalid/NAME.bin. A decoder configured as valid case CASE that
 * has decoded that case's frames 0..K-1 must reject it with STATUS.
 */
#ifndef NGL_GOLDEN_UTIL_H
#define NGL_GOLDEN_UTIL_H

#include "nangila.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOLDEN_NAME_MAX 64

typedef struct golden_case {
    char name[GOLDEN_NAME_MAX];
    ngl_stream_config cfg;
    unsigned steps;
    int override_mask;
} golden_case;

typedef struct golden_invalid {
    char name[GOLDEN_NAME_MAX];
    ngl_status status;
    char base[GOLDEN_NAME_MAX];
    unsigned after;
} golden_invalid;

static const char *const golden_codec_names[] = {"raw", "int8", "int4", "eps"};
static const char *const golden_dtype_names[] = {"f32", "f16", "bf16", "f64"};
static const char *const golden_pred_names[] = {"none", "momentum", "linear"};
static const char *const golden_lossless_names[] = {"none", "rle", "zstd", "auto"};

static const struct {
    ngl_status status;
    const char *name;
} golden_status_names[] = {
    {NGL_OK, "OK"},
    {NGL_ERR_TRUNCATED, "TRUNCATED"},
    {NGL_ERR_BAD_MAGIC, "BAD_MAGIC"},
    {NGL_ERR_BAD_VERSION, "BAD_VERSION"},
    {NGL_ERR_BAD_CODEC, "BAD_CODEC"},
    {NGL_ERR_BAD_DTYPE, "BAD_DTYPE"},
    {NGL_ERR_BAD_PREDICTOR, "BAD_PREDICTOR"},
    {NGL_ERR_BAD_FLAGS, "BAD_FLAGS"},
    {NGL_ERR_BAD_BLOCK_SIZE, "BAD_BLOCK_SIZE"},
    {NGL_ERR_BAD_LENGTH, "BAD_LENGTH"},
    {NGL_ERR_CRC_MISMATCH, "CRC_MISMATCH"},
    {NGL_ERR_BAD_BACKEND, "BAD_BACKEND"},
    {NGL_ERR_BAD_SECTION, "BAD_SECTION"},
    {NGL_ERR_BAD_SCALE, "BAD_SCALE"},
    {NGL_ERR_BAD_CODE, "BAD_CODE"},
    {NGL_ERR_BAD_INDEX, "BAD_INDEX"},
    {NGL_ERR_BAD_EXCEPTION, "BAD_EXCEPTION"},
    {NGL_ERR_BAD_MASK, "BAD_MASK"},
    {NGL_ERR_COUNT_MISMATCH, "COUNT_MISMATCH"},
    {NGL_ERR_CONFIG_MISMATCH, "CONFIG_MISMATCH"},
    {NGL_ERR_STREAM_MISMATCH, "STREAM_MISMATCH"},
    {NGL_ERR_STEP_MISMATCH, "STEP_MISMATCH"},
    {NGL_ERR_BACKEND_UNAVAILABLE, "BACKEND_UNAVAILABLE"},
};

#define GOLDEN_COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static inline const char *golden_status_name(ngl_status s)
{
    for (size_t i = 0; i < GOLDEN_COUNT_OF(golden_status_names); i++) {
        if (golden_status_names[i].status == s) {
            return golden_status_names[i].name;
        }
    }
    return "?";
}

static inline int golden_status_parse(const char *name, ngl_status *out)
{
    for (size_t i = 0; i < GOLDEN_COUNT_OF(golden_status_names); i++) {
        if (!strcmp(golden_status_names[i].name, name)) {
            *out = golden_status_names[i].status;
            return 0;
        }
    }
    return -1;
}

static inline int golden_enum_parse(const char *const *names, size_t n, const char *v, int *out)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(names[i], v)) {
            *out = (int)i;
            return 0;
        }
    }
    return -1;
}

/* Writes one valid/MANIFEST line (without the newline). */
static inline void golden_case_print(FILE *f, const golden_case *gc)
{
    const ngl_stream_config *c = &gc->cfg;
    fprintf(f,
            "%s codec=%s dtype=%s pred=%s lossless=%s block=%u beta=%a ef=%d topk=%a mask=%a "
            "eps=%a seed=%llu stream=%llu count=%llu steps=%u override=%d",
            gc->name, golden_codec_names[c->codec], golden_dtype_names[c->dtype],
            golden_pred_names[c->predictor], golden_lossless_names[c->lossless],
            (unsigned)c->block_size, (double)c->momentum_beta, c->error_feedback, c->topk_fraction,
            c->mask_fraction, c->eps, (unsigned long long)c->seed, (unsigned long long)c->stream_id,
            (unsigned long long)c->count, gc->steps, gc->override_mask);
}

/* Parses one valid/MANIFEST line (comments and blank lines: returns 1). */
static inline int golden_case_parse(char *line, golden_case *gc)
{
    char *save = NULL;
    char *tok = strtok_r(line, " \t\r\n", &save);
    if (tok == NULL || tok[0] == '#') {
        return 1;
    }
    memset(gc, 0, sizeof(*gc));
    ngl_stream_config_init(&gc->cfg);
    gc->cfg.isa = NGL_ISA_AUTO;
    if (strlen(tok) >= GOLDEN_NAME_MAX) {
        return -1;
    }
    strcpy(gc->name, tok);
    unsigned seen = 0;
    while ((tok = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
        char *eq = strchr(tok, '=');
        if (eq == NULL) {
            return -1;
        }
        *eq = '\0';
        const char *k = tok, *v = eq + 1;
        int e = 0;
        ngl_stream_config *c = &gc->cfg;
        if (!strcmp(k, "codec")) {
            int x = 0;
            e = golden_enum_parse(golden_codec_names, 4, v, &x);
            c->codec = (ngl_codec)x;
        } else if (!strcmp(k, "dtype")) {
            int x = 0;
            e = golden_enum_parse(golden_dtype_names, 4, v, &x);
            c->dtype = (ngl_dtype)x;
        } else if (!strcmp(k, "pred")) {
            int x = 0;
            e = golden_enum_parse(golden_pred_names, 3, v, &x);
            c->predictor = (ngl_predictor)x;
        } else if (!strcmp(k, "lossless")) {
            int x = 0;
            e = golden_enum_parse(golden_lossless_names, 4, v, &x);
            c->lossless = (ngl_lossless)x;
        } else if (!strcmp(k, "block")) {
            c->block_size = (uint32_t)strtoul(v, NULL, 10);
        } else if (!strcmp(k, "beta")) {
            c->momentum_beta = (float)strtod(v, NULL);
        } else if (!strcmp(k, "ef")) {
            c->error_feedback = atoi(v);
        } else if (!strcmp(k, "topk")) {
            c->topk_fraction = strtod(v, NULL);
        } else if (!strcmp(k, "mask")) {
            c->mask_fraction = strtod(v, NULL);
        } else if (!strcmp(k, "eps")) {
            c->eps = strtod(v, NULL);
        } else if (!strcmp(k, "seed")) {
            c->seed = strtoull(v, NULL, 10);
        } else if (!strcmp(k, "stream")) {
            c->stream_id = strtoull(v, NULL, 10);
        } else if (!strcmp(k, "count")) {
            c->count = strtoull(v, NULL, 10);
        } else if (!strcmp(k, "steps")) {
            gc->steps = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(k, "override")) {
            gc->override_mask = atoi(v);
        } else {
            return -1;
        }
        if (e != 0) {
            return -1;
        }
        seen++;
    }
    return seen == 15 ? 0 : -1;
}

/* Parses one invalid/MANIFEST line (comments and blank lines: returns 1). */
static inline int golden_invalid_parse(char *line, golden_invalid *gi)
{
    char *hash = strchr(line, '#');
    if (hash != NULL) {
        *hash = '\0';
    }
    char *save = NULL;
    char *tok = strtok_r(line, " \t\r\n", &save);
    if (tok == NULL) {
        return 1;
    }
    memset(gi, 0, sizeof(*gi));
    if (strlen(tok) >= GOLDEN_NAME_MAX) {
        return -1;
    }
    strcpy(gi->name, tok);
    tok = strtok_r(NULL, " \t\r\n", &save);
    if (tok == NULL || golden_status_parse(tok, &gi->status) != 0) {
        return -1;
    }
    tok = strtok_r(NULL, " \t\r\n", &save);
    if (tok == NULL || strncmp(tok, "base=", 5) != 0 || strlen(tok + 5) >= GOLDEN_NAME_MAX) {
        return -1;
    }
    strcpy(gi->base, tok + 5);
    tok = strtok_r(NULL, " \t\r\n", &save);
    if (tok == NULL || strncmp(tok, "after=", 6) != 0) {
        return -1;
    }
    gi->after = (unsigned)strtoul(tok + 6, NULL, 10);
    return strtok_r(NULL, " \t\r\n", &save) == NULL ? 0 : -1;
}

/* Reads a whole file into a malloc()ed buffer (NULL on error). An empty file
 * gives a 1-byte allocation and *len = 0. */
static inline uint8_t *golden_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    uint8_t *buf = NULL;
    long n = 0;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        goto fail;
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        goto fail;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

#endif /* NGL_GOLDEN_UTIL_H */
