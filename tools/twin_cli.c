/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_cli.c -- `nangila twin ...`: stream sensor samples through an MQTT
 * broker with the twin codec (twin/include/nangila_twin.h).
 *
 *   publish    samples (CSV, raw binary or the rotor simulator) -> messages on T
 *   subscribe  messages on T -> samples (CSV or raw binary), with statistics
 *   bench      codec ratio and one-core encode / decode speed on a file
 *
 * Topics, for a stream on topic T:
 *   T       the codec's messages, one per batch of samples (or raw values
 *           with --raw); the codec's end-of-stream message ends it
 *   T/meta  retained stream description: channel names, dtype, codec. The
 *           codec does not carry names, and a late subscriber needs them
 *           before the first row it writes.
 *   T/ctl   subscribers publish "keyframe" there after a gap or a late
 *           join; the publisher's next message is then a keyframe.
 *
 * Latency: every data message carries, as the MQTT v5 user property "t", the
 * wall-clock time (microseconds) at which its newest sample was taken. The
 * subscriber subtracts it from the time the message's samples were decoded.
 * Both ends must share a clock (the same machine, or hosts kept in sync by
 * PTP/NTP, whose offset then adds to the figures). --no-stamp drops the
 * property (about 25 bytes a message) and the latency figures with it.
 */
#include "nangila.h"
#include "nangila_cli.h"
#include "nangila_twin.h"
#include "twin_io.h"
#include "twin_mqtt.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TWIN_META_MAGIC "nangila-twin-meta 1"
/* Subscriber's reorder window: at most this many messages (--reorder), held
 * at most this long before what is missing counts as lost. */
enum { REORDER_MAX = 64 };
#define REORDER_HOLD_S 0.02

static volatile sig_atomic_t twin_stop; /* SIGINT / SIGTERM: finish cleanly */

static void on_signal(int sig)
{
    (void)sig;
    twin_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* a closed stdout (| head) must end the program with an error, not kill it */
    signal(SIGPIPE, SIG_IGN);
}

static void twin_usage(FILE *f)
{
    fprintf(f,
            "usage: nangila twin <command> ...\n"
            "\n"
            "  publish   --topic T (--eps E | --eps-file F) [--rel] [--keyframe N] [--batch N]\n"
            "            [--f32] [--binary --channels C] [--rate-hz R] [--qos 0|1] [--buffer N]\n"
            "            [--raw] [--no-stamp] [connection options] [FILE|-]\n"
            "  publish   --simulate rotor --rate-hz R --channels C --duration S [--seed N] ...\n"
            "  subscribe --topic T --out FILE|- [--binary] [--timeout S] [--stats-json FILE]\n"
            "            [--qos 0|1] [--passive] [--reorder N] [connection options]\n"
            "  bench     (--eps E | --eps-file F) [--rel] [--batch N] [--keyframe N] [--f32]\n"
            "            [--repeat N] FILE     codec ratio and one-core MB/s, no broker\n"
            "  simulate  --rate-hz R --channels C --duration S [--seed N] [--f32] --out FILE|-\n"
            "            the rotor simulator's samples as CSV (what publish --simulate sends)\n"
            "\n"
            "connection options: --host H (localhost) --port P (1883) --id CLIENT_ID\n"
            "  --cafile F --cert F --key F (TLS) --username U --password P\n"
            "\n"
            "Input is CSV (a header of channel names, then one row per sample; nan, inf and\n"
            "-inf kept) read as float64, or float32 with --f32; --binary reads raw\n"
            "little-endian values, --channels per row. E bounds every channel's error\n"
            "(absolute; pointwise relative |x'-x| <= E|x| with --rel; 0 = lossless);\n"
            "--eps-file gives one bound per channel (numbers separated by commas, blanks\n"
            "or newlines). A keyframe goes out every N messages (default 100) and when a\n"
            "subscriber asks on T/ctl. --rate-hz paces the input (a live source): then a\n"
            "broker outage fills a queue of --buffer messages (default 10000) and the\n"
            "oldest are dropped and counted; unpaced file input waits for the broker.\n"
            "--raw publishes the values uncompressed (the baseline).\n"
            "The subscriber writes the publisher's CSV layout (or raw values with\n"
            "--binary), reports gaps on stderr without filling them, asks for a keyframe\n"
            "when it sees one or joins late (never with --passive: then it waits for the\n"
            "periodic keyframe), holds up to --reorder messages (default 8, 20 ms at most)\n"
            "that overtook an earlier one, and exits on end-of-stream or after S seconds\n"
            "without a message; it prints values, bytes, ratio, gaps, resyncs and latency.\n"
            "Exit status: 0 success, 1 error, 2 usage, 3 subscribe timed out before the\n"
            "end of the stream.\n");
}

/* ---- option parsing --------------------------------------------------------- */

typedef struct twin_opts {
    const char *topic;
    const char *file;
    const char *out;
    const char *eps_file;
    const char *simulate;
    const char *stats_json;
    double eps;
    int have_eps;
    int rel;
    int f32;
    int binary;
    int raw;
    int stamp;
    int passive;
    int qos;
    long channels;
    long keyframe;
    long batch;
    long buffer;
    long repeat;
    long reorder;
    double rate_hz;
    double duration;
    double timeout;
    uint64_t seed;
    uint32_t stream_id;
    ngl_twin_mqtt_opts conn;
} twin_opts;

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno || !isfinite(v)) {
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Parses argv[1..] (argv[0] is the command). Returns 0, or 2 after a usage
 * message. */
static int parse_opts(int argc, char **argv, twin_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->stamp = 1;
    o->keyframe = 100;
    o->batch = 1;
    o->buffer = 10000;
    o->repeat = 3;
    o->reorder = 8;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long l;
        int takes = 1;
        int bad = 0;
        if (!strcmp(a, "--rel")) {
            o->rel = 1;
            takes = 0;
        } else if (!strcmp(a, "--f32")) {
            o->f32 = 1;
            takes = 0;
        } else if (!strcmp(a, "--binary")) {
            o->binary = 1;
            takes = 0;
        } else if (!strcmp(a, "--raw")) {
            o->raw = 1;
            takes = 0;
        } else if (!strcmp(a, "--passive")) {
            o->passive = 1;
            takes = 0;
        } else if (!strcmp(a, "--no-stamp")) {
            o->stamp = 0;
            takes = 0;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            twin_usage(stdout);
            exit(0);
        } else if (a[0] != '-' || !strcmp(a, "-")) {
            if (o->file != NULL) {
                fprintf(stderr, "nangila twin: more than one input file\n");
                return 2;
            }
            o->file = a;
            takes = 0;
        } else if (v == NULL) {
            fprintf(stderr, "nangila twin: %s needs a value\n", a);
            return 2;
        } else if (!strcmp(a, "--topic")) {
            o->topic = v;
        } else if (!strcmp(a, "--out")) {
            o->out = v;
        } else if (!strcmp(a, "--eps")) {
            bad = parse_double(v, &o->eps) || o->eps < 0;
            o->have_eps = 1;
        } else if (!strcmp(a, "--eps-file")) {
            o->eps_file = v;
        } else if (!strcmp(a, "--simulate")) {
            o->simulate = v;
        } else if (!strcmp(a, "--stats-json")) {
            o->stats_json = v;
        } else if (!strcmp(a, "--keyframe")) {
            bad = parse_long(v, 1, UINT32_MAX, &o->keyframe);
        } else if (!strcmp(a, "--batch")) {
            bad = parse_long(v, 1, NGL_TWIN_MAX_SAMPLES, &o->batch);
        } else if (!strcmp(a, "--buffer")) {
            bad = parse_long(v, 1, 100000000, &o->buffer);
        } else if (!strcmp(a, "--reorder")) {
            bad = parse_long(v, 0, REORDER_MAX, &o->reorder);
        } else if (!strcmp(a, "--repeat")) {
            bad = parse_long(v, 1, 1000, &o->repeat);
        } else if (!strcmp(a, "--channels")) {
            bad = parse_long(v, 1, NGL_TWIN_MAX_CHANNELS, &o->channels);
        } else if (!strcmp(a, "--qos")) {
            bad = parse_long(v, 0, 1, &l);
            o->qos = (int)l;
        } else if (!strcmp(a, "--rate-hz")) {
            bad = parse_double(v, &o->rate_hz) || o->rate_hz <= 0;
        } else if (!strcmp(a, "--duration")) {
            bad = parse_double(v, &o->duration) || o->duration <= 0;
        } else if (!strcmp(a, "--timeout")) {
            bad = parse_double(v, &o->timeout) || o->timeout < 0;
        } else if (!strcmp(a, "--seed")) {
            bad = parse_long(v, 0, LONG_MAX, &l);
            o->seed = (uint64_t)l;
        } else if (!strcmp(a, "--stream-id")) {
            bad = parse_long(v, 0, UINT32_MAX, &l);
            o->stream_id = (uint32_t)l;
        } else if (!strcmp(a, "--host")) {
            o->conn.host = v;
        } else if (!strcmp(a, "--port")) {
            bad = parse_long(v, 1, 65535, &l);
            o->conn.port = (int)l;
        } else if (!strcmp(a, "--id")) {
            o->conn.client_id = v;
        } else if (!strcmp(a, "--cafile")) {
            o->conn.cafile = v;
        } else if (!strcmp(a, "--cert")) {
            o->conn.cert = v;
        } else if (!strcmp(a, "--key")) {
            o->conn.key = v;
        } else if (!strcmp(a, "--username")) {
            o->conn.username = v;
        } else if (!strcmp(a, "--password")) {
            o->conn.password = v;
        } else {
            fprintf(stderr, "nangila twin: unknown option %s\n", a);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "nangila twin: bad value for %s: '%s'\n", a, v);
            return 2;
        }
        i += takes;
    }
    return 0;
}

