/* SPDX-License-Identifier: Apache-2.0 */
/*
 * engine_topo.c -- the process's place on its machine (ngl_topo.h): NUMA
 * node of its binding, nearest NIC and GPU, from hwloc or sysfs.
 *
 * Why here and why both: the MPI wrapper wants its progress thread on the
 * rank's NUMA node and the NCCL plugin must tell NCCL which PCI device each
 * NIC is; both would otherwise read sysfs their own way. hwloc knows
 * localities (which NUMA node or package a PCI device hangs off) and reads
 * HWLOC_XMLFILE / HWLOC_SYNTHETIC, which lets tests feed machines; the sysfs
 * reader keeps a build without hwloc (or a container where hwloc sees
 * nothing) working with the same answers minus GPUs.
 *
 * hwloc's GPU-vendor discovery components are blacklisted: they would
 * initialise CUDA, OpenCL or an X connection inside an MPI or NCCL process
 * just to name devices. GPUs are found as PCI devices instead. So is the
 * libpciaccess one ("pci"): on Linux, hwloc's own sysfs reader finds the
 * same PCI tree, without touching config space, and libpciaccess leaks
 * what it allocates on every load (LeakSanitizer in the tests).
 */
#include "ngl_topo.h"

#ifndef NGL_HAVE_HWLOC
#define NGL_HAVE_HWLOC 0
#endif

#if NGL_HAVE_HWLOC
#include <hwloc.h>
#endif

#include <dirent.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MASK_WORDS = NGL_TOPO_MAX_CPUS / 64 };

static void topo_reset(ngl_topo *t)
{
    memset(t, 0, sizeof *t);
    t->numa_node = -1;
    t->nic_numa_node = -1;
}

/* ---- CPU masks and lists ------------------------------------------------ */

static void mask_set(uint64_t *m, long cpu)
{
    if (cpu >= 0 && cpu < NGL_TOPO_MAX_CPUS) {
        m[cpu / 64] |= 1ull << (cpu % 64);
    }
}

static int mask_has(const uint64_t *m, int cpu)
{
    return (int)((m[cpu / 64] >> (cpu % 64)) & 1u);
}

static int mask_count(const uint64_t *m)
{
    int n = 0;
    for (int w = 0; w < MASK_WORDS; w++) {
        n += __builtin_popcountll(m[w]);
    }
    return n;
}

static int mask_intersects(const uint64_t *a, const uint64_t *b)
{
    for (int w = 0; w < MASK_WORDS; w++) {
        if (a[w] & b[w]) {
            return 1;
        }
    }
    return 0;
}

/* A kernel cpulist ("0-3,8,10-11\n") into @p m; 0 if it is malformed. */
static int cpulist_parse(const char *s, uint64_t *m)
{
    memset(m, 0, MASK_WORDS * sizeof *m);
    while (*s != '\0' && *s != '\n') {
        char *end = NULL;
        long lo = strtol(s, &end, 10);
        if (end == s || lo < 0) {
            return 0;
        }
        long hi = lo;
        s = end;
        if (*s == '-') {
            hi = strtol(s + 1, &end, 10);
            if (end == s + 1 || hi < lo) {
                return 0;
            }
            s = end;
        }
        for (long c = lo; c <= hi && c < NGL_TOPO_MAX_CPUS; c++) {
            mask_set(m, c);
        }
        if (*s == ',') {
            s++;
        } else if (*s != '\0' && *s != '\n') {
            return 0;
        }
    }
    return 1;
}

/* @p m as a cpulist; a list that does not fit ends at a range boundary,
 * with ",..." when there is room for it. */
static void cpulist_format(const uint64_t *m, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int c = 0; c < NGL_TOPO_MAX_CPUS; c++) {
        if (!mask_has(m, c)) {
            continue;
        }
        int hi = c;
        while (hi + 1 < NGL_TOPO_MAX_CPUS && mask_has(m, hi + 1)) {
            hi++;
        }
        char piece[32];
        int n = hi > c ? snprintf(piece, sizeof piece, "%s%d-%d", len ? "," : "", c, hi)
                       : snprintf(piece, sizeof piece, "%s%d", len ? "," : "", c);
        /* Keep 4 bytes for ",..." plus the NUL. */
        if (len + (size_t)n + 5 > cap) {
            if (len + 5 <= cap) {
                memcpy(buf + len, ",...", 5);
            }
            return;
        }
        memcpy(buf + len, piece, (size_t)n + 1);
        len += (size_t)n;
        c = hi;
    }
}

