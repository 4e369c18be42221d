/* SPDX-License-Identifier: Apache-2.0 */
/*
 * plugin_harness.c -- a small "mock NCCL": it dlopen()s the built plugin in
 * forked processes, looks up the exported tables and drives them the way
 * NCCL's proxy does (polling connect/accept, regMr, isend/irecv/test with
 * many requests in flight, collNet connect and iallreduce in fp32, fp16 and
 * bf16), over loopback or inside network namespaces. Processes exchange the
 * 128-byte handles and small results through pipes to the parent, which
 * only relays them and checks how children end.
 *
 * usage: ngl_plugin_harness <plugin.so> <scenario> [options]
 *   scenarios: p2p reuse kill-p2p collnet collnet-period collnet-exact
 *              collnet-half-wire (fp16/bf16 frames hold no float32 copy)
 *              collnet-tight (collnet with frame buffers at a 1 MiB bound)
 *              collnet-int4 kill-collnet inner settings bench
 *              collnet-types (every datatype and op: harness_types.c)
 *              collnet-window collnet-window-exact collnet-window-device (iallgather and
 *              ireducescatter over windows: harness_window.c)
 *              device-p2p device-collnet (device memory, see below)
 *              collnet-ddp collnet-ddp-int4 collnet-ddp-momentum collnet-ddp-reg nccl-model
 *              (NCCL's collNet proxy replayed: harness_nccl_replay.c)
 *              collnet-auto collnet-auto-skew collnet-auto-int4 (the same traces under
 *              NANGILA_MODE=auto; -skew: every rank sleeps its own random time before
 *              each call; -int4: run with NANGILA_MODE_MAX=int4)
 *   bench options: --ranks N --sizes 1,4,16 (MiB) --iters K --netns PREFIX
 *                  --label TEXT
 *   nccl-model options: --sizes 1,25 (MiB of fp32)
 *
 * Every wait is bounded; a hang is a failure, never a stuck test.
 *
 * Device memory: the device-* scenarios hand the plugin "device" buffers
 * registered as NCCL_PTR_CUDA. Built with NGL_HARNESS_CUDA they are
 * cudaMalloc'ed and the program exits 77 without a GPU; built without, they
 * are plain host memory, which is what the test plugin built on kernels/'
 * CPU emulator takes for device memory (libnccl-net-nangila-emu.so). Both
 * test plugins derive stream ids from fixed values, so a host-memory
 * collComm and a device-memory collComm of one process must give the same
 * bits for the same inputs: that is what device-collnet checks.
 */
#include "harness.h"
#include "ngl_nccl_abi.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(NGL_HARNESS_CUDA)
#include <cuda_runtime.h>
#endif

/* ---- utilities ------------------------------------------------------------ */

int g_rank = -1, g_nranks = 0;
static int g_to_parent = -1, g_from_parent = -1;
const ngl_nccl_net_v8_t *net;
const ngl_nccl_collnet_v8_t *coll;
void (*g_log_hook)(ngl_nccl_log_level_t level, const char *msg);
static char g_last_warn[1024];
static int g_quiet; /* drop expected warnings */

double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[rank %d] FAIL: ", g_rank);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

__attribute__((format(printf, 5, 6))) static void logger(ngl_nccl_log_level_t level,
                                                         unsigned long flags, const char *file,
                                                         int line, const char *fmt, ...)
{
    (void)flags;
    char msg[1024];
    if (g_log_hook != NULL) {
        va_list hp;
        va_start(hp, fmt);
        vsnprintf(msg, sizeof msg, fmt, hp);
        va_end(hp);
        g_log_hook(level, msg);
    }
    if (level > NGL_NCCL_LOG_WARN && getenv("HARNESS_VERBOSE") == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level == NGL_NCCL_LOG_WARN) {
        snprintf(g_last_warn, sizeof g_last_warn, "%s", msg);
    }
    if (!g_quiet && (getenv("HARNESS_QUIET_WARN") == NULL || level != NGL_NCCL_LOG_WARN)) {
        fprintf(stderr, "[rank %d] %s:%d %s\n", g_rank, file, line, msg);
    }
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* ---- "device" memory --------------------------------------------------------- */

#if defined(NGL_HARNESS_CUDA)
/* Asked in a child: CUDA does not survive fork(), so the parent, which forks
 * the ranks, must never initialise it. */
int dmem_devices(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int n = 0;
        _exit(cudaGetDeviceCount(&n) == cudaSuccess && n > 0 ? 0 : 77);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid) {
        return 0;
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void *dmem_alloc(size_t n)
{
    void *p = NULL;
    CHECK(cudaMalloc(&p, n ? n : 1) == cudaSuccess, "cudaMalloc of %zu bytes", n);
    CHECK(cudaMemset(p, 0, n ? n : 1) == cudaSuccess, "cudaMemset");
    return p;
}

void dmem_free(void *p)
{
    (void)cudaFree(p);
}

void dmem_put(void *d, const void *h, size_t n)
{
    CHECK(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice) == cudaSuccess, "cudaMemcpy H2D");
}

void dmem_get(void *h, const void *d, size_t n)
{
    CHECK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost) == cudaSuccess, "cudaMemcpy D2H");
}

/* Under AddressSanitizer the CUDA driver needs ASan's shadow gap. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "protect_shadow_gap=0";
}
#else
/* The emulator plugin's device memory is host memory. */
int dmem_devices(void)
{
    return 1;
}

void *dmem_alloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    CHECK(p != NULL, "allocation of %zu bytes", n);
    return p;
}

void dmem_free(void *p)
{
    free(p);
}

void dmem_put(void *d, const void *h, size_t n)
{
    memcpy(d, h, n);
}

void dmem_get(void *h, const void *d, size_t n)
{
    memcpy(h, d, n);
}
#endif

/* ---- hub: allgather through the parent ------------------------------------ */

static int read_full(int fd, void *buf, size_t len, double deadline)
{
    uint8_t *p = buf;
    while (len > 0) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int ms = (int)((deadline - now_s()) * 1000.0);
        if (ms <= 0) {
            return -ETIMEDOUT;
        }
        int n = poll(&pf, 1, ms);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return n == 0 ? -ETIMEDOUT : -errno;
        }
        ssize_t r = read(fd, p, len);
        if (r <= 0) {
            return r == 0 ? -EPIPE : -errno;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Every rank contributes @p len bytes; @p all receives nranks * len. */
void hub_allgather(const void *mine, size_t len, void *all)
{
    uint32_t l = (uint32_t)len;
    CHECK(len <= HUB_MAX, "hub message too large");
    CHECK(write_full(g_to_parent, &l, 4) == 0 && write_full(g_to_parent, mine, len) == 0,
          "hub write");
    uint32_t total = 0;
    double dl = now_s() + DEADLINE_S;
    CHECK(read_full(g_from_parent, &total, 4, dl) == 0, "hub read (a peer died or hung?)");
    CHECK(total == len * (size_t)g_nranks, "hub size mismatch");
    CHECK(read_full(g_from_parent, all, total, dl) == 0, "hub read body");
}

void hub_barrier(void)
{
    uint8_t x = 1, all[MAX_RANKS];
    hub_allgather(&x, 1, all);
}

typedef struct {
    pid_t pid;
    int to_child, from_child;
    int alive;
    int status;
    uint8_t *buf;
    uint32_t len;
    int has_msg;
} child_slot;

/* Parent: relay allgathers until every child exited; @p victim (or -1) is
 * expected to die by SIGKILL. @return 0 when every child ended as expected. */
static int hub_serve(child_slot *ch, int n, int victim, double limit_s)
{
    const double deadline = now_s() + limit_s;
    int alive = n;
    while (alive > 0) {
        struct pollfd pf[MAX_RANKS];
        for (int r = 0; r < n; r++) {
            pf[r].fd = ch[r].alive ? ch[r].from_child : -1;
            pf[r].events = POLLIN;
            pf[r].revents = 0;
        }
        int ms = (int)((deadline - now_s()) * 1000.0);
        if (ms <= 0) {
            fprintf(stderr, "harness: timeout after %.0f s, killing children\n", limit_s);
            for (int r = 0; r < n; r++) {
                if (ch[r].alive) {
                    kill(ch[r].pid, SIGKILL);
                }
            }
            for (int r = 0; r < n; r++) {
                if (ch[r].alive) {
                    waitpid(ch[r].pid, NULL, 0);
                }
            }
            return 1;
        }
        int k = poll(pf, (nfds_t)n, ms < 200 ? ms : 200);
        if (k < 0 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        for (int r = 0; r < n; r++) {
            if (!ch[r].alive || !(pf[r].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            uint32_t len = 0;
            if (read_full(ch[r].from_child, &len, 4, now_s() + 5) != 0 || len > HUB_MAX) {
                /* exited (or broke the protocol): reap it */
                waitpid(ch[r].pid, &ch[r].status, 0);
                ch[r].alive = 0;
                alive--;
                continue;
            }
            ch[r].buf = realloc(ch[r].buf, len ? len : 1);
            if (read_full(ch[r].from_child, ch[r].buf, len, now_s() + 5) != 0) {
                waitpid(ch[r].pid, &ch[r].status, 0);
                ch[r].alive = 0;
                alive--;
                continue;
            }
            ch[r].len = len;
            ch[r].has_msg = 1;
        }
        int all = 1;
        for (int r = 0; r < n; r++) {
            all &= ch[r].has_msg;
        }
        if (all) {
            uint32_t total = 0;
            for (int r = 0; r < n; r++) {
                total += ch[r].len;
            }
            uint8_t *cat = malloc(total ? total : 1);
            uint32_t off = 0;
            for (int r = 0; r < n; r++) {
                memcpy(cat + off, ch[r].buf, ch[r].len);
                off += ch[r].len;
                ch[r].has_msg = 0;
            }
            for (int r = 0; r < n; r++) {
                if (ch[r].alive) {
                    (void)(write_full(ch[r].to_child, &total, 4) == 0 &&
                           write_full(ch[r].to_child, cat, total) == 0);
                }
            }
            free(cat);
        }
    }
    int bad = 0;
    for (int r = 0; r < n; r++) {
        int st = ch[r].status;
        if (r == victim) {
            if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) {
                fprintf(stderr, "harness: rank %d should have been killed (status 0x%x)\n", r, st);
                bad = 1;
            }
        } else if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
            fprintf(stderr, "harness: rank %d failed (status 0x%x)\n", r, st);
            bad = 1;
        }
        free(ch[r].buf);
    }
    return bad;
}

static const char *g_netns_prefix;

static void load_plugin(const char *path)
{
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    CHECK(lib != NULL, "dlopen: %s", dlerror());
    net = dlsym(lib, "ncclNetPlugin_v8");
    coll = dlsym(lib, "ncclCollNetPlugin_v8");
    CHECK(net != NULL && coll != NULL, "plugin tables missing");
    CHECK(strcmp(net->name, "nangila") == 0, "net name %s", net->name);
}

static void join_netns(int rank)
{
    if (g_netns_prefix == NULL) {
        return;
    }
    char path[256];
    snprintf(path, sizeof path, "/var/run/netns/%s%d", g_netns_prefix, rank);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    CHECK(setns(fd, CLONE_NEWNET) == 0, "setns %s: %s", path, strerror(errno));
    close(fd);
}

/* Fork @p n ranks running @p fn; @return the process exit code. */
int run_ranks(int n, const char *plugin, rank_fn fn, void *arg, int victim, double limit)
{
    child_slot ch[MAX_RANKS];
    memset(ch, 0, sizeof ch);
    fflush(NULL);
    for (int r = 0; r < n; r++) {
        int up[2], down[2];
        if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0) {
            perror("pipe");
            return 1;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            for (int q = 0; q < r; q++) {
                close(ch[q].to_child);
                close(ch[q].from_child);
            }
            close(up[0]);
            close(down[1]);
            g_rank = r;
            g_nranks = n;
            g_to_parent = up[1];
            g_from_parent = down[0];
            join_netns(r);
            load_plugin(plugin);
            fn(plugin, arg);
            exit(0);
        }
        close(up[1]);
        close(down[0]);
        ch[r].pid = pid;
        ch[r].to_child = down[1];
        ch[r].from_child = up[0];
        ch[r].alive = 1;
    }
    int bad = hub_serve(ch, n, victim, limit);
    for (int r = 0; r < n; r++) {
        close(ch[r].to_child);
        close(ch[r].from_child);
    }
    return bad;
}

/* ---- point-to-point helpers ------------------------------------------------- */

static void init_net(void)
{
    NCCL_OK(net->init(logger));
    int ndev = 0;
    NCCL_OK(net->devices(&ndev));
    CHECK(ndev >= 1, "no devices");
}

/* Connect to @p handle and accept on @p lc, polling both like NCCL. */
static void connect_accept(void *handle, void *lc, void **sc, void **rc)
{
    uint8_t h[NGL_NCCL_HANDLE_MAXSIZE];
    memcpy(h, handle, sizeof h);
    *sc = NULL;
    *rc = NULL;
    double dl = now_s() + DEADLINE_S;
    while ((sc != NULL && *sc == NULL) || (rc != NULL && *rc == NULL)) {
        CHECK(now_s() < dl, "connect/accept did not finish");
        ngl_nccl_net_device_handle_v8_t *dh = NULL;
        if (sc != NULL && *sc == NULL) {
            NCCL_OK(net->connect(0, h, sc, &dh));
        }
        if (rc != NULL && *rc == NULL) {
            NCCL_OK(net->accept(lc, rc, &dh));
        }
    }
}

static void fill_pattern(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = ngl_hash_splitmix64(seed);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        memcpy(p + i, &x, 8);
    }
    for (; i < n; i++) {
        p[i] = (uint8_t)(x >> (8 * (i % 8)));
    }
}