/* Reads one bound per channel: numbers separated by commas, blanks or
 * newlines; a first line that does not start with a number (a CSV header)
 * is skipped. Returns a malloc'ed array of `channels` bounds, or NULL after a
 * message. */
static ngl_twin_bound *read_eps_file(const char *path, size_t channels, int rel)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "nangila twin: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    ngl_twin_bound *b = calloc(channels, sizeof(*b));
    char *line = NULL;
    size_t cap = 0;
    size_t n = 0;
    int first = 1;
    int ok = b != NULL;
    while (ok && getline(&line, &cap, f) >= 0) {
        char *p = line;
        if (first) {
            first = 0;
            char *end;
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            strtod(p, &end);
            if (end == p && *p != '\n' && *p != '\0') {
                continue; /* header */
            }
        }
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n' || *p == '\r') {
                p++;
            }
            if (*p == '\0') {
                break;
            }
            char *end;
            errno = 0;
            double e = strtod(p, &end);
            if (end == p || errno || !isfinite(e) || e < 0) {
                fprintf(stderr, "nangila twin: %s: bad bound near '%.20s'\n", path, p);
                ok = 0;
                break;
            }
            if (n == channels) {
                fprintf(stderr, "nangila twin: %s: more bounds than the %zu channels\n", path,
                        channels);
                ok = 0;
                break;
            }
            b[n].mode = rel ? NGL_TWIN_EPS_REL : NGL_TWIN_EPS_ABS;
            b[n].eps = e;
            n++;
            p = end;
        }
    }
    if (ok && n != channels) {
        fprintf(stderr, "nangila twin: %s: %zu bounds for %zu channels\n", path, n, channels);
        ok = 0;
    }
    free(line);
    fclose(f);
    if (!ok) {
        free(b);
        return NULL;
    }
    return b;
}

/* The encoder for a stream of `channels` channels as the options describe it;
 * NULL after a message. */
static ngl_twin_encoder *make_encoder(const twin_opts *o, size_t channels, size_t max_samples)
{
    ngl_twin_config cfg;
    ngl_twin_config_init(&cfg);
    cfg.channels = (uint32_t)channels;
    cfg.dtype = o->f32 ? NGL_DTYPE_F32 : NGL_DTYPE_F64;
    cfg.bound.mode = o->rel ? NGL_TWIN_EPS_REL : NGL_TWIN_EPS_ABS;
    cfg.bound.eps = o->eps;
    cfg.keyframe_interval = (uint32_t)o->keyframe;
    cfg.max_samples = (uint32_t)max_samples;
    cfg.stream_id = o->stream_id;
    ngl_twin_bound *bounds = NULL;
    if (o->eps_file != NULL) {
        bounds = read_eps_file(o->eps_file, channels, o->rel);
        if (bounds == NULL) {
            return NULL;
        }
        cfg.bounds = bounds;
    }
    const char *why = NULL;
    ngl_twin_encoder *enc = NULL;
    if (ngl_twin_config_check(&cfg, &why) != NGL_OK) {
        fprintf(stderr, "nangila twin: %s\n", why != NULL ? why : "invalid stream settings");
    } else {
        ngl_status st = ngl_twin_encoder_create(&cfg, &enc);
        if (st != NGL_OK) {
            fprintf(stderr, "nangila twin: encoder: %s\n", ngl_status_str(st));
        }
    }
    free(bounds);
    return enc;
}

