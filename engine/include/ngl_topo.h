/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ngl_topo.h -- where this process sits on its machine: the NUMA node of
 * its CPU binding, the network device and the GPU nearest to it.
 *
 * Both layers ask the same questions once at start-up: which cores a
 * helper thread should run on (the MPI wrapper's progress thread), which
 * PCI device a network interface hangs off (the NCCL plugin's pciPath, so
 * NCCL can place the NIC in its own topology), and one line for the log
 * that says what was found. The answers come from hwloc when the build
 * found it (I/O devices included), else from a small sysfs reader
 * (ngl_topo_probe_sysfs()), which is also what hwloc falls back to at run
 * time when it describes nothing.
 *
 * Containers and VMs often show one NUMA node and no PCI device, or none at
 * all: every call here copes and every field stays valid (strings are
 * NUL-terminated, "" for unknown; numbers are -1 or 0 for unknown). Nothing
 * here fails hard or prints.
 *
 * hwloc reads HWLOC_XMLFILE and HWLOC_SYNTHETIC by itself (tests feed
 * topologies that way); such a topology is not "this system", and
 * ngl_topo_bind_thread() then never binds. An unusable HWLOC_XMLFILE or
 * HWLOC_SYNTHETIC makes hwloc discover the real machine instead.
 *
 * Thread safety: ngl_topo_probe() may be called from any thread, several
 * at once on distinct structs; a filled ngl_topo is plain data, read-only
 * afterwards. Probing costs milliseconds to tens of milliseconds (hwloc
 * walks sysfs and the PCI tree): call it once, at set-up.
 *
 * Self-contained: needs only the C standard headers below; no hwloc type
 * appears in it.
 */
#ifndef NGL_TOPO_H
#define NGL_TOPO_H

#include <stddef.h>
#include <stdint.h>

/* CPUs (OS indexes 0 .. NGL_TOPO_MAX_CPUS-1) a binding can name; larger
 * indexes are left out of ngl_topo.cores and .node_cpus. glibc's
 * CPU_SETSIZE. */
#define NGL_TOPO_MAX_CPUS 1024

/* Where an ngl_topo came from (ngl_topo.source). */
typedef enum ngl_topo_source {
    NGL_TOPO_SRC_NONE = 0,  /* not probed (a zeroed struct) */
    NGL_TOPO_SRC_HWLOC = 1, /* hwloc (this machine, or HWLOC_XMLFILE/_SYNTHETIC) */
    NGL_TOPO_SRC_SYSFS = 2  /* the sysfs reader (no hwloc, or hwloc found nothing) */
} ngl_topo_source;

typedef struct ngl_topo {
    /** 1 when hwloc or the sysfs reader described at least one PU, else 0
     *  (then every other field says "unknown"). */
    int found;
    /** ngl_topo_source: who filled this; with found == 0, what was tried
     *  first (NGL_TOPO_SRC_HWLOC: hwloc, then sysfs). */
    int source;
    /** 1 when the description is of the machine this process runs on (not
     *  HWLOC_XMLFILE, HWLOC_SYNTHETIC or a test's sysfs tree): only then
     *  may ngl_topo_bind_thread() bind. */
    int this_system;
    /** PUs (hardware threads) of the machine: those online (sysfs), those
     *  the process's cgroup allows (hwloc); 0 if unknown. */
    int npus;
    /** NUMA nodes of the machine; 0 if unknown. */
    int nnuma;
    /** How many of them the process's CPU binding touches; 0 if unknown. An
     *  unbound process touches them all. */
    int nnuma_bound;
    /** NUMA node (OS index) holding the process's CPU binding, -1 if
     *  unknown. When the binding spans several nodes: the one nearest the
     *  NIC among them, else the lowest-numbered. */
    int numa_node;
    /** That node's CPUs (OS indexes, hardware threads included) as a list
     *  like "0-15,32-47"; "" if unknown. Cut at a list boundary if longer. */
    char cores[128];
    /** Bitmap of the same CPUs (bit c of word c/64), for binding. */
    uint64_t node_cpus[NGL_TOPO_MAX_CPUS / 64];
    /** Nearest network device: an interface name (eth0, ib0) or, for an
     *  HCA without one, its verbs name (mlx5_0); "" if none. */
    char nic_name[64];
    /** /sys/devices/... path of its PCI device (ngl_topo_netdev_pci_path());
     *  "" for a virtual NIC or one described by HWLOC_XMLFILE/_SYNTHETIC. */
    char nic_pci_path[256];
    /** Its PCI bus id ("0000:17:00.0"); "" if not a PCI device or unknown. */
    char nic_pci_bus[32];
    /** NUMA node (OS index) nearest the NIC, -1 if unknown. */
    int nic_numa_node;
    /** NICs seen: PCI network controllers (hwloc), or interfaces on a PCI
     *  device (sysfs). */
    int nnics;
    /** Nearest GPU's PCI bus id ("0000:3b:00.0"), "" if none. */
    char gpu_pci_bus[32];
    /** GPUs found (PCI display/3D controllers of NVIDIA, AMD or Intel). */
    int ngpus;
} ngl_topo;

/**
 * Describe the machine as seen from the calling process, into @p t (all of
 * it overwritten). hwloc when the build has it; when hwloc is absent or
 * describes nothing, ngl_topo_probe_sysfs(t, ifname_prefix, "/sys").
 *
 * @p ifname_prefix picks the NIC as NANGILA_SOCKET_IFNAME does: "" (or
 * NULL) means the nearest network device with a PCI device; otherwise the
 * nearest whose name starts with it, and failing that the first interface
 * in /sys/class/net that matches, even a virtual one (nic_pci_path "").
 * "Nearest": its locality (the CPUs of the NUMA node or package it hangs
 * off) intersects the process's binding, the smaller locality first; then
 * interfaces before verbs devices; then PCI order.
 *
 * Never fails: an unknown machine gives found == 0. May not be called with
 * @p t NULL.
 */
void ngl_topo_probe(ngl_topo *t, const char *ifname_prefix);

/**
 * The sysfs reader behind ngl_topo_probe(), without hwloc: CPUs from
 * @p sysfs_root/devices/system/cpu/online, NUMA nodes from
 * .../system/node/node<N>/cpulist, the process's binding from
 * sched_getaffinity(), the NIC from @p sysfs_root/class/net/<if>/device
 * (first in name order, same @p ifname_prefix rule) and its numa_node file.
 * No GPU. @p sysfs_root is "/sys" except in tests (then this_system is 0).
 */
void ngl_topo_probe_sysfs(ngl_topo *t, const char *ifname_prefix, const char *sysfs_root);

/**
 * Bind the calling thread to the CPUs of t->numa_node (t->node_cpus), with
 * sched_setaffinity(). That may widen a thread of a process bound to one
 * core to its whole node, on purpose: a helper thread should not share the
 * one core its rank computes on.
 * @return 1 if bound; 0 if not: nothing found, a single NUMA node (nothing
 *         to gain), not this system, no node known, or the kernel refused
 *         (the thread's affinity is then unchanged). Does not block.
 */
int ngl_topo_bind_thread(const ngl_topo *t);

/**
 * One line for an INFO log, e.g.
 *   "topology: NUMA node 0 (cores 0-15) of 2, 32 PUs, NIC ib0 (pci
 *    /sys/devices/pci0000:16/0000:16:02.0/0000:17:00.0), GPU 0000:3b:00.0"
 *   "topology: NUMA node 0 (cores 0-1) of 1, 2 PUs, NIC eth0 (virtual), GPU none"
 *   "topology: hwloc found nothing, nor did sysfs (container or VM?); no placement"
 * with "(sysfs)" after "topology" when the sysfs reader filled @p t and
 * "(not this system)" for a fed topology. Writes at most @p cap bytes,
 * NUL-terminated when @p cap > 0 (cut if short).
 * @return the length of the whole line (as snprintf: >= cap means cut).
 */
size_t ngl_topo_describe(const ngl_topo *t, char *buf, size_t cap);

/**
 * The /sys/devices/... path of network device @p ifname's PCI device: the
 * realpath of /sys/class/net/<ifname>/device (what NCCL's own socket
 * transport reports), or of /sys/class/infiniband/<ifname>/device for a
 * verbs name. A device that resolves outside /sys/devices/pci* (a virtual
 * interface, a Xen vif, loopback) has none.
 * @return 1 and the path in @p out; 0 and "" in @p out (when @p cap > 0) if
 *         there is none or it does not fit in @p cap bytes.
 */
int ngl_topo_netdev_pci_path(const char *ifname, char *out, size_t cap);

#endif /* NGL_TOPO_H */