static void check_pattern(const uint8_t *p, size_t n, uint64_t seed, const char *what)
{
    uint8_t *ref = malloc(n ? n : 1);
    fill_pattern(ref, n, seed);
    if (n && memcmp(p, ref, n) != 0) {
        size_t i = 0;
        while (p[i] == ref[i]) {
            i++;
        }
        die("%s: %zu-byte message differs at byte %zu", what, n, i);
    }
    free(ref);
}

/* Post nmsg sends to @p sc and nmsg receives on @p rc, test them in a
 * shuffled order until all completed, and verify sizes and bytes. */
static void exchange(void *sc, void *rc, int nmsg, const size_t *sizes, const size_t *caps,
                     uint64_t send_seed, uint64_t recv_seed, unsigned shuffle_seed)
{
    uint8_t **sb = calloc((size_t)nmsg, sizeof *sb), **rb = calloc((size_t)nmsg, sizeof *rb);
    void **smh = calloc((size_t)nmsg, sizeof(void *)), **rmh = calloc((size_t)nmsg, sizeof(void *));
    void **sreq = calloc((size_t)nmsg, sizeof(void *)),
         **rreq = calloc((size_t)nmsg, sizeof(void *));
    int *sdone = calloc((size_t)nmsg, sizeof(int)), *rdone = calloc((size_t)nmsg, sizeof(int));
    int *rsize = calloc((size_t)nmsg, sizeof(int));
    for (int m = 0; m < nmsg; m++) {
        sb[m] = malloc(sizes[m] ? sizes[m] : 1);
        rb[m] = malloc(caps[m] ? caps[m] : 1);
        fill_pattern(sb[m], sizes[m], send_seed + (uint64_t)m);
        NCCL_OK(net->regMr(sc, sb[m], sizes[m], NGL_NCCL_PTR_HOST, &smh[m]));
        NCCL_OK(net->regMr(rc, rb[m], caps[m], NGL_NCCL_PTR_HOST, &rmh[m]));
    }
    double dl = now_s() + DEADLINE_S;
    for (int m = 0; m < nmsg; m++) {
        int tag = m;
        int cap = (int)caps[m];
        void *data = rb[m];
        while (rreq[m] == NULL) {
            CHECK(now_s() < dl, "irecv never accepted");
            NCCL_OK(net->irecv(rc, 1, &data, &cap, &tag, &rmh[m], &rreq[m]));
        }
        while (sreq[m] == NULL) {
            CHECK(now_s() < dl, "isend never accepted");
            NCCL_OK(net->isend(sc, sb[m], (int)sizes[m], m, smh[m], &sreq[m]));
        }
    }
    int *order = malloc((size_t)nmsg * sizeof(int));
    for (int m = 0; m < nmsg; m++) {
        order[m] = m;
    }
    unsigned s = shuffle_seed;
    for (int m = nmsg - 1; m > 0; m--) {
        s = s * 1103515245u + 12345u;
        int j = (int)(s % (unsigned)(m + 1));
        int t = order[m];
        order[m] = order[j];
        order[j] = t;
    }
    int left = 2 * nmsg;
    while (left > 0) {
        CHECK(now_s() < dl, "transfers did not complete (%d left)", left);
        for (int i = 0; i < nmsg; i++) {
            int m = order[i];
            int size = -1;
            if (!sdone[m]) {
                NCCL_OK(net->test(sreq[m], &sdone[m], &size));
                left -= sdone[m];
            }
            if (!rdone[m]) {
                NCCL_OK(net->test(rreq[m], &rdone[m], &rsize[m]));
                left -= rdone[m];
            }
        }
    }
    for (int m = 0; m < nmsg; m++) {
        CHECK(rsize[m] == (int)sizes[m], "message %d: received %d bytes, sent %zu", m, rsize[m],
              sizes[m]);
        char what[64];
        snprintf(what, sizeof what, "message %d", m);
        check_pattern(rb[m], sizes[m], recv_seed + (uint64_t)m, what);
        NCCL_OK(net->deregMr(sc, smh[m]));
        NCCL_OK(net->deregMr(rc, rmh[m]));
        free(sb[m]);
        free(rb[m]);
    }
    free(order);
    free(sb);
    free(rb);
    free(smh);
    free(rmh);
    free(sreq);
    free(rreq);
    free(sdone);
    free(rdone);
    free(rsize);
}

/* ---- scenario: p2p ------------------------------------------------------------- */

static void check_props(int expect_inner)
{
    ngl_nccl_props_v8_t p;
    NCCL_OK(net->getProperties(0, &p));
    CHECK(p.name != NULL && p.name[0] != '\0', "device name");
    /* Device memory only with a device back end and a GPU. */
    CHECK((p.ptrSupport & NGL_NCCL_PTR_HOST) &&
              !(p.ptrSupport & ~(NGL_NCCL_PTR_HOST | NGL_NCCL_PTR_CUDA)),
          "ptrSupport %d", p.ptrSupport);
    CHECK(p.speed > 0 && p.maxRecvs == 1 && p.maxComms > 0, "speed/maxRecvs/maxComms");
    CHECK(p.netDeviceType == NGL_NCCL_NET_DEVICE_HOST, "device type");
    CHECK((strncmp(p.name, "inner-", 6) == 0) == expect_inner, "device %s: inner forwarding %s",
          p.name, expect_inner ? "expected" : "unexpected");
}

/* NCCL calls init from its init thread and everything else from one proxy
 * thread per communicator: init races and concurrent comms must be safe. */
enum { NTHREADS = 3 };
static uint8_t g_thread_handles[MAX_RANKS][NTHREADS][NGL_NCCL_HANDLE_MAXSIZE];
static void *g_thread_listen[NTHREADS];

static void *thread_init(void *arg)
{
    (void)arg;
    NCCL_OK(net->init(logger));
    NCCL_OK(coll->init(logger));
    return NULL;
}

static void *thread_exchange(void *arg)
{
    const int t = (int)(intptr_t)arg;
    const int next = (g_rank + 1) % g_nranks;
    void *sc = NULL, *rc = NULL;
    connect_accept(g_thread_handles[next][t], g_thread_listen[t], &sc, &rc);
    enum { NMSG = 16 };
    size_t sizes[NMSG], caps[NMSG];
    for (int m = 0; m < NMSG; m++) {
        sizes[m] = (size_t)(ngl_hash_splitmix64((uint64_t)(t * 100 + m)) % (3u << 20));
        caps[m] = sizes[m];
    }
    const int prev = (g_rank + g_nranks - 1) % g_nranks;
    exchange(sc, rc, NMSG, sizes, caps, ((uint64_t)g_rank << 40) + (uint64_t)t * 1000,
             ((uint64_t)prev << 40) + (uint64_t)t * 1000, (unsigned)t);
    NCCL_OK(net->closeSend(sc));
    NCCL_OK(net->closeRecv(rc));
    return NULL;
}

static void p2p_threads(void)
{
    uint8_t mine[NTHREADS][NGL_NCCL_HANDLE_MAXSIZE];
    for (int t = 0; t < NTHREADS; t++) {
        NCCL_OK(net->listen(0, mine[t], &g_thread_listen[t]));
    }
    hub_allgather(mine, sizeof mine, g_thread_handles);
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        CHECK(pthread_create(&th[t], NULL, thread_exchange, (void *)(intptr_t)t) == 0, "thread");
    }
    for (int t = 0; t < NTHREADS; t++) {
        pthread_join(th[t], NULL);
        NCCL_OK(net->closeListen(g_thread_listen[t]));
    }
    hub_barrier();
}

static void p2p_body(int big)
{
    pthread_t th[4];
    for (int t = 0; t < 4; t++) {
        CHECK(pthread_create(&th[t], NULL, thread_init, NULL) == 0, "thread");
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
    }
    init_net();
    check_props(getenv("NANGILA_NET_INNER") != NULL);
    uint8_t handle[NGL_NCCL_HANDLE_MAXSIZE], all[MAX_RANKS][NGL_NCCL_HANDLE_MAXSIZE];
    void *lc = NULL, *sc = NULL, *rc = NULL;
    NCCL_OK(net->listen(0, handle, &lc));
    hub_allgather(handle, sizeof handle, all);
    const int next = (g_rank + 1) % g_nranks, prev = (g_rank + g_nranks - 1) % g_nranks;
    connect_accept(all[next], lc, &sc, &rc);

    /* 32 messages in flight per direction, random sizes up to 256 KiB. */
    enum { NSMALL = 32 };
    size_t sizes[NSMALL], caps[NSMALL];
    /* Every rank sends the same size list (so the receiver knows what comes),
     * with its own byte pattern. */
    for (int m = 0; m < NSMALL; m++) {
        uint64_t r = ngl_hash_splitmix64((uint64_t)m);
        sizes[m] = m == 0 ? 0 : (size_t)(r % (256 * 1024 + 1));
        caps[m] = sizes[m] + (size_t)((r >> 40) % 3) * 100;
    }
    exchange(sc, rc, NSMALL, sizes, caps, (uint64_t)g_rank << 32, (uint64_t)prev << 32,
             (unsigned)g_rank + 7u);

    /* Back-pressure: the transport holds 32 requests per comm. */
    {
        uint8_t b = 0;
        void *mh = NULL, *reqs[33] = {0};
        NCCL_OK(net->regMr(sc, &b, 1, NGL_NCCL_PTR_HOST, &mh));
        hub_barrier();
        int posted = 0;
        for (int i = 0; i < 33; i++) {
            NCCL_OK(net->isend(sc, &b, 0, 0, mh, &reqs[i]));
            posted += reqs[i] != NULL;
        }
        CHECK(posted == 32 && reqs[32] == NULL, "expected 32 accepted sends, got %d", posted);
        uint8_t rbuf = 0;
        void *rmh = NULL, *rr = NULL;
        NCCL_OK(net->regMr(rc, &rbuf, 1, NGL_NCCL_PTR_HOST, &rmh));
        for (int i = 0; i < 32; i++) {
            void *data = &rbuf;
            int cap = 1, tag = 0, done = 0, size = 0;
            rr = NULL;
            NCCL_OK(net->irecv(rc, 1, &data, &cap, &tag, &rmh, &rr));
            CHECK(rr != NULL, "irecv refused");
            double dl = now_s() + DEADLINE_S;
            while (!done) {
                CHECK(now_s() < dl, "zero-byte message %d never arrived", i);
                NCCL_OK(net->test(rr, &done, &size));
                int sd = 0;
                if (reqs[i] != NULL) {
                    NCCL_OK(net->test(reqs[i], &sd, NULL));
                    if (sd) {
                        reqs[i] = NULL;
                    }
                }
            }
            CHECK(size == 0, "zero-byte message arrived with %d bytes", size);
        }
        for (int i = 0; i < 32; i++) {
            int sd = 0;
            double dl = now_s() + DEADLINE_S;
            while (reqs[i] != NULL && !sd) {
                CHECK(now_s() < dl, "send %d never completed", i);
                NCCL_OK(net->test(reqs[i], &sd, NULL));
            }
        }
        NCCL_OK(net->deregMr(sc, mh));
        NCCL_OK(net->deregMr(rc, rmh));
    }

    if (big) {
        /* 0 B to 64 MiB, all in flight at once, tested in shuffled order. */
        const size_t bs[] = {
            0, 1, 3, 4096, 65535, 131072, 131073, (1u << 20) + 5, (7u << 20) + 3, (size_t)64 << 20};
        enum { NBIG = sizeof bs / sizeof bs[0] };
        size_t bsz[NBIG], bcap[NBIG];
        for (int m = 0; m < NBIG; m++) {
            bsz[m] = bs[m];
            bcap[m] = bs[m] + (m % 2) * 4096;
        }
        exchange(sc, rc, NBIG, bsz, bcap, ((uint64_t)g_rank << 32) + 999,
                 ((uint64_t)prev << 32) + 999, (unsigned)g_rank + 99u);
    }
    hub_barrier();
    NCCL_OK(net->closeSend(sc));
    NCCL_OK(net->closeRecv(rc));
    NCCL_OK(net->closeListen(lc));
    p2p_threads();
}

