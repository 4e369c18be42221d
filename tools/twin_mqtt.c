/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_mqtt.c -- libmosquitto client for `nangila twin` (see twin_mqtt.h).
 *
 * The library's own thread and reconnect logic are not used: its reconnect
 * delay has a one-second granularity, and a caller-driven loop lets the
 * publisher pace samples, drain its bounded queue and reconnect from one
 * thread, with no locks.
 */
#include "twin_mqtt.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_SUBS = 8 };
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

struct ngl_twin_mqtt {
    struct mosquitto *mosq;
    ngl_twin_mqtt_msg_fn on_msg;
    void *user;
    char *host;
    int port;
    int keepalive;
    int connected;    /* CONNACK accepted */
    int have_socket;  /* connect()/reconnect() succeeded, CONNACK may be pending */
    int ever;         /* a connection was made once */
    int fatal;        /* the broker refused us: retrying will not help */
    int fatal_reason; /* CONNACK reason */
    int64_t next_try_us;
    int backoff_ms;
    unsigned inflight;
    size_t subacks; /* SUBACKs on the current connection */
    uint64_t reconnects;
    size_t nsubs;
    char *sub[MAX_SUBS];
    int sub_qos[MAX_SUBS];
};

static int lib_users; /* mosquitto_lib_init/cleanup pairing (one thread) */

int64_t ngl_twin_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

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

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc, int flags,
                       const mosquitto_property *props)
{
    (void)flags;
    (void)props;
    ngl_twin_mqtt *m = obj;
    if (rc != 0) {
        /* Bad credentials or a refused client id: say so and stop, rather
         * than hammer the broker every two seconds for ever. A broker that
         * is merely unavailable never gets this far. */
        if (rc == MQTT_RC_NOT_AUTHORIZED || rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD ||
            rc == MQTT_RC_CLIENTID_NOT_VALID || rc == MQTT_RC_BANNED ||
            rc == MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) {
            m->fatal = 1;
            m->fatal_reason = rc;
        }
        return;
    }
    if (m->ever) {
        m->reconnects++;
    }
    m->ever = 1;
    m->connected = 1;
    m->backoff_ms = BACKOFF_MIN_MS;
    m->subacks = 0;
    for (size_t i = 0; i < m->nsubs; i++) {
        mosquitto_subscribe_v5(mosq, NULL, m->sub[i], m->sub_qos[i], 0, NULL);
    }
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc,
                          const mosquitto_property *props)
{
    (void)mosq;
    (void)rc;
    (void)props;
    ngl_twin_mqtt *m = obj;
    m->connected = 0;
    m->inflight = 0;
}

static void on_publish(struct mosquitto *mosq, void *obj, int mid, int reason,
                       const mosquitto_property *props)
{
    (void)mosq;
    (void)mid;
    (void)reason;
    (void)props;
    ngl_twin_mqtt *m = obj;
    /* Called on PUBACK for QoS 1, on the write for QoS 0 (never counted). */
    if (m->inflight > 0) {
        m->inflight--;
    }
}

static void on_subscribe(struct mosquitto *mosq, void *obj, int mid, int qos_count,
                         const int *granted_qos, const mosquitto_property *props)
{
    (void)mosq;
    (void)mid;
    (void)qos_count;
    (void)granted_qos;
    (void)props;
    ngl_twin_mqtt *m = obj;
    m->subacks++;
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    (void)mosq;
    ngl_twin_mqtt *m = obj;
    int64_t stamp = -1;
    const mosquitto_property *p = props;
    int first = 1;
    for (;;) {
        char *name = NULL;
        char *value = NULL;
        p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, !first);
        first = 0;
        if (p == NULL) {
            break;
        }
        if (name != NULL && value != NULL && !strcmp(name, "t")) {
            char *end;
            long long v = strtoll(value, &end, 10);
            if (end != value && *end == '\0' && v >= 0) {
                stamp = v;
            }
        }
        free(name);
        free(value);
    }
    m->on_msg(m->user, msg->topic, msg->payload, msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0,
              stamp);
}

/* One connection attempt; on failure the next one is scheduled later. */
static void try_connect(ngl_twin_mqtt *m)
{
    int rc = m->ever || m->have_socket ? mosquitto_reconnect(m->mosq)
                                       : mosquitto_connect(m->mosq, m->host, m->port, m->keepalive);
    if (rc == MOSQ_ERR_SUCCESS) {
        m->have_socket = 1;
        return;
    }
    m->have_socket = 0;
    m->next_try_us = ngl_twin_now_us() + (int64_t)m->backoff_ms * 1000;
    m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
}

