/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hpc_cli.c -- `nangila hpc ...`: compress, decompress and verify LAMMPS text
 * dumps; extract their coordinates as float32; benchmark the codec.
 */
#include "nangila.h"
#include "nangila_cli.h"
#include "nangila_hpc.h"

#include "cli_hpc_kernel.h" /* bench --kernel: the CLI's one internal hook */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void hpc_usage(FILE *f)
{
    fprintf(
        f, "usage: nangila hpc <command> ...\n"
           "\n"
           "  compress   --eps E [--rel] [--best|--fast|--fastest] IN OUT\n"
           "                                                LAMMPS text dump -> container\n"
           "  decompress IN OUT                             container -> LAMMPS text dump\n"
           "  verify     ORIGINAL DECODED --eps E [--rel]   check the bound and everything else\n"
           "  extract    [--axis-major] DUMP OUT            coordinates as raw float32\n"
           "  bench      --eps E [--rel] [--best|--fast|--fastest] [--kernel K] [--repeat N] DUMP\n"
           "                                                codec speed and ratio on float32\n"
           "\n"
           "E is an absolute bound on every coordinate (0 = lossless); with --rel it is\n"
           "relative to the coordinate range (max - min over x, y, z) of the first snapshot.\n"
           "The default level 2 predicts from each atom's past moves and a pair-force term\n"
           "learned from the data; --best (level 3) adds, on dumps far apart in time,\n"
           "a prediction from each atom's cage of neighbours (smaller, much slower);\n"
           "--fast (level 1) drops the force term; --fastest (level 0) uses plain\n"
           "extrapolation only, for speed. IN/OUT may be '-'.\n"
           "Exit status: 0 success, 1 bad data or bound violated, 2 usage.\n");
}

static int parse_eps(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno || !isfinite(v) || v < 0) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Output goes to a temporary file renamed into place on success, so a failed
 * run never leaves a plausible-looking OUT behind. */
typedef struct outfile {
    FILE *f;
    const char *path;
    char tmp[4096];
} outfile;

static int out_open(outfile *o, const char *path)
{
    o->path = path;
    o->tmp[0] = '\0';
    if (!strcmp(path, "-")) {
        o->f = stdout;
        return 0;
    }
    int n = snprintf(o->tmp, sizeof(o->tmp), "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof(o->tmp)) {
        fprintf(stderr, "nangila hpc: output path too long\n");
        return -1;
    }
    o->f = fopen(o->tmp, "wb");
    if (o->f == NULL) {
        fprintf(stderr, "nangila hpc: cannot create %s: %s\n", o->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

static int out_close(outfile *o, int ok)
{
    if (o->f == stdout) {
        return fflush(stdout) == 0 ? 0 : -1;
    }
    int rc = fclose(o->f);
    o->f = NULL;
    if (!ok || rc != 0) {
        unlink(o->tmp);
        return rc != 0 ? -1 : 0;
    }
    if (rename(o->tmp, o->path) != 0) {
        fprintf(stderr, "nangila hpc: cannot rename %s to %s: %s\n", o->tmp, o->path,
                strerror(errno));
        unlink(o->tmp);
        return -1;
    }
    return 0;
}

static FILE *in_open(const char *path)
{
    if (!strcmp(path, "-")) {
        return stdin;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "nangila hpc: cannot open %s: %s\n", path, strerror(errno));
    }
    return f;
}

static void in_close(FILE *f)
{
    if (f != NULL && f != stdin) {
        fclose(f);
    }
}

typedef struct opts {
    double eps;
    int have_eps;
    int rel;
    int level;
    int kernel; /* bench: levels 0-1's vector kernel (cli_hpc_kernel.h), -1 = the best */
    int axis_major;
    unsigned repeat;
    const char *pos[2];
    int npos;
} opts;

static int parse_opts(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof(*o));
    o->repeat = 3;
    o->level = NGL_HPC_LEVEL_DEFAULT;
    o->kernel = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--eps") && i + 1 < argc) {
            if (parse_eps(argv[++i], &o->eps) != 0) {
                fprintf(stderr, "nangila hpc: --eps wants a finite number >= 0, got '%s'\n",
                        argv[i]);
                return -1;
            }
            o->have_eps = 1;
        } else if (!strncmp(a, "--eps=", 6)) {
            if (parse_eps(a + 6, &o->eps) != 0) {
                fprintf(stderr, "nangila hpc: --eps wants a finite number >= 0, got '%s'\n", a + 6);
                return -1;
            }
            o->have_eps = 1;
        } else if (!strcmp(a, "--rel")) {
            o->rel = 1;
        } else if (!strcmp(a, "--fast")) {
            o->level = NGL_HPC_LEVEL_FAST;
        } else if (!strcmp(a, "--fastest")) {
            o->level = NGL_HPC_LEVEL_FASTEST;
        } else if (!strcmp(a, "--best")) {
            o->level = NGL_HPC_LEVEL_BEST;
        } else if (!strcmp(a, "--kernel") && i + 1 < argc) {
            const char *k = argv[++i];
            o->kernel = ngl_cli_hpc_kernel_parse(k);
            if (!ngl_cli_hpc_kernel_available(o->kernel)) {
                fprintf(stderr,
                        "nangila hpc: --kernel wants scalar, avx2 or avx512 (one this CPU "
                        "runs), got '%s'\n",
                        k);
                return -1;
            }
        } else if (!strcmp(a, "--axis-major")) {
            o->axis_major = 1;
        } else if (!strcmp(a, "--repeat") && i + 1 < argc) {
            long r = strtol(argv[++i], NULL, 10);
            if (r < 1 || r > 1000) {
                fprintf(stderr, "nangila hpc: --repeat wants 1..1000\n");
                return -1;
            }
            o->repeat = (unsigned)r;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "nangila hpc: unknown option '%s'\n", a);
            return -1;
        } else {
            if (o->npos >= 2) {
                fprintf(stderr, "nangila hpc: too many arguments\n");
                return -1;
            }
            o->pos[o->npos++] = a;
        }
    }
    return 0;
}