/* The topology line set-up logs once at INFO (ngl_topo.h). */
static char g_topology_line[512];

static void capture_topology(ngl_nccl_log_level_t level, const char *msg)
{
    if (level == NGL_NCCL_LOG_INFO && strncmp(msg, "NET/Nangila topology", 20) == 0) {
        snprintf(g_topology_line, sizeof g_topology_line, "%s", msg);
    }
}

static void scenario_p2p(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    g_log_hook = capture_topology;
    p2p_body(1);
    g_log_hook = NULL;
    CHECK(g_topology_line[0] != '\0', "no topology line at INFO");
    if (g_rank == 0) {
        printf("[rank 0] %s\n", g_topology_line);
    }
    /* A virtual interface (the suite runs on lo) has no PCI path. */
    ngl_nccl_props_v8_t p;
    NCCL_OK(net->getProperties(0, &p));
    CHECK(strcmp(p.name, "lo") != 0 || p.pciPath == NULL, "lo reports pciPath %s", p.pciPath);
    CHECK(p.pciPath == NULL || strncmp(p.pciPath, "/sys/devices/pci", 16) == 0,
          "%s: pciPath %s is not a PCI device", p.name, p.pciPath);
    printf("[rank %d] p2p ok\n", g_rank);
}

/* ---- scenario: reuse ------------------------------------------------------------- */

static void one_message(void *sc, void *rc, size_t size, uint64_t seed)
{
    size_t s[1] = {size}, c[1] = {size};
    exchange(sc, rc, 1, s, c, seed, seed, 1);
}

static void scenario_reuse(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    init_net();
    for (int round = 0; round < 2; round++) {
        /* Every rank listens once per round and is connected to three times
         * through the same listen comm. */
        uint8_t handle[NGL_NCCL_HANDLE_MAXSIZE], all[MAX_RANKS][NGL_NCCL_HANDLE_MAXSIZE];
        void *lc = NULL;
        NCCL_OK(net->listen(0, handle, &lc));
        hub_allgather(handle, sizeof handle, all);
        const int next = (g_rank + 1) % g_nranks;
        for (int t = 0; t < 3; t++) {
            void *sc = NULL, *rc = NULL;
            connect_accept(all[next], lc, &sc, &rc);
            /* each rank sends to next, receives from prev: same seed both */
            one_message(sc, rc, (size_t)(1000 * t + 17) << (round * 8), (uint64_t)(round * 10 + t));
            hub_barrier();
            NCCL_OK(net->closeSend(sc));
            NCCL_OK(net->closeRecv(rc));
        }
        NCCL_OK(net->closeListen(lc));
        hub_barrier();
    }
    printf("[rank %d] reuse ok\n", g_rank);
}

/* ---- scenario: kill-p2p ---------------------------------------------------------- */

static void scenario_kill_p2p(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    init_net();
    uint8_t handle[NGL_NCCL_HANDLE_MAXSIZE], all[MAX_RANKS][NGL_NCCL_HANDLE_MAXSIZE];
    void *lc = NULL, *sc = NULL, *rc = NULL;
    NCCL_OK(net->listen(0, handle, &lc));
    hub_allgather(handle, sizeof handle, all);
    connect_accept(all[1 - g_rank], lc, &sc, &rc);
    const size_t big = (size_t)64 << 20;
    uint8_t *sbuf = calloc(1, big), *rbuf = calloc(1, big);
    void *smh = NULL, *rmh = NULL, *sreq = NULL, *rreq = NULL;
    NCCL_OK(net->regMr(sc, sbuf, big, NGL_NCCL_PTR_HOST, &smh));
    NCCL_OK(net->regMr(rc, rbuf, big, NGL_NCCL_PTR_HOST, &rmh));
    /* Both ranks start a 64 MiB send; only socket buffers' worth leaves
     * before anyone receives. */
    NCCL_OK(net->isend(sc, sbuf, (int)big, 0, smh, &sreq));
    CHECK(sreq != NULL, "isend refused");
    hub_barrier();
    void *data = rbuf;
    int cap = (int)big, tag = 0;
    NCCL_OK(net->irecv(rc, 1, &data, &cap, &tag, &rmh, &rreq));
    CHECK(rreq != NULL, "irecv refused");
    if (g_rank == 1) {
        /* The victim has received part of rank 0's message and sent part
         * of its own: die in the middle of both transfers. */
        raise(SIGKILL);
    }
    /* The survivor must see both transfers fail, quickly, not hang. */
    const double t0 = now_s();
    int send_failed = 0, recv_failed = 0;
    while (!(send_failed && recv_failed)) {
        CHECK(now_s() - t0 < 30.0, "no error 30 s after the peer died (send %d recv %d)",
              send_failed, recv_failed);
        int done = 0, size = 0;
        if (!send_failed) {
            ngl_nccl_result_t r = net->test(sreq, &done, &size);
            CHECK(r == NGL_NCCL_SUCCESS ? !done : 1, "send to a dead peer completed");
            send_failed = r != NGL_NCCL_SUCCESS;
            if (send_failed) {
                CHECK(r == NGL_NCCL_REMOTE_ERROR, "send failed with %d, not a remote error", r);
            }
        }
        if (!recv_failed) {
            ngl_nccl_result_t r = net->test(rreq, &done, &size);
            CHECK(r == NGL_NCCL_SUCCESS ? !done : 1, "receive from a dead peer completed");
            recv_failed = r != NGL_NCCL_SUCCESS;
            if (recv_failed) {
                CHECK(r == NGL_NCCL_REMOTE_ERROR, "recv failed with %d, not a remote error", r);
            }
        }
        sleep_us(100);
    }
    printf("[rank %d] kill-p2p ok: both transfers failed %.3f s after the peer died\n", g_rank,
           now_s() - t0);
    NCCL_OK(net->deregMr(sc, smh));
    NCCL_OK(net->deregMr(rc, rmh));
    NCCL_OK(net->closeSend(sc));
    NCCL_OK(net->closeRecv(rc));
    NCCL_OK(net->closeListen(lc));
    free(sbuf);
    free(rbuf);
}

/* ---- half-precision helpers (our own, round to nearest even) --------------------- */

static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            float f = ldexpf((float)man, -24);
            return sign ? -f : f;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0));
    }
    if (ax >= 0x477ff000u) { /* rounds to >= 65520: overflow */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax < 0x33000001u) { /* below half the smallest subnormal */
        return (uint16_t)sign;
    }
    int e = (int)(ax >> 23) - 127;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    int shift = e < -14 ? (-14 - e) + 13 : 13;
    uint32_t base = e < -14 ? 0 : (uint32_t)(e + 15) << 10;
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    uint32_t r = base + (e < -14 ? q : (q & 0x3ffu));
    if (rem > half || (rem == half && (r & 1u))) {
        r++;
    }
    return (uint16_t)(sign | r);
}

static float bf16_to_f32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 0x40u);
    }
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

typedef struct {
    int nccl;
    size_t esize;
    const char *name;
} dtype_info;

static const dtype_info DT_F32 = {NGL_NCCL_FLOAT32, 4, "fp32"};
static const dtype_info DT_F16 = {NGL_NCCL_FLOAT16, 2, "fp16"};
static const dtype_info DT_BF16 = {NGL_NCCL_BFLOAT16, 2, "bf16"};

