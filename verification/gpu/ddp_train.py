#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""An ordinary DDP training script (it knows nothing about Nangila), run by
scripts/gpu-check.sh with and without the NCCL plugin from the same seed.

A teacher network labels random inputs; a student MLP (~21M parameters, so
DDP uses several gradient buckets) learns them with SGD + momentum. Rank 0
writes the loss of every step (averaged over ranks) to --out as JSON.
"""
import argparse
import json
import os

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP


def mlp():
    return nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                         nn.Linear(4096, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    dist.init_process_group("nccl")
    rank = dist.get_rank()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device("cuda", local % torch.cuda.device_count())
    torch.cuda.set_device(dev)

    torch.manual_seed(args.seed)
    teacher = mlp().to(dev)
    model = mlp().to(dev)
    ddp = DDP(model, device_ids=[dev.index])
    opt = torch.optim.SGD(ddp.parameters(), lr=0.02, momentum=0.9)
    gen = torch.Generator(device=dev).manual_seed(args.seed + 17 * rank)
    losses = []
    for _ in range(args.steps):
        x = torch.randn(args.batch, 1024, device=dev, generator=gen)
        with torch.no_grad():
            y = teacher(x).argmax(1)
        loss = nn.functional.cross_entropy(ddp(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        avg = loss.detach().clone()
        dist.all_reduce(avg)
        losses.append(float(avg) / dist.get_world_size())
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"steps": args.steps, "seed": args.seed, "losses": losses}, f)
        print("ddp: first loss %.4f, last loss %.4f" % (losses[0], losses[-1]), flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
