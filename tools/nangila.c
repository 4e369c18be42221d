/* SPDX-License-Identifier: Apache-2.0 */
/* nangila -- command-line front end: `nangila bench`, `nangila hpc`, `nangila twin`,
 * `nangila version`. */
#include "nangila.h"
#include "nangila_cli.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: nangila <command> [options]\n"
               "\n"
               "commands:\n"
               "  bench     codec throughput vs memcpy bandwidth (see nangila bench --help)\n"
#if defined(NGL_HAVE_HPC)
               "  hpc       error-bounded LAMMPS trajectory compression (see nangila hpc --help)\n"
#endif
#if defined(NGL_HAVE_TWIN)
               "  twin      error-bounded sensor streams over MQTT (see nangila twin --help)\n"
#endif
               "  version   print the library version and the kernel variants available\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "bench")) {
        return ngl_cli_bench(argc - 1, argv + 1);
    }
#if defined(NGL_HAVE_HPC)
    if (!strcmp(argv[1], "hpc")) {
        return ngl_cli_hpc(argc - 1, argv + 1);
    }
#endif
#if defined(NGL_HAVE_TWIN)
    if (!strcmp(argv[1], "twin")) {
        return ngl_cli_twin(argc - 1, argv + 1);
    }
#endif
    if (!strcmp(argv[1], "version")) {
        printf("nangila %s (kernels:", ngl_version_string());
        for (int isa = NGL_ISA_REF; isa <= NGL_ISA_AVX512; isa++) {
            if (ngl_isa_available((ngl_isa)isa)) {
                printf(" %s", ngl_isa_name((ngl_isa)isa));
            }
        }
        printf("; best %s)\n", ngl_isa_name(ngl_isa_best()));
        return 0;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "nangila: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