static int cmd_compress(const opts *o)
{
    if (!o->have_eps || o->npos != 2) {
        fprintf(stderr, "usage: nangila hpc compress --eps E [--rel] [--fast|--fastest] IN OUT\n");
        return 2;
    }
    FILE *in = in_open(o->pos[0]);
    if (in == NULL) {
        return 1;
    }
    outfile out;
    if (out_open(&out, o->pos[1]) != 0) {
        in_close(in);
        return 1;
    }
    ngl_hpc_dump_opts d = {.eps = o->eps, .rel = o->rel, .level = o->level};
    ngl_hpc_dump_report rep;
    ngl_status st = ngl_hpc_dump_compress(in, out.f, &d, &rep);
    in_close(in);
    if (out_close(&out, st == NGL_OK) != 0 && st == NGL_OK) {
        fprintf(stderr, "nangila hpc: write error on %s\n", o->pos[1]);
        return 1;
    }
    if (st != NGL_OK) {
        fprintf(stderr, "nangila hpc compress: %s: %s\n", o->pos[0], rep.message);
        return 1;
    }
    fprintf(stderr,
            "%s: %" PRIu64 " snapshots, %" PRIu64 " atom lines, %" PRIu64 " -> %" PRIu64
            " bytes (%.2fx), eps %.6g%s%s\n",
            o->pos[0], rep.snapshots, rep.atoms, rep.bytes_in, rep.bytes_out,
            rep.bytes_out ? (double)rep.bytes_in / (double)rep.bytes_out : 0.0, rep.eps,
            rep.eps == 0 ? " (lossless)" : "", o->rel ? " (from --rel)" : "");
    if (rep.verbatim_lines) {
        fprintf(stderr, "  %" PRIu64 " atom lines kept as text (not in canonical form)\n",
                rep.verbatim_lines);
    }
    return 0;
}

static int cmd_decompress(const opts *o)
{
    if (o->npos != 2) {
        fprintf(stderr, "usage: nangila hpc decompress IN OUT\n");
        return 2;
    }
    FILE *in = in_open(o->pos[0]);
    if (in == NULL) {
        return 1;
    }
    outfile out;
    if (out_open(&out, o->pos[1]) != 0) {
        in_close(in);
        return 1;
    }
    ngl_hpc_dump_report rep;
    ngl_status st = ngl_hpc_dump_decompress(in, out.f, &rep);
    in_close(in);
    if (out_close(&out, st == NGL_OK) != 0 && st == NGL_OK) {
        fprintf(stderr, "nangila hpc: write error on %s\n", o->pos[1]);
        return 1;
    }
    if (st != NGL_OK) {
        fprintf(stderr, "nangila hpc decompress: %s: %s [%s]\n", o->pos[0], rep.message,
                ngl_status_str(st));
        return 1;
    }
    return 0;
}

