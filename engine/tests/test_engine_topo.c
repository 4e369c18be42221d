/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_engine_topo.c -- the topology probe (ngl_topo.h): this machine,
 * machines fed through HWLOC_SYNTHETIC, unusable hwloc input, a made-up
 * sysfs tree for the fallback reader, thread binding and the NIC PCI path.
 * Every probe result is checked for valid fields, whatever the machine.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ngl_topo.h"

#ifndef NGL_HAVE_HWLOC
#define NGL_HAVE_HWLOC 0
#endif

/* Fields every probe must leave valid, found or not. */
static void check_valid(const ngl_topo *t)
{
    assert_true(t->found == 0 || t->found == 1);
    assert_true(strnlen(t->cores, sizeof t->cores) < sizeof t->cores);
    assert_true(strnlen(t->nic_name, sizeof t->nic_name) < sizeof t->nic_name);
    assert_true(strnlen(t->nic_pci_path, sizeof t->nic_pci_path) < sizeof t->nic_pci_path);
    assert_true(strnlen(t->nic_pci_bus, sizeof t->nic_pci_bus) < sizeof t->nic_pci_bus);
    assert_true(strnlen(t->gpu_pci_bus, sizeof t->gpu_pci_bus) < sizeof t->gpu_pci_bus);
    assert_true(t->numa_node >= -1 && t->nic_numa_node >= -1);
    assert_true(t->nnuma_bound >= 0 && t->nnuma_bound <= t->nnuma);
    if (t->found) {
        assert_true(t->npus > 0);
    } else {
        assert_int_equal(t->numa_node, -1);
        assert_string_equal(t->nic_name, "");
    }
    if (t->numa_node >= 0) {
        assert_true(t->cores[0] != '\0');
        assert_true(t->nnuma_bound >= 1);
    } else {
        assert_string_equal(t->cores, "");
    }
    if (t->nic_pci_path[0] != '\0') {
        assert_true(t->nic_name[0] != '\0');
        assert_non_null(strstr(t->nic_pci_path, "/devices/pci"));
    }
    char line[512];
    size_t n = ngl_topo_describe(t, line, sizeof line);
    assert_true(n > 0 && n < sizeof line);
    assert_int_equal(strlen(line), n);
    assert_true(strncmp(line, "topology", 8) == 0);
    assert_null(strchr(line, '\n'));
}

static int unset_hwloc_env(void **state)
{
    (void)state;
    unsetenv("HWLOC_SYNTHETIC");
    unsetenv("HWLOC_XMLFILE");
    return 0;
}

static void test_engine_topo_probe_this_machine(void **state)
{
    (void)state;
    ngl_topo t;
    ngl_topo_probe(&t, "");
    check_valid(&t);
    assert_int_equal(t.found, 1);
    assert_int_equal(t.this_system, 1);
    assert_int_equal(t.source, NGL_HAVE_HWLOC ? NGL_TOPO_SRC_HWLOC : NGL_TOPO_SRC_SYSFS);
    /* Only interfaces on a PCI device when no prefix is given. */
    if (t.nic_name[0] != '\0') {
        assert_true(t.nic_pci_path[0] != '\0');
        assert_true(t.nnics >= 1);
    }
    char line[512];
    ngl_topo_describe(&t, line, sizeof line);
    print_message("%s\n", line);
    assert_null(strstr(line, "found nothing"));

    cpu_set_t before, after;
    assert_int_equal(sched_getaffinity(0, sizeof before, &before), 0);
    int bound = ngl_topo_bind_thread(&t);
    if (t.nnuma >= 2 && t.numa_node >= 0) {
        assert_int_equal(bound, 1);
        assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
        for (int c = 0; c < NGL_TOPO_MAX_CPUS && c < CPU_SETSIZE; c++) {
            int want = (int)((t.node_cpus[c / 64] >> (c % 64)) & 1u);
            assert_int_equal(CPU_ISSET(c, &after) != 0, want);
        }
    } else {
        /* One node: nothing to gain, and the affinity is untouched. */
        assert_int_equal(bound, 0);
        assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
        assert_true(CPU_EQUAL(&before, &after));
    }
    assert_int_equal(sched_setaffinity(0, sizeof before, &before), 0);

    /* A prefix reaches interfaces without a PCI device (hwloc shows none
     * of them): loopback. */
    if (access("/sys/class/net/lo", F_OK) == 0) {
        ngl_topo_probe(&t, "lo");
        check_valid(&t);
        assert_string_equal(t.nic_name, "lo");
        assert_string_equal(t.nic_pci_path, "");
        ngl_topo_describe(&t, line, sizeof line);
        assert_non_null(strstr(line, "NIC lo (virtual)"));
    }
}

