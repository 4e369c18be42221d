/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_dump_verify.c -- ngl_hpc_dump_verify(): is DECODED the ORIGINAL dump
 * with every coordinate within eps and everything else byte for byte?
 *
 * Both files are read with the same snapshot reader, and the original's
 * atom lines are classified as the compressor classifies them, so verify
 * judges a decoded dump by the rules it was made with (§7.3): canonical
 * lines are compared column by column, coordinates parsed and checked
 * against the bound, every other token and every other line compared as
 * bytes. It reads text only, never the container, so it also checks a
 * decompressor it does not share code with. The message names the first
 * difference.
 */
#include "hpc_dump.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct verifier {
    const ngl_hpc_dump_opts *opts;
    ngl_hpc_dump_report *rep;
    reader ra, rb;
    snap sa, sb;
    atomtab t;
    double eps; /* < 0 until a relative bound is resolved on the first coordinates */
} verifier;

/* Header lines and the final newline must be identical. */
static ngl_status compare_headers(verifier *v, uint64_t index)
{
    const snap *sa = &v->sa, *sb = &v->sb;
    if (sa->hdr.n != sb->hdr.n) {
        return hpc_dump_fail(v->rep, NGL_ERR_BAD_SECTION,
                             "snapshot %" PRIu64 ": header line count differs", index);
    }
    for (size_t i = 0; i < sa->hdr.n; i++) {
        size_t l1, l2;
        const char *a = line_at(&sa->hdr, i, &l1);
        const char *b = line_at(&sb->hdr, i, &l2);
        if (l1 != l2 || memcmp(a, b, l1)) {
            return hpc_dump_fail(v->rep, NGL_ERR_BAD_SECTION,
                                 "snapshot %" PRIu64 ": header line %zu differs", index, i + 1);
        }
    }
    if (sa->no_newline != sb->no_newline) {
        return hpc_dump_fail(v->rep, NGL_ERR_BAD_SECTION,
                             "snapshot %" PRIu64 ": final newline differs", index);
    }
    return NGL_OK;
}

/* A relative bound, as the compressor resolves it: rel times the range over
 * all three axes of the first snapshot with coordinates. */
static void resolve_eps(verifier *v)
{
    const atomtab *t = &v->t;
    if (v->eps < 0 && v->sa.family > 0 && t->m > 0) {
        double mn = INFINITY, mx = -INFINITY;
        for (uint64_t k = 0; k < 3 * t->m; k++) {
            mn = t->xyz[k] < mn ? t->xyz[k] : mn;
            mx = t->xyz[k] > mx ? t->xyz[k] : mx;
        }
        v->eps = v->opts->eps * (mx - mn);
    }
}

/* Canonical line @p i (the @p k-th canonical one) of the original, @p a,
 * against the decoded @p b: same layout, coordinates within @p e, every
 * other token identical. */
static ngl_status compare_canonical(verifier *v, uint64_t index, uint64_t i, uint64_t k,
                                    const char *a, const char *b, size_t l2, double e)
{
    const atomtab *t = &v->t;
    ngl_hpc_dump_report *rep = v->rep;
    size_t beg[DUMP_MAX_COLS + 1], end[DUMP_MAX_COLS + 1];
    int tr;
    int nt = hpc_dump_tokenize(b, l2, beg, end, t->ncols + 1, &tr);
    if (nt != (int)t->ncols || tr != t->trailing) {
        return hpc_dump_fail(rep, NGL_ERR_BAD_SECTION,
                             "snapshot %" PRIu64 ": atom line %" PRIu64 " has a different layout",
                             index, i + 1);
    }
    for (unsigned c = 0; c < t->ncols; c++) {
        size_t ab = t->tb[k * t->ncols + c], ae = t->te[k * t->ncols + c];
        unsigned kind = t->kind[c];
        if (kind >= CK_X && kind < CK_X + 3) {
            double vb;
            if (hpc_dump_parse_double(b + beg[c], end[c] - beg[c], &vb) != 0) {
                return hpc_dump_fail(
                    rep, NGL_ERR_BAD_CODE,
                    "snapshot %" PRIu64 ": atom line %" PRIu64 ": coordinate '%.*s' does not parse",
                    index, i + 1, (int)(end[c] - beg[c] > 40 ? 40 : end[c] - beg[c]), b + beg[c]);
            }
            double va = t->xyz[3 * k + (kind - CK_X)];
            double err = fabs(va - vb);
            if (!(err <= e)) {
                return hpc_dump_fail(rep, NGL_ERR_BAD_CODE,
                                     "snapshot %" PRIu64 ": atom line %" PRIu64
                                     ", column %s: |%.17g - %.17g| = %.3g > eps %.3g",
                                     index, i + 1, v->sa.colname[c], vb, va, err, e);
            }
            rep->max_err = err > rep->max_err ? err : rep->max_err;
            rep->coords++;
        } else if (end[c] - beg[c] != ae - ab || memcmp(a + ab, b + beg[c], ae - ab)) {
            return hpc_dump_fail(rep, NGL_ERR_BAD_SECTION,
                                 "snapshot %" PRIu64 ": atom line %" PRIu64 ", column %s differs",
                                 index, i + 1, v->sa.colname[c]);
        }
    }
    return NGL_OK;
}

