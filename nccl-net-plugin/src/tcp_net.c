/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tcp_net.c -- connections, striping and progress of the TCP transport.
 * The protocol is described in ngl_tcp.h.
 */
#include "ngl_plugin.h"
#include "ngl_plugin_dev.h"
#include "ngl_tcp.h"

#include "ngl_byteorder.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define HANDLE_MAGIC     0x484c474eu /* "NGLH" */
#define HELLO_MAGIC      0x4f4c474eu /* "NGLO" */
#define MSG_MAGIC        0x4d4c474eu /* "NGLM" */
#define PROTO_VERSION    1u
#define HELLO_SIZE       32u
#define MSG_HDR_SIZE     16u
#define MAX_PENDING      256
#define CONNECT_RETRIES  50
#define CONNECT_RETRY_NS 20000000ull /* 20 ms between refused attempts */
#define STRIPE_ALIGN     ((size_t)4096)

/* Offsets inside the 128-byte handle. */
#define H_MAGIC   0
#define H_VERSION 4
#define H_NONCE   8
#define H_FAMILY  16
#define H_PORT    18
#define H_ADDR    20 /* 16 bytes: IPv4 uses the first 4 */
#define H_SCOPE   36 /* IPv6 scope id */
#define H_STATE   40 /* connector pointer, meaningful only in the connecting process */
#define H_END     48
_Static_assert(H_END <= NGL_NCCL_HANDLE_MAXSIZE, "handle fits NCCL's 128 bytes");

/* ---- objects ----------------------------------------------------------- */

struct ngl_tcp_req {
    ngl_tcp_comm *comm;
    uint8_t *data; /* what the sockets move: the posted buffer, or its mirror */
    uint8_t *dev;  /* device memory: the posted buffer (NULL for host memory) */
    int dev_ready; /* send: the mirror holds the data; recv: copy-back posted */
    size_t cap;    /* recv: posted capacity; send: the size */
    size_t size;   /* message size (recv: known once the header arrived) */
    uint64_t seq;  /* posting index on the comm */
    int size_known;
    int in_use; /* posted and not yet released by a completed test */
    int complete;
    size_t hdr_done; /* header bytes moved (socket 0) */
    uint8_t hdr[MSG_HDR_SIZE];
    size_t part_done[NGL_TCP_MAX_SOCKS];
};

struct ngl_tcp_comm {
    pthread_mutex_t lock;
    int is_send;
    int nsocks;
    int fd[NGL_TCP_MAX_SOCKS];
    uint64_t posted;                 /* messages posted so far */
    uint64_t cur[NGL_TCP_MAX_SOCKS]; /* message each socket works on next */
    int err;                         /* sticky -errno */
    ngl_tcp_req req[NGL_TCP_NREQ];   /* slot = seq % NGL_TCP_NREQ */
    /* device memory: created by the first device registration */
    void *queue;
    void *ev[NGL_TCP_NREQ]; /* per request slot: its copy */
    int cuda_dev;
};

struct ngl_tcp_mr {
    uint8_t *base;
    size_t size;
    int type;
    uint8_t *mirror; /* device memory: pinned host copy of the range */
};

typedef struct {
    int fd;
    size_t got;
    uint8_t hello[HELLO_SIZE];
} pending_sock;

struct ngl_tcp_listen {
    int fd;
    int dev;
    uint64_t nonce;
    int npending;
    pending_sock pending[MAX_PENDING];
};

typedef struct {
    uint64_t nonce; /* of the listener, copied from the handle */
    uint64_t conn_id;
    int nsocks;
    int dev;
    int fd[NGL_TCP_MAX_SOCKS];
    int stage[NGL_TCP_MAX_SOCKS]; /* 0 connecting, 1 sending hello, 2 done */
    size_t sent[NGL_TCP_MAX_SOCKS];
    int retries;
    uint64_t retry_at;
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } peer;
    socklen_t peer_len;
} connector;

/* ---- socket helpers ---------------------------------------------------- */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL, 0);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        return -errno;
    }
    return 0;
}

