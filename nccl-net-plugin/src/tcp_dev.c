/* SPDX-License-Identifier: Apache-2.0 */
/* tcp_dev.c -- which network interfaces the TCP transport uses, and what it
 * tells NCCL about them. */
#include "ngl_plugin.h"
#include "ngl_plugin_dev.h"
#include "ngl_tcp.h"
#include "ngl_topo.h"

#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
    char ifname[IF_NAMESIZE + 1];
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } addr;
    unsigned addrlen;
    char pci_path[256]; /* its PCI device (ngl_topo_netdev_pci_path()), "" if virtual */
    int speed_mbps;
} tcp_dev;

static tcp_dev devs[NGL_TCP_MAX_DEVS];
static int ndevs;

static int dev_index(const char *name)
{
    for (int i = 0; i < ndevs; i++) {
        if (strcmp(devs[i].ifname, name) == 0) {
            return i;
        }
    }
    return -1;
}

static int usable_addr(const struct ifaddrs *ifa)
{
    if (ifa->ifa_addr == NULL || !(ifa->ifa_flags & IFF_UP)) {
        return 0;
    }
    if (ifa->ifa_addr->sa_family == AF_INET) {
        return 1;
    }
    if (ifa->ifa_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)ifa->ifa_addr;
        /* Link-local addresses need a scope on the peer side; skip them. */
        return !IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr);
    }
    return 0;
}

static int wanted(const struct ifaddrs *ifa, const char *prefix, int allow_lo)
{
    if (prefix[0] != '\0') {
        return strncmp(ifa->ifa_name, prefix, strlen(prefix)) == 0;
    }
    if (ifa->ifa_flags & IFF_LOOPBACK) {
        return allow_lo;
    }
    return strncmp(ifa->ifa_name, "docker", 6) != 0 && strncmp(ifa->ifa_name, "virbr", 5) != 0;
}

static int read_speed(const char *ifname)
{
    char path[128];
    snprintf(path, sizeof path, "/sys/class/net/%.16s/speed", ifname);
    FILE *f = fopen(path, "r");
    int speed = -1;
    if (f != NULL) {
        if (fscanf(f, "%d", &speed) != 1) {
            speed = -1;
        }
        fclose(f);
    }
    return speed;
}

static void add_dev(const struct ifaddrs *ifa)
{
    int i = dev_index(ifa->ifa_name);
    if (i >= 0) {
        /* Prefer IPv4 when an interface has both. */
        if (devs[i].addr.v4.sin_family == AF_INET || ifa->ifa_addr->sa_family != AF_INET) {
            return;
        }
    } else {
        if (ndevs == NGL_TCP_MAX_DEVS) {
            return;
        }
        i = ndevs++;
        memset(&devs[i], 0, sizeof devs[i]);
        snprintf(devs[i].ifname, sizeof devs[i].ifname, "%s", ifa->ifa_name);
    }
    if (ifa->ifa_addr->sa_family == AF_INET) {
        memcpy(&devs[i].addr.v4, ifa->ifa_addr, sizeof(struct sockaddr_in));
        devs[i].addrlen = sizeof(struct sockaddr_in);
    } else {
        memcpy(&devs[i].addr.v6, ifa->ifa_addr, sizeof(struct sockaddr_in6));
        devs[i].addrlen = sizeof(struct sockaddr_in6);
    }
}

int ngl_tcp_devices_init(const char *ifname_prefix)
{
    struct ifaddrs *list = NULL;
    if (getifaddrs(&list) != 0) {
        return -errno;
    }
    ndevs = 0;
    for (int pass = 0; pass < 2 && ndevs == 0; pass++) {
        /* Pass 1 (auto only): loopback, when nothing else exists. */
        if (pass == 1 && ifname_prefix[0] != '\0') {
            break;
        }
        for (const struct ifaddrs *ifa = list; ifa != NULL; ifa = ifa->ifa_next) {
            if (usable_addr(ifa) && wanted(ifa, ifname_prefix, pass == 1)) {
                add_dev(ifa);
            }
        }
    }
    freeifaddrs(list);
    for (int i = 0; i < ndevs; i++) {
        ngl_topo_netdev_pci_path(devs[i].ifname, devs[i].pci_path, sizeof devs[i].pci_path);
        devs[i].speed_mbps = read_speed(devs[i].ifname);
        if (devs[i].speed_mbps <= 0) {
            NGL_PINFO(NGL_NCCL_SUBSYS_INIT | NGL_NCCL_SUBSYS_NET,
                      "%s: link speed unknown to the kernel, reporting 10000 Mbit/s",
                      devs[i].ifname);
            devs[i].speed_mbps = 10000;
        }
        NGL_PINFO(NGL_NCCL_SUBSYS_INIT | NGL_NCCL_SUBSYS_NET, "device %d: %s (%s), %d Mbit/s", i,
                  devs[i].ifname, devs[i].addr.v4.sin_family == AF_INET ? "IPv4" : "IPv6",
                  devs[i].speed_mbps);
    }
    return ndevs > 0 ? 0 : -ENODEV;
}

int ngl_tcp_device_count(void)
{
    return ndevs;
}

int ngl_tcp_device_props(int dev, ngl_nccl_props_v8_t *props)
{
    if (dev < 0 || dev >= ndevs || props == NULL) {
        return -EINVAL;
    }
    memset(props, 0, sizeof *props);
    props->name = devs[dev].ifname;
    /* NULL tells NCCL the NIC is virtual (no PCI locality). */
    props->pciPath = devs[dev].pci_path[0] != '\0' ? devs[dev].pci_path : NULL;
    props->guid = (uint64_t)dev;
    /* Device memory moves through pinned mirrors (tcp_net.c). */
    props->ptrSupport = NGL_NCCL_PTR_HOST | (ngl_plugin_dev_usable() ? NGL_NCCL_PTR_CUDA : 0);
    props->regIsGlobal = 0;
    props->speed = devs[dev].speed_mbps;
    props->port = 0;
    props->latency = 0.0f;
    props->maxComms = 65536;
    props->maxRecvs = 1;
    props->netDeviceType = NGL_NCCL_NET_DEVICE_HOST;
    props->netDeviceVersion = 0;
    return 0;
}

const void *ngl_tcp_device_addr(int dev, unsigned *len)
{
    if (dev < 0 || dev >= ndevs) {
        return NULL;
    }
    *len = devs[dev].addrlen;
    return &devs[dev].addr;
}