static void test_engine_topo_synthetic_two_nodes_no_nic(void **state)
{
    (void)state;
    if (!NGL_HAVE_HWLOC) {
        skip();
    }
    assert_int_equal(setenv("HWLOC_SYNTHETIC", "pack:1 numa:2 core:2 pu:1", 1), 0);
    ngl_topo t;
    ngl_topo_probe(&t, "");
    check_valid(&t);
    assert_int_equal(t.found, 1);
    assert_int_equal(t.source, NGL_TOPO_SRC_HWLOC);
    assert_int_equal(t.this_system, 0);
    assert_int_equal(t.npus, 4);
    assert_int_equal(t.nnuma, 2);
    /* No binding of ours in a fed machine: all of it, so both nodes; the
     * lower one is chosen when no NIC says otherwise. */
    assert_int_equal(t.nnuma_bound, 2);
    assert_int_equal(t.numa_node, 0);
    assert_string_equal(t.cores, "0-1");
    assert_int_equal(t.node_cpus[0], 0x3);
    assert_string_equal(t.nic_name, "");
    assert_string_equal(t.nic_pci_path, "");
    assert_string_equal(t.gpu_pci_bus, "");
    assert_int_equal(t.nnics, 0);
    assert_int_equal(t.ngpus, 0);
    char line[512];
    ngl_topo_describe(&t, line, sizeof line);
    print_message("%s\n", line);
    assert_string_equal(line, "topology (not this system): NUMA node 0 (cores 0-1) of 2 "
                              "(binding spans 2), 4 PUs, NIC none, GPU none");
    /* Never bind this thread to CPUs of a machine we are not on. */
    assert_int_equal(ngl_topo_bind_thread(&t), 0);

    /* A prefix does not reach out to this machine's interfaces either. */
    ngl_topo_probe(&t, "lo");
    check_valid(&t);
    assert_string_equal(t.nic_name, "");
}

/* topo_two_nodes.xml (argv[1]): NIC and GPU near each of two nodes. */
static const char *g_xml;

static void test_engine_topo_xml_nic_chooses_node_and_gpu(void **state)
{
    (void)state;
    if (!NGL_HAVE_HWLOC) {
        skip();
    }
    assert_non_null(g_xml);
    assert_int_equal(setenv("HWLOC_XMLFILE", g_xml, 1), 0);
    ngl_topo t;
    char line[512];

    /* No prefix: both NICs are as near (the whole machine is "bound");
     * interfaces before verbs devices, then PCI order: eno1, on node 0. */
    ngl_topo_probe(&t, "");
    check_valid(&t);
    assert_int_equal(t.this_system, 0);
    assert_int_equal(t.nnuma, 2);
    assert_int_equal(t.nnics, 2);
    assert_int_equal(t.ngpus, 2); /* not the BMC's VGA */
    assert_string_equal(t.nic_name, "eno1");
    assert_string_equal(t.nic_pci_bus, "0000:05:00.0");
    assert_string_equal(t.nic_pci_path, ""); /* not this machine's sysfs */
    assert_int_equal(t.nic_numa_node, 0);
    assert_int_equal(t.numa_node, 0);
    assert_string_equal(t.gpu_pci_bus, "0000:3b:00.0");
    ngl_topo_describe(&t, line, sizeof line);
    print_message("%s\n", line);
    assert_string_equal(line, "topology (not this system): NUMA node 0 (cores 0-1) of 2 "
                              "(binding spans 2), 4 PUs, NIC eno1 (pci 0000:05:00.0), "
                              "GPU 0000:3b:00.0 (of 2)");

    /* The HCA's interface: node 1, and the GPU next to it. */
    ngl_topo_probe(&t, "ib");
    check_valid(&t);
    assert_string_equal(t.nic_name, "ib0");
    assert_string_equal(t.nic_pci_bus, "0000:97:00.0");
    assert_int_equal(t.nic_numa_node, 1);
    assert_int_equal(t.numa_node, 1);
    assert_string_equal(t.cores, "2-3");
    assert_int_equal(t.node_cpus[0], 0xc);
    assert_string_equal(t.gpu_pci_bus, "0000:c6:00.0");

    /* A verbs name; a prefix nothing matches (and no sysfs look-up). */
    ngl_topo_probe(&t, "mlx5");
    assert_string_equal(t.nic_name, "mlx5_0");
    assert_int_equal(t.numa_node, 1);
    ngl_topo_probe(&t, "lo");
    check_valid(&t);
    assert_string_equal(t.nic_name, "");
    assert_int_equal(t.numa_node, 0);
}

