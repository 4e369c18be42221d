/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_io.c -- CSV / raw binary sample streams and the rotor simulator for
 * `nangila twin` (see twin_io.h).
 */
#include "twin_io.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct ngl_twin_reader {
    FILE *f;
    int binary;
    int f32;
    size_t channels;
    char *header;
    char *line; /* getline's buffer */
    size_t line_cap;
    unsigned long lineno;
    unsigned char *raw; /* one binary row */
};

static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    if (err == NULL || cap == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

/* Strips the line ending, CRLF included: CSV from Windows tools is common. */
static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

ngl_twin_reader *ngl_twin_reader_open(FILE *f, int binary, int f32, size_t channels, char *err,
                                      size_t err_cap)
{
    ngl_twin_reader *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        set_err(err, err_cap, "out of memory");
        return NULL;
    }
    r->f = f;
    r->binary = binary;
    r->f32 = f32;
    if (binary) {
        if (channels == 0 || channels > 65536) {
            set_err(err, err_cap, "binary input needs --channels between 1 and 65536");
            goto fail;
        }
        r->channels = channels;
        /* "c0,c1,...": at most 7 bytes per name for 65536 channels. */
        r->header = malloc(channels * 8 + 1);
        r->raw = malloc(channels * (f32 ? 4 : 8));
        if (r->header == NULL || r->raw == NULL) {
            set_err(err, err_cap, "out of memory");
            goto fail;
        }
        size_t at = 0;
        for (size_t c = 0; c < channels; c++) {
            at += (size_t)sprintf(r->header + at, c ? ",c%zu" : "c%zu", c);
        }
        return r;
    }
    if (getline(&r->line, &r->line_cap, f) < 0) {
        set_err(err, err_cap, "empty input: a CSV header line of channel names comes first");
        goto fail;
    }
    r->lineno = 1;
    chomp(r->line);
    if (r->line[0] == '\0') {
        set_err(err, err_cap, "line 1: empty CSV header");
        goto fail;
    }
    r->channels = 1;
    for (const char *p = r->line; *p; p++) {
        r->channels += *p == ',';
    }
    r->header = dup_str(r->line);
    if (r->header == NULL) {
        set_err(err, err_cap, "out of memory");
        goto fail;
    }
    return r;
fail:
    ngl_twin_reader_close(r);
    return NULL;
}

void ngl_twin_reader_close(ngl_twin_reader *r)
{
    if (r == NULL) {
        return;
    }
    free(r->raw);
    free(r->line);
    free(r->header);
    free(r);
}

size_t ngl_twin_reader_channels(const ngl_twin_reader *r)
{
    return r->channels;
}

const char *ngl_twin_reader_header(const ngl_twin_reader *r)
{
    return r->header;
}

static double le_f64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) {
        u = u << 8 | p[i];
    }
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static float le_f32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float x;
    memcpy(&x, &u, sizeof(x));
    return x;
}

static int read_binary(ngl_twin_reader *r, double *row, char *err, size_t err_cap)
{
    size_t w = r->f32 ? 4 : 8;
    size_t want = r->channels * w;
    size_t got = fread(r->raw, 1, want, r->f);
    if (got == 0 && feof(r->f)) {
        return 0;
    }
    if (got != want) {
        if (ferror(r->f)) {
            set_err(err, err_cap, "read error: %s", strerror(errno));
        } else {
            set_err(err, err_cap, "truncated input: %zu trailing bytes are not a whole row", got);
        }
        return -1;
    }
    for (size_t c = 0; c < r->channels; c++) {
        row[c] = r->f32 ? (double)le_f32(r->raw + c * w) : le_f64(r->raw + c * w);
    }
    return 1;
}

