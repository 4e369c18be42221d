/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_relay.c -- test-only lossy MQTT relay for the twin broker tests.
 *
 *   twin_relay --port P --from T --to T2 [--host H] [--seed N]
 *              [--drop F] [--dup F] [--reorder F]
 *
 * Subscribes to T and republishes each message to T2 after a seeded coin
 * toss: dropped (probability --drop), sent twice (--dup), or held back and
 * sent after the next message (--reorder). T/meta is passed to T2/meta and
 * T2/ctl back to T/ctl untouched: the relay models a lossy data path, not a
 * broken control plane. End-of-stream messages (recognised with
 * ngl_twin_frame_peek) are never dropped and go out after anything held, so
 * the subscriber's exit does not depend on luck. Prints "ready" on stdout
 * once subscribed, and its counts on stderr when the stream ends (it exits
 * then) or on SIGTERM.
 */
#include "nangila_twin.h"

#include <mosquitto.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct relay {
    struct mosquitto *mosq;
    const char *from, *to;
    char from_meta[512], to_meta[512], from_ctl[512], to_ctl[512];
    double p_drop, p_dup, p_reorder;
    uint64_t rng;
    void *held; /* one message held back for reordering */
    int held_len;
    unsigned long fwd, dropped, dups, reordered;
    int subacks;
    int done;
} relay;

static volatile sig_atomic_t relay_stop;

static void on_term(int sig)
{
    (void)sig;
    relay_stop = 1;
}

static double coin(relay *r)
{
    /* splitmix64: the same faults for the same seed */
    uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

static void send_data(relay *r, const void *p, int len)
{
    mosquitto_publish(r->mosq, NULL, r->to, len, p, 0, false);
    r->fwd++;
}

static void release_held(relay *r)
{
    if (r->held != NULL) {
        send_data(r, r->held, r->held_len);
        free(r->held);
        r->held = NULL;
    }
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
    relay *r = obj;
    if (!strcmp(m->topic, r->from_meta)) {
        mosquitto_publish(mosq, NULL, r->to_meta, m->payloadlen, m->payload, 1, m->retain);
        return;
    }
    if (!strcmp(m->topic, r->to_ctl)) {
        mosquitto_publish(mosq, NULL, r->from_ctl, m->payloadlen, m->payload, 0, false);
        return;
    }
    if (strcmp(m->topic, r->from) != 0) {
        return;
    }
    ngl_twin_header h;
    if (ngl_twin_frame_peek(m->payload, (size_t)m->payloadlen, 1, &h) == NGL_OK &&
        h.type == NGL_TWIN_MSG_END) {
        release_held(r);
        mosquitto_publish(mosq, NULL, r->to, m->payloadlen, m->payload, 1, false);
        r->fwd++;
        r->done = 1;
        return;
    }
    double u = coin(r);
    if (u < r->p_drop) {
        r->dropped++;
        return;
    }
    if (u < r->p_drop + r->p_dup) {
        send_data(r, m->payload, m->payloadlen);
        send_data(r, m->payload, m->payloadlen);
        r->dups++;
        release_held(r);
        return;
    }
    if (u < r->p_drop + r->p_dup + r->p_reorder && r->held == NULL) {
        r->held = malloc((size_t)m->payloadlen + 1);
        if (r->held != NULL) {
            memcpy(r->held, m->payload, (size_t)m->payloadlen);
            r->held_len = m->payloadlen;
            r->reordered++;
            return;
        }
    }
    send_data(r, m->payload, m->payloadlen);
    release_held(r); /* the held message now arrives after a newer one */
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    relay *r = obj;
    if (rc != 0) {
        return;
    }
    mosquitto_subscribe(mosq, NULL, r->from, 0);
    mosquitto_subscribe(mosq, NULL, r->from_meta, 1);
    mosquitto_subscribe(mosq, NULL, r->to_ctl, 0);
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int n, const int *qos)
{
    (void)mosq;
    (void)mid;
    (void)n;
    (void)qos;
    relay *r = obj;
    if (++r->subacks == 3) {
        printf("ready\n");
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    relay r;
    memset(&r, 0, sizeof(r));
    const char *host = "127.0.0.1";
    int port = 1883;
    r.rng = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--host")) {
            host = v;
        } else if (!strcmp(a, "--port")) {
            port = atoi(v);
        } else if (!strcmp(a, "--from")) {
            r.from = v;
        } else if (!strcmp(a, "--to")) {
            r.to = v;
        } else if (!strcmp(a, "--seed")) {
            r.rng = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--drop")) {
            r.p_drop = atof(v);
        } else if (!strcmp(a, "--dup")) {
            r.p_dup = atof(v);
        } else if (!strcmp(a, "--reorder")) {
            r.p_reorder = atof(v);
        } else {
            fprintf(stderr, "twin_relay: unknown option %s\n", a);
            return 2;
        }
    }
    if (r.from == NULL || r.to == NULL) {
        fprintf(stderr, "usage: twin_relay --port P --from T --to T2 [--seed N] [--drop F] "
                        "[--dup F] [--reorder F]\n");
        return 2;
    }
    snprintf(r.from_meta, sizeof(r.from_meta), "%s/meta", r.from);
    snprintf(r.to_meta, sizeof(r.to_meta), "%s/meta", r.to);
    snprintf(r.from_ctl, sizeof(r.from_ctl), "%s/ctl", r.from);
    snprintf(r.to_ctl, sizeof(r.to_ctl), "%s/ctl", r.to);
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    mosquitto_lib_init();
    int status = 1;
    r.mosq = mosquitto_new(NULL, true, &r);
    if (r.mosq == NULL) {
        goto out;
    }
    mosquitto_int_option(r.mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_callback_set(r.mosq, on_connect);
    mosquitto_subscribe_callback_set(r.mosq, on_subscribe);
    mosquitto_message_callback_set(r.mosq, on_message);
    if (mosquitto_connect(r.mosq, host, port, 30) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "twin_relay: cannot connect to %s:%d\n", host, port);
        goto out;
    }
    while (!relay_stop && !r.done) {
        int rc = mosquitto_loop(r.mosq, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "twin_relay: %s\n", mosquitto_strerror(rc));
            goto out;
        }
    }
    /* let the last packets (the end of the stream, QoS 1) reach the broker */
    for (int i = 0; i < 20; i++) {
        mosquitto_loop(r.mosq, 10, 1);
    }
    fprintf(stderr, "twin_relay: forwarded %lu, dropped %lu, duplicated %lu, reordered %lu\n",
            r.fwd, r.dropped, r.dups, r.reordered);
    status = 0;
out:
    free(r.held);
    if (r.mosq != NULL) {
        mosquitto_disconnect(r.mosq);
        mosquitto_destroy(r.mosq);
    }
    mosquitto_lib_cleanup();
    return status;
}