static int cmd_verify(const opts *o)
{
    if (!o->have_eps || o->npos != 2) {
        fprintf(stderr, "usage: nangila hpc verify ORIGINAL DECODED --eps E [--rel]\n");
        return 2;
    }
    FILE *a = in_open(o->pos[0]);
    FILE *b = a ? in_open(o->pos[1]) : NULL;
    if (a == NULL || b == NULL) {
        in_close(a);
        return 1;
    }
    ngl_hpc_dump_opts d = {.eps = o->eps, .rel = o->rel, .level = NGL_HPC_LEVEL_DEFAULT};
    ngl_hpc_dump_report rep;
    ngl_status st = ngl_hpc_dump_verify(a, b, &d, &rep);
    in_close(a);
    in_close(b);
    if (st != NGL_OK) {
        fprintf(stderr, "nangila hpc verify: FAIL: %s\n", rep.message);
        return 1;
    }
    printf("verify: OK: %" PRIu64 " snapshots, %" PRIu64 " atom lines, %" PRIu64
           " coordinates within eps %.6g (max error %.6g); everything else identical\n",
           rep.snapshots, rep.atoms, rep.coords, rep.eps, rep.max_err);
    return 0;
}

/* ------------------------------------------------------------ frames in memory */
typedef struct fset {
    uint64_t n, cap;
    ngl_hpc_frame *f;
    uint64_t atoms0;
    int varying;
    int failed;
} fset;

static int keep_frame(void *user, uint64_t index, const ngl_hpc_frame *f)
{
    fset *s = user;
    (void)index;
    if (s->n == s->cap) {
        uint64_t cap = s->cap ? 2 * s->cap : 64;
        ngl_hpc_frame *nf = realloc(s->f, cap * sizeof(*nf));
        if (nf == NULL) {
            return 1;
        }
        s->f = nf;
        s->cap = cap;
    }
    ngl_hpc_frame c = *f;
    int64_t *ids = malloc((f->natoms ? f->natoms : 1) * sizeof(int64_t));
    float *xyz = malloc((f->natoms ? f->natoms : 1) * 3 * sizeof(float));
    if (ids == NULL || xyz == NULL) {
        free(ids);
        free(xyz);
        return 1;
    }
    const double *src = f->xyz;
    for (uint64_t i = 0; i < 3 * f->natoms; i++) {
        xyz[i] = (float)src[i];
    }
    if (f->natoms) {
        memcpy(ids, f->ids, f->natoms * sizeof(int64_t));
    }
    c.ids = ids;
    c.xyz = xyz;
    if (s->n == 0) {
        s->atoms0 = f->natoms;
    } else if (f->natoms != s->atoms0) {
        s->varying = 1;
    }
    s->f[s->n++] = c;
    return 0;
}

static void fset_free(fset *s)
{
    for (uint64_t i = 0; i < s->n; i++) {
        free((void *)s->f[i].ids);
        free((void *)s->f[i].xyz);
    }
    free(s->f);
}

static int load_frames(const char *path, fset *s)
{
    memset(s, 0, sizeof(*s));
    FILE *in = in_open(path);
    if (in == NULL) {
        return -1;
    }
    ngl_hpc_dump_report rep;
    ngl_status st = ngl_hpc_dump_scan(in, keep_frame, s, &rep);
    in_close(in);
    if (st != NGL_OK) {
        fprintf(stderr, "nangila hpc: %s: %s\n", path, rep.message);
        fset_free(s);
        return -1;
    }
    return 0;
}