ngl_twin_mqtt *ngl_twin_mqtt_create(const ngl_twin_mqtt_opts *opts, ngl_twin_mqtt_msg_fn on_msg,
                                    void *user, char *err, size_t err_cap)
{
    ngl_twin_mqtt *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        set_err(err, err_cap, "out of memory");
        return NULL;
    }
    if (lib_users++ == 0) {
        mosquitto_lib_init();
    }
    m->on_msg = on_msg;
    m->user = user;
    m->port = opts->port > 0 ? opts->port : 1883;
    m->keepalive = opts->keepalive > 0 ? opts->keepalive : 30;
    m->backoff_ms = BACKOFF_MIN_MS;
    m->host = dup_str(opts->host != NULL ? opts->host : "localhost");
    if (m->host == NULL) {
        set_err(err, err_cap, "out of memory");
        goto fail;
    }
    /* clean start: a restarted subscriber wants the live stream (and a
     * keyframe), not a backlog the broker kept for it. */
    m->mosq = mosquitto_new(opts->client_id, true, m);
    if (m->mosq == NULL) {
        set_err(err, err_cap, "mosquitto_new: %s", strerror(errno));
        goto fail;
    }
    mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    /* A sample is a few dozen bytes: Nagle would hold it for an ACK. */
    mosquitto_int_option(m->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_v5_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(m->mosq, on_disconnect);
    mosquitto_publish_v5_callback_set(m->mosq, on_publish);
    mosquitto_message_v5_callback_set(m->mosq, on_message);
    mosquitto_subscribe_v5_callback_set(m->mosq, on_subscribe);
    int rc;
    if (opts->username != NULL || opts->password != NULL) {
        rc = mosquitto_username_pw_set(m->mosq, opts->username, opts->password);
        if (rc != MOSQ_ERR_SUCCESS) {
            set_err(err, err_cap, "username/password: %s", mosquitto_strerror(rc));
            goto fail;
        }
    }
    if (opts->cafile != NULL || opts->cert != NULL || opts->key != NULL) {
        rc = mosquitto_tls_set(m->mosq, opts->cafile, NULL, opts->cert, opts->key, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            set_err(err, err_cap, "TLS (--cafile/--cert/--key): %s", mosquitto_strerror(rc));
            goto fail;
        }
    }
    try_connect(m);
    return m;
fail:
    ngl_twin_mqtt_destroy(m);
    return NULL;
}

void ngl_twin_mqtt_destroy(ngl_twin_mqtt *m)
{
    if (m == NULL) {
        return;
    }
    if (m->mosq != NULL) {
        if (m->have_socket) {
            mosquitto_disconnect(m->mosq);
        }
        mosquitto_destroy(m->mosq);
    }
    for (size_t i = 0; i < m->nsubs; i++) {
        free(m->sub[i]);
    }
    free(m->host);
    free(m);
    if (--lib_users == 0) {
        mosquitto_lib_cleanup();
    }
}

int ngl_twin_mqtt_subscribe(ngl_twin_mqtt *m, const char *topic, int qos)
{
    if (m->nsubs == MAX_SUBS) {
        return -1;
    }
    m->sub[m->nsubs] = dup_str(topic);
    if (m->sub[m->nsubs] == NULL) {
        return -1;
    }
    m->sub_qos[m->nsubs] = qos;
    m->nsubs++;
    if (m->connected) {
        mosquitto_subscribe_v5(m->mosq, NULL, topic, qos, 0, NULL);
    }
    return 0;
}

static void sleep_ms(int ms)
{
    if (ms > 0) {
        poll(NULL, 0, ms);
    }
}

int ngl_twin_mqtt_service(ngl_twin_mqtt *m, int timeout_ms, char *err, size_t err_cap)
{
    if (m->fatal) {
        set_err(err, err_cap, "broker refused the connection: %s",
                mosquitto_reason_string(m->fatal_reason));
        return -1;
    }
    if (!m->have_socket) {
        int64_t wait_us = m->next_try_us - ngl_twin_now_us();
        if (wait_us > 0) {
            int64_t w = wait_us / 1000 + 1;
            sleep_ms(w < timeout_ms ? (int)w : timeout_ms);
            return 0;
        }
        try_connect(m);
        if (!m->have_socket) {
            return 0;
        }
    }
    int rc = mosquitto_loop(m->mosq, timeout_ms, 1);
    if (m->fatal) {
        set_err(err, err_cap, "broker refused the connection: %s",
                mosquitto_reason_string(m->fatal_reason));
        return -1;
    }
    switch (rc) {
    case MOSQ_ERR_SUCCESS: return 0;
    case MOSQ_ERR_NO_CONN:
    case MOSQ_ERR_CONN_LOST:
    case MOSQ_ERR_CONN_REFUSED:
    case MOSQ_ERR_ERRNO:
    case MOSQ_ERR_KEEPALIVE:
    case MOSQ_ERR_PROTOCOL:
        /* The broker went away (or never answered): try again later. A
         * protocol error counts here too: a restarted broker may cut a
         * packet in half. */
        m->connected = 0;
        m->have_socket = 0;
        m->inflight = 0;
        m->next_try_us = ngl_twin_now_us() + (int64_t)m->backoff_ms * 1000;
        m->backoff_ms = m->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : m->backoff_ms * 2;
        return 0;
    default: set_err(err, err_cap, "mqtt: %s", mosquitto_strerror(rc)); return -1;
    }
}