/* ---- small sysfs helpers ------------------------------------------------ */

/* First line of @p path into @p buf; 0 if unreadable or empty. */
static int read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (ok) {
        buf[strcspn(buf, "\n")] = '\0';
    }
    return ok && buf[0] != '\0';
}

/* PCI bus id ("0000:17:00.0") of the deepest PCI device on @p path, a
 * /sys/devices path; 0 if there is none. */
static int pci_bus_of_path(const char *path, char *out, size_t cap)
{
    const char *best = NULL;
    for (const char *p = path; (p = strchr(p, '/')) != NULL; p++) {
        const char *c = p + 1;
        size_t n = strcspn(c, "/");
        /* dddd:bb:dd.f */
        if (n == 12 && c[4] == ':' && c[7] == ':' && c[10] == '.') {
            best = c;
        }
    }
    if (best == NULL || cap < 13) {
        return 0;
    }
    memcpy(out, best, 12);
    out[12] = '\0';
    return 1;
}

/* ngl_topo_netdev_pci_path() under @p root ("/sys" but in tests). */
static int netdev_pci_path_at(const char *root, const char *ifname, char *out, size_t cap)
{
    static const char *const classes[] = {"net", "infiniband"};
    if (cap > 0) {
        out[0] = '\0';
    }
    /* A name is one path component, never "." or "..". */
    if (ifname == NULL || ifname[0] == '\0' || ifname[0] == '.' || strchr(ifname, '/') != NULL) {
        return 0;
    }
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        char path[PATH_MAX];
        char real[PATH_MAX];
        int n = snprintf(path, sizeof path, "%s/class/%s/%s/device", root, classes[i], ifname);
        if (n < 0 || (size_t)n >= sizeof path || realpath(path, real) == NULL) {
            continue;
        }
        /* Virtual devices resolve to /sys/devices/virtual/... (or a Xen
         * vif, a platform device): not something NCCL can place. */
        if (strstr(real, "/devices/pci") == NULL || strlen(real) >= cap) {
            continue;
        }
        memcpy(out, real, strlen(real) + 1);
        return 1;
    }
    return 0;
}

int ngl_topo_netdev_pci_path(const char *ifname, char *out, size_t cap)
{
    return netdev_pci_path_at("/sys", ifname, out, cap);
}

