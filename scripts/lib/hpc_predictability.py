#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""hpc_predictability.py -- how far can prediction take a coarse LJ dump?

An experiment behind hpc/README.md's note on the every-100 target. For a
LAMMPS text dump (id type x y z, periodic cube, sorted or not) it takes a few
consecutive frame pairs and measures the empirical entropy, in bits per
coordinate, of the residual on the codec's lattice (step = 2 eps * 0.992) for
predictors of each atom's new position:

  previous frame       x(t-1): what the codec's integer predictors reach on
                       diffusive (every-100) dumps
  neighbour drift      x(t-1) + 0.5 * mean displacement of the neighbours
                       within 1.6 sigma, non-causal (all neighbours' new
                       positions) and causal (only atoms earlier in the file)
  cage minimum         the nearest local minimum of the atom's Lennard-Jones
                       energy (epsilon = sigma = 1, cut 2.5) among its
                       neighbours: non-causal (every neighbour at its new
                       position: an upper bound no decoder can use) and
                       causal (earlier atoms at their new, later ones at
                       their old positions: what a decoder could rebuild)

Entropies are order-0 (a histogram of the rounded residuals), so they bound
what a context-free coder of that residual needs; they are an estimate, not
a codec. Runs in a minute on numpy + scipy; slow predictors use every 4th
atom. Usage:

  hpc_predictability.py DUMP [--pairs N] [--eps E]
"""
import argparse
import sys

import numpy as np
from scipy.spatial import cKDTree


def read_frames(path, count):
    frames, box = [], None
    with open(path) as f:
        while len(frames) < count:
            line = f.readline()
            if not line:
                break
            if line.startswith("ITEM: NUMBER"):
                n = int(f.readline())
            elif line.startswith("ITEM: BOX"):
                lo, hi = map(float, f.readline().split()[:2])
                f.readline()
                f.readline()
                box = hi - lo
            elif line.startswith("ITEM: ATOMS"):
                cols = line.split()[2:]
                ix, iid = cols.index("x"), cols.index("id")
                a = np.loadtxt([f.readline() for _ in range(n)])
                a = a[np.argsort(a[:, iid])]
                frames.append(a[:, ix:ix + 3].copy())
    return frames, box


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dump")
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--eps", type=float, default=1e-3)
    o = ap.parse_args()
    frames, L = read_frames(o.dump, o.pairs + 1)
    step = 2 * o.eps * 0.992

    def minimage(d):
        return d - L * np.round(d / L)

    def entropy(r):
        q = np.round(np.concatenate(r).ravel() / step).astype(np.int64)
        _, c = np.unique(q, return_counts=True)
        p = c / c.sum()
        return float(-(p * np.log2(p)).sum()), float(np.sqrt((np.concatenate(r) ** 2).mean()))

    def lj(xi, nb):
        d = minimage(xi[None, :] - nb)
        r2 = (d * d).sum(1)
        m = r2 < 6.25
        d, r2 = d[m], r2[m]
        i6 = 1.0 / r2 ** 3
        f = (48 * i6 * i6 - 24 * i6) / r2  # force / r
        return (f[:, None] * d).sum(0), float((4 * (i6 * i6 - i6)).sum())

    def descend(x, nb, iters=60):
        # steepest descent with an adaptive step, moves capped at 0.05 sigma
        s = 0.002
        F, E = lj(x, nb)
        for _ in range(iters):
            dx = F * s
            nrm = np.linalg.norm(dx)
            if nrm > 0.05:
                dx *= 0.05 / nrm
            Fn, En = lj(x + dx, nb)
            if En < E:
                x, F, E = x + dx, Fn, En
                s *= 1.2
            else:
                s *= 0.5
        return x

    res = {k: [] for k in ("previous frame", "neighbour drift, non-causal",
                           "neighbour drift, causal", "cage minimum, non-causal",
                           "cage minimum, causal")}
    for t in range(len(frames) - 1):
        xo, xn = frames[t], frames[t + 1]
        d = minimage(xn - xo)
        n = len(xo)
        told = cKDTree(np.mod(xo, L), boxsize=L)
        tnew = cKDTree(np.mod(xn, L), boxsize=L)
        near = told.query_ball_point(np.mod(xo, L), 1.6)
        drift_all, drift_causal = np.zeros_like(d), np.zeros_like(d)
        for i in range(n):
            js = [j for j in near[i] if j != i]
            drift_all[i] = d[js].mean(0) if js else 0
            jc = [j for j in js if j < i]
            drift_causal[i] = d[jc].mean(0) if jc else 0
        res["previous frame"].append(d)
        res["neighbour drift, non-causal"].append(d - 0.5 * drift_all)
        res["neighbour drift, causal"].append(d - 0.5 * drift_causal)
        ra, rc = [], []
        for i in range(0, n, 4):
            jn = [j for j in tnew.query_ball_point(np.mod(xo[i], L), 3.2) if j != i]
            ra.append(minimage(xn[i] - descend(xo[i] + 0.5 * drift_all[i], xn[jn])))
            jo = [j for j in told.query_ball_point(np.mod(xo[i], L), 3.2) if j != i]
            both = sorted(set(jn) | set(jo))
            mixed = np.array([xn[j] if j < i else xo[j] for j in both])
            rc.append(minimage(xn[i] - descend(xo[i] + drift_causal[i], mixed)))
        res["cage minimum, non-causal"].append(np.array(ra))
        res["cage minimum, causal"].append(np.array(rc))
        print("pair %d/%d done" % (t + 1, len(frames) - 1), file=sys.stderr, flush=True)
    print("%s: %d frame pairs, %d atoms, box %.4g, eps %g (lattice step %.4g)" %
          (o.dump, len(frames) - 1, len(frames[0]), L, o.eps, step))
    base = None
    for k, v in res.items():
        h, rms = entropy(v)
        base = h if base is None else base
        print("  %-28s rms %.4f sigma/axis  %.3f bit/value  (%+.3f)  -> at most %.2fx vs float32" %
              (k, rms, h, h - base, 32.0 / h))


if __name__ == "__main__":
    main()