static int cmd_extract(const opts *o)
{
    if (o->npos != 2) {
        fprintf(stderr, "usage: nangila hpc extract [--axis-major] DUMP OUT\n");
        return 2;
    }
    fset s;
    if (load_frames(o->pos[0], &s) != 0) {
        return 1;
    }
    if (s.varying) {
        fprintf(stderr, "nangila hpc extract: the atom count varies between snapshots\n");
        fset_free(&s);
        return 1;
    }
    outfile out;
    if (out_open(&out, o->pos[1]) != 0) {
        fset_free(&s);
        return 1;
    }
    int ok = 1;
    if (o->axis_major) {
        for (unsigned a = 0; a < 3 && ok; a++) {
            for (uint64_t t = 0; t < s.n && ok; t++) {
                const float *x = s.f[t].xyz;
                for (uint64_t i = 0; i < s.atoms0 && ok; i++) {
                    ok = fwrite(&x[3 * i + a], 4, 1, out.f) == 1;
                }
            }
        }
    } else {
        for (uint64_t t = 0; t < s.n && ok; t++) {
            ok = fwrite(s.f[t].xyz, 4, 3 * s.atoms0, out.f) == 3 * s.atoms0;
        }
    }
    if (out_close(&out, ok) != 0 || !ok) {
        fprintf(stderr, "nangila hpc extract: write error\n");
        fset_free(&s);
        return 1;
    }
    fprintf(stderr, "frames %" PRIu64 " atoms %" PRIu64 "\n", s.n, s.atoms0);
    printf("%" PRIu64 " %" PRIu64 "\n", s.n, s.atoms0);
    fset_free(&s);
    return 0;
}

