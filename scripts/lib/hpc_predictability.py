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
  learned cage         what the codec's level 3 does (FORMAT.md §6.8), with
                       no potential assumed: potentials of mean force
                       -ln g(r) tabulated on r^2 (the previous frame's pairs
                       for neighbours at new positions, (new, old) pairs for
                       those at old ones), 8 capped gradient steps, causal
                       as above, then the least-squares scale of the move

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

    def pmf_table(a, b, rc, nk=64):
        # -ln g(r^2) of the pairs (a_i, b_j), i != j, on [0, rc^2); knots
        # between bins, 0 at rc
        t = cKDTree(np.mod(b, L), boxsize=L)
        r2 = []
        for i in range(len(a)):
            js = [j for j in t.query_ball_point(np.mod(a[i], L), rc) if j != i]
            r2.append((minimage(b[js] - a[i]) ** 2).sum(1) / (rc * rc))
        h, _ = np.histogram(np.concatenate(r2), bins=nk, range=(0, 1))
        edges = np.sqrt(np.arange(nk + 1) / nk)
        ideal = len(a) * len(b) / (L / rc) ** 3 * 4 / 3 * np.pi * np.diff(edges ** 3)
        wb = np.full(nk, np.nan)
        ok = h >= 8
        wb[ok] = -np.log(h[ok] / ideal[ok])
        first = int(np.argmax(ok))
        for b in range(first - 1, -1, -1):
            wb[b] = wb[b + 1] + 2.0
        for b in range(first + 1, nk):
            if np.isnan(wb[b]):
                wb[b] = wb[b - 1]
        w = np.empty(nk + 1)
        w[0] = wb[0] + 0.5 * (wb[0] - wb[1])
        w[1:nk] = 0.5 * (wb[:-1] + wb[1:])
        w[nk] = 0
        return w

    def learned_cage(xo, xn, idx, rc, nk=64, iters=8):
        # every atom of idx at once, neighbours within 1.3 rc (units of rc)
        w = pmf_table(xo, xo, rc, nk)
        v = pmf_table(xn, xo, rc, nk)
        told = cKDTree(np.mod(xo, L), boxsize=L)
        tnew = cKDTree(np.mod(xn, L), boxsize=L)
        sets = ([], [])  # neighbours at new positions, at old ones
        for i in idx:
            jn = [j for j in tnew.query_ball_point(np.mod(xo[i], L), 1.8 * rc) if j < i]
            jo = [j for j in told.query_ball_point(np.mod(xo[i], L), 1.8 * rc) if j > i]
            for s, pos in ((0, xn[jn]), (1, xo[jo])):
                u = minimage(pos - xo[i]) / rc
                sets[s].append(u[(u * u).sum(1) < 1.69])

        def padded(lists):
            nb = np.full((len(idx), max(1, max(len(u) for u in lists)), 3), 1e6)
            for k, u in enumerate(lists):
                nb[k, :len(u)] = u
            return nb
        nbs = (padded(sets[0]), padded(sets[1]))

        def energy(x):
            en, g = 0, 0
            for nb, tab in zip(nbs, (w, v)):
                e = x[:, None, :] - nb
                r2 = (e * e).sum(2)
                inside = r2 < 1
                t = np.where(inside, r2 * nk, 0)
                i = np.minimum(t.astype(int), nk - 1)
                dw = tab[i + 1] - tab[i]
                en = en + np.where(inside, tab[i] + (t - i) * dw, 0).sum(1)
                g = g + (np.where(inside, 2 * nk * dw, 0)[:, :, None] * e).sum(1)
            return en, g

        x = np.zeros((len(idx), 3))
        s = np.full(len(idx), 0.0016)
        E, G = energy(x)
        for _ in range(iters):
            d = -G * s[:, None]
            n = np.linalg.norm(d, axis=1)
            d *= np.where(n > 0.05, 0.05 / np.maximum(n, 1e-300), 1.0)[:, None]
            xn_ = x + d
            En, Gn = energy(xn_)
            ok = (En < E) & ((xn_ * xn_).sum(1) <= 0.09)
            x[ok], E[ok], G[ok] = xn_[ok], En[ok], Gn[ok]
            s = np.where(ok, 1.2 * s, 0.5 * s)
        move = x * rc
        true = minimage(xn[idx] - xo[idx])
        lam = (move * true).sum() / (move * move).sum()
        return true - lam * move

    res = {k: [] for k in ("previous frame", "neighbour drift, non-causal",
                           "neighbour drift, causal", "cage minimum, non-causal",
                           "cage minimum, causal", "learned cage, causal (level 3)")}
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
        # the codec's table range: 20 neighbours at this density
        rcut = (20 * 3 / (4 * np.pi * n / L ** 3)) ** (1 / 3)
        res["learned cage, causal (level 3)"].append(learned_cage(xo, xn, np.arange(0, n, 4), rcut))
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