/* Latency and dead-peer detection. A killed process is noticed at once (the
 * kernel resets its sockets); keepalive and TCP_USER_TIMEOUT bound the wait
 * when a whole host disappears. */
static void tune_socket(int fd)
{
    int one = 1;
    int idle = 10, intvl = 5, cnt = 3;
    unsigned user_timeout_ms = 30000;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* ---- striping ---------------------------------------------------------- */

void ngl_tcp_part(size_t size, int nsocks, int k, size_t *off, size_t *len)
{
    size_t unit = size;
    if (size > NGL_TCP_MIN_STRIPE && nsocks > 1) {
        unit = (size + (size_t)nsocks - 1) / (size_t)nsocks;
        unit = (unit + STRIPE_ALIGN - 1) / STRIPE_ALIGN * STRIPE_ALIGN;
    }
    size_t o = unit * (size_t)k;
    if (o > size || (k > 0 && unit == size)) {
        o = size;
    }
    size_t e = o + unit;
    if (e > size) {
        e = size;
    }
    *off = o;
    *len = e - o;
}

/* ---- listen ------------------------------------------------------------ */

int ngl_tcp_listen_open(int dev, void *handle, ngl_tcp_listen **out)
{
    *out = NULL;
    unsigned alen = 0;
    const struct sockaddr *addr = ngl_tcp_device_addr(dev, &alen);
    if (addr == NULL || handle == NULL) {
        return -EINVAL;
    }
    ngl_tcp_listen *l = calloc(1, sizeof *l);
    if (l == NULL) {
        return -ENOMEM;
    }
    int rc = 0;
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } a;
    socklen_t len = (socklen_t)alen;
    memcpy(&a, addr, alen);
    if (a.v4.sin_family == AF_INET) {
        a.v4.sin_port = 0;
    } else {
        a.v6.sin6_port = 0;
    }
    l->fd = socket(a.v4.sin_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        rc = -errno;
        goto fail_free;
    }
    int one = 1;
    (void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l->fd, (struct sockaddr *)&a, len) != 0 || listen(l->fd, SOMAXCONN) != 0 ||
        getsockname(l->fd, (struct sockaddr *)&a, &len) != 0) {
        rc = -errno;
        goto fail_close;
    }
    rc = set_nonblock(l->fd);
    if (rc != 0) {
        goto fail_close;
    }
    l->dev = dev;
    l->nonce = ngl_plugin_random64();

    uint8_t *h = handle;
    memset(h, 0, NGL_NCCL_HANDLE_MAXSIZE);
    ngl_wr_u32(h + H_MAGIC, HANDLE_MAGIC);
    ngl_wr_u32(h + H_VERSION, PROTO_VERSION);
    ngl_wr_u64(h + H_NONCE, l->nonce);
    ngl_wr_u16(h + H_FAMILY, (uint16_t)a.v4.sin_family);
    if (a.v4.sin_family == AF_INET) {
        ngl_wr_u16(h + H_PORT, ntohs(a.v4.sin_port));
        memcpy(h + H_ADDR, &a.v4.sin_addr, 4);
    } else {
        ngl_wr_u16(h + H_PORT, ntohs(a.v6.sin6_port));
        memcpy(h + H_ADDR, &a.v6.sin6_addr, 16);
        ngl_wr_u32(h + H_SCOPE, a.v6.sin6_scope_id);
    }
    *out = l;
    return 0;

fail_close:
    close(l->fd);
fail_free:
    free(l);
    return rc;
}

void ngl_tcp_listen_close(ngl_tcp_listen *l)
{
    if (l == NULL) {
        return;
    }
    for (int i = 0; i < l->npending; i++) {
        close(l->pending[i].fd);
    }
    close(l->fd);
    free(l);
}

/* ---- connect ----------------------------------------------------------- */

static connector *handle_connector(const uint8_t *h)
{
    connector *c;
    memcpy(&c, h + H_STATE, sizeof c);
    return c;
}

static void handle_set_connector(uint8_t *h, connector *c)
{
    memcpy(h + H_STATE, &c, sizeof c);
}

