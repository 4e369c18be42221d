#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A small DistributedDataParallel training job, unchanged whatever carries
its allreduces: NCCL with libnccl-net-nangila.so (see README.md here for the
command line and every environment variable), NCCL alone, or gloo on CPUs
(what CI runs, so the script never rots).

It does what real jobs do to a collective layer:
  - find_unused_parameters=True, with a branch that some steps skip, so DDP
    allreduces its int64 "used parameters" bitmap every step;
  - an int64 metric allreduce (examples seen) and a MAX allreduce (largest
    per-rank loss) next to the gradient buckets;
  - gradients in fp32, or bf16 with --bf16 (DDP's allreduce dtype follows
    the parameters).
At the end the ranks compare their parameters: a replica that drifted by a
single bit fails the run.

usage: torchrun --nproc_per_node=2 train_ddp.py [--backend gloo|nccl]
       [--steps N] [--seed S] [--bf16]
"""
import argparse
import os
import sys

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(32, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        self.head = nn.Linear(width, 4)
        self.aux = nn.Linear(width, 4)  # used on odd steps only

    def forward(self, x, use_aux):
        h = self.body(x)
        out = self.head(h)
        return out + self.aux(h) if use_aux else out


def batch(step, rank, n, device, dtype):
    """A fixed teacher task: class = argmax of a fixed projection of x."""
    g = torch.Generator().manual_seed(1000003 * step + 7919 * rank)
    x = torch.randn(n, 32, generator=g)
    w = torch.Generator().manual_seed(42)
    proj = torch.randn(32, 4, generator=w)
    y = (x @ proj).argmax(dim=1)
    return x.to(device=device, dtype=dtype), y.to(device)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--bf16", action="store_true")
    args = ap.parse_args()

    dist.init_process_group(backend=args.backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    if args.backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    dtype = torch.bfloat16 if args.bf16 else torch.float32

    torch.manual_seed(args.seed)  # same initial weights on every rank
    model = Net(args.width).to(device=device, dtype=dtype)
    ddp = DDP(model, find_unused_parameters=True)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    seen = torch.zeros(1, dtype=torch.int64, device=device)
    first = last = None
    for step in range(args.steps):
        x, y = batch(step, rank, 64, device, dtype)
        opt.zero_grad(set_to_none=True)
        out = ddp(x, use_aux=(step % 2 == 1))
        loss = loss_fn(out.float(), y)
        loss.backward()
        opt.step()

        # What training scripts allreduce besides gradients.
        seen += x.shape[0]
        total = seen.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)  # int64
        # (clone: detach/float/reshape may share storage with loss)
        worst = loss.detach().float().reshape(1).clone()
        dist.all_reduce(worst, op=dist.ReduceOp.MAX)  # MAX
        mean = loss.detach().float().reshape(1).clone()
        dist.all_reduce(mean, op=dist.ReduceOp.SUM)
        mean /= world
        if step == 0:
            first = mean.item()
        last = mean.item()
        if rank == 0 and (step % 10 == 0 or step == args.steps - 1):
            print(f"step {step:4d} loss {mean.item():.4f} worst {worst.item():.4f} "
                  f"examples {int(total.item())}", flush=True)
        if int(total.item()) != world * 64 * (step + 1):
            print(f"rank {rank}: int64 allreduce gave {int(total.item())}", file=sys.stderr)
            return 1

    # Replicas must be bit-identical: compare every rank's parameter bytes.
    flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
    lo, hi = flat.clone(), flat.clone()
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    identical = bool(torch.equal(lo, hi))
    if rank == 0:
        print(f"final: loss {first:.4f} -> {last:.4f}, ranks={world}, "
              f"identical_params={int(identical)}", flush=True)
    dist.destroy_process_group()
    if not identical:
        return 1
    if not last < 0.7 * first:
        print(f"rank {rank}: the loss did not fall ({first:.4f} -> {last:.4f})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