static int name_matches(const char *name, const char *prefix)
{
    return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* NUMA node of the PCI device at @p pci_path (its numa_node file, or its
 * parent's for a virtio child); -1 if unknown. */
static int pci_path_numa(const char *pci_path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", pci_path);
    for (int up = 0; up < 2; up++) {
        char path[PATH_MAX + 16];
        char line[32];
        snprintf(path, sizeof path, "%s/numa_node", dir);
        if (read_line(path, line, sizeof line)) {
            return atoi(line) >= 0 ? atoi(line) : -1;
        }
        char *slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir) {
            break;
        }
        *slash = '\0';
    }
    return -1;
}

static int dirent_visible(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/*
 * The NIC from @p root/class/net in name order: with @p prefix "", the
 * first interface on a PCI device; else the first matching one on a PCI
 * device, failing that the first matching one at all (virtual). Sets the
 * nic_* fields it finds, and nnics when @p count is 1. 1 if one was found.
 */
static int sysfs_pick_nic(ngl_topo *t, const char *root, const char *prefix, int count)
{
    char dir[PATH_MAX];
    struct dirent **names = NULL;
    snprintf(dir, sizeof dir, "%s/class/net", root);
    int n = scandir(dir, &names, dirent_visible, alphasort);
    if (n < 0) {
        return 0;
    }
    int pick = -1, virtual_pick = -1;
    char path[sizeof t->nic_pci_path];
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        int on_pci = netdev_pci_path_at(root, name, path, sizeof path);
        t->nnics += count && on_pci;
        if (!name_matches(name, prefix) || strlen(name) >= sizeof t->nic_name) {
            continue;
        }
        if (on_pci && pick < 0) {
            pick = i;
        } else if (!on_pci && virtual_pick < 0 && prefix[0] != '\0') {
            virtual_pick = i;
        }
    }
    if (pick < 0) {
        pick = virtual_pick;
    }
    if (pick >= 0) {
        /* Names that do not fit were skipped above. */
        memcpy(t->nic_name, names[pick]->d_name, strlen(names[pick]->d_name) + 1);
        if (netdev_pci_path_at(root, t->nic_name, t->nic_pci_path, sizeof t->nic_pci_path)) {
            pci_bus_of_path(t->nic_pci_path, t->nic_pci_bus, sizeof t->nic_pci_bus);
            t->nic_numa_node = pci_path_numa(t->nic_pci_path);
        }
    }
    for (int i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return pick >= 0;
}

/* Take node @p idx with CPUs @p cpus if it is a better home than the one
 * chosen so far: the NIC's node first, else the lowest-numbered. */
static void offer_node(ngl_topo *t, int idx, const uint64_t *cpus)
{
    int cur_is_nic = t->numa_node >= 0 && t->numa_node == t->nic_numa_node;
    if (cur_is_nic || (t->numa_node >= 0 && idx > t->numa_node && idx != t->nic_numa_node)) {
        return;
    }
    t->numa_node = idx;
    memcpy(t->node_cpus, cpus, sizeof t->node_cpus);
}

void ngl_topo_probe_sysfs(ngl_topo *t, const char *ifname_prefix, const char *sysfs_root)
{
    const char *prefix = ifname_prefix != NULL ? ifname_prefix : "";
    const char *root = sysfs_root != NULL ? sysfs_root : "/sys";
    char path[PATH_MAX];
    char line[4096];
    uint64_t online[MASK_WORDS];
    uint64_t bind[MASK_WORDS];

    topo_reset(t);
    t->source = NGL_TOPO_SRC_SYSFS;
    t->this_system = strcmp(root, "/sys") == 0;
    snprintf(path, sizeof path, "%s/devices/system/cpu/online", root);
    if (!read_line(path, line, sizeof line) || !cpulist_parse(line, online) ||
        mask_count(online) == 0) {
        return;
    }
    t->found = 1;
    t->npus = mask_count(online);

    /* The binding, within the CPUs the tree describes: an affinity that
     * names none of them (a test's tree) counts as unbound. */
    cpu_set_t aff;
    CPU_ZERO(&aff);
    memcpy(bind, online, sizeof bind);
    if (sched_getaffinity(0, sizeof aff, &aff) == 0) {
        uint64_t mine[MASK_WORDS] = {0};
        for (int c = 0; c < NGL_TOPO_MAX_CPUS && c < CPU_SETSIZE; c++) {
            if (CPU_ISSET(c, &aff) && mask_has(online, c)) {
                mask_set(mine, c);
            }
        }
        if (mask_count(mine) > 0) {
            memcpy(bind, mine, sizeof bind);
        }
    }

    sysfs_pick_nic(t, root, prefix, 1);

    snprintf(path, sizeof path, "%s/devices/system/node", root);
    DIR *d = opendir(path);
    if (d == NULL) {
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int idx = -1;
        char tail = 0;
        if (sscanf(e->d_name, "node%d%c", &idx, &tail) != 1 || idx < 0) {
            continue;
        }
        uint64_t cpus[MASK_WORDS];
        t->nnuma++;
        snprintf(path, sizeof path, "%s/devices/system/node/%s/cpulist", root, e->d_name);
        /* A memory-only node has an empty cpulist. */
        if (!read_line(path, line, sizeof line) || !cpulist_parse(line, cpus) ||
            !mask_intersects(cpus, bind)) {
            continue;
        }
        t->nnuma_bound++;
        offer_node(t, idx, cpus);
    }
    closedir(d);
    if (t->numa_node >= 0) {
        cpulist_format(t->node_cpus, t->cores, sizeof t->cores);
    }
}

/* ---- hwloc -------------------------------------------------------------- */

#if NGL_HAVE_HWLOC

static void mask_from_hwloc(uint64_t *m, hwloc_const_bitmap_t set)
{
    memset(m, 0, MASK_WORDS * sizeof *m);
    for (int c = hwloc_bitmap_first(set); c >= 0; c = hwloc_bitmap_next(set, c)) {
        mask_set(m, c);
    }
}

static hwloc_obj_t pci_ancestor(hwloc_obj_t o)
{
    while (o != NULL && o->type != HWLOC_OBJ_PCI_DEVICE) {
        o = o->parent;
    }
    return o;
}

static void pci_bus_string(hwloc_obj_t pci, char *out, size_t cap)
{
    snprintf(out, cap, "%04x:%02x:%02x.%x", pci->attr->pcidev.domain, pci->attr->pcidev.bus,
             pci->attr->pcidev.dev, pci->attr->pcidev.func);
}

/* The CPUs an I/O object is local to (its first non-I/O ancestor's). */
static hwloc_const_cpuset_t io_locality(hwloc_topology_t topo, hwloc_obj_t o)
{
    hwloc_obj_t anc = hwloc_get_non_io_ancestor_obj(topo, o);
    return anc != NULL ? anc->cpuset : hwloc_topology_get_topology_cpuset(topo);
}

/* Candidate order for the NIC and the GPU: local to @p near first, then the
 * smaller locality, then @p rank (lower first); earlier objects win ties. */
typedef struct {
    int near;
    int weight;
    int rank;
} io_score;

static int score_better(io_score a, io_score b)
{
    if (a.near != b.near) {
        return a.near > b.near;
    }
    if (a.weight != b.weight) {
        return a.weight < b.weight;
    }
    return a.rank < b.rank;
}

static io_score score_io(hwloc_topology_t topo, hwloc_obj_t o, hwloc_const_cpuset_t near, int rank)
{
    hwloc_const_cpuset_t loc = io_locality(topo, o);
    io_score s = {hwloc_bitmap_intersects(loc, near), hwloc_bitmap_weight(loc), rank};
    return s;
}

/* Nearest network OS device to @p bind whose name starts with @p prefix
 * (on a PCI device when @p prefix is ""), or NULL. */
static hwloc_obj_t hwloc_pick_nic(hwloc_topology_t topo, hwloc_const_cpuset_t bind,
                                  const char *prefix)
{
    hwloc_obj_t best = NULL;
    io_score best_s = {0, 0, 0};
    for (hwloc_obj_t o = NULL; (o = hwloc_get_next_osdev(topo, o)) != NULL;) {
        hwloc_obj_osdev_type_t type = o->attr->osdev.type;
        if ((type != HWLOC_OBJ_OSDEV_NETWORK && type != HWLOC_OBJ_OSDEV_OPENFABRICS) ||
            o->name == NULL || !name_matches(o->name, prefix)) {
            continue;
        }
        if (prefix[0] == '\0' && pci_ancestor(o) == NULL) {
            continue;
        }
        io_score s = score_io(topo, o, bind, type == HWLOC_OBJ_OSDEV_NETWORK ? 0 : 1);
        if (best == NULL || score_better(s, best_s)) {
            best = o;
            best_s = s;
        }
    }
    return best;
}

static int is_gpu(hwloc_obj_t pci)
{
    unsigned base = pci->attr->pcidev.class_id >> 8;
    unsigned vendor = pci->attr->pcidev.vendor_id;
    /* Display (0x03) or processing accelerator (0x12) functions of GPU
     * vendors: not the BMC's VGA (ASPEED, Matrox), not other accelerators. */
    return (base == 0x03 || base == 0x12) &&
           (vendor == 0x10de || vendor == 0x1002 || (vendor == 0x8086 && base == 0x03));
}

static void hwloc_fill_nic(ngl_topo *t, hwloc_topology_t topo, hwloc_obj_t nic)
{
    snprintf(t->nic_name, sizeof t->nic_name, "%s", nic->name);
    hwloc_obj_t pci = pci_ancestor(nic);
    if (pci != NULL) {
        pci_bus_string(pci, t->nic_pci_bus, sizeof t->nic_pci_bus);
    }
    if (t->this_system) {
        ngl_topo_netdev_pci_path(t->nic_name, t->nic_pci_path, sizeof t->nic_pci_path);
    }
    hwloc_const_cpuset_t loc = io_locality(topo, nic);
    for (hwloc_obj_t n = NULL; (n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n));) {
        if (!hwloc_bitmap_iszero(n->cpuset) && hwloc_bitmap_isincluded(loc, n->cpuset)) {
            t->nic_numa_node = (int)n->os_index;
            break;
        }
    }
}

/* 1 if hwloc described at least one PU (then @p t is filled). */
static int probe_hwloc(ngl_topo *t, const char *prefix)
{
    static const char *const skip[] = {"cuda", "nvml", "opencl", "rsmi", "levelzero", "gl", "pci"};
    hwloc_topology_t topo;
    int ok = 0;

    if (hwloc_topology_init(&topo) != 0) {
        return 0;
    }
    hwloc_bitmap_t bind = hwloc_bitmap_alloc();
    if (bind == NULL) {
        goto out_topo;
    }
    /* Failures (an unknown component) only mean less discovery. */
    hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++) {
        hwloc_topology_set_components(topo, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, skip[i]);
    }
    if (hwloc_topology_load(topo) != 0) {
        goto out_bind;
    }
    int npus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    if (npus <= 0) {
        goto out_bind;
    }
    topo_reset(t);
    t->found = 1;
    t->source = NGL_TOPO_SRC_HWLOC;
    t->this_system = hwloc_topology_is_thissystem(topo);
    t->npus = npus;
    int nnuma = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    t->nnuma = nnuma > 0 ? nnuma : 0;

    /* A fed topology has no binding of ours: the whole machine. */
    hwloc_const_cpuset_t allowed = hwloc_topology_get_allowed_cpuset(topo);
    if (!t->this_system || hwloc_get_cpubind(topo, bind, HWLOC_CPUBIND_PROCESS) != 0) {
        hwloc_bitmap_copy(bind, allowed);
    }
    hwloc_bitmap_and(bind, bind, allowed);
    if (hwloc_bitmap_iszero(bind)) {
        hwloc_bitmap_copy(bind, allowed);
    }

    hwloc_obj_t nic = hwloc_pick_nic(topo, bind, prefix);
    if (nic != NULL) {
        hwloc_fill_nic(t, topo, nic);
    } else if (prefix[0] != '\0' && t->this_system) {
        /* An interface hwloc does not show (virtual: veth, a bridge). */
        sysfs_pick_nic(t, "/sys", prefix, 0);
    }

    hwloc_obj_t node_obj = NULL;
    for (hwloc_obj_t n = NULL; (n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n));) {
        if (!hwloc_bitmap_intersects(n->cpuset, bind)) {
            continue;
        }
        uint64_t cpus[MASK_WORDS];
        mask_from_hwloc(cpus, n->cpuset);
        t->nnuma_bound++;
        int before = t->numa_node;
        offer_node(t, (int)n->os_index, cpus);
        if (t->numa_node != before) {
            node_obj = n;
        }
    }
    if (t->numa_node >= 0) {
        cpulist_format(t->node_cpus, t->cores, sizeof t->cores);
    }

    /* NICs and GPUs as PCI functions; the GPU nearest the chosen node. */
    hwloc_const_cpuset_t near = node_obj != NULL ? node_obj->cpuset : bind;
    hwloc_obj_t gpu = NULL;
    io_score gpu_s = {0, 0, 0};
    for (hwloc_obj_t p = NULL; (p = hwloc_get_next_pcidev(topo, p)) != NULL;) {
        if ((p->attr->pcidev.class_id >> 8) == 0x02) {
            t->nnics++;
        }
        if (!is_gpu(p)) {
            continue;
        }
        t->ngpus++;
        io_score s = score_io(topo, p, near, 0);
        if (gpu == NULL || score_better(s, gpu_s)) {
            gpu = p;
            gpu_s = s;
        }
    }
    if (gpu != NULL) {
        pci_bus_string(gpu, t->gpu_pci_bus, sizeof t->gpu_pci_bus);
    }
    ok = 1;