static float load_elem(const dtype_info *dt, const void *buf, size_t i)
{
    if (dt->esize == 4) {
        float f;
        memcpy(&f, (const uint8_t *)buf + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, (const uint8_t *)buf + 2 * i, 2);
    return dt->nccl == NGL_NCCL_FLOAT16 ? f16_to_f32(h) : bf16_to_f32(h);
}

static void store_elem(const dtype_info *dt, void *buf, size_t i, float v)
{
    if (dt->esize == 4) {
        memcpy((uint8_t *)buf + 4 * i, &v, 4);
        return;
    }
    uint16_t h = dt->nccl == NGL_NCCL_FLOAT16 ? f32_to_f16(v) : f32_to_bf16(v);
    memcpy((uint8_t *)buf + 2 * i, &h, 2);
}

/* ---- collNet helpers --------------------------------------------------------------- */

void coll_setup_mem(coll_ctx *cx, size_t region_size, int mem)
{
    NCCL_OK(net->init(logger));
    NCCL_OK(coll->init(logger));
    int ndev = 0;
    NCCL_OK(coll->devices(&ndev));
    CHECK(ndev >= 1, "collNet has no devices");
    ngl_nccl_props_v8_t pn, pc;
    NCCL_OK(net->getProperties(0, &pn));
    NCCL_OK(coll->getProperties(0, &pc));
    CHECK(strcmp(pn.name, pc.name) == 0, "collNet device %s is not net device %s", pc.name,
          pn.name);
    CHECK((pc.ptrSupport & NGL_NCCL_PTR_HOST) &&
              !(pc.ptrSupport & ~(NGL_NCCL_PTR_HOST | NGL_NCCL_PTR_CUDA)),
          "collNet ptrSupport %d", pc.ptrSupport);
    const int cuda = (pc.ptrSupport & NGL_NCCL_PTR_CUDA) != 0;
    CHECK(mem == MEM_HOST || cuda, "collNet does not offer device memory (ptrSupport %d)",
          pc.ptrSupport);
    for (int op = 0; op < 6; op++) {
        for (int dt = 0; dt < 14; dt++) {
            int sup = -1;
            NCCL_OK(coll->reduceSupport((ngl_nccl_dtype_t)dt, (ngl_nccl_redop_t)op, &sup));
            /* Every NCCL datatype with Sum, Prod, Max and Min; Avg (4) never
             * reaches the network, and types past fp8 e5m2 do not exist. */
            int want = op <= NGL_NCCL_MIN && dt <= NGL_NCCL_FLOAT8E5M2;
            CHECK(sup == want, "reduceSupport(dtype %d, op %d) = %d", dt, op, sup);
        }
    }
    uint8_t handle[NGL_NCCL_HANDLE_MAXSIZE], all[MAX_RANKS][NGL_NCCL_HANDLE_MAXSIZE];
    void *lc = NULL;
    NCCL_OK(coll->listen(0, handle, &lc));
    hub_allgather(handle, sizeof handle, all);
    void *hp[MAX_RANKS];
    for (int r = 0; r < g_nranks; r++) {
        hp[r] = all[r];
    }
    cx->cc = NULL;
    NCCL_OK(coll->connect(hp, g_nranks, g_rank, lc, &cx->cc));
    CHECK(cx->cc != NULL, "collNet connect gave no comm");
    NCCL_OK(coll->closeListen(lc)); /* NCCL closes it right after connect */
    /* NCCL's staging region: calloc'ed host memory, registered once; with
     * GPU Direct, device memory registered as such. The calls' host buffers
     * stay in cx->region either way: device runs copy through them. */
    cx->region_size = region_size;
    cx->region = calloc(1, region_size);
    CHECK(cx->region != NULL, "region");
    cx->dregion = NULL;
    cx->dmh = NULL;
    cx->mem = mem;
    NCCL_OK(coll->regMr(cx->cc, cx->region, region_size, NGL_NCCL_PTR_HOST, &cx->mh));
    if (mem == MEM_DEVICE || mem == MEM_SPLIT || (mem == MEM_MIXED && g_rank == 0)) {
        cx->dregion = dmem_alloc(region_size);
        NCCL_OK(coll->regMr(cx->cc, cx->dregion, region_size, NGL_NCCL_PTR_CUDA, &cx->dmh));
    }
    if (!cuda) {
        void *bad = NULL;
        g_quiet = 1; /* the refusal below logs a warning on purpose */
        CHECK(coll->regMr(cx->cc, cx->region, 16, NGL_NCCL_PTR_CUDA, &bad) != NGL_NCCL_SUCCESS,
              "collNet regMr accepted device memory");
        g_quiet = 0;
    }
}

void coll_setup(coll_ctx *cx, size_t region_size)
{
    coll_setup_mem(cx, region_size, MEM_HOST);
}

void coll_teardown(coll_ctx *cx)
{
    NCCL_OK(coll->deregMr(cx->cc, cx->mh));
    if (cx->dmh != NULL) {
        NCCL_OK(coll->deregMr(cx->cc, cx->dmh));
    }
    NCCL_OK(coll->closeColl(cx->cc));
    free(cx->region);
    if (cx->dregion != NULL) {
        dmem_free(cx->dregion);
    }
}

/* Deterministic input of rank @p r, call @p call, element @p i: smooth
 * per-block magnitudes spanning a few decades, so that scales differ. */
static float input_value(int r, uint64_t call, size_t i)
{
    uint64_t h = ngl_hash_splitmix64(((uint64_t)r << 48) ^ (call << 32) ^ (uint64_t)i);
    double u = (double)(h >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
    double mag = ldexp(1.0, (int)((i / 256 + call) % 9) - 6);
    return (float)(u * mag);
}

typedef struct {
    size_t count;
    uint8_t *send, *recv;   /* host buffers: inputs and results */
    uint8_t *dsend, *drecv; /* device memory the plugin sees, or NULL */
    void *req;
    int done;
    size_t valid; /* elements written "by the GPU"; the rest is stale */
    uint64_t call;
} coll_call;

/* Post every call (retrying on back-pressure) and test them in a shuffled
 * order until all complete. */
static void coll_run(coll_ctx *cx, coll_call *c, int ncalls, const dtype_info *dt, unsigned seed)
{
    double dl = now_s() + DEADLINE_S * 2;
    int posted = 0, left = ncalls;
    while (left > 0) {
        CHECK(now_s() < dl, "iallreduce did not complete (%d left)", left);
        while (posted < ncalls) {
            coll_call *k = &c[posted];
            k->req = NULL;
            NCCL_OK(coll->iallreduce(
                cx->cc, k->dsend ? k->dsend : k->send, k->drecv ? k->drecv : k->recv, (int)k->count,
                (ngl_nccl_dtype_t)dt->nccl, NGL_NCCL_SUM, k->dsend ? cx->dmh : cx->mh,
                k->drecv ? cx->dmh : cx->mh, &k->req));
            if (k->req == NULL) {
                break; /* back-pressure: test, then retry */
            }
            posted++;
        }
        for (int i = 0; i < posted; i++) {
            seed = seed * 1103515245u + 12345u;
            int j = (int)(seed % (unsigned)posted);
            if (c[j].done) {
                continue;
            }
            int size = 0;
            NCCL_OK(coll->test(c[j].req, &c[j].done, (j & 1) ? &size : NULL));
            if (c[j].done) {
                left--;
                if (j & 1) {
                    CHECK(size == (int)(c[j].count * dt->esize), "test size %d", size);
                }
            }
        }
    }
}

uint64_t digest(const uint8_t *p, size_t n)
{
    /* FNV-1a from a basis one digit short of NGL_FNV_INIT: any 64-bit start
     * serves a digest, and this one keeps the digests the harness printed. */
    return ngl_fnv1a(1469598103934665603ull, p, n);
}

int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v ? atoi(v) : dflt;
}

int collnet_period(void)
{
    return env_int("NANGILA_COLLNET_PERIOD", 0);
}

int qmax_of_mode(void)
{
    const char *m = getenv("NANGILA_MODE");
    const char *cap = getenv("NANGILA_MODE_MAX");
    if (m != NULL && strcmp(m, "int4") == 0) {
        return 7;
    }
    if ((m == NULL || strcmp(m, "auto") == 0) && cap != NULL && strcmp(cap, "int4") == 0) {
        return 7; /* auto may run any slice in its cap's codec */
    }
    if (m != NULL && strcmp(m, "off") == 0) {
        return 0;
    }
    return 127;
}

/* Check results of one call against the exact sum. @p inputs are the
 * values every rank fed, recomputed here. Returns the largest error
 * relative to its bound (must be <= 1). */
static double verify_call(const coll_call *k, const dtype_info *dt, int qmax, int ef_factor,
                          float (*value)(int, uint64_t, size_t, size_t))
{
    const size_t block = (size_t)env_int("NANGILA_BLOCK", 256);
    const int n = g_nranks;
    double worst = 0.0;
    for (size_t b0 = 0; b0 < k->valid; b0 += block) {
        size_t b1 = b0 + block < k->count ? b0 + block : k->count;
        /* per-rank largest magnitude over the block (finite values only) */
        double msum = 0.0;
        for (int r = 0; r < n; r++) {
            double m = 0.0;
            for (size_t i = b0; i < b1; i++) {
                double v = fabs((double)value(r, k->call, i, k->valid));
                if (isfinite(v) && v > m) {
                    m = v;
                }
            }
            msum += m;
        }
        /* Two quantizations (each contribution, then the sum), each error
         * below one step of its block scale; error feedback may carry one
         * more step; plus the rounding of fp16/bf16 accumulators. */
        double ulp = dt->esize == 4
                         ? ldexp(1.0, -22)
                         : (dt->nccl == NGL_NCCL_FLOAT16 ? ldexp(1.0, -10) : ldexp(1.0, -7));
        double q = qmax ? (2.0 * msum / qmax) * (1.0 + 2.0 / qmax) * ef_factor : 0.0;
        double bound = q + ulp * (n + 2) * msum + 1e-30;
        for (size_t i = b0; i < b1 && i < k->valid; i++) {
            double exact = 0.0;
            int nonfinite = 0;
            for (int r = 0; r < n; r++) {
                float v = value(r, k->call, i, k->valid);
                nonfinite |= !isfinite(v);
                exact += (double)v;
            }
            float got = load_elem(dt, k->recv, i);
            if (nonfinite || !isfinite(exact)) {
                CHECK(isnan(exact) ? isnan(got) : got == (float)exact,
                      "call %llu element %zu: %g, expected %g", (unsigned long long)k->call, i,
                      (double)got, exact);
                continue;
            }
            double err = fabs((double)got - exact);
            if (err > bound) {
                die("%s call %llu element %zu: %.9g, exact %.9g, error %.3g > bound %.3g", dt->name,
                    (unsigned long long)k->call, i, (double)got, exact, err, bound);
            }
            if (err / bound > worst) {
                worst = err / bound;
            }
        }
    }
    return worst;
}

/* Inputs of the main collNet check, with a few non-finite values. */
static float value_main(int r, uint64_t call, size_t i, size_t valid)
{
    (void)valid;
    if (call % 5 == 1 && i == 77) {
        return r == 1 ? NAN : 1.0f; /* NaN + anything = NaN */
    }
    if (call % 5 == 2 && i == 300) {
        return r == 0 ? INFINITY : 2.0f; /* +Inf survives */
    }
    return input_value(r, call, i);
}

/* Inputs of the stale-tail check: valid prefix; NaN/Inf garbage after it. */
static float value_tail(int r, uint64_t call, size_t i, size_t valid)
{
    if (i >= valid) {
        return (r + (int)i) % 3 == 0 ? NAN : ((r + (int)i) % 3 == 1 ? -INFINITY : INFINITY);
    }
    return input_value(r, call, i);
}

static void fill_call(coll_call *k, const dtype_info *dt,
                      float (*value)(int, uint64_t, size_t, size_t))
{
    for (size_t i = 0; i < k->count; i++) {
        store_elem(dt, k->send, i, value(g_rank, k->call, i, k->valid));
    }
}

/* Inputs must be representable in the dtype so that "exact" is exact. */
static float value_main_dt(const dtype_info *dt, int r, uint64_t call, size_t i)
{
    float v = value_main(r, call, i, 0);
    uint8_t tmp[4];
    store_elem(dt, tmp, 0, v);
    return load_elem(dt, tmp, 0);
}

static const dtype_info *g_dt;

static float value_main_cur(int r, uint64_t call, size_t i, size_t valid)
{
    (void)valid;
    return value_main_dt(g_dt, r, call, i);
}

static float value_tail_cur(int r, uint64_t call, size_t i, size_t valid)
{
    float v = value_tail(r, call, i, valid);
    uint8_t tmp[4];
    store_elem(g_dt, tmp, 0, v);
    return load_elem(g_dt, tmp, 0);
}

/* Device scenarios: main inputs, a little different in every step. */
static uint64_t g_step;

static float value_step_cur(int r, uint64_t call, size_t i, size_t valid)
{
    (void)valid;
    float v = value_main_dt(g_dt, r, call, i);
    if (g_step > 0 && isfinite(v)) {
        v += (float)(0.05 * (double)v * (double)((int)(ngl_hash_splitmix64(g_step ^ i) % 21) - 10) /
                     10.0);
    }
    uint8_t tmp[4];
    store_elem(g_dt, tmp, 0, v);
    return load_elem(g_dt, tmp, 0);
}

static void check_identical(const coll_call *c, int ncalls, const dtype_info *dt)
{
    uint64_t mine = 0, all[MAX_RANKS];
    for (int i = 0; i < ncalls; i++) {
        mine = ngl_hash_splitmix64(mine ^ digest(c[i].recv, c[i].count * dt->esize));
    }
    hub_allgather(&mine, sizeof mine, all);
    for (int r = 0; r < g_nranks; r++) {
        CHECK(all[r] == all[0], "%s results differ between rank 0 and rank %d", dt->name, r);
    }
}

static void collnet_concurrent(coll_ctx *cx, const dtype_info *dt, uint64_t call_base)
{
    enum { NCALLS = 64 };
    const size_t counts[] = {1000, 70001, 131085, 4099};
    coll_call c[NCALLS];
    memset(c, 0, sizeof c);
    const int qmax = qmax_of_mode();
    size_t off = 0;
    g_dt = dt;
    for (int i = 0; i < NCALLS; i++) {
        c[i].count = counts[i % 4];
        c[i].valid = c[i].count;
        c[i].call = call_base + (uint64_t)i;
        c[i].done = 0;
        size_t bytes = c[i].count * dt->esize;
        CHECK(2 * (off + bytes) <= cx->region_size, "region too small");
        c[i].send = cx->region + off;
        c[i].recv = cx->region + cx->region_size / 2 + off;
        off += (bytes + 255) / 256 * 256;
        fill_call(&c[i], dt, value_main_cur);
        memset(c[i].recv, 0xA5, bytes); /* results must overwrite this */
    }
    coll_run(cx, c, NCALLS, dt, (unsigned)g_rank * 31u + 5u);
    double worst = 0.0;
    for (int i = 0; i < NCALLS; i++) {
        double w = verify_call(&c[i], dt, qmax, 1, value_main_cur);
        worst = w > worst ? w : worst;
        for (size_t b = 0; b < c[i].count * dt->esize; b++) {
            CHECK(c[i].send[b] == 0, "send slot not cleared after completion");
        }
    }
    check_identical(c, NCALLS, dt);
    printf("[rank %d] collnet %s: %d concurrent calls ok, worst error %.2f of bound, "
           "identical on %d ranks\n",
           g_rank, dt->name, NCALLS, worst, g_nranks);
}

/* NCCL's last slice of an operation: only a prefix is valid. NaN/Inf in
 * the stale part must not reach scales or state: the valid prefix stays
 * within bound, in this call and in the next call on the same lanes. The
 * slot is reused, so the next call also shows that the plugin cleared it. */
static void collnet_stale_tail(coll_ctx *cx, const dtype_info *dt, uint64_t call_base)
{
    const size_t count = 65536 + 4096;
    const int qmax = qmax_of_mode();
    g_dt = dt;
    uint8_t *send = cx->region, *recv = cx->region + cx->region_size / 2;
    for (int t = 0; t < 6; t++) {
        coll_call k = {.count = count, .send = send, .recv = recv, .call = call_base + (uint64_t)t};
        k.valid = t % 2 == 0 ? 40000 + 13 * (size_t)t : count; /* ragged, then full */
        if (t == 3) {
            /* The slot was cleared after call 2; write only a prefix, as the
             * GPU does, and leave the rest as the plugin left it. */
            k.valid = 30011;
            for (size_t b = 0; b < count * dt->esize; b++) {
                CHECK(send[b] == 0, "stale slot not cleared");
            }
            for (size_t i = 0; i < k.valid; i++) {
                store_elem(dt, send, i, value_tail_cur(g_rank, k.call, i, k.valid));
            }
        } else {
            fill_call(&k, dt, value_tail_cur);
        }
        coll_run(cx, &k, 1, dt, 3u);
        (void)verify_call(&k, dt, qmax, collnet_period() ? 3 : 1, value_tail_cur);
        check_identical(&k, 1, dt);
    }
    printf("[rank %d] collnet %s: stale NaN/Inf tails did not disturb valid data\n", g_rank,
           dt->name);
}

/* ---- scenario: collnet-half-wire (fp16/bf16 coded from 16 bits) ------------ */

static double g_closed_ratio;

static void capture_closed(ngl_nccl_log_level_t level, const char *msg)
{
    (void)level;
    const char *p = strstr(msg, "B of frames sent (ratio ");
    if (p != NULL && strstr(msg, " closed: ") != NULL) {
        g_closed_ratio = atof(p + strlen("B of frames sent (ratio "));
    }
}

/* fp16 and bf16 slices are quantized from their 16-bit values: the frames
 * hold 8-bit codes and block scales, never a float32 copy, so a collComm
 * that carried only half-precision slices reports a wire ratio near 2
 * (bytes in / frame bytes out, headers included; a float32 copy would put
 * it below 0.5). The close line of the plugin is read through the logger. */
static void scenario_collnet_half_wire(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    const dtype_info *dts[] = {&DT_F16, &DT_BF16};
    const int qmax = qmax_of_mode();
    for (int d = 0; d < 2; d++) {
        coll_ctx cx;
        coll_setup(&cx, (size_t)8 << 20);
        enum { NCALLS = 6 };
        coll_call c[NCALLS];
        memset(c, 0, sizeof c);
        g_dt = dts[d];
        for (int i = 0; i < NCALLS; i++) {
            c[i].count = 262144 + 256 * (size_t)i; /* 512 KiB and up: compressed */
            c[i].valid = c[i].count;
            c[i].call = 7000u + (uint64_t)i;
            const size_t bytes = c[i].count * dts[d]->esize;
            c[i].send = cx.region + (size_t)i * bytes;
            c[i].recv = cx.region + cx.region_size / 2 + (size_t)i * bytes;
            CHECK((size_t)(i + 1) * bytes <= cx.region_size / 2, "region too small");
            fill_call(&c[i], dts[d], value_main_cur);
        }
        coll_run(&cx, c, NCALLS, dts[d], 17u);
        for (int i = 0; i < NCALLS; i++) {
            (void)verify_call(&c[i], dts[d], qmax, 1, value_main_cur);
        }
        check_identical(c, NCALLS, dts[d]);
        g_closed_ratio = 0.0;
        g_log_hook = capture_closed;
        coll_teardown(&cx);
        g_log_hook = NULL;
        printf("[rank %d] collnet %s: wire ratio %.3f (bytes in / frame bytes)\n", g_rank,
               dts[d]->name, g_closed_ratio);
        CHECK(g_closed_ratio > 1.9, "%s frames are %.3f of the input: not coded from 16 bits",
              dts[d]->name, g_closed_ratio);
    }
}

static void scenario_collnet(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    coll_ctx cx;
    coll_setup(&cx, (size_t)32 << 20);
    const dtype_info *dts[] = {&DT_F32, &DT_F16, &DT_BF16};
    for (int d = 0; d < 3; d++) {
        collnet_concurrent(&cx, dts[d], 1000u * (uint64_t)d);
        collnet_stale_tail(&cx, dts[d], 1000u * (uint64_t)d + 500u);
    }
    coll_teardown(&cx);
}

/* ---- scenario: collnet-period (error feedback on persistent lanes) ----------- */

/* A persistent "gradient": the same base every step plus a little noise,
 * so that error feedback has something to correct. */
static float value_grad(int r, uint64_t call, size_t i, size_t valid)
{
    const uint64_t step = call >> 8, slice = call & 0xff;
    if (i >= valid) {
        return NAN;
    }
    float base = input_value(r, slice, i);
    uint64_t h = ngl_hash_splitmix64(((uint64_t)(r + 16) << 48) ^ (step << 40) ^ (slice << 32) ^
                                     (uint64_t)i);
    double u = (double)(h >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0;
    double mag = ldexp(1.0, (int)((i / 256 + slice) % 9) - 6); /* the base's block magnitude */
    return base + (float)(0.05 * u * mag);
}

static float value_grad_cur(int r, uint64_t call, size_t i, size_t valid)
{
    float v = value_grad(r, call, i, valid);
    uint8_t tmp[4];
    store_elem(g_dt, tmp, 0, v);
    return load_elem(g_dt, tmp, 0);
}

static void collnet_error_feedback(coll_ctx *cx, const dtype_info *dt)
{
    enum { STEPS = 12, SLICES = 3 };
    const size_t count = 49152 + 512;
    const int qmax = qmax_of_mode();
    CHECK(collnet_period() == SLICES, "run with NANGILA_COLLNET_PERIOD=%d", SLICES);
    g_dt = dt;
    double *cum = calloc(SLICES * count, sizeof(double));
    double *step_abs = calloc(SLICES * count, sizeof(double));
    uint8_t *excluded = calloc(SLICES * count, 1);
    coll_call c[SLICES];
    memset(c, 0, sizeof c);
    for (int t = 0; t < STEPS; t++) {
        for (int s = 0; s < SLICES; s++) {
            c[s].count = count;
            /* Step 5, slice 2 is an operation's last slice: NaN tail. */
            c[s].valid = (t == 5 && s == 2) ? 20000 : count;
            c[s].call = ((uint64_t)t << 8) | (uint64_t)s;
            c[s].done = 0;
            c[s].send = cx->region + (size_t)s * count * dt->esize;
            c[s].recv = cx->region + cx->region_size / 2 + (size_t)s * count * dt->esize;
            fill_call(&c[s], dt, value_grad_cur);
        }
        coll_run(cx, c, SLICES, dt, (unsigned)t);
        for (int s = 0; s < SLICES; s++) {
            (void)verify_call(&c[s], dt, qmax, 3, value_grad_cur);
            for (size_t i = 0; i < count; i++) {
                if (i >= c[s].valid) {
                    excluded[(size_t)s * count + i] = 1;
                    continue;
                }
                double exact = 0.0;
                for (int r = 0; r < g_nranks; r++) {
                    exact += (double)value_grad_cur(r, c[s].call, i, c[s].valid);
                }
                double err = (double)load_elem(dt, c[s].recv, i) - exact;
                cum[(size_t)s * count + i] += err;
                step_abs[(size_t)s * count + i] += fabs(err);
            }
        }
        check_identical(c, SLICES, dt);
    }
    if (dt->esize == 4) {
        /* With error feedback the error of the running sum stays within one
         * step's bound; without it, it would grow like sqrt(STEPS). */
        const size_t block = (size_t)env_int("NANGILA_BLOCK", 256);
        double worst = 0.0, mean_cum = 0.0, mean_abs = 0.0;
        size_t n_used = 0;
        for (int s = 0; s < SLICES; s++) {
            for (size_t b0 = 0; b0 < count; b0 += block) {
                size_t b1 = b0 + block < count ? b0 + block : count;
                double msum = 0.0;
                for (int r = 0; r < g_nranks; r++) {
                    double m = 0.0;
                    for (size_t i = b0; i < b1; i++) {
                        double v = fabs((double)value_grad_cur(r, (uint64_t)s, i, count));
                        m = v > m ? v : m;
                    }
                    msum += m * 1.06; /* noise adds at most 5% */
                }
                double bound = (2.0 * msum / qmax) * (1.0 + 2.0 / qmax);
                for (size_t i = b0; i < b1; i++) {
                    size_t k = (size_t)s * count + i;
                    if (excluded[k]) {
                        continue;
                    }
                    double rel = fabs(cum[k]) / bound;
                    worst = rel > worst ? rel : worst;
                    mean_cum += fabs(cum[k]);
                    mean_abs += step_abs[k];
                    n_used++;
                }
            }
        }
        printf("[rank %d] collnet %s error feedback: |sum of errors| <= %.2f of one step's bound "
               "after %d steps (mean |sum| %.3g vs mean sum|err| %.3g)\n",
               g_rank, dt->name, worst, STEPS, mean_cum / (double)n_used,
               mean_abs / (double)n_used);
        CHECK(worst <= 1.0, "error feedback did not hold the running error: %.2f", worst);
        CHECK(mean_cum * 3.0 < mean_abs, "running error not smaller than accumulated error");
    } else {
        printf("[rank %d] collnet %s: %d steps on %d lanes within bound, identical on %d ranks\n",
               g_rank, dt->name, STEPS, SLICES, g_nranks);
    }
    free(cum);
    free(step_abs);
    free(excluded);
}

static void scenario_collnet_period(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    coll_ctx cx;
    coll_setup(&cx, (size_t)8 << 20);
    const dtype_info *dts[] = {&DT_F32, &DT_F16, &DT_BF16};
    for (int d = 0; d < 3; d++) {
        collnet_error_feedback(&cx, dts[d]);
    }
    coll_teardown(&cx);
}

/* ---- scenario: collnet-exact (NANGILA_MODE=off) -------------------------------- */

static void collnet_exact_dtype(coll_ctx *cx, const dtype_info *dt)
{
    enum { NCALLS = 16 };
    const size_t counts[] = {1000, 70001, 4099, 131085};
    const size_t block = (size_t)env_int("NANGILA_BLOCK", 256);
    coll_call c[NCALLS];
    memset(c, 0, sizeof c);
    size_t off = 0;
    g_dt = dt;
    for (int i = 0; i < NCALLS; i++) {
        c[i].count = counts[i % 4];
        c[i].valid = c[i].count;
        c[i].call = (uint64_t)i;
        c[i].done = 0;
        c[i].send = cx->region + off;
        c[i].recv = cx->region + cx->region_size / 2 + off;
        off += (c[i].count * dt->esize + 255) / 256 * 256;
        fill_call(&c[i], dt, value_main_cur);
    }
    coll_run(cx, c, NCALLS, dt, 11u);
    for (int k = 0; k < NCALLS; k++) {
        const size_t n = c[k].count;
        /* The engine's layout: chunks balanced by blocks, the first
         * nb % P owners one block more (engine/include/ngl_engine.h). */
        const size_t nb = (n + block - 1) / block, P = (size_t)g_nranks;
        const size_t base = nb / P, rem = nb % P;
        for (size_t i = 0; i < n; i++) {
            /* The owner starts from its own value, then adds the others in
             * rank order, rounding to the dtype after every addition. */
            const size_t b = i / block;
            int owner = b < rem * (base + 1) ? (int)(b / (base + 1))
                                             : (int)(rem + (b - rem * (base + 1)) / base);
            float acc = value_main_cur(owner, c[k].call, i, 0);
            for (int r = 0; r < g_nranks; r++) {
                if (r != owner) {
                    uint8_t tmp[4];
                    store_elem(dt, tmp, 0, acc + value_main_cur(r, c[k].call, i, 0));
                    acc = load_elem(dt, tmp, 0);
                }
            }
            float got = load_elem(dt, c[k].recv, i);
            CHECK((isnan(acc) && isnan(got)) || memcmp(&acc, &got, 4) == 0,
                  "%s call %d element %zu: %.9g, expected exactly %.9g", dt->name, k, i,
                  (double)got, (double)acc);
        }
    }
    check_identical(c, NCALLS, dt);
    printf("[rank %d] collnet-exact %s: %d calls bit-exact\n", g_rank, dt->name, NCALLS);
}

static void scenario_collnet_exact(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    coll_ctx cx;
    coll_setup(&cx, (size_t)16 << 20);
    collnet_exact_dtype(&cx, &DT_F32);
    collnet_exact_dtype(&cx, &DT_F16);
    collnet_exact_dtype(&cx, &DT_BF16);
    coll_teardown(&cx);
}

/* ---- scenario: kill-collnet ------------------------------------------------------- */

static void scenario_kill_collnet(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    coll_ctx cx;
    coll_setup(&cx, (size_t)8 << 20);
    const dtype_info *dt = &DT_F32;
    g_dt = dt;
    enum { NCALLS = 4 };
    coll_call c[NCALLS];
    memset(c, 0, sizeof c);
    const size_t count = 262144;
    for (int i = 0; i < NCALLS; i++) {
        c[i].count = count;
        c[i].valid = count;
        c[i].call = (uint64_t)i;
        c[i].done = 0;
        c[i].send = cx.region + (size_t)i * count * 4;
        c[i].recv = cx.region + cx.region_size / 2 + (size_t)i * count * 4;
        fill_call(&c[i], dt, value_main_cur);
    }
    /* One warm call that completes everywhere, then the victim dies while
     * the others have calls in flight. */
    coll_run(&cx, c, 1, dt, 1u);
    hub_barrier();
    if (g_rank == g_nranks - 1) {
        raise(SIGKILL);
    }
    /* The error may surface while posting (iallreduce progresses the comm)
     * or in test; either is fine, a hang or a success is not. */
    const double t0 = now_s();
    ngl_nccl_result_t r = NGL_NCCL_SUCCESS;
    int nposted = 1;
    for (int i = 1; i < NCALLS && r == NGL_NCCL_SUCCESS; i++) {
        c[i].req = NULL;
        r = coll->iallreduce(cx.cc, c[i].send, c[i].recv, (int)count, NGL_NCCL_FLOAT32,
                             NGL_NCCL_SUM, cx.mh, cx.mh, &c[i].req);
        CHECK(r != NGL_NCCL_SUCCESS || c[i].req != NULL, "iallreduce refused");
        nposted += r == NGL_NCCL_SUCCESS;
    }
    while (r == NGL_NCCL_SUCCESS) {
        CHECK(now_s() - t0 < 30.0, "no error 30 s after a collNet peer died");
        int done = 0;
        r = coll->test(c[1].req, &done, NULL);
        CHECK(r != NGL_NCCL_SUCCESS || !done, "allreduce with a dead peer completed");
        sleep_us(100);
    }
    CHECK(r == NGL_NCCL_REMOTE_ERROR, "expected a remote error, got %d", r);
    /* The comm stays failed: every request and every new call reports it. */
    for (int i = 1; i < nposted; i++) {
        int done = 0;
        CHECK(coll->test(c[i].req, &done, NULL) != NGL_NCCL_SUCCESS, "failed comm recovered");
    }
    void *req = NULL;
    CHECK(coll->iallreduce(cx.cc, c[0].send, c[0].recv, (int)count, NGL_NCCL_FLOAT32, NGL_NCCL_SUM,
                           cx.mh, cx.mh, &req) == NGL_NCCL_REMOTE_ERROR,
          "a failed collComm accepted a new allreduce");
    printf("[rank %d] kill-collnet ok: error %.3f s after the peer died\n", g_rank, now_s() - t0);
    coll_teardown(&cx);
}

/* ---- scenario: inner ------------------------------------------------------------- */

static void scenario_inner(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    CHECK(getenv("NANGILA_NET_INNER") != NULL, "set NANGILA_NET_INNER");
    p2p_body(0); /* checks that devices come from the inner plugin */
    coll_ctx cx;
    coll_setup(&cx, (size_t)32 << 20);
    collnet_concurrent(&cx, &DT_F32, 0);
    collnet_concurrent(&cx, &DT_BF16, 100);
    coll_teardown(&cx);
    printf("[rank %d] inner forwarding ok\n", g_rank);
}

/* ---- scenarios: device memory ------------------------------------------------------ */

/* Point-to-point through our ncclNet with device buffers on either end:
 * bytes must arrive intact, in order, for every mix of host and device
 * memory, and iflush of a completed device receive has nothing left to do. */
static void scenario_device_p2p(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    init_net();
    ngl_nccl_props_v8_t p;
    NCCL_OK(net->getProperties(0, &p));
    CHECK(p.ptrSupport & NGL_NCCL_PTR_CUDA, "ncclNet does not offer device memory (%d)",
          p.ptrSupport);
    uint8_t handle[NGL_NCCL_HANDLE_MAXSIZE], all[MAX_RANKS][NGL_NCCL_HANDLE_MAXSIZE];
    void *lc = NULL, *sc = NULL, *rc = NULL;
    NCCL_OK(net->listen(0, handle, &lc));
    hub_allgather(handle, sizeof handle, all);
    connect_accept(all[(g_rank + 1) % g_nranks], lc, &sc, &rc);
    enum { NMSG = 24 };
    static const size_t sizes[] = {0, 1, 4093, 131072, 131073, (1u << 20) + 5u, 3u << 20};
    const size_t nsz = sizeof sizes / sizeof sizes[0];
    const size_t slot = (size_t)4 << 20;
    /* One registered device range per direction, as NCCL's buffers. */
    uint8_t *dsend = dmem_alloc(slot * 4), *drecv = dmem_alloc(slot * 4);
    uint8_t *hsend = malloc(slot * 4), *hrecv = malloc(slot * 4), *tmp = malloc(slot);
    CHECK(hsend && hrecv && tmp, "host buffers");
    void *dsmh = NULL, *drmh = NULL, *hsmh = NULL, *hrmh = NULL;
    NCCL_OK(net->regMr(sc, dsend, slot * 4, NGL_NCCL_PTR_CUDA, &dsmh));
    NCCL_OK(net->regMr(rc, drecv, slot * 4, NGL_NCCL_PTR_CUDA, &drmh));
    NCCL_OK(net->regMr(sc, hsend, slot * 4, NGL_NCCL_PTR_HOST, &hsmh));
    NCCL_OK(net->regMr(rc, hrecv, slot * 4, NGL_NCCL_PTR_HOST, &hrmh));
    const int peer = (g_rank + g_nranks - 1) % g_nranks; /* who sends to me */
    void *sreq[NMSG] = {0}, *rreq[NMSG] = {0};
    int sdone[NMSG] = {0}, rdone[NMSG] = {0}, rsize[NMSG] = {0};
    double dl = now_s() + DEADLINE_S;
    int left = 0;
    /* Up to 4 messages in flight each way; the memory kind changes with
     * the message index on both ends, independently. */
    for (int m0 = 0; m0 < NMSG; m0 += 4) {
        for (int m = m0; m < m0 + 4; m++) {
            const size_t sz = sizes[(size_t)m % nsz], off = slot * (size_t)(m % 4);
            const int sdev = (m + g_rank) % 3 != 0, rdev = (m / 2) % 2 == 0;
            fill_pattern(tmp, sz, 1000u * (uint64_t)g_rank + (uint64_t)m);
            if (sdev) {
                dmem_put(dsend + off, tmp, sz);
            } else {
                memcpy(hsend + off, tmp, sz);
            }
            void *rdata = (rdev ? drecv : hrecv) + off;
            int cap = (int)slot, tag = 0;
            while (rreq[m] == NULL) {
                CHECK(now_s() < dl, "irecv never accepted");
                NCCL_OK(net->irecv(rc, 1, &rdata, &cap, &tag, rdev ? &drmh : &hrmh, &rreq[m]));
            }
            while (sreq[m] == NULL) {
                CHECK(now_s() < dl, "isend never accepted");
                NCCL_OK(net->isend(sc, (sdev ? dsend : hsend) + off, (int)sz, 0, sdev ? dsmh : hsmh,
                                   &sreq[m]));
            }
            left += 2;
        }
        while (left > 0) {
            CHECK(now_s() < dl, "device transfers did not complete (%d left)", left);
            for (int m = m0 + 3; m >= m0; m--) { /* newest first */
                int size = 0;
                if (!sdone[m]) {
                    NCCL_OK(net->test(sreq[m], &sdone[m], &size));
                    left -= sdone[m];
                }
                if (!rdone[m]) {
                    NCCL_OK(net->test(rreq[m], &rdone[m], &rsize[m]));
                    left -= rdone[m];
                }
            }
        }
        for (int m = m0; m < m0 + 4; m++) {
            const size_t sz = sizes[(size_t)m % nsz], off = slot * (size_t)(m % 4);
            const int rdev = (m / 2) % 2 == 0;
            CHECK(rsize[m] == (int)sz, "message %d: %d bytes, expected %zu", m, rsize[m], sz);
            if (rdev) {
                void *fr = NULL, *data = drecv + off;
                int n = (int)sz;
                NCCL_OK(net->iflush(rc, 1, &data, &n, &drmh, &fr));
                CHECK(fr == NULL, "iflush of a completed device receive is pending");
                dmem_get(tmp, drecv + off, sz);
            } else {
                memcpy(tmp, hrecv + off, sz);
            }
            char what[64];
            snprintf(what, sizeof what, "%s message %d", rdev ? "device" : "host", m);
            check_pattern(tmp, sz, 1000u * (uint64_t)peer + (uint64_t)m, what);
        }
    }
    NCCL_OK(net->deregMr(sc, dsmh));
    NCCL_OK(net->deregMr(rc, drmh));
    NCCL_OK(net->deregMr(sc, hsmh));
    NCCL_OK(net->deregMr(rc, hrmh));
    NCCL_OK(net->closeSend(sc));
    NCCL_OK(net->closeRecv(rc));
    NCCL_OK(net->closeListen(lc));
    dmem_free(dsend);
    dmem_free(drecv);
    free(hsend);
    free(hrecv);
    free(tmp);
    printf("[rank %d] device-p2p: %d messages between host and device memory ok\n", g_rank, NMSG);
}

/* Lay out @p n calls of @p counts (cycled) in @p cx: host buffers in
 * cx->region, device buffers at the same offsets of cx->dregion. */
static void device_calls(coll_ctx *cx, coll_call *c, int n, const size_t *counts, size_t ncounts,
                         const dtype_info *dt, uint64_t call_base, size_t valid_cap)
{
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].count = counts[(size_t)i % ncounts];
        c[i].valid = c[i].count < valid_cap ? c[i].count : valid_cap;
        c[i].call = call_base + (uint64_t)i;
        size_t bytes = c[i].count * dt->esize;
        CHECK(2 * (off + bytes) <= cx->region_size, "region too small");
        c[i].send = cx->region + off;
        c[i].recv = cx->region + cx->region_size / 2 + off;
        if (cx->dregion != NULL) {
            /* split: even ranks send from host memory into device memory,
             * odd ranks the other way round */
            if (cx->mem != MEM_SPLIT || g_rank % 2 == 1) {
                c[i].dsend = cx->dregion + off;
            }
            if (cx->mem != MEM_SPLIT || g_rank % 2 == 0) {
                c[i].drecv = cx->dregion + cx->region_size / 2 + off;
            }
        }
        off += (bytes + 255) / 256 * 256;
    }
}

