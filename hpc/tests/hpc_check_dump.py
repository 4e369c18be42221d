#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""hpc_check_dump.py ORIGINAL DECODED EPS [--rel]

An independent check of `nangila hpc` round trips, written without the
library: the two LAMMPS text dumps must be identical byte for byte, except
that tokens in coordinate columns (x y z, xs ys zs, xu yu zu, xsu ysu zsu) of
atom lines may differ by at most EPS when both parse as numbers. With --rel,
EPS is relative to max - min over the coordinate values of the first snapshot.
Prints the largest error; exits 1 on any violation. Standard library only.
"""
import sys

COORD = {"x", "y", "z", "xs", "ys", "zs", "xu", "yu", "zu", "xsu", "ysu", "zsu"}


def snapshots(data):
    """Yield (lines, coord column indexes) per snapshot; lines keep '\\n'."""
    lines = data.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        start = i
        cols = None
        n = None
        while i < len(lines):
            ln = lines[i]
            i += 1
            if ln.startswith("ITEM: NUMBER OF ATOMS"):
                n = int(lines[i])
            if ln.startswith("ITEM: ATOMS"):
                cols = ln.split()[2:]
                break
        if cols is None or n is None:
            raise SystemExit("not a complete LAMMPS snapshot at line %d" % (start + 1))
        header = lines[start:i]
        atoms = lines[i:i + n]
        i += n
        yield header, atoms, [k for k, c in enumerate(cols) if c in COORD]


def main():
    args = [a for a in sys.argv[1:] if a != "--rel"]
    rel = "--rel" in sys.argv[1:]
    if len(args) != 3:
        raise SystemExit(__doc__)
    a = open(args[0], encoding="latin-1").read()
    b = open(args[1], encoding="latin-1").read()
    eps = float(args[2])
    sa, sb = list(snapshots(a)), list(snapshots(b))
    if len(sa) != len(sb):
        raise SystemExit("FAIL: %d vs %d snapshots" % (len(sa), len(sb)))
    if rel:
        vals = []
        for ln in sa[0][1]:
            toks = ln.split(" ")
            for k in sa[0][2]:
                try:
                    vals.append(float(toks[k]))
                except (ValueError, IndexError):
                    pass
        eps = eps * (max(vals) - min(vals))
    maxerr = 0.0
    ncoord = 0
    for s, ((ha, aa, ca), (hb, ab, _)) in enumerate(zip(sa, sb)):
        if ha != hb:
            raise SystemExit("FAIL: snapshot %d: header differs" % s)
        if len(aa) != len(ab):
            raise SystemExit("FAIL: snapshot %d: atom line count differs" % s)
        for j, (la, lb) in enumerate(zip(aa, ab)):
            if la == lb:
                continue
            ta, tb = la.split(" "), lb.split(" ")
            if len(ta) != len(tb):
                raise SystemExit("FAIL: snapshot %d line %d: token count" % (s, j))
            for k, (x, y) in enumerate(zip(ta, tb)):
                if x == y:
                    continue
                if k not in ca:
                    raise SystemExit("FAIL: snapshot %d line %d: column %d differs: %r %r"
                                     % (s, j, k, x, y))
                end_a, end_b = x.endswith("\n"), y.endswith("\n")
                if end_a != end_b:
                    raise SystemExit("FAIL: snapshot %d line %d: line end" % (s, j))
                err = abs(float(x) - float(y))
                ncoord += 1
                if not err <= eps:
                    raise SystemExit("FAIL: snapshot %d line %d: |%s - %s| = %g > %g"
                                     % (s, j, x.strip(), y.strip(), err, eps))
                maxerr = max(maxerr, err)
    print("check: OK, %d snapshots, %d coordinates changed, max error %.6g <= eps %.6g"
          % (len(sa), ncoord, maxerr, eps))


if __name__ == "__main__":
    main()