/* Packs rows of doubles into the stream's dtype (row-major). */
static void pack_rows(const double *rows, size_t n, int f32, void *dst)
{
    if (f32) {
        float *d = dst;
        for (size_t i = 0; i < n; i++) {
            d[i] = (float)rows[i];
        }
    } else {
        memcpy(dst, rows, n * sizeof(double));
    }
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *topic_join(const char *topic, const char *suffix)
{
    size_t n = strlen(topic) + strlen(suffix) + 2;
    char *t = malloc(n);
    if (t != NULL) {
        snprintf(t, n, "%s/%s", topic, suffix);
    }
    return t;
}

/* ---- publish ------------------------------------------------------------------ */

typedef struct pub_ctx {
    ngl_twin_encoder *enc; /* NULL with --raw */
    char *ctl_topic;
    uint64_t keyframe_requests;
} pub_ctx;

static void pub_on_msg(void *user, const char *topic, const void *payload, size_t len,
                       int64_t stamp_us)
{
    (void)stamp_us;
    pub_ctx *p = user;
    if (strcmp(topic, p->ctl_topic) != 0) {
        return;
    }
    if (len == 8 && !memcmp(payload, "keyframe", 8) && p->enc != NULL) {
        ngl_twin_encoder_request_keyframe(p->enc);
        p->keyframe_requests++;
    }
}

static int cmd_publish(int argc, char **argv)
{
    twin_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) {
        return rc;
    }
    if (o.topic == NULL || (!o.raw && !o.have_eps && o.eps_file == NULL)) {
        fprintf(stderr, "nangila twin publish: --topic and --eps (or --eps-file) are needed\n");
        return 2;
    }
    int simulate = o.simulate != NULL;
    if (simulate && (strcmp(o.simulate, "rotor") != 0 || o.rate_hz <= 0 || o.channels <= 0 ||
                     o.duration <= 0)) {
        fprintf(stderr, "nangila twin publish: --simulate rotor needs --rate-hz, --channels and "
                        "--duration\n");
        return 2;
    }
    install_signals();
    int status = 1;
    FILE *in = NULL;
    ngl_twin_reader *reader = NULL;
    ngl_twin_sim *sim = NULL;
    ngl_twin_mqtt *mq = NULL;
    ngl_twin_outq *q = NULL;
    double *rows = NULL;
    unsigned char *packed = NULL;
    unsigned char *msg = NULL;
    char *meta = NULL;
    char *meta_topic = NULL;
    pub_ctx ctx = {0};
    char err[256] = "";
    size_t channels;
    const char *header;

    if (simulate) {
        sim = ngl_twin_sim_create((size_t)o.channels, o.rate_hz, o.seed);
        if (sim == NULL) {
            fprintf(stderr, "nangila twin publish: out of memory\n");
            goto out;
        }
        channels = (size_t)o.channels;
        header = ngl_twin_sim_header(sim);
    } else {
        in = o.file == NULL || !strcmp(o.file, "-") ? stdin : fopen(o.file, "rb");
        if (in == NULL) {
            fprintf(stderr, "nangila twin publish: cannot open %s: %s\n", o.file, strerror(errno));
            goto out;
        }
        reader = ngl_twin_reader_open(in, o.binary, o.f32, (size_t)o.channels, err, sizeof(err));
        if (reader == NULL) {
            fprintf(stderr, "nangila twin publish: %s\n", err);
            goto out;
        }
        channels = ngl_twin_reader_channels(reader);
        header = ngl_twin_reader_header(reader);
    }
    if (channels > NGL_TWIN_MAX_CHANNELS ||
        (uint64_t)o.batch * channels > (uint64_t)NGL_TWIN_MAX_VALUES) {
        fprintf(stderr, "nangila twin publish: %zu channels x --batch %ld is too large\n", channels,
                o.batch);
        goto out;
    }
    size_t vsize = o.f32 ? 4 : 8;
    size_t batch = (size_t)o.batch;
    rows = malloc(batch * channels * sizeof(double));
    packed = malloc(batch * channels * vsize);
    if (!o.raw) {
        ctx.enc = make_encoder(&o, channels, batch);
        if (ctx.enc == NULL) {
            goto out;
        }
    }
    size_t msg_cap = o.raw ? batch * channels * vsize + 1 : ngl_twin_encoder_bound(ctx.enc, batch);
    msg = malloc(msg_cap);
    /* The stream description, retained so late subscribers get it first. */
    size_t meta_len = strlen(header) + 128;
    meta = malloc(meta_len);
    ctx.ctl_topic = topic_join(o.topic, "ctl");
    meta_topic = topic_join(o.topic, "meta");
    q = ngl_twin_outq_create((size_t)o.buffer);
    if (rows == NULL || packed == NULL || msg == NULL || meta == NULL || ctx.ctl_topic == NULL ||
        meta_topic == NULL || q == NULL) {
        fprintf(stderr, "nangila twin publish: out of memory\n");
        goto out;
    }
    meta_len = (size_t)snprintf(meta, meta_len, "%s\ncodec %s\ndtype %s\nchannels %zu\n%s\n",
                                TWIN_META_MAGIC, o.raw ? "raw" : "twin", o.f32 ? "f32" : "f64",
                                channels, header);

    mq = ngl_twin_mqtt_create(&o.conn, pub_on_msg, &ctx, err, sizeof(err));
    if (mq == NULL) {
        fprintf(stderr, "nangila twin publish: %s\n", err);
        goto out;
    }
    if (ngl_twin_mqtt_subscribe(mq, ctx.ctl_topic, 0) != 0) {
        goto out;
    }

    /* A live source (the simulator, or --rate-hz) cannot wait for the
     * broker: its queue drops the oldest messages. A file can wait. */
    int live = simulate || o.rate_hz > 0;
    uint64_t total = simulate ? (uint64_t)llround(o.duration * o.rate_hz) : UINT64_MAX;
    uint64_t produced = 0;     /* samples taken from the source */
    uint64_t dropped_msgs = 0; /* queue overflow */
    uint64_t dropped_samples = 0;
    uint64_t sent_msgs = 0;
    uint64_t sent_bytes = 0;
    uint64_t meta_epoch = UINT64_MAX; /* reconnect count when meta was last sent */
    int source_done = 0;
    int end_queued = 0;
    int source_error = 0;
    double t0 = mono_s();
    double linger_until = 0;
    double enc_cpu = 0;

    while (!twin_stop) {
        /* (re)publish the description after every (re)connect: a broker
         * restarted without persistence has forgotten the retained copy. */
        if (ngl_twin_mqtt_connected(mq) && meta_epoch != ngl_twin_mqtt_reconnects(mq)) {
            if (ngl_twin_mqtt_publish(mq, meta_topic, meta, meta_len, 1, 1, -1) == 0) {
                meta_epoch = ngl_twin_mqtt_reconnects(mq);
            }
        }
        /* produce, when a batch is due (live) or the queue has room (file) */
        double now = mono_s();
        int wait_ms = 0;
        if (!source_done && !(live == 0 && ngl_twin_outq_len(q) >= (size_t)o.buffer)) {
            size_t n = 0;
            if (live) {
                uint64_t due = (uint64_t)((now - t0) * o.rate_hz) + 1;
                if (due > total) {
                    due = total;
                }
                if (due < produced + batch && due < total) {
                    double next = t0 + (double)(produced + batch) / o.rate_hz;
                    wait_ms = (int)((next - now) * 1000) + 1;
                    if (wait_ms > 100) {
                        wait_ms = 100;
                    }
                    goto network;
                }
            }
            for (; n < batch && produced < total; n++) {
                if (sim != NULL) {
                    ngl_twin_sim_next(sim, rows + n * channels);
                } else {
                    int r = ngl_twin_reader_next(reader, rows + n * channels, err, sizeof(err));
                    if (r < 0) {
                        fprintf(stderr, "nangila twin publish: %s\n", err);
                        source_error = 1;
                        break;
                    }
                    if (r == 0) {
                        break;
                    }
                }
                produced++;
            }
            if (n < batch || produced == total) {
                source_done = 1;
            }
            if (n > 0) {
                int64_t stamp = o.stamp ? ngl_twin_now_us() : -1;
                size_t len;
                if (o.raw) {
                    pack_rows(rows, n * channels, o.f32, msg);
                    len = n * channels * vsize;
                } else {
                    pack_rows(rows, n * channels, o.f32, packed);
                    double c0 = cpu_s();
                    ngl_status st = ngl_twin_encoder_encode(ctx.enc, packed, n, msg, msg_cap, &len);
                    enc_cpu += cpu_s() - c0;
                    if (st != NGL_OK) {
                        fprintf(stderr, "nangila twin publish: encode: %s\n", ngl_status_str(st));
                        goto out;
                    }
                }
                int d = ngl_twin_outq_push(q, msg, len, stamp);
                if (d < 0) {
                    fprintf(stderr, "nangila twin publish: out of memory\n");
                    goto out;
                }
                if (d > 0) {
                    /* The oldest message is gone: later deltas cannot be
                     * decoded without it, so the next message is a keyframe. */
                    dropped_msgs++;
                    dropped_samples += batch;
                    if (ctx.enc != NULL) {
                        ngl_twin_encoder_request_keyframe(ctx.enc);
                    }
                }
            }
        }
        if (source_done && !end_queued) {
            size_t len = 0;
            if (!o.raw) {
                ngl_status st = ngl_twin_encoder_end_of_stream(ctx.enc, msg, msg_cap, &len);
                if (st != NGL_OK) {
                    fprintf(stderr, "nangila twin publish: end of stream: %s\n",
                            ngl_status_str(st));
                    goto out;
                }
            } /* raw: an empty message ends the stream */
            if (ngl_twin_outq_push(q, msg, len, -1) < 0) {
                goto out;
            }
            end_queued = 1;
            /* Give a broker outage at the end the same chance as one in the
             * middle: up to 30 s to deliver what is queued. */
            linger_until = mono_s() + 30.0;
        }
    network:
        /* hand queued messages to the library while connected; QoS 1 keeps
         * at most 64 unacknowledged, so the library's own queue stays small */
        while (ngl_twin_mqtt_connected(mq) && (o.qos == 0 || ngl_twin_mqtt_inflight(mq) < 64)) {
            size_t len;
            int64_t stamp;
            const void *m = ngl_twin_outq_peek(q, &len, &stamp);
            if (m == NULL) {
                break;
            }
            /* the end of the stream goes with QoS 1: its PUBACK tells us the
             * broker has everything before it */
            int last = end_queued && ngl_twin_outq_len(q) == 1;
            int r = ngl_twin_mqtt_publish(mq, o.topic, m, len, last ? 1 : o.qos, 0, stamp);
            if (r < 0) {
                fprintf(stderr, "nangila twin publish: publish failed\n");
                goto out;
            }
            if (r > 0) {
                break;
            }
            sent_msgs++;
            sent_bytes += len;
            ngl_twin_outq_pop(q);
        }
        if (end_queued && ngl_twin_outq_len(q) == 0 && ngl_twin_mqtt_inflight(mq) == 0) {
            break;
        }
        if (end_queued && mono_s() > linger_until) {
            fprintf(stderr, "nangila twin publish: broker unreachable; %zu messages undelivered\n",
                    ngl_twin_outq_len(q));
            goto out;
        }
        int busy = !source_done && (!live || wait_ms == 0) && ngl_twin_mqtt_connected(mq);
        if (ngl_twin_mqtt_service(mq, busy ? 0 : (wait_ms > 0 ? wait_ms : 10), err, sizeof(err)) !=
            0) {
            fprintf(stderr, "nangila twin publish: %s\n", err);
            goto out;
        }
    }
    if (ngl_twin_mqtt_connected(mq)) {
        /* the stream is over: drop the retained description */
        ngl_twin_mqtt_publish(mq, meta_topic, "", 0, 1, 1, -1);
        for (int i = 0; i < 50 && ngl_twin_mqtt_inflight(mq) > 0; i++) {
            ngl_twin_mqtt_service(mq, 10, err, sizeof(err));
        }
    }
    double wall = mono_s() - t0;
    ngl_twin_encoder_stats es = {0};
    ngl_twin_encoder_get_stats(ctx.enc, &es);
    fprintf(stderr,
            "nangila twin publish: %" PRIu64 " samples x %zu channels in %.2f s, %" PRIu64
            " messages (%" PRIu64 " keyframes, %" PRIu64 " asked for), %" PRIu64
            " bytes; ratio %.2f vs %s\n"
            "  dropped by the full queue: %" PRIu64 " messages (%" PRIu64
            " samples); reconnects: %" PRIu64 "%s\n",
            produced, channels, wall, sent_msgs, es.keyframes, ctx.keyframe_requests, sent_bytes,
            sent_bytes ? (double)(produced * channels * vsize) / (double)sent_bytes : 0.0,
            o.f32 ? "float32" : "float64", dropped_msgs, dropped_samples,
            ngl_twin_mqtt_reconnects(mq), twin_stop ? " (interrupted)" : "");
    if (o.stats_json != NULL) {
        FILE *j = fopen(o.stats_json, "w");
        if (j != NULL) {
            fprintf(j,
                    "{\"samples\": %" PRIu64 ", \"channels\": %zu, \"messages\": %" PRIu64
                    ", \"bytes\": %" PRIu64 ", \"keyframes\": %" PRIu64 ", \"dropped\": %" PRIu64
                    ", \"dropped_samples\": %" PRIu64 ", \"reconnects\": %" PRIu64
                    ", \"encode_cpu_s\": %.6f, \"wall_s\": %.6f}\n",
                    produced, channels, sent_msgs, sent_bytes, es.keyframes, dropped_msgs,
                    dropped_samples, ngl_twin_mqtt_reconnects(mq), enc_cpu, wall);
            fclose(j);
        }
    }
    status = source_error || twin_stop ? 1 : 0;
out:
    ngl_twin_mqtt_destroy(mq);
    ngl_twin_outq_destroy(q);
    ngl_twin_encoder_destroy(ctx.enc);
    free(ctx.ctl_topic);
    free(meta_topic);
    free(meta);
    free(msg);
    free(packed);
    free(rows);
    ngl_twin_sim_destroy(sim);
    ngl_twin_reader_close(reader);
    if (in != NULL && in != stdin) {
        fclose(in);
    }
    return status;
}