/* Inputs in, run, results out. Device inputs must be unchanged afterwards:
 * the plugin never writes device memory other than the results (it may be
 * the user's own buffer). */
static void device_run(coll_ctx *cx, coll_call *c, int n, const dtype_info *dt,
                       float (*value)(int, uint64_t, size_t, size_t), unsigned seed)
{
    for (int i = 0; i < n; i++) {
        fill_call(&c[i], dt, value);
        const size_t bytes = c[i].count * dt->esize;
        memset(c[i].recv, 0xA5, bytes); /* results must overwrite this */
        if (c[i].dsend != NULL) {
            dmem_put(c[i].dsend, c[i].send, bytes);
        }
        if (c[i].drecv != NULL) {
            dmem_put(c[i].drecv, c[i].recv, bytes);
        }
    }
    coll_run(cx, c, n, dt, seed);
    for (int i = 0; i < n; i++) {
        const size_t bytes = c[i].count * dt->esize;
        if (c[i].drecv != NULL) {
            dmem_get(c[i].recv, c[i].drecv, bytes);
        }
        if (c[i].dsend == NULL) {
            continue;
        }
        uint8_t *back = malloc(bytes ? bytes : 1);
        CHECK(back != NULL, "buffer");
        dmem_get(back, c[i].dsend, bytes);
        CHECK(memcmp(back, c[i].send, bytes) == 0, "call %llu: device send buffer was modified",
              (unsigned long long)c[i].call);
        free(back);
    }
}