/* One pair of snapshots, both read. */
static ngl_status compare_snapshot(verifier *v, uint64_t index)
{
    char m1[200];
    ngl_status st = compare_headers(v, index);
    if (st != NGL_OK) {
        return st;
    }
    if (hpc_snap_classify(&v->sa, &v->t, m1, sizeof(m1)) != 0) {
        return hpc_dump_fail(v->rep, NGL_ERR_NO_MEMORY, "%s", m1);
    }
    resolve_eps(v);
    const double e = v->eps < 0 ? 0 : v->eps;
    uint64_t k = 0;
    for (uint64_t i = 0; i < v->sa.atoms.n; i++) {
        size_t l1, l2;
        const char *a = line_at(&v->sa.atoms, i, &l1);
        const char *b = line_at(&v->sb.atoms, i, &l2);
        if (!v->t.canon[i] || v->sa.family == 0) {
            if (l1 != l2 || memcmp(a, b, l1)) {
                return hpc_dump_fail(v->rep, NGL_ERR_BAD_SECTION,
                                     "snapshot %" PRIu64 ": atom line %" PRIu64 " differs", index,
                                     i + 1);
            }
            k += v->t.canon[i];
            continue;
        }
        if ((st = compare_canonical(v, index, i, k, a, b, l2, e)) != NGL_OK) {
            return st;
        }
        k++;
    }
    v->rep->snapshots++;
    v->rep->atoms += v->sa.atoms.n;
    return NGL_OK;
}

ngl_status ngl_hpc_dump_verify(FILE *original, FILE *decoded, const ngl_hpc_dump_opts *opts,
                               ngl_hpc_dump_report *report)
{
    ngl_hpc_dump_report dummy;
    ngl_hpc_dump_report *rep = report ? report : &dummy;
    hpc_dump_report_init(rep);
    if (original == NULL || decoded == NULL || opts == NULL || !(opts->eps >= 0) ||
        !isfinite(opts->eps)) {
        snprintf(rep->message, sizeof(rep->message), "invalid arguments");
        return NGL_ERR_INVALID_ARG;
    }
    verifier v;
    memset(&v, 0, sizeof(v));
    v.opts = opts;
    v.rep = rep;
    v.ra.f = original;
    v.rb.f = decoded;
    v.eps = opts->rel ? -1.0 : opts->eps;
    ngl_status st = NGL_OK;
    char m1[200], m2[200];
    for (uint64_t index = 0; st == NGL_OK; index++) {
        int r1 = hpc_snap_read(&v.ra, &v.sa, index, m1, sizeof(m1));
        int r2 = hpc_snap_read(&v.rb, &v.sb, index, m2, sizeof(m2));
        if (r1 < 0) {
            st = hpc_dump_fail(rep, NGL_ERR_INVALID_ARG, "ORIGINAL: %s", m1);
        } else if (r2 < 0) {
            st = hpc_dump_fail(rep, NGL_ERR_INVALID_ARG, "DECODED: %s", m2);
        } else if (r1 == 0 || r2 == 0) {
            if (r1 != r2) {
                st = hpc_dump_fail(rep, NGL_ERR_BAD_SECTION,
                                   "%s has more snapshots (from snapshot %" PRIu64 ")",
                                   r1 ? "ORIGINAL" : "DECODED", index);
            }
            break;
        } else {
            st = compare_snapshot(&v, index);
        }
    }
    if (st == NGL_OK) {
        rep->eps = v.eps < 0 ? 0 : v.eps;
    }
    rep->bytes_in = v.ra.bytes + v.rb.bytes;
    free(v.ra.line);
    free(v.rb.line);
    hpc_snap_free(&v.sa);
    hpc_snap_free(&v.sb);
    hpc_atomtab_free(&v.t);
    return st;
}
