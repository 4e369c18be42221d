#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""torch.distributed all_reduce correctness, run by scripts/gpu-check.sh
under torchrun (2 processes, one GPU, two NCCL "nodes").

For fp32 and bf16 and several sizes, every rank builds every rank's input
from a fixed seed, all_reduces its own, and checks the result against the
exact sum (float64) within the bound of Nangila's INT8 codec (two
quantisations, each below one step of its block scale, plus bf16
rounding), and that the result is bit-identical on all ranks. Writes a JSON
report (rank 0) and exits non-zero on any failure.
"""
import argparse
import json
import os

import torch
import torch.distributed as dist

BLOCK = int(os.environ.get("NANGILA_BLOCK", "256"))
QMAX = {"int8": 127, "int4": 7, "off": 0}[os.environ.get("NANGILA_MODE", "int8")]


def make_input(rank, n, dtype, seed):
    g = torch.Generator().manual_seed(seed * 1000 + rank)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    # magnitudes that vary per block, as gradients do
    scale = torch.pow(2.0, (torch.arange(n) // BLOCK % 9 - 6).to(torch.float64))
    return (x * scale).to(dtype)


def check(n, dtype, world, rank, dev, seed):
    inputs = [make_input(r, n, dtype, seed) for r in range(world)]
    t = inputs[rank].to(dev)
    dist.all_reduce(t)
    got = t.to(torch.float64).cpu()
    exact = torch.stack([x.to(torch.float64) for x in inputs]).sum(0)
    # per-block bound: sum over ranks of block max |x|
    pad = (-n) % BLOCK
    mags = torch.stack([torch.nn.functional.pad(x.to(torch.float64).abs(), (0, pad))
                        .view(-1, BLOCK).amax(1) for x in inputs]).sum(0)
    msum = mags.repeat_interleave(BLOCK)[:n]
    ulp = 2.0 ** -7 if dtype == torch.bfloat16 else 2.0 ** -22
    q = (2.0 * msum / QMAX) * (1 + 2.0 / QMAX) if QMAX else 0.0
    bound = q + ulp * (world + 2) * msum + 1e-30
    err = (got - exact).abs()
    worst = float((err / bound).max())
    # bit-identical on every rank
    gathered = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(gathered, t)
    identical = all(torch.equal(gathered[0].view(torch.int16 if dtype == torch.bfloat16
                                                  else torch.int32),
                                g.view(torch.int16 if dtype == torch.bfloat16 else torch.int32))
                    for g in gathered)
    rel_rms = float(((got - exact) ** 2).sum().sqrt() / (exact ** 2).sum().sqrt())
    return {"count": n, "dtype": str(dtype).replace("torch.", ""), "worst_err_over_bound": worst,
            "rel_rms_err": rel_rms, "identical_on_all_ranks": bool(identical),
            "ok": bool(worst <= 1.0 and identical)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local % torch.cuda.device_count())
    torch.cuda.set_device(dev)
    results = []
    for dtype in (torch.float32, torch.bfloat16):
        for n in (1000, 262144 + 77, 4 * 1024 * 1024 + 3, 16 * 1024 * 1024):
            results.append(check(n, dtype, world, rank, dev, seed=len(results)))
    ok = all(r["ok"] for r in results)
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"world": world, "ok": ok, "results": results}, f, indent=1)
        for r in results:
            print("allreduce %(dtype)s n=%(count)d: worst error %(worst_err_over_bound).3f of bound, "
                  "rel rms %(rel_rms_err).3g, identical %(identical_on_all_ranks)s" % r, flush=True)
    dist.barrier()
    dist.destroy_process_group()  # closes the collNet: the plugin logs its statistics
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