static void connector_free(connector *c)
{
    for (int k = 0; k < c->nsocks; k++) {
        close_fd(&c->fd[k]);
    }
    free(c);
}

/* Start (or restart) the non-blocking connect of socket @p k. */
static int connector_start(connector *c, int k)
{
    close_fd(&c->fd[k]);
    c->stage[k] = 0;
    c->sent[k] = 0;
    int fd = socket(c->peer.v4.sin_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    c->fd[k] = fd;
    int rc = set_nonblock(fd);
    if (rc != 0) {
        return rc;
    }
    tune_socket(fd);
    /* Bind the source address so traffic leaves through the chosen device. */
    unsigned alen = 0;
    const struct sockaddr *src = ngl_tcp_device_addr(c->dev, &alen);
    if (src != NULL && src->sa_family == c->peer.v4.sin_family) {
        union {
            struct sockaddr_in v4;
            struct sockaddr_in6 v6;
        } a;
        memcpy(&a, src, alen);
        if (a.v4.sin_family == AF_INET) {
            a.v4.sin_port = 0;
        } else {
            a.v6.sin6_port = 0;
        }
        (void)bind(fd, (struct sockaddr *)&a, (socklen_t)alen);
    }
    if (connect(fd, (struct sockaddr *)&c->peer, c->peer_len) != 0 && errno != EINPROGRESS) {
        return -errno;
    }
    return 0;
}

static int connector_create(int dev, const uint8_t *h, int nsocks, connector **out)
{
    if (ngl_rd_u32(h + H_MAGIC) != HANDLE_MAGIC || ngl_rd_u32(h + H_VERSION) != PROTO_VERSION) {
        return -EINVAL;
    }
    connector *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return -ENOMEM;
    }
    c->nonce = ngl_rd_u64(h + H_NONCE);
    c->conn_id = ngl_plugin_random64();
    c->nsocks = nsocks;
    c->dev = dev;
    for (int k = 0; k < NGL_TCP_MAX_SOCKS; k++) {
        c->fd[k] = -1;
    }
    uint16_t family = ngl_rd_u16(h + H_FAMILY);
    if (family == AF_INET) {
        c->peer.v4.sin_family = AF_INET;
        c->peer.v4.sin_port = htons(ngl_rd_u16(h + H_PORT));
        memcpy(&c->peer.v4.sin_addr, h + H_ADDR, 4);
        c->peer_len = sizeof(struct sockaddr_in);
    } else if (family == AF_INET6) {
        c->peer.v6.sin6_family = AF_INET6;
        c->peer.v6.sin6_port = htons(ngl_rd_u16(h + H_PORT));
        memcpy(&c->peer.v6.sin6_addr, h + H_ADDR, 16);
        c->peer.v6.sin6_scope_id = ngl_rd_u32(h + H_SCOPE);
        c->peer_len = sizeof(struct sockaddr_in6);
    } else {
        free(c);
        return -EINVAL;
    }
    for (int k = 0; k < nsocks; k++) {
        int rc = connector_start(c, k);
        if (rc != 0) {
            connector_free(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

static ngl_tcp_comm *comm_create(int is_send, int nsocks, const int *fds)
{
    ngl_tcp_comm *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return NULL;
    }
    c->is_send = is_send;
    c->nsocks = nsocks;
    for (int k = 0; k < NGL_TCP_MAX_SOCKS; k++) {
        c->fd[k] = k < nsocks ? fds[k] : -1;
    }
    for (int i = 0; i < NGL_TCP_NREQ; i++) {
        c->req[i].comm = c;
    }
    return c;
}

/* Advance socket @p k of @p c. @return 1 done, 0 in progress, -errno. */
static int connector_step_sock(connector *c, int k)
{
    if (c->stage[k] == 0) {
        struct pollfd p = {.fd = c->fd[k], .events = POLLOUT};
        int n = poll(&p, 1, 0);
        if (n < 0) {
            return errno == EINTR ? 0 : -errno;
        }
        if (n == 0) {
            return 0;
        }
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(c->fd[k], SOL_SOCKET, SO_ERROR, &err, &el) != 0) {
            return -errno;
        }
        if (err == ECONNREFUSED || err == ETIMEDOUT) {
            /* The listener may not be reachable yet; retry a bounded
             * number of times, spaced out, then give up. */
            if (++c->retries > CONNECT_RETRIES) {
                return -err;
            }
            close_fd(&c->fd[k]);
            c->stage[k] = -1;
            c->retry_at = ngl_plugin_now_ns() + CONNECT_RETRY_NS;
            return 0;
        }
        if (err != 0) {
            return -err;
        }
        c->stage[k] = 1;
    }
    if (c->stage[k] == -1) {
        if (ngl_plugin_now_ns() < c->retry_at) {
            return 0;
        }
        int rc = connector_start(c, k);
        return rc < 0 ? rc : 0;
    }
    if (c->stage[k] == 1) {
        uint8_t hello[HELLO_SIZE];
        memset(hello, 0, sizeof hello);
        ngl_wr_u32(hello + 0, HELLO_MAGIC);
        ngl_wr_u32(hello + 4, PROTO_VERSION);
        ngl_wr_u64(hello + 8, c->nonce);
        ngl_wr_u64(hello + 16, c->conn_id);
        ngl_wr_u32(hello + 24, (uint32_t)k);
        ngl_wr_u32(hello + 28, (uint32_t)c->nsocks);
        while (c->sent[k] < HELLO_SIZE) {
            ssize_t n = send(c->fd[k], hello + c->sent[k], HELLO_SIZE - c->sent[k],
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    return 0;
                }
                return -errno;
            }
            c->sent[k] += (size_t)n;
        }
        c->stage[k] = 2;
    }
    return c->stage[k] == 2;
}

int ngl_tcp_connect_step(int dev, void *handle, int nsocks, ngl_tcp_comm **out)
{
    *out = NULL;
    if (handle == NULL || nsocks < 1 || nsocks > NGL_TCP_MAX_SOCKS) {
        return -EINVAL;
    }
    uint8_t *h = handle;
    connector *c = handle_connector(h);
    if (c == NULL) {
        int rc = connector_create(dev, h, nsocks, &c);
        if (rc != 0) {
            return rc;
        }
        handle_set_connector(h, c);
    }
    int ndone = 0;
    for (int k = 0; k < c->nsocks; k++) {
        int r = connector_step_sock(c, k);
        if (r < 0) {
            handle_set_connector(h, NULL);
            connector_free(c);
            return r;
        }
        ndone += r;
    }
    if (ndone < c->nsocks) {
        return 0;
    }
    ngl_tcp_comm *comm = comm_create(1, c->nsocks, c->fd);
    if (comm == NULL) {
        handle_set_connector(h, NULL);
        connector_free(c);
        return -ENOMEM;
    }
    for (int k = 0; k < c->nsocks; k++) {
        c->fd[k] = -1; /* now owned by the comm */
    }
    handle_set_connector(h, NULL);
    connector_free(c);
    *out = comm;
    return 0;
}

/* ---- accept ------------------------------------------------------------ */

static void pending_drop(ngl_tcp_listen *l, int i)
{
    close(l->pending[i].fd);
    l->pending[i] = l->pending[--l->npending];
}

int ngl_tcp_accept_step(ngl_tcp_listen *l, ngl_tcp_comm **out)
{
    *out = NULL;
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
                errno == ECONNABORTED) {
                break;
            }
            return -errno;
        }
        if (l->npending == MAX_PENDING) {
            NGL_PWARN("listen: more than %d half-open connections, dropping one", MAX_PENDING);
            close(fd);
            continue;
        }
        tune_socket(fd);
        l->pending[l->npending].fd = fd;
        l->pending[l->npending].got = 0;
        l->npending++;
    }
    for (int i = 0; i < l->npending;) {
        pending_sock *p = &l->pending[i];
        while (p->got < HELLO_SIZE) {
            ssize_t n = recv(p->fd, p->hello + p->got, HELLO_SIZE - p->got, MSG_DONTWAIT);
            if (n > 0) {
                p->got += (size_t)n;
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                break;
            }
            p->got = SIZE_MAX; /* closed or failed before saying hello */
            break;
        }
        int bad = p->got == SIZE_MAX;
        if (!bad && p->got == HELLO_SIZE) {
            uint32_t k = ngl_rd_u32(p->hello + 24), n = ngl_rd_u32(p->hello + 28);
            bad = ngl_rd_u32(p->hello) != HELLO_MAGIC ||
                  ngl_rd_u32(p->hello + 4) != PROTO_VERSION ||
                  ngl_rd_u64(p->hello + 8) != l->nonce || n < 1 || n > NGL_TCP_MAX_SOCKS || k >= n;
            if (bad) {
                NGL_PWARN("listen: dropping a connection that is not ours (bad hello)");
            }
        }
        if (bad) {
            pending_drop(l, i);
            continue;
        }
        i++;
    }
    /* A connection is complete when every socket of one conn_id said hello. */
    for (int i = 0; i < l->npending; i++) {
        if (l->pending[i].got != HELLO_SIZE) {
            continue;
        }
        uint64_t id = ngl_rd_u64(l->pending[i].hello + 16);
        int n = (int)ngl_rd_u32(l->pending[i].hello + 28);
        int idx[NGL_TCP_MAX_SOCKS];
        int have = 0;
        for (int k = 0; k < n; k++) {
            idx[k] = -1;
        }
        for (int j = 0; j < l->npending; j++) {
            const pending_sock *p = &l->pending[j];
            if (p->got == HELLO_SIZE && ngl_rd_u64(p->hello + 16) == id &&
                (int)ngl_rd_u32(p->hello + 28) == n) {
                int k = (int)ngl_rd_u32(p->hello + 24);
                if (idx[k] < 0) {
                    idx[k] = j;
                    have++;
                }
            }
        }
        if (have < n) {
            continue;
        }
        int fds[NGL_TCP_MAX_SOCKS] = {0};
        for (int k = 0; k < n; k++) {
            fds[k] = l->pending[idx[k]].fd;
        }
        ngl_tcp_comm *c = comm_create(0, n, fds);
        if (c == NULL) {
            return -ENOMEM;
        }
        /* Remove the used entries, highest index first so that the
         * swap-with-last removal does not move an entry still to remove. */
        for (int pass = 0; pass < n; pass++) {
            int best = -1;
            for (int k = 0; k < n; k++) {
                if (idx[k] >= 0 && (best < 0 || idx[k] > idx[best])) {
                    best = k;
                }
            }
            l->pending[idx[best]] = l->pending[--l->npending];
            idx[best] = -1;
        }
        *out = c;
        return 0;
    }
    return 0;
}