/* ---- subscribe ---------------------------------------------------------------- */

/* A message that arrived ahead of its turn, held briefly in case the ones
 * before it are only late (reordered), not lost. */
typedef struct held_msg {
    uint64_t seq;
    void *data;
    size_t len;
    int64_t stamp_us;
    double since;
} held_msg;

typedef struct sub_ctx {
    const twin_opts *o;
    char *meta_topic;
    char *ctl_topic;
    ngl_twin_mqtt *mq;
    ngl_twin_decoder *dec;
    FILE *out;
    ngl_twin_writer *w;
    /* from the stream description */
    int have_meta;
    int raw;
    int f32;
    size_t channels;
    char *meta_copy;
    /* decode buffers */
    void *dst;
    size_t dst_cap;
    double *rows;
    size_t rows_cap;
    /* counters */
    uint64_t msgs;
    uint64_t bytes;
    uint64_t values;
    uint64_t samples;
    uint64_t before_meta;
    uint64_t rejected;
    uint64_t gaps;
    uint64_t missing;
    uint64_t resyncs;
    uint64_t stale;
    uint64_t waiting;
    uint64_t asks;
    int64_t last_ask_us;
    int synced_once;
    /* reorder window: messages ahead of the expected sequence number */
    uint64_t expected;
    held_msg held[REORDER_MAX];
    size_t nheld;
    uint64_t reordered;
    int ended;
    int failed;
    double last_msg;
    /* latency samples, microseconds */
    int64_t *lat;
    size_t nlat;
    size_t lat_cap;
} sub_ctx;