static void test_engine_topo_unusable_hwloc_input_falls_back(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"HWLOC_XMLFILE", "/nonexistent/ngl-topo.xml"},
        {"HWLOC_SYNTHETIC", ""},
        {"HWLOC_SYNTHETIC", "not a topology"},
        {"HWLOC_SYNTHETIC", "numa:0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(setenv(cases[i][0], cases[i][1], 1), 0);
        ngl_topo t;
        memset(&t, 0x5a, sizeof t);
        ngl_topo_probe(&t, "");
        check_valid(&t);
        /* hwloc (or the sysfs reader) describes the real machine instead,
         * or nothing; never something half-filled. */
        assert_true(!t.found || t.this_system);
        unsetenv(cases[i][0]);
    }
}

/* ---- the sysfs reader on a made-up tree ---------------------------------------- */

typedef struct {
    char root[64];
} sysfs_tree;

static void put(const char *root, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    /* mkdir -p of the parent */
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    if (text != NULL) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    } else {
        mkdir(path, 0755);
    }
}

static int tree_setup(void **state)
{
    sysfs_tree *tr = calloc(1, sizeof *tr);
    if (tr == NULL) {
        return -1;
    }
    snprintf(tr->root, sizeof tr->root, "/tmp/ngl-topo-XXXXXX");
    if (mkdtemp(tr->root) == NULL) {
        free(tr);
        return -1;
    }
    const char *r = tr->root;
    put(r, "devices/system/cpu/online", "0-1023\n");
    /* Both nodes claim every CPU, so the process's real binding (whatever
     * this machine is) touches both, and the choice between them is the
     * NIC's. node2 is memory only. */
    put(r, "devices/system/node/node0/cpulist", "0-1023\n");
    put(r, "devices/system/node/node1/cpulist", "0-1023\n");
    put(r, "devices/system/node/node2/cpulist", "\n");
    put(r, "devices/system/node/online", "0-2\n");
    put(r, "devices/pci0000:00/0000:00:03.0/numa_node", "1\n");
    put(r, "devices/pci0000:00/0000:00:03.0/virtio2/", NULL);
    put(r, "devices/virtual/net/lo/", NULL);
    put(r, "class/net/lo/", NULL);
    put(r, "class/net/veth1/", NULL);
    put(r, "class/net/eth0/", NULL);
    char link[512];
    snprintf(link, sizeof link, "%s/class/net/eth0/device", r);
    if (symlink("../../../devices/pci0000:00/0000:00:03.0/virtio2", link) != 0) {
        return -1;
    }
    *state = tr;
    return 0;
}

static int tree_teardown(void **state)
{
    sysfs_tree *tr = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tr->root);
    int rc = system(cmd);
    free(tr);
    return rc == 0 ? 0 : -1;
}

static void test_engine_topo_sysfs_reads_nodes_and_nic(void **state)
{
    sysfs_tree *tr = *state;
    ngl_topo t;
    ngl_topo_probe_sysfs(&t, "", tr->root);
    check_valid(&t);
    assert_int_equal(t.found, 1);
    assert_int_equal(t.source, NGL_TOPO_SRC_SYSFS);
    assert_int_equal(t.this_system, 0);
    assert_int_equal(t.nnuma, 3);
    assert_int_equal(t.nnuma_bound, 2);
    /* lo and veth1 have no device: eth0, whose PCI parent is on node 1. */
    assert_string_equal(t.nic_name, "eth0");
    assert_int_equal(t.nnics, 1);
    const char *tail = "/devices/pci0000:00/0000:00:03.0/virtio2";
    size_t len = strlen(t.nic_pci_path);
    assert_true(len > strlen(tail));
    assert_string_equal(t.nic_pci_path + len - strlen(tail), tail);
    assert_string_equal(t.nic_pci_bus, "0000:00:03.0");
    assert_int_equal(t.nic_numa_node, 1);
    assert_int_equal(t.numa_node, 1);
    assert_true(strncmp(t.cores, "0-", 2) == 0);
    assert_string_equal(t.gpu_pci_bus, "");
    char line[512];
    ngl_topo_describe(&t, line, sizeof line);
    print_message("%s\n", line);
    const char *head = "topology (sysfs) (not this system): NUMA node 1 (cores ";
    assert_int_equal(strncmp(line, head, strlen(head)), 0);
    assert_non_null(strstr(line, " of 3 (binding spans 2), "));
    assert_non_null(strstr(line, "NIC eth0 (pci "));
    assert_non_null(strstr(line, "GPU not probed"));
    assert_int_equal(ngl_topo_bind_thread(&t), 0);

    /* Without the NIC's node, the lowest bound node. */
    put(tr->root, "devices/pci0000:00/0000:00:03.0/numa_node", "-1\n");
    ngl_topo_probe_sysfs(&t, "", tr->root);
    check_valid(&t);
    assert_int_equal(t.nic_numa_node, -1);
    assert_int_equal(t.numa_node, 0);
}