/* Bit for bit, except that two NaNs count as equal: where a NaN meets a
 * NaN in an accumulating decode, which one survives is up to the CPU
 * compiler's operand order on the host and is the accumulator's on a GPU
 * (kernels/README.md); either is a NaN, as without us. */
static void expect_same(const coll_call *a, const coll_call *b, int n, const dtype_info *dt,
                        const char *what)
{
    for (int i = 0; i < n; i++) {
        const size_t bytes = a[i].count * dt->esize;
        if (memcmp(a[i].recv, b[i].recv, bytes) == 0) {
            continue;
        }
        for (size_t e = 0; e < a[i].count; e++) {
            const uint8_t *x = a[i].recv + e * dt->esize, *y = b[i].recv + e * dt->esize;
            float fx = load_elem(dt, a[i].recv, e), fy = load_elem(dt, b[i].recv, e);
            if (memcmp(x, y, dt->esize) != 0 && !(isnan(fx) && isnan(fy))) {
                die("%s %s call %d (%zu elements): element %zu is %.9g on host memory, %.9g", what,
                    dt->name, i, a[i].count, e, (double)fx, (double)fy);
            }
        }
    }
}

/* The GPU path against the host path: four collComms, one on host memory,
 * one on device memory, one mixed (rank 0 on device memory, the others on
 * host memory, as with GPU Direct on some nodes only), one split (send and
 * recv buffers on different sides, as with GPU Direct for receives only).
 * With the test plugins' fixed stream ids, the same calls must give the
 * same bits on all four, whatever the codec settings (NANGILA_* of the
 * test). */
