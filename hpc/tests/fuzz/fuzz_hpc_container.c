/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_hpc_container.c -- libFuzzer target for the hpc parsers: the input is
 * fed (1) to the codec decoder as a sequence of records and (2) to the LAMMPS
 * container decompressor, once as it is and once with every record's CRC32C
 * recomputed (so that mutations reach the parsers behind the checksums).
 * Neither may crash, hang, leak or read out of bounds, whatever the bytes. Built as a libFuzzer
 * binary under clang
 * (-Dfuzzing), and replayed over the committed corpus by hpc_fuzz_replay in
 * `meson test` everywhere.
 */
#include "nangila_hpc.h"
#include "ngl_byteorder.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Recompute the CRC32C of every record found in @p b, inner codec records
 * ("NHP") first, then the container's records ("NHD") in sequence, so that
 * mutated inputs reach the parsers behind the checksums. */
static void fix_crcs(uint8_t *b, size_t n)
{
    for (size_t i = 0; i + 12 <= n; i++) {
        if (b[i] == 'N' && b[i + 1] == 'H' && b[i + 2] == 'P' &&
            (b[i + 3] == 'S' || b[i + 3] == 'F')) {
            size_t len = ngl_rd_u32(b + i + 4);
            if (len <= n - i - 12) {
                ngl_wr_u32(b + i + 8 + len, ngl_crc32c(0, b + i, 8 + len));
            }
        }
    }
    size_t off = 0;
    while (off + 12 <= n && b[off] == 'N' && b[off + 1] == 'H' && b[off + 2] == 'D') {
        size_t len = ngl_rd_u32(b + off + 4);
        if (len > n - off - 12) {
            break;
        }
        ngl_wr_u32(b + off + 8 + len, ngl_crc32c(0, b + off, 8 + len));
        off += 12 + len;
    }
}

static void run_once(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run_once(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (copy != NULL) {
        if (size) {
            memcpy(copy, data, size);
        }
        fix_crcs(copy, size);
        if (size == 0 || memcmp(copy, data, size) != 0) {
            run_once(copy, size);
        }
        free(copy);
    }
    return 0;
}

static void run_once(const uint8_t *data, size_t size)
{
    /* (1) codec records */
    ngl_hpc_decoder *dec = NULL;
    if (ngl_hpc_decoder_create(&dec) == NGL_OK) {
        (void)ngl_hpc_decoder_set_max_atoms(dec, 1u << 16);
        size_t off = 0;
        while (off < size) {
            size_t rl;
            if (ngl_hpc_record_size(data + off, size - off, &rl) != NGL_OK || rl > size - off) {
                break;
            }
            int got = 0;
            if (ngl_hpc_decoder_decode(dec, data + off, rl, &got) != NGL_OK) {
                break;
            }
            if (got) {
                const ngl_hpc_frame *f = ngl_hpc_decoder_frame(dec);
                /* touch the output: it must be fully there */
                volatile uint8_t sink = 0;
                const uint8_t *x = f->xyz;
                for (uint64_t i = 0; i < 24 * f->natoms && i < (1u << 20); i += 61) {
                    sink ^= x[i % (f->natoms * 12)];
                }
                (void)sink;
            }
            off += rl;
        }
        ngl_hpc_decoder_destroy(dec);
    }
    /* (2) the LAMMPS container */
    if (size > 0) {
        FILE *in = fmemopen((void *)data, size, "rb");
        char *obuf = NULL;
        size_t olen = 0;
        FILE *out = open_memstream(&obuf, &olen);
        if (in != NULL && out != NULL) {
            ngl_hpc_dump_report rep;
            (void)ngl_hpc_dump_decompress(in, out, &rep);
        }
        if (in != NULL) {
            fclose(in);
        }
        if (out != NULL) {
            fclose(out);
        }
        free(obuf);
    }
}