static void ask_keyframe(sub_ctx *s)
{
    /* The first request after losing sync goes at once (last_ask_us is reset
     * on every sync); while still waiting, one per 20 ms covers a request
     * lost on the way without flooding the publisher. */
    int64_t now = ngl_twin_now_us();
    if (s->o->passive || now - s->last_ask_us < 20000) {
        return;
    }
    if (ngl_twin_mqtt_publish(s->mq, s->ctl_topic, "keyframe", 8, 0, 0, -1) == 0) {
        s->last_ask_us = now;
        s->asks++;
    }
}

static int parse_meta(sub_ctx *s, const char *payload, size_t len)
{
    if (len == 0) {
        return 0; /* the publisher cleared it at the end */
    }
    char *text = malloc(len + 1);
    if (text == NULL) {
        return -1;
    }
    memcpy(text, payload, len);
    text[len] = '\0';
    char codec[16], dtype[16];
    size_t channels;
    const char *nl = strchr(text, '\n');
    int fields = 0;
    if (nl != NULL && (size_t)(nl - text) == strlen(TWIN_META_MAGIC) &&
        !strncmp(text, TWIN_META_MAGIC, strlen(TWIN_META_MAGIC))) {
        fields = sscanf(nl + 1, "codec %15s\ndtype %15s\nchannels %zu\n", codec, dtype, &channels);
    }
    /* the header is the fifth line */
    const char *header = text;
    for (int i = 0; i < 4 && header != NULL; i++) {
        header = strchr(header, '\n');
        header = header != NULL ? header + 1 : NULL;
    }
    if (fields != 3 || header == NULL || channels == 0 || channels > NGL_TWIN_MAX_CHANNELS ||
        (strcmp(codec, "twin") && strcmp(codec, "raw")) ||
        (strcmp(dtype, "f64") && strcmp(dtype, "f32"))) {
        fprintf(stderr, "nangila twin subscribe: ignoring a malformed stream description\n");
        free(text);
        return 0;
    }
    if (s->have_meta) {
        int same = !strcmp(text, s->meta_copy);
        free(text);
        if (!same) {
            /* The CSV layout cannot change mid-file. */
            fprintf(stderr, "nangila twin subscribe: the stream description changed; stopping\n");
            s->failed = 1;
        }
        return 0;
    }
    char *hend = strchr(header, '\n');
    if (hend != NULL) {
        *hend = '\0';
    }
    s->raw = !strcmp(codec, "raw");
    s->f32 = !strcmp(dtype, "f32");
    s->channels = channels;
    s->w = ngl_twin_writer_open(s->out, s->o->binary, s->f32, channels, header);
    if (hend != NULL) {
        *hend = '\n';
    }
    if (s->w == NULL) {
        free(text);
        return -1;
    }
    s->meta_copy = text;
    s->have_meta = 1;
    return 0;
}

static int ensure_rows(sub_ctx *s, size_t n)
{
    if (n <= s->rows_cap) {
        return 0;
    }
    double *r = realloc(s->rows, n * sizeof(double));
    if (r == NULL) {
        return -1;
    }
    s->rows = r;
    s->rows_cap = n;
    return 0;
}

static void record_latency(sub_ctx *s, int64_t stamp_us)
{
    if (stamp_us < 0) {
        return;
    }
    if (s->nlat == s->lat_cap) {
        size_t cap = s->lat_cap ? s->lat_cap * 2 : 4096;
        int64_t *l = realloc(s->lat, cap * sizeof(int64_t));
        if (l == NULL) {
            return; /* fewer latency samples, never a failure of the stream */
        }
        s->lat = l;
        s->lat_cap = cap;
    }
    s->lat[s->nlat++] = ngl_twin_now_us() - stamp_us;
}

static int write_rows(sub_ctx *s, const void *vals, size_t nsamples, int f32)
{
    size_t n = nsamples * s->channels;
    if (ensure_rows(s, n) != 0) {
        return -1;
    }
    if (f32) {
        const float *f = vals;
        for (size_t i = 0; i < n; i++) {
            s->rows[i] = (double)f[i];
        }
    } else {
        memcpy(s->rows, vals, n * sizeof(double));
    }
    for (size_t i = 0; i < nsamples; i++) {
        if (ngl_twin_writer_row(s->w, s->rows + i * s->channels) != 0) {
            fprintf(stderr, "nangila twin subscribe: write error: %s\n", strerror(errno));
            return -1;
        }
    }
    s->samples += nsamples;
    s->values += n;
    return 0;
}

static void on_raw(sub_ctx *s, const void *payload, size_t len, int64_t stamp_us)
{
    size_t row_bytes = s->channels * (s->f32 ? 4 : 8);
    if (len == 0) {
        s->ended = 1;
        return;
    }
    if (len % row_bytes != 0) {
        s->rejected++;
        fprintf(stderr, "nangila twin subscribe: raw message of %zu bytes is not whole rows\n",
                len);
        return;
    }
    /* raw values are little-endian on the wire; so is every host we build for */
    if (write_rows(s, payload, len / row_bytes, s->f32) != 0) {
        s->failed = 1;
        return;
    }
    record_latency(s, stamp_us);
}

static void decode_frame(sub_ctx *s, const void *payload, size_t len, int64_t stamp_us)
{
    ngl_twin_info info;
    ngl_status st;
    for (;;) {
        st = ngl_twin_decoder_decode(s->dec, payload, len, s->dst, s->dst_cap, &info);
        if (st != NGL_ERR_DST_TOO_SMALL) {
            break;
        }
        size_t need = (size_t)info.nsamples * info.channels * 8;
        if (need <= s->dst_cap) {
            break; /* cannot happen per the API; never loop on it */
        }
        void *d = realloc(s->dst, need);
        if (d == NULL) {
            s->failed = 1;
            return;
        }
        s->dst = d;
        s->dst_cap = need;
    }
    if (st != NGL_OK) {
        s->rejected++;
        if (s->rejected <= 20) {
            fprintf(stderr, "nangila twin subscribe: rejected a %zu-byte message: %s\n", len,
                    ngl_status_str(st));
        }
        if (!ngl_twin_decoder_synced(s->dec)) {
            ask_keyframe(s);
        }
        return;
    }
    if (info.flags & NGL_TWIN_INFO_GAP) {
        s->gaps++;
        s->missing += info.missing;
        if (info.missing > 0) {
            fprintf(stderr,
                    "nangila twin subscribe: gap: %" PRIu64 " messages missing before seq %" PRIu64
                    "\n",
                    info.missing, info.seq);
        } else {
            fprintf(stderr, "nangila twin subscribe: gap before seq %" PRIu64 "\n", info.seq);
        }
    }
    if (info.flags & NGL_TWIN_INFO_RESYNC) {
        /* The first keyframe is joining the stream, not recovering it. */
        if (s->synced_once) {
            s->resyncs++;
            fprintf(stderr, "nangila twin subscribe: resync at seq %" PRIu64 "%s\n", info.seq,
                    (info.flags & NGL_TWIN_INFO_RESTART) ? " (publisher restarted)" : "");
        } else {
            fprintf(stderr, "nangila twin subscribe: in sync at seq %" PRIu64 "\n", info.seq);
        }
        s->synced_once = 1;
    }
    if (!(info.flags & (NGL_TWIN_INFO_STALE | NGL_TWIN_INFO_WAITING))) {
        s->expected = info.seq + 1;
        s->last_ask_us = 0;
    }
    if (info.flags & NGL_TWIN_INFO_STALE) {
        s->stale++;
    }
    if (info.flags & NGL_TWIN_INFO_WAITING) {
        s->waiting++;
        ask_keyframe(s);
    }
    if (info.nsamples > 0) {
        if (info.channels != s->channels || (info.dtype == NGL_DTYPE_F32) != s->f32) {
            fprintf(stderr,
                    "nangila twin subscribe: messages carry %u channels (%s), the description "
                    "says %zu (%s); stopping\n",
                    info.channels, info.dtype == NGL_DTYPE_F32 ? "f32" : "f64", s->channels,
                    s->f32 ? "f32" : "f64");
            s->failed = 1;
            return;
        }
        if (write_rows(s, s->dst, info.nsamples, s->f32) != 0) {
            s->failed = 1;
            return;
        }
        record_latency(s, stamp_us);
    }
    if (info.flags & NGL_TWIN_INFO_END) {
        s->ended = 1;
    }
}