static void scenario_device_collnet(const char *plugin, void *arg)
{
    (void)plugin;
    (void)arg;
    enum { NCALLS = 12 };
    /* Exact (below NANGILA_MIN_BYTES: staged through host memory) and
     * compressed classes, including ragged chunks. */
    const size_t counts[] = {70001, 1000, 131085, 4099, 65536 + 257};
    const int qmax = qmax_of_mode();
    const int plain = getenv("NANGILA_TOPK") == NULL && collnet_period() == 0;
    const int steps = collnet_period() > 0 ? collnet_period() : 1;
    coll_ctx hx, dx, mx, sx;
    coll_setup_mem(&hx, (size_t)16 << 20, MEM_HOST);
    coll_setup_mem(&dx, (size_t)16 << 20, MEM_DEVICE);
    coll_setup_mem(&mx, (size_t)16 << 20, MEM_MIXED);
    coll_setup_mem(&sx, (size_t)16 << 20, MEM_SPLIT);
    const dtype_info *dts[] = {&DT_F32, &DT_F16, &DT_BF16};
    coll_call ch[NCALLS], cd[NCALLS], cm[NCALLS], cs[NCALLS];
    double worst = 0.0;
    for (int d = 0; d < 3; d++) {
        const dtype_info *dt = dts[d];
        g_dt = dt;
        for (int t = 0; t < steps; t++) {
            /* With a period, the same slices come back every step (state
             * lanes); the inputs change a little from step to step. */
            const uint64_t base =
                1000u * (uint64_t)d + (collnet_period() ? 0u : 100u * (uint64_t)t);
            device_calls(&hx, ch, NCALLS, counts, 5, dt, base, SIZE_MAX);
            device_calls(&dx, cd, NCALLS, counts, 5, dt, base, SIZE_MAX);
            device_calls(&mx, cm, NCALLS, counts, 5, dt, base, SIZE_MAX);
            device_calls(&sx, cs, NCALLS, counts, 5, dt, base, SIZE_MAX);
            g_step = (uint64_t)t;
            device_run(&hx, ch, NCALLS, dt, value_step_cur, 7u + (unsigned)t);
            device_run(&dx, cd, NCALLS, dt, value_step_cur, 9u + (unsigned)g_rank);
            device_run(&mx, cm, NCALLS, dt, value_step_cur, 5u);
            device_run(&sx, cs, NCALLS, dt, value_step_cur, 3u);
            expect_same(ch, cd, NCALLS, dt, "device memory");
            expect_same(ch, cm, NCALLS, dt, "mixed memory");
            expect_same(ch, cs, NCALLS, dt, "split memory");
            check_identical(cd, NCALLS, dt);
            for (int i = 0; i < NCALLS && plain; i++) {
                double w = verify_call(&cd[i], dt, qmax, 1, value_step_cur);
                worst = w > worst ? w : worst;
            }
        }
    }
    /* Stale NaN/Inf tails on device memory: the valid prefix within bound,
     * identical to the host path. */
    for (int d = 0; d < 3 && plain; d++) {
        const dtype_info *dt = dts[d];
        const size_t tail[] = {65536 + 4096};
        g_dt = dt;
        device_calls(&hx, ch, 2, tail, 1, dt, 5000u + 10u * (uint64_t)d, 40013);
        device_calls(&dx, cd, 2, tail, 1, dt, 5000u + 10u * (uint64_t)d, 40013);
        device_run(&hx, ch, 2, dt, value_tail_cur, 3u);
        device_run(&dx, cd, 2, dt, value_tail_cur, 3u);
        expect_same(ch, cd, 2, dt, "stale tail on device memory");
        for (int i = 0; i < 2; i++) {
            (void)verify_call(&cd[i], dt, qmax, 1, value_tail_cur);
        }
    }
    /* iflush: nothing to do after a call completed; pending while a call
     * that writes the range is in flight, and done once it finished. */
    g_dt = &DT_F32;
    device_calls(&dx, cd, 1, counts, 1, &DT_F32, 9000u, SIZE_MAX);
    fill_call(&cd[0], &DT_F32, value_main_cur);
    dmem_put(cd[0].dsend, cd[0].send, cd[0].count * 4);
    const double dl = now_s() + DEADLINE_S;
    while (cd[0].req == NULL) {
        CHECK(now_s() < dl, "iallreduce never accepted");
        NCCL_OK(coll->iallreduce(dx.cc, cd[0].dsend, cd[0].drecv, (int)cd[0].count,
                                 NGL_NCCL_FLOAT32, NGL_NCCL_SUM, dx.dmh, dx.dmh, &cd[0].req));
    }
    void *fr = NULL;
    NCCL_OK(coll->iflush(dx.cc, cd[0].drecv, (int)(cd[0].count * 4), dx.dmh, &fr));
    int flush_pending = fr != NULL, fdone = fr == NULL;
    while (!fdone) {
        CHECK(now_s() < dl, "iflush never completed");
        NCCL_OK(coll->test(fr, &fdone, NULL));
    }
    int done = 0;
    NCCL_OK(coll->test(cd[0].req, &done, NULL));
    CHECK(done, "iflush completed before the allreduce writing the range");
    fr = NULL;
    NCCL_OK(coll->iflush(dx.cc, cd[0].drecv, (int)(cd[0].count * 4), dx.dmh, &fr));
    CHECK(fr == NULL, "iflush after completion is pending");
    hub_barrier();
    coll_teardown(&sx);
    coll_teardown(&mx);
    coll_teardown(&dx);
    coll_teardown(&hx);
    printf("[rank %d] device-collnet: host, device, mixed and split memory bit-identical over %d "
           "steps x %d calls x 3 dtypes%s; worst error %.2f of bound; iflush %s\n",
           g_rank, steps, NCALLS, plain ? " (+ stale tails)" : "", worst,
           flush_pending ? "waited for the call" : "found the call done");
}

/* ---- scenario: settings (single process) ---------------------------------------- */

static int scenario_settings(const char *plugin)
{
    g_rank = 0;
    load_plugin(plugin);
    setenv("HARNESS_QUIET_WARN", "1", 1);
    ngl_nccl_result_t r = net->init(logger);
    CHECK(r == NGL_NCCL_INVALID_USAGE, "init with NANGILA_MODE=%s returned %d",
          getenv("NANGILA_MODE"), r);
    CHECK(strstr(g_last_warn, "NANGILA_MODE") != NULL, "warning does not name the variable: %s",
          g_last_warn);
    CHECK(coll->init(logger) != NGL_NCCL_SUCCESS, "collNet init accepted a bad setting");
    printf("settings ok: init refused with \"%s\"\n", g_last_warn);
    return 0;
}

/* ---- scenario: bench (compressed collNet vs an exact ring on our ncclNet) -------- */

typedef struct {
    int nranks;
    double sizes_mib[32];
    int nsizes;
    int iters;
    const char *label;
} bench_opts;

/* Bytes this process's namespace sent on @p ifname, from /proc/self/net/dev
 * (sysfs would show the namespace that mounted it, not ours). */
static long long tx_bytes(const char *ifname)
{
    FILE *f = fopen("/proc/self/net/dev", "r");
    if (f == NULL) {
        return -1;
    }
    char line[512];
    long long tx = -1;
    size_t n = strlen(ifname);
    while (fgets(line, sizeof line, f) != NULL) {
        char *p = line;
        while (*p == ' ') {
            p++;
        }
        if (strncmp(p, ifname, n) == 0 && p[n] == ':') {
            long long v[16];
            if (sscanf(p + n + 1, "%lld %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1],
                       &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) == 9) {
                tx = v[8];
            }
        }
    }
    fclose(f);
    return tx;
}

typedef struct {
    void *sc, *rc;
    void *mh_s[2], *mh_r[2]; /* registrations of buf (send/recv comm) and tmp */
} ring_ctx;

static void wait_reqs(void **reqs, int n)
{
    double dl = now_s() + 600.0;
    int left = 0;
    for (int i = 0; i < n; i++) {
        left += reqs[i] != NULL;
    }
    while (left > 0) {
        CHECK(now_s() < dl, "ring transfer stuck");
        for (int i = 0; i < n; i++) {
            if (reqs[i] == NULL) {
                continue;
            }
            int done = 0;
            NCCL_OK(net->test(reqs[i], &done, NULL));
            if (done) {
                reqs[i] = NULL;
                left--;
            }
        }
    }
}

/* Exact ring allreduce (reduce-scatter then allgather) of @p count floats,
 * cut into pieces so that many transfers are in flight. */
static void ring_allreduce(ring_ctx *rx, float *buf, float *tmp, size_t count)
{
    const int n = g_nranks;
    if (n == 1) {
        return;
    }
    const size_t seg = (count + (size_t)n - 1) / (size_t)n;
    size_t piece = ((size_t)4 << 20) / 4;
    while ((seg + piece - 1) / piece > 15) {
        piece *= 2;
    }
    void *reqs[64];
    for (int phase = 0; phase < 2; phase++) {
        for (int step = 0; step < n - 1; step++) {
            int sseg, rseg;
            if (phase == 0) {
                sseg = (g_rank - step + n) % n;
                rseg = (g_rank - step - 1 + 2 * n) % n;
            } else {
                sseg = (g_rank + 1 - step + n) % n;
                rseg = (g_rank - step + n) % n;
            }
            size_t s0 = (size_t)sseg * seg, s1 = s0 + seg < count ? s0 + seg : count;
            size_t r0 = (size_t)rseg * seg, r1 = r0 + seg < count ? r0 + seg : count;
            s0 = s0 < count ? s0 : count;
            r0 = r0 < count ? r0 : count;
            int np = 0;
            size_t rlen[32], roff[32];
            for (size_t o = 0; o < (s1 > s0 ? s1 - s0 : 0) || o < (r1 > r0 ? r1 - r0 : 0);
                 o += piece) {
                void *sreq = NULL, *rreq = NULL;
                size_t sl = s1 > s0 + o ? (s1 - s0 - o < piece ? s1 - s0 - o : piece) : 0;
                size_t rl = r1 > r0 + o ? (r1 - r0 - o < piece ? r1 - r0 - o : piece) : 0;
                float *rdst = phase == 0 ? tmp + o : buf + r0 + o;
                void *rmh = phase == 0 ? rx->mh_r[1] : rx->mh_r[0];
                void *data = rdst;
                int cap = (int)(rl * 4), tag = 0;
                double dl = now_s() + DEADLINE_S;
                while (rreq == NULL) {
                    CHECK(now_s() < dl, "ring irecv refused");
                    NCCL_OK(net->irecv(rx->rc, 1, &data, &cap, &tag, &rmh, &rreq));
                }
                while (sreq == NULL) {
                    CHECK(now_s() < dl, "ring isend refused");
                    NCCL_OK(net->isend(rx->sc, buf + s0 + o, (int)(sl * 4), 0, rx->mh_s[0], &sreq));
                }
                reqs[2 * np] = sreq;
                reqs[2 * np + 1] = rreq;
                rlen[np] = rl;
                roff[np] = o;
                np++;
            }
            wait_reqs(reqs, 2 * np);
            if (phase == 0) {
                for (int p = 0; p < np; p++) {
                    for (size_t i = 0; i < rlen[p]; i++) {
                        buf[r0 + roff[p] + i] += tmp[roff[p] + i];
                    }
                }
            }
        }
    }
}

/* Compressed allreduce through the collNet, in NCCL-sized slices (2 MiB),
 * eight in flight, as NCCL's CollNetChain proxy issues them. */
