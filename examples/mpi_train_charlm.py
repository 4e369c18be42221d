#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Data-parallel character-level transformer in PyTorch, gradients via mpi4py.

An ordinary data-parallel script: every rank holds the full model, computes
gradients on its own batch, and averages them with comm.Allreduce on the
float32 gradient tensors (one call per parameter, in place). It knows
nothing of Nangila; run it under mpirun with LD_PRELOAD=libnangila-mpi.so to
compress those calls.

The text is what ships with every Debian system: the licence texts in
/usr/share/common-licenses (the last 10% is held out for validation).

    mpirun -np 4 python3 examples/mpi_train_charlm.py --steps 400 --csv loss.csv

Rank 0 prints a final line
    final: val_loss=1.62 train_loss=1.55 steps=... allreduce_s=... identical_params=1
"""
import argparse
import glob
import hashlib
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from mpi4py import MPI


def load_text():
    parts = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        try:
            with open(path, encoding="utf-8") as f:
                parts.append(f.read())
        except (OSError, UnicodeDecodeError):
            continue
    return "\n".join(parts)


class CharLM(nn.Module):
    def __init__(self, vocab, d, layers, heads, ctx):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", torch.triu(torch.full((ctx, ctx), float("-inf")), 1))

    def forward(self, x):
        t = x.shape[1]
        h = self.tok(x) + self.pos(torch.arange(t, device=x.device))
        h = self.body(h, mask=self.mask[:t, :t])
        return self.head(self.norm(h))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=8, help="sequences per rank per step")
    ap.add_argument("--ctx", type=int, default=64)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--csv", help="rank 0 writes step,train_loss,val_loss here")
    args = ap.parse_args()

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)

    text = load_text()
    chars = sorted(set(text))
    idx = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([idx[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]

    model = CharLM(len(chars), args.d, args.layers, args.heads, args.ctx)
    params = [p for p in model.parameters()]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    loss_fn = nn.CrossEntropyLoss()
    # The same evaluation batches for every run.
    g_eval = torch.Generator().manual_seed(12345)
    eval_starts = torch.randint(0, len(val) - args.ctx - 1, (64,), generator=g_eval)

    def batch_from(src, starts):
        x = torch.stack([src[s:s + args.ctx] for s in starts])
        y = torch.stack([src[s + 1:s + 1 + args.ctx] for s in starts])
        return x, y

    def val_loss():
        model.eval()
        with torch.no_grad():
            x, y = batch_from(val, eval_starts)
            v = loss_fn(model(x).reshape(-1, len(chars)), y.reshape(-1)).item()
        model.train()
        return v

    out = open(args.csv, "w") if (args.csv and rank == 0) else None
    if out:
        out.write("step,train_loss,val_loss\n")
    g_data = torch.Generator().manual_seed(args.seed * 1000 + rank)  # each rank its own data
    t_comm = 0.0
    last = float("nan")
    for step in range(1, args.steps + 1):
        lr = args.lr * min(1.0, step / 50) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(train) - args.ctx - 1, (args.batch,), generator=g_data)
        x, y = batch_from(train, starts)
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model(x).reshape(-1, len(chars)), y.reshape(-1))
        loss.backward()
        t0 = time.perf_counter()
        for p in params:  # average gradients: one float32 allreduce per tensor
            g = p.grad.numpy()
            comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
            g /= size
        lbuf = np.array([loss.item()], dtype=np.float64)
        comm.Allreduce(MPI.IN_PLACE, lbuf, op=MPI.SUM)
        t_comm += time.perf_counter() - t0
        last = float(lbuf[0]) / size
        opt.step()
        line = f"{step},{last:.5f},"
        if step % args.eval_every == 0 or step == args.steps:
            v = val_loss()
            line += f"{v:.5f}"
            if rank == 0:
                print(f"step {step:5d} train_loss {last:.4f} val_loss {v:.4f}", flush=True)
        if out:
            out.write(line + "\n")

    digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in params)).digest()
    h = np.frombuffer(digest[:8], dtype=np.uint64).copy()
    hmax, hmin = np.empty_like(h), np.empty_like(h)
    comm.Allreduce(h, hmax, op=MPI.MAX)
    comm.Allreduce(h, hmin, op=MPI.MIN)
    v = val_loss()
    nparams = sum(p.numel() for p in params)
    status = 0
    if rank == 0:
        print(f"final: val_loss={v:.4f} train_loss={last:.4f} steps={args.steps} "
              f"allreduce_s={t_comm:.2f} ranks={size} params={nparams} "
              f"identical_params={int(hmax[0] == hmin[0])}", flush=True)
        if hmax[0] != hmin[0]:
            print("FAIL: parameters differ between ranks", file=sys.stderr)
            status = 1
    if out:
        out.close()
    sys.exit(comm.bcast(status, root=0))


if __name__ == "__main__":
    main()