/* Decodes every held message, in sequence order: what is still missing is
 * then a gap (the decoder reports it). */
static void flush_held(sub_ctx *s)
{
    for (size_t i = 0; i < s->nheld; i++) {
        held_msg *h = &s->held[i];
        if (!s->failed) {
            decode_frame(s, h->data, h->len, h->stamp_us);
        }
        free(h->data);
    }
    s->nheld = 0;
}

/* Decodes held messages that are now in turn. */
static void drain_held(sub_ctx *s)
{
    size_t i = 0;
    while (i < s->nheld && s->held[i].seq <= s->expected && !s->failed) {
        decode_frame(s, s->held[i].data, s->held[i].len, s->held[i].stamp_us);
        free(s->held[i].data);
        i++;
    }
    memmove(s->held, s->held + i, (s->nheld - i) * sizeof(held_msg));
    s->nheld -= i;
}

static void on_frame(sub_ctx *s, const void *payload, size_t len, int64_t stamp_us)
{
    ngl_twin_header h;
    size_t window = (size_t)s->o->reorder;
    /* Hold a message that skips ahead of a stream we are in sync with; a
     * waiting decoder, a malformed message or a disabled window go straight
     * to the decoder. */
    if (window == 0 || !ngl_twin_decoder_synced(s->dec) ||
        ngl_twin_frame_peek(payload, len, 0, &h) != NGL_OK || h.seq <= s->expected) {
        decode_frame(s, payload, len, stamp_us);
        drain_held(s);
        return;
    }
    size_t at = 0;
    while (at < s->nheld && s->held[at].seq < h.seq) {
        at++;
    }
    if (at < s->nheld && s->held[at].seq == h.seq) {
        s->stale++; /* a duplicate of a held message */
        return;
    }
    void *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        decode_frame(s, payload, len, stamp_us);
        return;
    }
    memcpy(copy, payload, len);
    memmove(s->held + at + 1, s->held + at, (s->nheld - at) * sizeof(held_msg));
    s->held[at] = (held_msg){h.seq, copy, len, stamp_us, mono_s()};
    s->nheld++;
    s->reordered++;
    if (s->nheld >= window) {
        flush_held(s);
    }
}

static void sub_on_msg(void *user, const char *topic, const void *payload, size_t len,
                       int64_t stamp_us)
{
    sub_ctx *s = user;
    s->last_msg = mono_s();
    if (payload == NULL) {
        payload = ""; /* libmosquitto's empty payload; the decoder wants bytes */
    }
    if (!strcmp(topic, s->meta_topic)) {
        if (parse_meta(s, payload, len) != 0) {
            s->failed = 1;
        }
        /* messages went by undecoded: the next keyframe is needed now */
        if (s->have_meta && !s->raw && s->before_meta > 0 && !ngl_twin_decoder_synced(s->dec)) {
            ask_keyframe(s);
        }
        return;
    }
    if (strcmp(topic, s->o->topic) != 0 || s->ended || s->failed) {
        return;
    }
    s->msgs++;
    s->bytes += len;
    if (!s->have_meta) {
        /* Without the description there is no header to write; the
         * messages are counted, and a keyframe is asked for once it comes. */
        s->before_meta++;
        return;
    }
    if (s->raw) {
        on_raw(s, payload, len, stamp_us);
    } else {
        on_frame(s, payload, len, stamp_us);
    }
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *v, size_t n, double p)
{
    if (n == 0) {
        return NAN;
    }
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    i = i == 0 ? 0 : i - 1;
    return (double)v[i < n ? i : n - 1] / 1000.0;
}