static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmd_bench(const opts *o)
{
    if (!o->have_eps || o->npos != 1) {
        fprintf(stderr, "usage: nangila hpc bench --eps E [--rel] [--best|--fast|--fastest] "
                        "[--kernel K] [--repeat N] "
                        "DUMP\n");
        return 2;
    }
    fset s;
    if (load_frames(o->pos[0], &s) != 0) {
        return 1;
    }
    uint64_t raw = 0, maxn = 0;
    for (uint64_t t = 0; t < s.n; t++) {
        raw += 12 * s.f[t].natoms;
        maxn = s.f[t].natoms > maxn ? s.f[t].natoms : maxn;
    }
    size_t bound = ngl_hpc_encode_bound(maxn);
    uint8_t *buf = malloc(bound * (s.n ? s.n : 1));
    size_t *lens = malloc((s.n ? s.n : 1) * sizeof(size_t));
    uint8_t *copy = malloc(raw ? raw : 1);
    if (buf == NULL || lens == NULL || copy == NULL) {
        fprintf(stderr, "nangila hpc bench: out of memory\n");
        free(buf);
        free(lens);
        free(copy);
        fset_free(&s);
        return 1;
    }
    ngl_hpc_params p;
    ngl_hpc_params_init(&p);
    p.dtype = NGL_HPC_F32;
    p.level = o->level;
    if (o->rel) {
        p.rel = o->eps;
        p.eps = 0;
    } else {
        p.eps = o->eps;
    }
    /* memcpy baseline, same run */
    double best_cpy = INFINITY;
    for (unsigned r = 0; r < o->repeat; r++) {
        double t0 = cpu_now();
        size_t off = 0;
        for (uint64_t t = 0; t < s.n; t++) {
            memcpy(copy + off, s.f[t].xyz, 12 * s.f[t].natoms);
            off += 12 * s.f[t].natoms;
        }
        double t1 = cpu_now();
        best_cpy = t1 - t0 < best_cpy ? t1 - t0 : best_cpy;
    }
    double best_enc = INFINITY, best_dec = INFINITY, max_err = 0, eps_used = 0;
    int kernel_used = ngl_cli_hpc_kernel_best();
    size_t total = 0;
    ngl_hpc_stats est;
    memset(&est, 0, sizeof(est));
    int rc = 0;
    for (unsigned r = 0; r < o->repeat && rc == 0; r++) {
        ngl_hpc_encoder *enc = NULL;
        if (ngl_hpc_encoder_create(&p, &enc) != NGL_OK) {
            rc = 1;
            break;
        }
        int kernel = ngl_cli_hpc_kernel_best();
        if (o->kernel >= 0) {
            kernel = ngl_cli_hpc_kernel_set(enc, o->kernel);
        }
        kernel_used = kernel;
        double t0 = cpu_now();
        total = 0;
        for (uint64_t t = 0; t < s.n; t++) {
            ngl_status st = ngl_hpc_encoder_encode(enc, &s.f[t], buf + total, bound, &lens[t]);
            if (st != NGL_OK) {
                fprintf(stderr, "encode: %s (%s)\n", ngl_status_str(st),
                        ngl_hpc_encoder_error(enc));
                rc = 1;
                break;
            }
            total += lens[t];
        }
        double t1 = cpu_now();
        best_enc = t1 - t0 < best_enc ? t1 - t0 : best_enc;
        ngl_hpc_encoder_get_stats(enc, &est);
        eps_used = ngl_hpc_encoder_eps(enc);
        ngl_hpc_encoder_destroy(enc);
        if (rc) {
            break;
        }
        ngl_hpc_decoder *dec = NULL;
        if (ngl_hpc_decoder_create(&dec) != NGL_OK) {
            rc = 1;
            break;
        }
        double t2 = cpu_now();
        size_t off = 0;
        uint64_t fi = 0;
        while (off < total) {
            size_t rl;
            int got = 0;
            ngl_status st = ngl_hpc_record_size(buf + off, total - off, &rl);
            if (st == NGL_OK) {
                st = ngl_hpc_decoder_decode(dec, buf + off, rl, &got);
            }
            if (st != NGL_OK) {
                fprintf(stderr, "decode: %s (%s)\n", ngl_status_str(st),
                        ngl_hpc_decoder_error(dec));
                rc = 1;
                break;
            }
            off += rl;
            if (got && r == 0) {
                /* error check only once, outside the timed repetitions' spirit */
                const ngl_hpc_frame *d = ngl_hpc_decoder_frame(dec);
                const float *a = s.f[fi].xyz, *b = d->xyz;
                for (uint64_t i = 0; i < 3 * d->natoms; i++) {
                    double e = fabs((double)a[i] - (double)b[i]);
                    max_err = e > max_err || e != e ? e : max_err;
                }
            }
            fi += (uint64_t)got;
        }
        double t3 = cpu_now();
        if (r > 0 || o->repeat == 1) {
            best_dec = t3 - t2 < best_dec ? t3 - t2 : best_dec;
        }
        ngl_hpc_decoder_destroy(dec);
    }
    if (rc == 0) {
        double mb = (double)raw / 1e6;
        printf("file=%s frames=%" PRIu64 " atoms=%" PRIu64 " level=%d eps=%.6g%s raw_f32=%" PRIu64
               " bytes=%zu ratio_f32=%.3f bits_per_value=%.4f enc_MBps=%.1f dec_MBps=%.1f "
               "memcpy_MBps=%.1f enc_vs_memcpy=%.4f max_err=%.6g exact=%" PRIu64
               " force_frames=%" PRIu64 " cage_frames=%" PRIu64 " kernel=%s cpu=process\n",
               o->pos[0], s.n, maxn, p.level, eps_used, o->rel ? " rel" : "", raw, total,
               total ? (double)raw / (double)total : 0.0,
               raw ? 8.0 * (double)total / ((double)raw / 4.0) : 0.0, mb / best_enc, mb / best_dec,
               mb / best_cpy, best_cpy / best_enc, max_err, est.exact, est.force_frames,
               est.cage_frames,
               p.level > NGL_HPC_LEVEL_FAST ? "-" : ngl_cli_hpc_kernel_name(kernel_used));
        if (max_err > eps_used) {
            fprintf(stderr, "nangila hpc bench: bound violated (%.6g > %.6g)\n", max_err, eps_used);
            rc = 1;
        }
    }
    free(buf);
    free(lens);
    free(copy);
    fset_free(&s);
    return rc;
}

int ngl_cli_hpc(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        hpc_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    opts o;
    if (parse_opts(argc - 1, argv + 1, &o) != 0) {
        return 2;
    }
    if (!strcmp(cmd, "compress")) {
        return cmd_compress(&o);
    }
    if (!strcmp(cmd, "decompress")) {
        return cmd_decompress(&o);
    }
    if (!strcmp(cmd, "verify")) {
        return cmd_verify(&o);
    }
    if (!strcmp(cmd, "extract")) {
        return cmd_extract(&o);
    }
    if (!strcmp(cmd, "bench")) {
        return cmd_bench(&o);
    }
    fprintf(stderr, "nangila hpc: unknown command '%s'\n", cmd);
    hpc_usage(stderr);
    return 2;
}