int ngl_twin_reader_next(ngl_twin_reader *r, double *row, char *err, size_t err_cap)
{
    if (r->binary) {
        return read_binary(r, row, err, err_cap);
    }
    for (;;) {
        errno = 0;
        if (getline(&r->line, &r->line_cap, r->f) < 0) {
            if (ferror(r->f)) {
                set_err(err, err_cap, "read error: %s", strerror(errno));
                return -1;
            }
            return 0;
        }
        r->lineno++;
        chomp(r->line);
        if (r->line[0] != '\0') {
            break;
        }
        /* blank lines (a trailing newline pair) carry no sample */
    }
    const char *p = r->line;
    for (size_t c = 0; c < r->channels; c++) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        char *end;
        errno = 0;
        double v = r->f32 ? (double)strtof(p, &end) : strtod(p, &end);
        /* ERANGE: an overflow is +-inf and an underflow a subnormal or zero,
         * both what the user typed as closely as the type holds it. */
        if (end == p) {
            set_err(err, err_cap, "line %lu: column %zu is not a number", r->lineno, c + 1);
            return -1;
        }
        while (*end == ' ' || *end == '\t') {
            end++;
        }
        if (c + 1 < r->channels ? *end != ',' : *end != '\0') {
            set_err(err, err_cap, "line %lu: expected %zu values separated by commas", r->lineno,
                    r->channels);
            return -1;
        }
        row[c] = v;
        p = end + 1;
    }
    return 1;
}

struct ngl_twin_writer {
    FILE *f;
    int binary;
    int f32;
    size_t channels;
    int failed;
    unsigned char *raw;
};

ngl_twin_writer *ngl_twin_writer_open(FILE *f, int binary, int f32, size_t channels,
                                      const char *header)
{
    ngl_twin_writer *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->f = f;
    w->binary = binary;
    w->f32 = f32;
    w->channels = channels;
    if (binary) {
        w->raw = malloc(channels * 8);
        if (w->raw == NULL) {
            free(w);
            return NULL;
        }
    } else if (fprintf(f, "%s\n", header) < 0) {
        w->failed = 1;
    }
    return w;
}

static void put_le(unsigned char *p, uint64_t u, int bytes)
{
    for (int i = 0; i < bytes; i++) {
        p[i] = (unsigned char)(u >> (8 * i));
    }
}

int ngl_twin_writer_row(ngl_twin_writer *w, const double *row)
{
    if (w->binary) {
        size_t bw = w->f32 ? 4 : 8;
        for (size_t c = 0; c < w->channels; c++) {
            if (w->f32) {
                float x = (float)row[c];
                uint32_t u;
                memcpy(&u, &x, sizeof(u));
                put_le(w->raw + c * bw, u, 4);
            } else {
                uint64_t u;
                memcpy(&u, &row[c], sizeof(u));
                put_le(w->raw + c * bw, u, 8);
            }
        }
        if (fwrite(w->raw, bw, w->channels, w->f) != w->channels) {
            w->failed = 1;
        }
        return w->failed ? -1 : 0;
    }
    for (size_t c = 0; c < w->channels; c++) {
        double v = row[c];
        const char *sep = c + 1 < w->channels ? "," : "\n";
        int rc;
        if (isnan(v)) {
            rc = fprintf(w->f, "nan%s", sep);
        } else if (w->f32) {
            rc = fprintf(w->f, "%.9g%s", v, sep);
        } else {
            rc = fprintf(w->f, "%.17g%s", v, sep);
        }
        if (rc < 0) {
            w->failed = 1;
        }
    }
    return w->failed ? -1 : 0;
}

int ngl_twin_writer_close(ngl_twin_writer *w)
{
    if (w == NULL) {
        return 0;
    }
    int rc = (fflush(w->f) != 0 || w->failed) ? -1 : 0;
    free(w->raw);
    free(w);
    return rc;
}

/* ---- rotor simulator ---------------------------------------------------- */

enum { SIM_KINDS = 4 }; /* vib, temp, cur, rpm */

struct ngl_twin_sim {
    size_t channels;
    double dt;
    uint64_t rng;
    uint64_t n;
    double phase;  /* shaft angle, radians */
    double mains;  /* mains angle */
    double *temp;  /* per temperature channel */
    double *scale; /* per channel: a fixed per-sensor gain */
    char *header;
};