static int cmd_subscribe(int argc, char **argv)
{
    twin_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) {
        return rc;
    }
    if (o.topic == NULL || o.out == NULL) {
        fprintf(stderr, "nangila twin subscribe: --topic and --out are needed\n");
        return 2;
    }
    install_signals();
    int status = 1;
    sub_ctx s;
    memset(&s, 0, sizeof(s));
    s.o = &o;
    char err[256] = "";
    char tmp[4096] = "";
    int to_stdout = !strcmp(o.out, "-");
    s.meta_topic = topic_join(o.topic, "meta");
    s.ctl_topic = topic_join(o.topic, "ctl");
    if (s.meta_topic == NULL || s.ctl_topic == NULL) {
        goto out;
    }
    ngl_twin_decoder_opts dopts;
    ngl_twin_decoder_opts_init(&dopts);
    dopts.max_channels = NGL_TWIN_MAX_CHANNELS;
    ngl_status st = ngl_twin_decoder_create(&dopts, &s.dec);
    if (st != NGL_OK) {
        fprintf(stderr, "nangila twin subscribe: decoder: %s\n", ngl_status_str(st));
        goto out;
    }
    if (to_stdout) {
        s.out = stdout;
    } else {
        /* written under a temporary name and renamed at the end, so an
         * interrupted run never leaves a plausible-looking file */
        snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", o.out, (long)getpid());
        s.out = fopen(tmp, "wb");
        if (s.out == NULL) {
            fprintf(stderr, "nangila twin subscribe: cannot create %s: %s\n", tmp, strerror(errno));
            goto out;
        }
    }
    s.mq = ngl_twin_mqtt_create(&o.conn, sub_on_msg, &s, err, sizeof(err));
    if (s.mq == NULL) {
        fprintf(stderr, "nangila twin subscribe: %s\n", err);
        goto out;
    }
    if (ngl_twin_mqtt_subscribe(s.mq, s.meta_topic, 1) != 0 ||
        ngl_twin_mqtt_subscribe(s.mq, o.topic, o.qos) != 0) {
        goto out;
    }
    s.last_msg = mono_s();
    int timed_out = 0;
    int announced = 0;
    while (!twin_stop && !s.ended && !s.failed) {
        if (!announced && ngl_twin_mqtt_subscribed(s.mq)) {
            /* scripts wait for this line before they start publishing */
            fprintf(stderr, "nangila twin subscribe: subscribed to %s\n", o.topic);
            announced = 1;
        }
        if (ngl_twin_mqtt_service(s.mq, s.nheld > 0 ? 5 : 100, err, sizeof(err)) != 0) {
            fprintf(stderr, "nangila twin subscribe: %s\n", err);
            s.failed = 1;
            break;
        }
        if (s.nheld > 0 && mono_s() - s.held[0].since > REORDER_HOLD_S) {
            flush_held(&s);
        }
        if (o.timeout > 0 && mono_s() - s.last_msg > o.timeout) {
            timed_out = 1;
            break;
        }
    }
    flush_held(&s);
    if (s.w != NULL && ngl_twin_writer_close(s.w) != 0) {
        fprintf(stderr, "nangila twin subscribe: write error\n");
        s.failed = 1;
    }
    s.w = NULL;
    if (s.before_meta > 0) {
        fprintf(stderr,
                "nangila twin subscribe: %" PRIu64
                " messages came before the stream description and were not decoded\n",
                s.before_meta);
    }
    if (s.nlat > 0) {
        qsort(s.lat, s.nlat, sizeof(int64_t), cmp_i64);
    }
    size_t vsize = s.f32 ? 4 : 8;
    double ratio = s.bytes ? (double)(s.values * vsize) / (double)s.bytes : 0.0;
    ngl_twin_decoder_stats ds = {0};
    ngl_twin_decoder_get_stats(s.dec, &ds);
    fprintf(stderr,
            "nangila twin subscribe: %s\n"
            "  values %" PRIu64 " (%" PRIu64 " samples x %zu channels), messages %" PRIu64
            ", bytes %" PRIu64 ", ratio %.2f vs %s\n"
            "  gaps %" PRIu64 " (%" PRIu64 " messages missing), resyncs %" PRIu64
            ", keyframe requests %" PRIu64 ", held for reordering %" PRIu64
            ", duplicate/late %" PRIu64 ", dropped while waiting for a keyframe %" PRIu64
            ", rejected %" PRIu64 "\n"
            "  latency ms: p50 %.3f p90 %.3f p99 %.3f max %.3f (%zu messages)\n",
            s.ended     ? "end of stream"
            : timed_out ? "timed out"
                        : "stopped",
            s.values, s.samples, s.channels, s.msgs, s.bytes, ratio, s.f32 ? "float32" : "float64",
            s.gaps, s.missing, s.resyncs, s.asks, s.reordered, s.stale, s.waiting, s.rejected,
            pct_ms(s.lat, s.nlat, 50), pct_ms(s.lat, s.nlat, 90), pct_ms(s.lat, s.nlat, 99),
            s.nlat ? (double)s.lat[s.nlat - 1] / 1000.0 : NAN, s.nlat);
    if (o.stats_json != NULL) {
        FILE *j = fopen(o.stats_json, "w");
        if (j != NULL) {
            /* NaN is not JSON: latency figures are -1 when none were taken */
            fprintf(j,
                    "{\"ended\": %d, \"values\": %" PRIu64 ", \"samples\": %" PRIu64
                    ", \"channels\": %zu, \"messages\": %" PRIu64 ", \"bytes\": %" PRIu64
                    ", \"ratio\": %.6f, \"gaps\": %" PRIu64 ", \"missing\": %" PRIu64
                    ", \"resyncs\": %" PRIu64 ", \"stale\": %" PRIu64 ", \"waiting\": %" PRIu64
                    ", \"rejected\": %" PRIu64 ", \"keyframe_requests\": %" PRIu64
                    ", \"held\": %" PRIu64
                    ", \"latency_n\": %zu, \"latency_p50_ms\": %.6f, \"latency_p99_ms\": %.6f"
                    ", \"latency_max_ms\": %.6f}\n",
                    s.ended, s.values, s.samples, s.channels, s.msgs, s.bytes, ratio, s.gaps,
                    s.missing, s.resyncs, s.stale, s.waiting, s.rejected, s.asks, s.reordered,
                    s.nlat, s.nlat ? pct_ms(s.lat, s.nlat, 50) : -1.0,
                    s.nlat ? pct_ms(s.lat, s.nlat, 99) : -1.0,
                    s.nlat ? (double)s.lat[s.nlat - 1] / 1000.0 : -1.0);
            fclose(j);
        }
    }
    if (!s.have_meta && !s.failed) {
        fprintf(stderr, "nangila twin subscribe: no stream description arrived on %s\n",
                s.meta_topic);
    }
    status = s.failed ? 1 : (s.ended ? 0 : (timed_out ? 3 : 1));
out:
    ngl_twin_writer_close(s.w);
    if (s.out != NULL && s.out != stdout) {
        int close_rc = fclose(s.out);
        /* the file keeps what was decoded, even after a timeout: the rows are
         * all correct and the gaps were reported */
        if (close_rc != 0 || s.failed || !s.have_meta || rename(tmp, o.out) != 0) {
            unlink(tmp);
            if (status == 0) {
                status = 1;
            }
        }
    } else if (s.out == stdout) {
        fflush(stdout);
    }
    ngl_twin_mqtt_destroy(s.mq);
    ngl_twin_decoder_destroy(s.dec);
    free(s.lat);
    free(s.rows);
    free(s.dst);
    free(s.meta_copy);
    free(s.meta_topic);
    free(s.ctl_topic);
    return status;
}

/* ---- bench -------------------------------------------------------------------- */

/* Codec only, no broker: the file's samples encoded in batches of --batch,
 * decoded, checked against the bound, timed on this thread's CPU clock (one
 * core). Prints one JSON object on stdout. */