static void test_engine_topo_sysfs_prefix_picks_virtual(void **state)
{
    sysfs_tree *tr = *state;
    ngl_topo t;
    ngl_topo_probe_sysfs(&t, "veth", tr->root);
    check_valid(&t);
    assert_string_equal(t.nic_name, "veth1");
    assert_string_equal(t.nic_pci_path, "");
    assert_string_equal(t.nic_pci_bus, "");
    char line[512];
    ngl_topo_describe(&t, line, sizeof line);
    assert_non_null(strstr(line, "NIC veth1 (virtual)"));

    ngl_topo_probe_sysfs(&t, "eth", tr->root);
    assert_string_equal(t.nic_name, "eth0");
    ngl_topo_probe_sysfs(&t, "ib", tr->root);
    check_valid(&t);
    assert_string_equal(t.nic_name, "");
    ngl_topo_describe(&t, line, sizeof line);
    assert_non_null(strstr(line, "NIC none"));
}

static void test_engine_topo_sysfs_empty_tree_finds_nothing(void **state)
{
    sysfs_tree *tr = *state;
    char empty[128];
    snprintf(empty, sizeof empty, "%s/empty", tr->root);
    put(tr->root, "empty/", NULL);
    ngl_topo t;
    memset(&t, 0x5a, sizeof t);
    ngl_topo_probe_sysfs(&t, "", empty);
    check_valid(&t);
    assert_int_equal(t.found, 0);
    assert_int_equal(t.nnuma, 0);
    assert_int_equal(ngl_topo_bind_thread(&t), 0);
    char line[512];
    ngl_topo_describe(&t, line, sizeof line);
    assert_string_equal(line, "topology: sysfs found nothing (container or VM?); no placement");

    /* A missing root is the same as an empty one. */
    ngl_topo_probe_sysfs(&t, "eth", "/nonexistent/sys");
    check_valid(&t);
    assert_int_equal(t.found, 0);
}

/* ---- binding and the log line on hand-made descriptions ------------------------ */

static void test_engine_topo_bind_thread_sets_node_cpus(void **state)
{
    (void)state;
    cpu_set_t before, after;
    assert_int_equal(sched_getaffinity(0, sizeof before, &before), 0);
    int cpu = -1;
    for (int c = 0; c < NGL_TOPO_MAX_CPUS && c < CPU_SETSIZE && cpu < 0; c++) {
        cpu = CPU_ISSET(c, &before) ? c : -1;
    }
    assert_true(cpu >= 0);

    ngl_topo t;
    memset(&t, 0, sizeof t);
    t.found = 1;
    t.this_system = 1;
    t.npus = 2;
    t.nnuma = 2;
    t.nnuma_bound = 1;
    t.numa_node = 0;
    t.nic_numa_node = -1;
    /* No CPUs in the node: nothing to bind to. */
    assert_int_equal(ngl_topo_bind_thread(&t), 0);
    t.node_cpus[cpu / 64] = 1ull << (cpu % 64);
    assert_int_equal(ngl_topo_bind_thread(&t), 1);
    assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
    assert_int_equal(CPU_COUNT(&after), 1);
    assert_true(CPU_ISSET(cpu, &after));
    /* One node, or not this system: never. */
    t.nnuma = 1;
    assert_int_equal(ngl_topo_bind_thread(&t), 0);
    t.nnuma = 2;
    t.this_system = 0;
    assert_int_equal(ngl_topo_bind_thread(&t), 0);
    assert_int_equal(sched_setaffinity(0, sizeof before, &before), 0);
}