/* splitmix64: small, seedable, identical everywhere. */
static uint64_t sim_u64(ngl_twin_sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double sim_unit(ngl_twin_sim *s)
{
    return (double)(sim_u64(s) >> 11) * 0x1.0p-53;
}

/* Approximately N(0,1): the sum of four uniforms, recentred and scaled (no
 * log/sqrt, and sensor noise is rarely Gaussian in its tails anyway). */
static double sim_noise(ngl_twin_sim *s)
{
    double a = sim_unit(s) + sim_unit(s) + sim_unit(s) + sim_unit(s);
    return (a - 2.0) * 1.7320508075688772;
}

ngl_twin_sim *ngl_twin_sim_create(size_t channels, double rate_hz, uint64_t seed)
{
    if (channels == 0 || channels > 65536 || !(rate_hz > 0)) {
        return NULL;
    }
    ngl_twin_sim *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->channels = channels;
    s->dt = 1.0 / rate_hz;
    s->rng = seed;
    s->temp = calloc(channels, sizeof(double));
    s->scale = calloc(channels, sizeof(double));
    s->header = malloc(channels * 12 + 1);
    if (s->temp == NULL || s->scale == NULL || s->header == NULL) {
        ngl_twin_sim_destroy(s);
        return NULL;
    }
    static const char *const kind[SIM_KINDS] = {"vib", "temp", "cur", "rpm"};
    size_t at = 0;
    for (size_t c = 0; c < channels; c++) {
        at += (size_t)sprintf(s->header + at, "%s%s%zu", c ? "," : "", kind[c % SIM_KINDS],
                              c / SIM_KINDS);
        s->scale[c] = 0.8 + 0.4 * sim_unit(s);
        s->temp[c] = 40.0 + 5.0 * sim_unit(s);
    }
    return s;
}

void ngl_twin_sim_destroy(ngl_twin_sim *s)
{
    if (s == NULL) {
        return;
    }
    free(s->header);
    free(s->scale);
    free(s->temp);
    free(s);
}

const char *ngl_twin_sim_header(const ngl_twin_sim *s)
{
    return s->header;
}

void ngl_twin_sim_next(ngl_twin_sim *s, double *row)
{
    const double two_pi = 6.283185307179586;
    double t = (double)s->n * s->dt;
    /* Load cycles every 20 s; the shaft runs 25..35 Hz with it, and the
     * phase integrates the speed so the harmonics stay continuous. */
    double load = 0.5 + 0.4 * sin(two_pi * t / 20.0);
    double shaft_hz = 25.0 + 10.0 * load;
    s->phase = fmod(s->phase + two_pi * shaft_hz * s->dt, two_pi);
    s->mains = fmod(s->mains + two_pi * 50.0 * s->dt, two_pi);
    for (size_t c = 0; c < s->channels; c++) {
        double g = s->scale[c];
        double v;
        switch (c % SIM_KINDS) {
        case 0: /* vibration, mm/s: 1x, 2x (misalignment), 3x, and noise */
            v = g * (2.0 * sin(s->phase) + 0.7 * sin(2.0 * s->phase + 0.3 * (double)c) +
                     0.2 * sin(3.0 * s->phase)) +
                0.05 * sim_noise(s);
            break;
        case 1: /* bearing temperature, degC: first order towards 40 + 30 load */
            s->temp[c] += (40.0 + 30.0 * load - s->temp[c]) * s->dt / 60.0;
            v = g * s->temp[c] + 0.01 * sim_noise(s);
            break;
        case 2: /* motor current, A */
            v = g * (10.0 + 20.0 * load) * sin(s->mains) + 0.1 * sim_noise(s);
            break;
        default: /* shaft speed, rpm, from an encoder with 0.1 rpm jitter */
            v = shaft_hz * 60.0 + 0.1 * sim_noise(s);
            break;
        }
        row[c] = v;
    }
    s->n++;
}