/* ---- data path --------------------------------------------------------- */

void ngl_tcp_comm_close(ngl_tcp_comm *c)
{
    if (c == NULL) {
        return;
    }
    for (int k = 0; k < c->nsocks; k++) {
        close_fd(&c->fd[k]);
    }
    if (c->queue != NULL) {
        const ngl_plugin_dev_ops *g = ngl_plugin_dev();
        int saved = -1;
        (void)ngl_plugin_dev_enter(c->cuda_dev, &saved);
        g->queue_destroy(c->queue); /* its copies still complete */
        for (int i = 0; i < NGL_TCP_NREQ; i++) {
            if (c->ev[i] != NULL) {
                g->event_destroy(c->ev[i]);
            }
        }
        ngl_plugin_dev_leave(saved);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
}

ngl_tcp_comm *ngl_tcp_req_comm(ngl_tcp_req *r)
{
    return r->comm;
}

static int io_errno(void)
{
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -errno;
}

/* Move bytes of request @p r on socket @p k. @return 1 when socket k is done
 * with @p r, 0 when it would block (or waits for the header), or -errno. */
/* Device memory: has the copy into the mirror landed? @return 1, 0, -errno. */
static int dev_copied(ngl_tcp_comm *c, ngl_tcp_req *r)
{
    if (r->dev == NULL || r->dev_ready) {
        return 1;
    }
    int done = 0;
    int saved = -1;
    int rc = ngl_plugin_dev_enter(c->cuda_dev, &saved);
    if (rc == 0) {
        rc = ngl_plugin_dev()->event_query(c->ev[r->seq % NGL_TCP_NREQ], &done);
    }
    ngl_plugin_dev_leave(saved);
    if (rc != 0) {
        return rc;
    }
    r->dev_ready = done;
    return done;
}

static int sock_send_step(ngl_tcp_comm *c, int k, ngl_tcp_req *r)
{
    /* Messages leave in order: a device message whose bytes are still on
     * their way to the mirror holds back the ones behind it. */
    int ready = dev_copied(c, r);
    if (ready <= 0) {
        return ready;
    }
    size_t off, len;
    ngl_tcp_part(r->size, c->nsocks, k, &off, &len);
    while (1) {
        struct iovec iov[2];
        int n_iov = 0;
        if (k == 0 && r->hdr_done < MSG_HDR_SIZE) {
            iov[n_iov].iov_base = r->hdr + r->hdr_done;
            iov[n_iov].iov_len = MSG_HDR_SIZE - r->hdr_done;
            n_iov++;
        }
        if (r->part_done[k] < len) {
            iov[n_iov].iov_base = r->data + off + r->part_done[k];
            iov[n_iov].iov_len = len - r->part_done[k];
            n_iov++;
        }
        if (n_iov == 0) {
            return 1;
        }
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)n_iov;
        ssize_t n = sendmsg(c->fd[k], &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            return io_errno();
        }
        size_t moved = (size_t)n;
        if (k == 0 && r->hdr_done < MSG_HDR_SIZE) {
            size_t h = MSG_HDR_SIZE - r->hdr_done;
            h = moved < h ? moved : h;
            r->hdr_done += h;
            moved -= h;
        }
        r->part_done[k] += moved;
    }
}