out_bind:
    hwloc_bitmap_free(bind);
out_topo:
    hwloc_topology_destroy(topo);
    return ok;
}

#endif /* NGL_HAVE_HWLOC */

void ngl_topo_probe(ngl_topo *t, const char *ifname_prefix)
{
    const char *prefix = ifname_prefix != NULL ? ifname_prefix : "";
#if NGL_HAVE_HWLOC
    if (probe_hwloc(t, prefix)) {
        return;
    }
#endif
    ngl_topo_probe_sysfs(t, prefix, "/sys");
#if NGL_HAVE_HWLOC
    if (!t->found) {
        /* Say what was tried first (ngl_topo_describe()). */
        t->source = NGL_TOPO_SRC_HWLOC;
    }
#endif
}

int ngl_topo_bind_thread(const ngl_topo *t)
{
    if (!t->found || !t->this_system || t->numa_node < 0 || t->nnuma < 2) {
        return 0;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < NGL_TOPO_MAX_CPUS && c < CPU_SETSIZE; c++) {
        if (mask_has(t->node_cpus, c)) {
            CPU_SET(c, &set);
        }
    }
    if (CPU_COUNT(&set) == 0) {
        return 0;
    }
    /* pid 0: the calling thread only (Linux affinity is per thread). */
    return sched_setaffinity(0, sizeof set, &set) == 0;
}