int ngl_twin_mqtt_connected(const ngl_twin_mqtt *m)
{
    return m->connected;
}

unsigned ngl_twin_mqtt_inflight(const ngl_twin_mqtt *m)
{
    return m->inflight;
}

int ngl_twin_mqtt_subscribed(const ngl_twin_mqtt *m)
{
    return m->connected && m->subacks >= m->nsubs;
}

uint64_t ngl_twin_mqtt_reconnects(const ngl_twin_mqtt *m)
{
    return m->reconnects;
}

int ngl_twin_mqtt_publish(ngl_twin_mqtt *m, const char *topic, const void *payload, size_t len,
                          int qos, int retain, int64_t stamp_us)
{
    if (!m->connected) {
        return 1;
    }
    if (len > (size_t)MQTT_MAX_PAYLOAD) {
        return -1;
    }
    mosquitto_property *props = NULL;
    if (stamp_us >= 0) {
        char v[24];
        snprintf(v, sizeof(v), "%" PRId64, stamp_us);
        if (mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "t", v) !=
            MOSQ_ERR_SUCCESS) {
            return -1;
        }
    }
    int rc = mosquitto_publish_v5(m->mosq, NULL, topic, (int)len, payload, qos, retain, props);
    mosquitto_property_free_all(&props);
    if (rc == MOSQ_ERR_SUCCESS) {
        if (qos > 0) {
            m->inflight++;
        }
        return 0;
    }
    if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST || rc == MOSQ_ERR_ERRNO) {
        m->connected = 0;
        return 1;
    }
    return -1;
}

/* ---- bounded publish queue ---------------------------------------------- */

typedef struct outq_msg {
    void *data;
    size_t len;
    int64_t t_us;
} outq_msg;

struct ngl_twin_outq {
    outq_msg *ring;
    size_t cap;
    size_t head; /* oldest */
    size_t len;
};

ngl_twin_outq *ngl_twin_outq_create(size_t max_msgs)
{
    if (max_msgs == 0) {
        return NULL;
    }
    ngl_twin_outq *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->ring = calloc(max_msgs, sizeof(outq_msg));
    if (q->ring == NULL) {
        free(q);
        return NULL;
    }
    q->cap = max_msgs;
    return q;
}

void ngl_twin_outq_destroy(ngl_twin_outq *q)
{
    if (q == NULL) {
        return;
    }
    while (q->len > 0) {
        ngl_twin_outq_pop(q);
    }
    free(q->ring);
    free(q);
}

int ngl_twin_outq_push(ngl_twin_outq *q, const void *msg, size_t len, int64_t t_us)
{
    void *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL) {
        return -1;
    }
    memcpy(copy, msg, len);
    int dropped = 0;
    if (q->len == q->cap) {
        ngl_twin_outq_pop(q);
        dropped = 1;
    }
    outq_msg *slot = &q->ring[(q->head + q->len) % q->cap];
    slot->data = copy;
    slot->len = len;
    slot->t_us = t_us;
    q->len++;
    return dropped;
}

const void *ngl_twin_outq_peek(const ngl_twin_outq *q, size_t *len, int64_t *t_us)
{
    if (q->len == 0) {
        return NULL;
    }
    const outq_msg *m = &q->ring[q->head];
    *len = m->len;
    if (t_us != NULL) {
        *t_us = m->t_us;
    }
    return m->data;
}

void ngl_twin_outq_pop(ngl_twin_outq *q)
{
    if (q->len == 0) {
        return;
    }
    free(q->ring[q->head].data);
    q->ring[q->head].data = NULL;
    q->head = (q->head + 1) % q->cap;
    q->len--;
}

size_t ngl_twin_outq_len(const ngl_twin_outq *q)
{
    return q->len;
}