static int sock_recv_step(ngl_tcp_comm *c, int k, ngl_tcp_req *r)
{
    if (!r->size_known) {
        if (k != 0) {
            return 0; /* the header arrives on socket 0 */
        }
        while (r->hdr_done < MSG_HDR_SIZE) {
            ssize_t n =
                recv(c->fd[0], r->hdr + r->hdr_done, MSG_HDR_SIZE - r->hdr_done, MSG_DONTWAIT);
            if (n == 0) {
                return -ECONNRESET;
            }
            if (n < 0) {
                return io_errno();
            }
            r->hdr_done += (size_t)n;
        }
        if (ngl_rd_u32(r->hdr) != MSG_MAGIC || ngl_rd_u32(r->hdr + 4) != (uint32_t)r->seq) {
            NGL_PWARN("recv: message header out of sequence (peer protocol error)");
            return -EPROTO;
        }
        uint64_t size = ngl_rd_u64(r->hdr + 8);
        if (size > r->cap) {
            NGL_PWARN("recv: message of %llu bytes for a %zu-byte receive buffer",
                      (unsigned long long)size, r->cap);
            return -EMSGSIZE;
        }
        r->size = (size_t)size;
        r->size_known = 1;
    }
    size_t off, len;
    ngl_tcp_part(r->size, c->nsocks, k, &off, &len);
    while (r->part_done[k] < len) {
        ssize_t n =
            recv(c->fd[k], r->data + off + r->part_done[k], len - r->part_done[k], MSG_DONTWAIT);
        if (n == 0) {
            return -ECONNRESET;
        }
        if (n < 0) {
            return io_errno();
        }
        r->part_done[k] += (size_t)n;
    }
    return 1;
}