static void test_engine_topo_describe_cuts_like_snprintf(void **state)
{
    (void)state;
    ngl_topo t;
    memset(&t, 0, sizeof t);
    char line[512];
    size_t n = ngl_topo_describe(&t, line, sizeof line);
    assert_int_equal(n, strlen(line));
    assert_string_equal(line, "topology: not probed (container or VM?); no placement");

    t.found = 1;
    t.this_system = 1;
    t.source = NGL_TOPO_SRC_HWLOC;
    t.npus = 64;
    t.nnuma = 2;
    t.nnuma_bound = 1;
    t.numa_node = 1;
    snprintf(t.cores, sizeof t.cores, "16-31,48-63");
    snprintf(t.nic_name, sizeof t.nic_name, "ib0");
    snprintf(t.nic_pci_path, sizeof t.nic_pci_path,
             "/sys/devices/pci0000:16/0000:16:02.0/0000:17:00.0");
    snprintf(t.gpu_pci_bus, sizeof t.gpu_pci_bus, "0000:3b:00.0");
    t.ngpus = 8;
    const char *want = "topology: NUMA node 1 (cores 16-31,48-63) of 2, 64 PUs, NIC ib0 (pci "
                       "/sys/devices/pci0000:16/0000:16:02.0/0000:17:00.0), GPU 0000:3b:00.0 "
                       "(of 8)";
    n = ngl_topo_describe(&t, line, sizeof line);
    assert_string_equal(line, want);
    assert_int_equal(n, strlen(want));

    char small[20];
    memset(small, 'x', sizeof small);
    assert_int_equal(ngl_topo_describe(&t, small, sizeof small), strlen(want));
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(strncmp(small, want, sizeof small - 1), 0);
    assert_int_equal(ngl_topo_describe(&t, NULL, 0), strlen(want));

    t.nic_pci_path[0] = '\0';
    snprintf(t.nic_pci_bus, sizeof t.nic_pci_bus, "0000:17:00.0");
    ngl_topo_describe(&t, line, sizeof line);
    assert_non_null(strstr(line, "NIC ib0 (pci 0000:17:00.0)"));
}

/* ---- the NIC's PCI path ---------------------------------------------------------- */

static void test_engine_topo_netdev_pci_path_virtual_is_empty(void **state)
{
    (void)state;
    char out[256];
    memset(out, 'x', sizeof out);
    assert_int_equal(ngl_topo_netdev_pci_path("lo", out, sizeof out), 0);
    assert_string_equal(out, "");
    static const char *const bad[] = {"", ".", "..", "../lo", "lo/..", "no-such-if0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(out, 'x', sizeof out);
        assert_int_equal(ngl_topo_netdev_pci_path(bad[i], out, sizeof out), 0);
        assert_string_equal(out, "");
    }
    assert_int_equal(ngl_topo_netdev_pci_path(NULL, out, sizeof out), 0);

    /* Every interface here that has one: a PCI path that exists, and a
     * buffer too small for it gives none rather than a cut path. */
    DIR *d = opendir("/sys/class/net");
    if (d == NULL) {
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || !ngl_topo_netdev_pci_path(e->d_name, out, sizeof out)) {
            continue;
        }
        print_message("%s: %s\n", e->d_name, out);
        assert_true(strncmp(out, "/sys/devices/pci", 16) == 0);
        assert_int_equal(access(out, F_OK), 0);
        char tiny[8];
        assert_int_equal(ngl_topo_netdev_pci_path(e->d_name, tiny, sizeof tiny), 0);
        assert_string_equal(tiny, "");
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    g_xml = argc > 1 ? argv[1] : NULL;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_engine_topo_probe_this_machine, unset_hwloc_env),
        cmocka_unit_test_teardown(test_engine_topo_synthetic_two_nodes_no_nic, unset_hwloc_env),
        cmocka_unit_test_teardown(test_engine_topo_xml_nic_chooses_node_and_gpu, unset_hwloc_env),
        cmocka_unit_test_teardown(test_engine_topo_unusable_hwloc_input_falls_back,
                                  unset_hwloc_env),
        cmocka_unit_test_setup_teardown(test_engine_topo_sysfs_reads_nodes_and_nic, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_engine_topo_sysfs_prefix_picks_virtual, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(test_engine_topo_sysfs_empty_tree_finds_nothing, tree_setup,
                                        tree_teardown),
        cmocka_unit_test(test_engine_topo_bind_thread_sets_node_cpus),
        cmocka_unit_test(test_engine_topo_describe_cuts_like_snprintf),
        cmocka_unit_test(test_engine_topo_netdev_pci_path_virtual_is_empty),
    };
    return cmocka_run_group_tests(tests, unset_hwloc_env, NULL);
}