static void collnet_allreduce(coll_ctx *cx, float *in, float *out, size_t count)
{
    const size_t slice = ((size_t)2 << 20) / 4;
    const size_t nslices = (count + slice - 1) / slice;
    void *reqs[8] = {0};
    size_t next = 0, done_n = 0;
    double dl = now_s() + 600.0;
    while (done_n < nslices) {
        CHECK(now_s() < dl, "collNet allreduce stuck");
        while (next < nslices && reqs[next % 8] == NULL) {
            size_t o = next * slice, len = count - o < slice ? count - o : slice;
            void *req = NULL;
            NCCL_OK(coll->iallreduce(cx->cc, in + o, out + o, (int)len, NGL_NCCL_FLOAT32,
                                     NGL_NCCL_SUM, cx->mh, cx->mh, &req));
            if (req == NULL) {
                break;
            }
            reqs[next % 8] = req;
            next++;
        }
        void **oldest = &reqs[done_n % 8];
        if (*oldest != NULL) {
            int done = 0;
            NCCL_OK(coll->test(*oldest, &done, NULL));
            if (done) {
                *oldest = NULL;
                done_n++;
            }
        }
    }
}

static double max_over_ranks(double v)
{
    double all[MAX_RANKS];
    hub_allgather(&v, sizeof v, all);
    double m = all[0];
    for (int r = 1; r < g_nranks; r++) {
        m = all[r] > m ? all[r] : m;
    }
    return m;
}

static double sum_over_ranks(double v)
{
    double all[MAX_RANKS], s = 0.0;
    hub_allgather(&v, sizeof v, all);
    for (int r = 0; r < g_nranks; r++) {
        s += all[r];
    }
    return s;
}

static void scenario_bench(const char *plugin, void *arg)
{
    (void)plugin;
    const bench_opts *o = arg;
    double maxmib = 0;
    for (int i = 0; i < o->nsizes; i++) {
        maxmib = o->sizes_mib[i] > maxmib ? o->sizes_mib[i] : maxmib;
    }
    const size_t maxcount = (size_t)(maxmib * 262144.0);
    coll_ctx cx;
    coll_setup(&cx, 4096); /* the bench registers its own buffers below */
    ngl_nccl_props_v8_t props;
    NCCL_OK(net->getProperties(0, &props));
    char ifname[64];
    snprintf(ifname, sizeof ifname, "%s", props.name);
    const int measure_wire = g_netns_prefix != NULL;

    /* ring: send to next, receive from previous, on the plugin's ncclNet */
    uint8_t handle[NGL_NCCL_HANDLE_MAXSIZE], all[MAX_RANKS][NGL_NCCL_HANDLE_MAXSIZE];
    void *lc = NULL;
    ring_ctx rx;
    NCCL_OK(net->listen(0, handle, &lc));
    hub_allgather(handle, sizeof handle, all);
    connect_accept(all[(g_rank + 1) % g_nranks], lc, &rx.sc, &rx.rc);

    float *pristine = malloc(maxcount * 4), *buf = malloc(maxcount * 4);
    float *tmp = malloc(maxcount * 4), *in = malloc(maxcount * 4), *out = malloc(maxcount * 4);
    CHECK(pristine && buf && tmp && in && out, "out of memory");
    NCCL_OK(net->regMr(rx.sc, buf, maxcount * 4, NGL_NCCL_PTR_HOST, &rx.mh_s[0]));
    NCCL_OK(net->regMr(rx.rc, buf, maxcount * 4, NGL_NCCL_PTR_HOST, &rx.mh_r[0]));
    NCCL_OK(net->regMr(rx.rc, tmp, maxcount * 4, NGL_NCCL_PTR_HOST, &rx.mh_r[1]));
    void *in_mh = NULL, *out_mh = NULL;
    NCCL_OK(coll->regMr(cx.cc, in, maxcount * 4, NGL_NCCL_PTR_HOST, &in_mh));
    NCCL_OK(coll->regMr(cx.cc, out, maxcount * 4, NGL_NCCL_PTR_HOST, &out_mh));
    for (size_t i = 0; i < maxcount; i++) {
        pristine[i] = input_value(g_rank, 1, i);
    }
    if (g_rank == 0) {
        printf("label,ranks,size_mib,ring_s,collnet_s,speedup,ring_wire_bytes,"
               "collnet_wire_bytes,wire_ratio,rel_rms_err\n");
        fflush(stdout);
    }
    for (int si = 0; si < o->nsizes; si++) {
        const size_t count = (size_t)(o->sizes_mib[si] * 262144.0);
        double ring_best = 1e30, coll_best = 1e30, ring_wire = 0, coll_wire = 0;
        for (int it = 0; it <= o->iters; it++) { /* iteration 0 warms up */
            memcpy(buf, pristine, count * 4);
            hub_barrier();
            long long w0 = measure_wire ? tx_bytes(ifname) : 0;
            double t0 = now_s();
            ring_allreduce(&rx, buf, tmp, count);
            double dt_ring = max_over_ranks(now_s() - t0);
            long long w1 = measure_wire ? tx_bytes(ifname) : 0;
            memcpy(in, pristine, count * 4);
            hub_barrier();
            long long w2 = measure_wire ? tx_bytes(ifname) : 0;
            t0 = now_s();
            collnet_allreduce(&cx, in, out, count);
            double dt_coll = max_over_ranks(now_s() - t0);
            long long w3 = measure_wire ? tx_bytes(ifname) : 0;
            if (it > 0) {
                ring_best = dt_ring < ring_best ? dt_ring : ring_best;
                coll_best = dt_coll < coll_best ? dt_coll : coll_best;
                ring_wire = sum_over_ranks((double)(w1 - w0));
                coll_wire = sum_over_ranks((double)(w3 - w2));
            }
        }
        double num = 0.0, den = 0.0;
        for (size_t i = 0; i < count; i++) {
            double d = (double)out[i] - (double)buf[i];
            num += d * d;
            den += (double)buf[i] * (double)buf[i];
        }
        double rel = sqrt(num / (den > 0 ? den : 1));
        rel = max_over_ranks(rel);
        CHECK(rel < 0.05, "collNet result far from the ring's: relative rms %.3g", rel);
        if (g_rank == 0) {
            printf("%s,%d,%g,%.6f,%.6f,%.3f,%.0f,%.0f,%.3f,%.3g\n", o->label, g_nranks,
                   o->sizes_mib[si], ring_best, coll_best, ring_best / coll_best,
                   measure_wire ? ring_wire : -1.0, measure_wire ? coll_wire : -1.0,
                   measure_wire && coll_wire > 0 ? ring_wire / coll_wire : -1.0, rel);
            fflush(stdout);
        }
    }
    NCCL_OK(coll->deregMr(cx.cc, in_mh));
    NCCL_OK(coll->deregMr(cx.cc, out_mh));
    NCCL_OK(net->deregMr(rx.sc, rx.mh_s[0]));
    NCCL_OK(net->deregMr(rx.rc, rx.mh_r[0]));
    NCCL_OK(net->deregMr(rx.rc, rx.mh_r[1]));
    hub_barrier();
    NCCL_OK(net->closeSend(rx.sc));
    NCCL_OK(net->closeRecv(rx.rc));
    NCCL_OK(net->closeListen(lc));
    coll_teardown(&cx);
    free(pristine);
    free(buf);
    free(tmp);
    free(in);
    free(out);
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s <plugin.so> <scenario> [options]\n", argv[0]);
        return 2;
    }
    const char *plugin = argv[1], *sc = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_opts bo = {.nranks = 2, .nsizes = 0, .iters = 3, .label = "loopback"};
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--ranks") && i + 1 < argc) {
            bo.nranks = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
            bo.iters = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--netns") && i + 1 < argc) {
            g_netns_prefix = argv[++i];
        } else if (!strcmp(argv[i], "--label") && i + 1 < argc) {
            bo.label = argv[++i];
        } else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            char *s = argv[++i], *save = NULL;
            for (char *t = strtok_r(s, ",", &save); t && bo.nsizes < 32;
                 t = strtok_r(NULL, ",", &save)) {
                bo.sizes_mib[bo.nsizes++] = atof(t);
            }
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (bo.nranks < 1 || bo.nranks > MAX_RANKS) {
        fprintf(stderr, "--ranks must be 1..%d\n", MAX_RANKS);
        return 2;
    }
    int rc;
    if (!strcmp(sc, "p2p")) {
        rc = run_ranks(2, plugin, scenario_p2p, NULL, -1, 180);
    } else if (!strcmp(sc, "reuse")) {
        rc = run_ranks(2, plugin, scenario_reuse, NULL, -1, 120);
    } else if (!strcmp(sc, "kill-p2p")) {
        rc = run_ranks(2, plugin, scenario_kill_p2p, NULL, 1, 120);
    } else if (!strcmp(sc, "collnet") || !strcmp(sc, "collnet-int4") ||
               !strcmp(sc, "collnet-tight")) {
        rc = run_ranks(3, plugin, scenario_collnet, NULL, -1, 220);
    } else if (!strcmp(sc, "collnet-half-wire")) {
        rc = run_ranks(3, plugin, scenario_collnet_half_wire, NULL, -1, 180);
    } else if (!strcmp(sc, "collnet-period")) {
        rc = run_ranks(3, plugin, scenario_collnet_period, NULL, -1, 220);
    } else if (!strcmp(sc, "collnet-exact")) {
        rc = run_ranks(3, plugin, scenario_collnet_exact, NULL, -1, 180);
    } else if (!strcmp(sc, "collnet-types")) {
        rc = run_ranks(3, plugin, scenario_collnet_types, NULL, -1, 180);
    } else if (!strcmp(sc, "collnet-window") || !strcmp(sc, "collnet-window-exact")) {
        rc = run_ranks(3, plugin, scenario_collnet_window, NULL, -1, 180);
    } else if (!strcmp(sc, "collnet-window-device")) {
#if defined(NGL_HARNESS_CUDA)
        printf("%s: needs device memory the host can read (the emulator plugin); skipped\n", sc);
        return 77;
#else
        static const int on_device = 1;
        rc = run_ranks(3, plugin, scenario_collnet_window, (void *)&on_device, -1, 180);
#endif
    } else if (!strcmp(sc, "kill-collnet")) {
        rc = run_ranks(3, plugin, scenario_kill_collnet, NULL, 2, 120);
    } else if (!strcmp(sc, "inner")) {
        rc = run_ranks(2, plugin, scenario_inner, NULL, -1, 180);
    } else if (!strcmp(sc, "settings")) {
        rc = scenario_settings(plugin);
    } else if (!strncmp(sc, "device-", 7)) {
        if (dmem_devices() <= 0) {
            printf("%s: no GPU here; skipped\n", sc);
            return 77;
        }
        if (!strcmp(sc, "device-p2p")) {
            rc = run_ranks(2, plugin, scenario_device_p2p, NULL, -1, 180);
        } else if (!strcmp(sc, "device-collnet")) {
            rc = run_ranks(3, plugin, scenario_device_collnet, NULL, -1, 280);
        } else {
            fprintf(stderr, "unknown scenario %s\n", sc);
            return 2;
        }
    } else if (ddp_opts_for(sc) != NULL) {
        if (!strcmp(sc, "collnet-ddp-reg") && dmem_devices() <= 0) {
            printf("%s: no GPU here; skipped\n", sc);
            return 77;
        }
        rc = run_ranks(3, plugin, scenario_collnet_ddp, ddp_opts_for(sc), -1, 600);
    } else if (!strcmp(sc, "nccl-model")) {
        if (bo.nsizes == 0) {
            const double dflt[] = {4.0 / 1048576.0, 1, 25};
            for (int i = 0; i < 3; i++) {
                bo.sizes_mib[bo.nsizes++] = dflt[i];
            }
        }
        rc = nccl_model_print(bo.sizes_mib, bo.nsizes);
    } else if (!strcmp(sc, "bench")) {
        if (bo.nsizes == 0) {
            const double dflt[] = {1, 4, 16, 64, 256};
            for (int i = 0; i < 5; i++) {
                bo.sizes_mib[bo.nsizes++] = dflt[i];
            }
        }
        rc = run_ranks(bo.nranks, plugin, scenario_bench, &bo, -1, 3600);
    } else {
        fprintf(stderr, "unknown scenario %s\n", sc);
        return 2;
    }
    if (rc == 0) {
        printf("%s: PASS\n", sc);
    }
    return rc == 0 ? 0 : 1;
}