/* Drive every socket of @p c as far as it goes without blocking. Lock held. */
static void comm_progress(ngl_tcp_comm *c)
{
    if (c->err != 0) {
        return;
    }
    for (int k = 0; k < c->nsocks; k++) {
        while (c->cur[k] < c->posted) {
            ngl_tcp_req *r = &c->req[c->cur[k] % NGL_TCP_NREQ];
            int rc = c->is_send ? sock_send_step(c, k, r) : sock_recv_step(c, k, r);
            if (rc < 0) {
                /* Logged once per comm; every later call reports it. */
                NGL_PWARN("%s on socket %d of %d failed: %s", c->is_send ? "send" : "receive", k,
                          c->nsocks, strerror(-rc));
                c->err = rc;
                return;
            }
            if (rc == 0) {
                break;
            }
            c->cur[k]++;
        }
    }
}

/* Device memory: where the sockets read or write @p data's bytes.
 * @return 0, or -EINVAL when [data, data + size) is not in @p mr. */
static int dev_mirror(const ngl_tcp_mr *mr, uint8_t *data, size_t size, uint8_t **host)
{
    if (data < mr->base || size > mr->size || (size_t)(data - mr->base) > mr->size - size) {
        NGL_PWARN("%zu bytes at %p are outside the registered device range", size, (void *)data);
        return -EINVAL;
    }
    *host = mr->mirror + (data - mr->base);
    return 0;
}