static int cmd_bench(int argc, char **argv)
{
    twin_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) {
        return rc;
    }
    if (o.file == NULL || (!o.have_eps && o.eps_file == NULL)) {
        fprintf(stderr, "nangila twin bench: FILE and --eps (or --eps-file) are needed\n");
        return 2;
    }
    int status = 1;
    char err[256];
    FILE *in = !strcmp(o.file, "-") ? stdin : fopen(o.file, "rb");
    ngl_twin_reader *r = NULL;
    ngl_twin_encoder *enc = NULL;
    ngl_twin_decoder *dec = NULL;
    double *all = NULL;
    unsigned char *packed = NULL;
    unsigned char *msgs = NULL;
    size_t *lens = NULL;
    unsigned char *out = NULL;
    ngl_twin_bound *bounds = NULL;
    if (in == NULL) {
        fprintf(stderr, "nangila twin bench: cannot open %s: %s\n", o.file, strerror(errno));
        return 1;
    }
    r = ngl_twin_reader_open(in, o.binary, o.f32, (size_t)o.channels, err, sizeof(err));
    if (r == NULL) {
        fprintf(stderr, "nangila twin bench: %s\n", err);
        goto out;
    }
    size_t c = ngl_twin_reader_channels(r);
    size_t n = 0, cap = 1024;
    all = malloc(cap * c * sizeof(double));
    for (;;) {
        if (all == NULL) {
            fprintf(stderr, "nangila twin bench: out of memory\n");
            goto out;
        }
        if (n == cap) {
            cap *= 2;
            double *g = realloc(all, cap * c * sizeof(double));
            if (g == NULL) {
                free(all);
            }
            all = g;
            continue;
        }
        int k = ngl_twin_reader_next(r, all + n * c, err, sizeof(err));
        if (k < 0) {
            fprintf(stderr, "nangila twin bench: %s\n", err);
            goto out;
        }
        if (k == 0) {
            break;
        }
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "nangila twin bench: no samples\n");
        goto out;
    }
    size_t vsize = o.f32 ? 4 : 8;
    size_t batch = (size_t)o.batch;
    size_t nmsg = (n + batch - 1) / batch;
    enc = make_encoder(&o, c, batch);
    if (enc == NULL) {
        goto out;
    }
    size_t mcap = ngl_twin_encoder_bound(enc, batch);
    packed = malloc(n * c * vsize);
    out = malloc(n * c * vsize);
    msgs = malloc(nmsg * mcap);
    lens = malloc(nmsg * sizeof(size_t));
    if (o.eps_file != NULL) {
        bounds = read_eps_file(o.eps_file, c, o.rel);
    } else {
        bounds = calloc(c, sizeof(*bounds));
        for (size_t i = 0; bounds != NULL && i < c; i++) {
            bounds[i].mode = o.rel ? NGL_TWIN_EPS_REL : NGL_TWIN_EPS_ABS;
            bounds[i].eps = o.eps;
        }
    }
    if (packed == NULL || out == NULL || msgs == NULL || lens == NULL || bounds == NULL) {
        fprintf(stderr, "nangila twin bench: out of memory\n");
        goto out;
    }
    pack_rows(all, n * c, o.f32, packed);
    double best_enc = INFINITY, best_dec = INFINITY;
    size_t total = 0;
    for (long rep = 0; rep < o.repeat; rep++) {
        ngl_twin_encoder_destroy(enc);
        enc = make_encoder(&o, c, batch);
        if (enc == NULL) {
            goto out;
        }
        total = 0;
        double t = cpu_s();
        for (size_t m = 0; m < nmsg; m++) {
            size_t k = m + 1 < nmsg ? batch : n - m * batch;
            ngl_status st = ngl_twin_encoder_encode(enc, packed + m * batch * c * vsize, k,
                                                    msgs + m * mcap, mcap, &lens[m]);
            if (st != NGL_OK) {
                fprintf(stderr, "nangila twin bench: encode: %s\n", ngl_status_str(st));
                goto out;
            }
            total += lens[m];
        }
        t = cpu_s() - t;
        best_enc = t < best_enc ? t : best_enc;
        ngl_twin_decoder_destroy(dec);
        dec = NULL;
        if (ngl_twin_decoder_create(NULL, &dec) != NGL_OK) {
            goto out;
        }
        t = cpu_s();
        for (size_t m = 0; m < nmsg; m++) {
            ngl_twin_info info;
            ngl_status st =
                ngl_twin_decoder_decode(dec, msgs + m * mcap, lens[m], out + m * batch * c * vsize,
                                        (n - m * batch) * c * vsize, &info);
            if (st != NGL_OK || info.nsamples != (m + 1 < nmsg ? batch : n - m * batch)) {
                fprintf(stderr, "nangila twin bench: decode of message %zu: %s\n", m,
                        ngl_status_str(st));
                goto out;
            }
        }
        t = cpu_s() - t;
        best_dec = t < best_dec ? t : best_dec;
    }
    /* the bound, on every value, in the stream's dtype */
    double max_err = 0;
    double worst = 0; /* largest error as a fraction of its bound */
    size_t violations = 0;
    for (size_t i = 0; i < n * c; i++) {
        double x, y;
        if (o.f32) {
            x = ((const float *)packed)[i];
            y = ((const float *)out)[i];
        } else {
            x = ((const double *)packed)[i];
            y = ((const double *)out)[i];
        }
        const ngl_twin_bound *b = &bounds[i % c];
        if (isnan(x) || isinf(x) || b->eps == 0) {
            if (memcmp((const char *)packed + i * vsize, out + i * vsize, vsize) != 0) {
                violations++;
            }
            continue;
        }
        double e = fabs(y - x);
        double lim = b->mode == NGL_TWIN_EPS_REL ? b->eps * fabs(x) : b->eps;
        if (!(e <= lim)) {
            violations++;
        }
        if (lim > 0 && e / lim > worst) {
            worst = e / lim;
        }
        max_err = e > max_err ? e : max_err;
    }
    double mb = (double)(n * c * vsize) / 1e6;
    printf("{\"samples\": %zu, \"channels\": %zu, \"batch\": %zu, \"bytes_in\": %zu, "
           "\"bytes_out\": %zu, \"ratio\": %.6f, \"encode_mb_s\": %.3f, \"decode_mb_s\": %.3f, "
           "\"max_err\": %.17g, \"max_err_over_eps\": %.6f, \"violations\": %zu}\n",
           n, c, batch, n * c * vsize, total, (double)(n * c * vsize) / (double)total,
           mb / best_enc, mb / best_dec, max_err, worst, violations);
    status = violations ? 1 : 0;
out:
    free(bounds);
    free(lens);
    free(msgs);
    free(out);
    free(packed);
    free(all);
    ngl_twin_decoder_destroy(dec);
    ngl_twin_encoder_destroy(enc);
    ngl_twin_reader_close(r);
    if (in != stdin) {
        fclose(in);
    }
    return status;
}

/* The rotor simulator's samples as CSV (or raw values): the same values
 * `publish --simulate rotor` sends with the same options, for checking and
 * benchmarking. */
static int cmd_simulate(int argc, char **argv)
{
    twin_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc != 0) {
        return rc;
    }
    if (o.rate_hz <= 0 || o.channels <= 0 || o.duration <= 0 || o.out == NULL) {
        fprintf(stderr, "nangila twin simulate: --rate-hz, --channels, --duration and --out are "
                        "needed\n");
        return 2;
    }
    ngl_twin_sim *sim = ngl_twin_sim_create((size_t)o.channels, o.rate_hz, o.seed);
    double *row = malloc((size_t)o.channels * sizeof(double));
    FILE *f = !strcmp(o.out, "-") ? stdout : fopen(o.out, "wb");
    ngl_twin_writer *w = NULL;
    int status = 1;
    if (sim == NULL || row == NULL || f == NULL) {
        fprintf(stderr, "nangila twin simulate: %s\n",
                f == NULL ? strerror(errno) : "out of memory");
        goto out;
    }
    w = ngl_twin_writer_open(f, o.binary, o.f32, (size_t)o.channels, ngl_twin_sim_header(sim));
    if (w == NULL) {
        goto out;
    }
    uint64_t total = (uint64_t)llround(o.duration * o.rate_hz);
    for (uint64_t i = 0; i < total; i++) {
        ngl_twin_sim_next(sim, row);
        if (o.f32) {
            /* what publish --f32 sends: the float32 nearest each value */
            for (long c = 0; c < o.channels; c++) {
                row[c] = (double)(float)row[c];
            }
        }
        if (ngl_twin_writer_row(w, row) != 0) {
            break;
        }
    }
    status = ngl_twin_writer_close(w) == 0 ? 0 : 1;
    w = NULL;
    if (status != 0) {
        fprintf(stderr, "nangila twin simulate: write error\n");
    }
out:
    ngl_twin_writer_close(w);
    if (f != NULL && f != stdout && fclose(f) != 0) {
        status = 1;
    }
    free(row);
    ngl_twin_sim_destroy(sim);
    return status;
}

int ngl_cli_twin(int argc, char **argv)
{
    if (argc < 2) {
        twin_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "publish")) {
        return cmd_publish(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "subscribe")) {
        return cmd_subscribe(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "bench")) {
        return cmd_bench(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "simulate")) {
        return cmd_simulate(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        twin_usage(stdout);
        return 0;
    }
    fprintf(stderr, "nangila twin: unknown command '%s'\n", argv[1]);
    twin_usage(stderr);
    return 2;
}
