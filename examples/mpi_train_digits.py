#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Data-parallel MLP training on scikit-learn's digits with mpi4py + numpy.

An ordinary data-parallel script: every rank holds the full model, trains
on its shard of each batch, and averages gradients with comm.Allreduce on
float32 buffers, one call per parameter. It knows nothing of Nangila; run it
under mpirun with LD_PRELOAD=libnangila-mpi.so to compress those calls.

    mpirun -np 4 python3 examples/mpi_train_digits.py --epochs 40 --csv loss.csv

Rank 0 prints one line per epoch and a final line
    final: test_accuracy=0.9750 train_loss=0.0123 steps=... allreduce_s=...
and exits non-zero if --min-acc is given and not reached, or if the ranks'
parameters are not bit-identical at the end.
"""
import argparse
import hashlib
import sys
import time

import numpy as np
from mpi4py import MPI
from sklearn.datasets import load_digits


def init_params(rng, sizes):
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w = rng.standard_normal((fan_in, fan_out)).astype(np.float32) * np.float32(
            np.sqrt(2.0 / fan_in))
        params += [w, np.zeros(fan_out, dtype=np.float32)]
    return params


def forward(params, x):
    acts = [x]
    h = x
    nlayers = len(params) // 2
    for i in range(nlayers):
        z = h @ params[2 * i] + params[2 * i + 1]
        h = np.maximum(z, 0) if i < nlayers - 1 else z
        acts.append(h)
    return acts


def loss_and_grads(params, x, y, total_batch):
    """Cross-entropy summed over this rank's samples / the global batch size,
    so that the sum over ranks is the global mean gradient."""
    acts = forward(params, x)
    logits = acts[-1]
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y] + 1e-12).sum() / total_batch
    d = p
    d[np.arange(len(y)), y] -= 1.0
    d /= total_batch
    grads = [None] * len(params)
    nlayers = len(params) // 2
    for i in reversed(range(nlayers)):
        h = acts[i]
        grads[2 * i] = (h.T @ d).astype(np.float32)
        grads[2 * i + 1] = d.sum(axis=0).astype(np.float32)
        if i > 0:
            d = (d @ params[2 * i].T) * (acts[i] > 0)
    return float(loss), grads


def accuracy(params, x, y):
    return float((forward(params, x)[-1].argmax(axis=1) == y).mean())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=3, help="hidden layers (same width)")
    ap.add_argument("--batch", type=int, default=128, help="global batch size")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--csv", help="rank 0 writes epoch,step,train_loss,test_accuracy here")
    ap.add_argument("--min-acc", type=float, help="fail below this final test accuracy")
    args = ap.parse_args()

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(x))
    test, train = perm[:360], perm[360:]
    params = init_params(rng, [64] + [args.hidden] * args.layers + [10])
    velocity = [np.zeros_like(p) for p in params]

    out = open(args.csv, "w") if (args.csv and rank == 0) else None
    if out:
        out.write("epoch,step,train_loss,test_accuracy\n")
    step = 0
    t_comm = 0.0
    last_loss = float("nan")
    for epoch in range(args.epochs):
        order = np.random.default_rng(args.seed * 1000 + epoch).permutation(train)
        lr = args.lr * (0.5 * (1 + np.cos(np.pi * epoch / args.epochs)))  # cosine decay
        for b0 in range(0, len(order) - args.batch + 1, args.batch):
            batch = order[b0:b0 + args.batch]
            mine = batch[rank::size]  # this rank's shard of the global batch
            loss, grads = loss_and_grads(params, x[mine], y[mine], len(batch))
            t0 = time.perf_counter()
            for g in grads:  # one allreduce per parameter, float32, in place
                comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
            lbuf = np.array([loss], dtype=np.float64)
            comm.Allreduce(MPI.IN_PLACE, lbuf, op=MPI.SUM)
            t_comm += time.perf_counter() - t0
            last_loss = float(lbuf[0])
            for p, v, g in zip(params, velocity, grads):
                v *= np.float32(args.momentum)
                v += g
                p -= np.float32(lr) * v
            step += 1
            if out:
                out.write(f"{epoch},{step},{last_loss:.6f},\n")
        acc = accuracy(params, x[test], y[test])
        if out:
            out.write(f"{epoch},{step},,{acc:.6f}\n")
        if rank == 0:
            print(f"epoch {epoch:3d} step {step:5d} loss {last_loss:.4f} test_acc {acc:.4f}",
                  flush=True)

    # Every rank applied the same averaged gradients: parameters must agree bit for bit.
    digest = hashlib.sha256(b"".join(p.tobytes() for p in params)).digest()
    h = np.frombuffer(digest[:8], dtype=np.uint64).copy()
    hmax, hmin = np.empty_like(h), np.empty_like(h)
    comm.Allreduce(h, hmax, op=MPI.MAX)
    comm.Allreduce(h, hmin, op=MPI.MIN)
    acc = accuracy(params, x[test], y[test])
    status = 0
    if rank == 0:
        print(f"final: test_accuracy={acc:.4f} train_loss={last_loss:.4f} steps={step} "
              f"allreduce_s={t_comm:.2f} ranks={size} identical_params={int(hmax[0] == hmin[0])}",
              flush=True)
        if hmax[0] != hmin[0]:
            print("FAIL: parameters differ between ranks", file=sys.stderr)
            status = 1
        if args.min_acc is not None and acc < args.min_acc:
            print(f"FAIL: test accuracy {acc:.4f} below {args.min_acc}", file=sys.stderr)
            status = 1
    if out:
        out.close()
    status = comm.bcast(status, root=0)
    sys.exit(status)


if __name__ == "__main__":
    main()