static int post(ngl_tcp_comm *c, void *data, size_t size, const ngl_tcp_mr *mr, int is_send,
                ngl_tcp_req **out)
{
    *out = NULL;
    if (c == NULL || (data == NULL && size > 0) || c->is_send != is_send) {
        return -EINVAL;
    }
    const int dev = mr != NULL && mr->type == NGL_NCCL_PTR_CUDA;
    uint8_t *host = data;
    if (dev && (c->queue == NULL || dev_mirror(mr, data, size, &host) != 0)) {
        return -EINVAL;
    }
    pthread_mutex_lock(&c->lock);
    int rc = c->err;
    if (rc == 0) {
        ngl_tcp_req *r = &c->req[c->posted % NGL_TCP_NREQ];
        if (!r->in_use && dev && is_send) {
            /* Bytes go to the mirror first; the sockets wait for the copy. */
            int saved = -1;
            rc = ngl_plugin_dev_enter(c->cuda_dev, &saved);
            if (rc == 0) {
                rc = ngl_plugin_dev()->copy(host, data, size, c->queue);
            }
            if (rc == 0) {
                rc = ngl_plugin_dev()->event_record(c->ev[c->posted % NGL_TCP_NREQ], c->queue);
            }
            ngl_plugin_dev_leave(saved);
            if (rc != 0) {
                NGL_PWARN("send from device memory: a CUDA call failed");
                c->err = rc;
            }
        }
        if (rc == 0 && !r->in_use) {
            r->data = host;
            r->dev = dev ? data : NULL;
            r->dev_ready = 0;
            r->cap = size;
            r->size = is_send ? size : 0;
            r->size_known = is_send;
            r->seq = c->posted;
            r->in_use = 1;
            r->complete = 0;
            r->hdr_done = 0;
            memset(r->part_done, 0, sizeof r->part_done);
            if (is_send) {
                ngl_wr_u32(r->hdr, MSG_MAGIC);
                ngl_wr_u32(r->hdr + 4, (uint32_t)r->seq);
                ngl_wr_u64(r->hdr + 8, size);
            }
            c->posted++;
            *out = r;
            comm_progress(c);
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int ngl_tcp_isend(ngl_tcp_comm *c, const void *data, size_t size, const ngl_tcp_mr *mr,
                  ngl_tcp_req **req)
{
    return post(c, (void *)(uintptr_t)data, size, mr, 1, req);
}

int ngl_tcp_irecv(ngl_tcp_comm *c, void *data, size_t cap, const ngl_tcp_mr *mr, ngl_tcp_req **req)
{
    return post(c, data, cap, mr, 0, req);
}

/* Received into the mirror: copy back to device memory, then report done
 * once the copy landed. @return 1 done, 0 not yet, -errno. Lock held. */
static int dev_copy_back(ngl_tcp_comm *c, ngl_tcp_req *r)
{
    const ngl_plugin_dev_ops *g = ngl_plugin_dev();
    void *ev = c->ev[r->seq % NGL_TCP_NREQ];
    int saved = -1, done = 0;
    int rc = ngl_plugin_dev_enter(c->cuda_dev, &saved);
    if (rc == 0 && !r->dev_ready) {
        rc = g->copy(r->dev, r->data, r->size, c->queue);
        if (rc == 0) {
            rc = g->event_record(ev, c->queue);
        }
        r->dev_ready = rc == 0;
    }
    if (rc == 0) {
        rc = g->event_query(ev, &done);
    }
    ngl_plugin_dev_leave(saved);
    if (rc != 0) {
        NGL_PWARN("receive into device memory: a CUDA call failed");
        c->err = rc;
        return rc;
    }
    return done;
}

int ngl_tcp_regmr(ngl_tcp_comm *c, void *data, size_t size, int type, ngl_tcp_mr **out)
{
    *out = NULL;
    if (c == NULL || (type != NGL_NCCL_PTR_HOST && type != NGL_NCCL_PTR_CUDA)) {
        return -EINVAL;
    }
    ngl_tcp_mr *mr = calloc(1, sizeof *mr);
    if (mr == NULL) {
        return -ENOMEM;
    }
    mr->base = data;
    mr->size = size;
    mr->type = type;
    if (type == NGL_NCCL_PTR_HOST) {
        *out = mr; /* sockets need no registration: the handle records the range */
        return 0;
    }
    const ngl_plugin_dev_ops *g = ngl_plugin_dev();
    int pd = -1;
    int rc = ngl_plugin_dev_of(data, &pd);
    if (rc != 0) {
        NGL_PWARN("regMr: device memory, but this plugin has no usable GPU");
        free(mr);
        return rc;
    }
    int saved = -1;
    rc = ngl_plugin_dev_enter(pd, &saved);
    pthread_mutex_lock(&c->lock);
    if (rc == 0 && c->queue != NULL && pd != c->cuda_dev) {
        NGL_PWARN("regMr: memory of GPU %d on a comm of GPU %d", pd, c->cuda_dev);
        rc = -EINVAL;
    }
    if (rc == 0 && c->queue == NULL) {
        c->cuda_dev = pd;
        rc = g->queue_create(&c->queue);
        for (int i = 0; i < NGL_TCP_NREQ && rc == 0; i++) {
            rc = g->event_create(&c->ev[i]);
        }
    }
    pthread_mutex_unlock(&c->lock);
    /* Sockets read and write host memory: device bytes travel through a
     * pinned copy of the whole range, allocated now, not per message. */
    if (rc == 0) {
        rc = g->host_alloc((void **)&mr->mirror, size > 0 ? size : 1);
    }
    ngl_plugin_dev_leave(saved);
    if (rc != 0) {
        free(mr);
        return rc;
    }
    *out = mr;
    return 0;
}

void ngl_tcp_deregmr(ngl_tcp_mr *mr)
{
    if (mr == NULL) {
        return;
    }
    if (mr->mirror != NULL) {
        ngl_plugin_dev()->host_free(mr->mirror);
    }
    free(mr);
}

int ngl_tcp_test(ngl_tcp_req *r, int *done, size_t *size)
{
    *done = 0;
    ngl_tcp_comm *c = r->comm;
    pthread_mutex_lock(&c->lock);
    if (!r->in_use) {
        pthread_mutex_unlock(&c->lock);
        return -EINVAL;
    }
    comm_progress(c);
    int finished = 1;
    for (int k = 0; k < c->nsocks; k++) {
        finished &= c->cur[k] > r->seq;
    }
    int rc = 0;
    if (finished && r->dev != NULL && !c->is_send) {
        int landed = dev_copy_back(c, r);
        finished = landed == 1;
        rc = landed < 0 ? landed : 0;
    }
    if (finished) {
        *done = 1;
        if (size != NULL) {
            *size = r->size;
        }
        r->in_use = 0;
    } else {
        rc = c->err;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}
