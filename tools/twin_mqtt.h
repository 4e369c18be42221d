/* SPDX-License-Identifier: Apache-2.0 */
/*
 * twin_mqtt.h -- the MQTT side of `nangila twin`: one libmosquitto client
 * driven from the caller's loop (no library thread), MQTT v5, with its own
 * reconnect schedule (exponential backoff from 50 ms to 2 s), topics that are
 * subscribed again after every reconnect, and an optional publish time stamp
 * carried as the v5 user property "t" (microseconds since the epoch).
 *
 * Nothing here knows the twin codec: payloads are opaque bytes.
 */
#ifndef NGL_TWIN_MQTT_H
#define NGL_TWIN_MQTT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ngl_twin_mqtt_opts {
    const char *host; /* default "localhost" */
    int port;         /* default 1883 (8883 is the user's to pass with TLS) */
    int keepalive;    /* seconds; default 30 */
    const char *client_id;
    /* passed through to libmosquitto as given (NULL: not used) */
    const char *cafile;
    const char *cert;
    const char *key;
    const char *username;
    const char *password;
} ngl_twin_mqtt_opts;

/* A received message. stamp_us: the sender's "t" property, -1 if absent.
 * payload is valid only during the call. */
typedef void (*ngl_twin_mqtt_msg_fn)(void *user, const char *topic, const void *payload, size_t len,
                                     int64_t stamp_us);

typedef struct ngl_twin_mqtt ngl_twin_mqtt;

/* Creates the client and makes the first connection attempt (which may fail:
 * service() keeps trying). Returns NULL with a message in err only for
 * errors retrying cannot fix (bad TLS files, out of memory). */
ngl_twin_mqtt *ngl_twin_mqtt_create(const ngl_twin_mqtt_opts *opts, ngl_twin_mqtt_msg_fn on_msg,
                                    void *user, char *err, size_t err_cap);
void ngl_twin_mqtt_destroy(ngl_twin_mqtt *m);

/* Subscribes now if connected, and again after every reconnect. The topic
 * string is copied. Returns 0, or -1 when more than 8 topics are asked. */
int ngl_twin_mqtt_subscribe(ngl_twin_mqtt *m, const char *topic, int qos);

/* Runs the network for up to timeout_ms (0: only what is ready): reads,
 * writes, keepalive, callbacks, and reconnect attempts when due. Blocks at
 * most timeout_ms. Returns 0, or -1 after a fatal error (message in err:
 * the broker refused the credentials, a protocol error). */
int ngl_twin_mqtt_service(ngl_twin_mqtt *m, int timeout_ms, char *err, size_t err_cap);

/* 1 while a CONNACK has been accepted and the connection is up. */
int ngl_twin_mqtt_connected(const ngl_twin_mqtt *m);

/* QoS 1 messages handed to the library and not yet acknowledged (reset to 0
 * on a disconnect: libmosquitto re-sends or drops them itself). */
unsigned ngl_twin_mqtt_inflight(const ngl_twin_mqtt *m);

/* 1 once the broker acknowledged every subscription of the current
 * connection. */
int ngl_twin_mqtt_subscribed(const ngl_twin_mqtt *m);

/* Connections made after the first one. */
uint64_t ngl_twin_mqtt_reconnects(const ngl_twin_mqtt *m);

/* Publishes one message if connected. stamp_us >= 0: attach it as the "t"
 * user property (the publisher passes the time its newest sample was taken,
 * so the receiver's latency covers encoding, queueing, the broker and
 * decoding); -1: no property. Returns 0 when handed to the library, 1 when
 * not connected (nothing queued: the caller keeps the message), -1 on a
 * fatal error. Does not block on the network beyond one non-blocking write. */
int ngl_twin_mqtt_publish(ngl_twin_mqtt *m, const char *topic, const void *payload, size_t len,
                          int qos, int retain, int64_t stamp_us);

/* Wall-clock microseconds since the epoch (the stamps' clock). */
int64_t ngl_twin_now_us(void);

/* A bounded FIFO of messages for the publisher: push() copies, and when the
 * queue is full it drops the oldest message to make room and says so, so
 * a broker outage costs the oldest data and never unbounded memory. */
typedef struct ngl_twin_outq ngl_twin_outq;
ngl_twin_outq *ngl_twin_outq_create(size_t max_msgs);
void ngl_twin_outq_destroy(ngl_twin_outq *q);
/* Returns the number of messages dropped to make room (0 or 1), or -1 when
 * out of memory (the message is not queued). */
int ngl_twin_outq_push(ngl_twin_outq *q, const void *msg, size_t len, int64_t t_us);
/* The oldest message, or NULL when empty; valid until pop(). */
const void *ngl_twin_outq_peek(const ngl_twin_outq *q, size_t *len, int64_t *t_us);
void ngl_twin_outq_pop(ngl_twin_outq *q);
size_t ngl_twin_outq_len(const ngl_twin_outq *q);

#endif