/* ---- the log line ------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t cap;
    size_t len; /* of the whole line, even past cap */
} line_buf;

__attribute__((format(printf, 2, 3))) static void line_add(line_buf *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *dst = l->len < l->cap ? l->buf + l->len : NULL;
    int n = vsnprintf(dst, dst != NULL ? l->cap - l->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        l->len += (size_t)n;
    }
}

size_t ngl_topo_describe(const ngl_topo *t, char *buf, size_t cap)
{
    line_buf l = {buf, cap, 0};
    if (cap > 0) {
        buf[0] = '\0';
    }
    if (!t->found) {
        line_add(&l, "topology: %s (container or VM?); no placement",
                 t->source == NGL_TOPO_SRC_HWLOC   ? "hwloc found nothing, nor did sysfs"
                 : t->source == NGL_TOPO_SRC_SYSFS ? "sysfs found nothing"
                                                   : "not probed");
        return l.len;
    }
    line_add(&l, "topology%s%s: ", t->source == NGL_TOPO_SRC_SYSFS ? " (sysfs)" : "",
             t->this_system ? "" : " (not this system)");
    if (t->numa_node >= 0) {
        line_add(&l, "NUMA node %d (cores %s) of %d", t->numa_node, t->cores, t->nnuma);
        if (t->nnuma_bound > 1) {
            line_add(&l, " (binding spans %d)", t->nnuma_bound);
        }
    } else if (t->nnuma > 0) {
        line_add(&l, "NUMA node unknown of %d", t->nnuma);
    } else {
        line_add(&l, "NUMA nodes unknown");
    }
    line_add(&l, ", %d PUs, ", t->npus);
    if (t->nic_name[0] == '\0') {
        line_add(&l, "NIC none");
    } else if (t->nic_pci_path[0] != '\0') {
        line_add(&l, "NIC %s (pci %s)", t->nic_name, t->nic_pci_path);
    } else if (t->nic_pci_bus[0] != '\0') {
        line_add(&l, "NIC %s (pci %s)", t->nic_name, t->nic_pci_bus);
    } else {
        line_add(&l, "NIC %s (virtual)", t->nic_name);
    }
    if (t->gpu_pci_bus[0] != '\0') {
        line_add(&l, ", GPU %s", t->gpu_pci_bus);
        if (t->ngpus > 1) {
            line_add(&l, " (of %d)", t->ngpus);
        }
    } else {
        line_add(&l, t->source == NGL_TOPO_SRC_SYSFS ? ", GPU not probed" : ", GPU none");
    }
    return l.len;
}
