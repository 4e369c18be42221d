#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Independent checker for the twin broker tests (standard library only).

  twin_check.py gen --rows N --out IN.csv [--seed S] [--f32]
      A test stream: column `idx` (the sample number, sent losslessly so
      rows can be matched after gaps), smooth and noisy signals, a step,
      and a column with nan, inf and -inf now and then.

  twin_check.py check --input IN.csv --output OUT.csv (--eps E | --eps-file F)
                      [--rel] [--f32] [--index idx] [--expect-all] [--json F]
      Every row of OUT must be a row of IN (matched by the index column, or
      row by row without one), in order, with every value within its bound
      (|out - in| <= eps, or <= eps * |in| with --rel) and nan/inf kept
      exactly. Prints what it checked; exits 1 on any violation.
"""
import argparse
import json
import math
import random
import struct
import sys


def to_f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def gen(args):
    rnd = random.Random(args.seed)
    names = ["idx", "vib", "temp", "step", "special", "noise"]
    with open(args.out, "w") as f:
        f.write(",".join(names) + "\n")
        temp = 40.0
        for i in range(args.rows):
            t = i / 1000.0
            temp += (70.0 - temp) * 0.0005 + rnd.gauss(0, 0.002)
            vib = 2.0 * math.sin(2 * math.pi * 29.5 * t) + 0.6 * math.sin(2 * math.pi * 59 * t)
            vib += rnd.gauss(0, 0.05)
            step = 100.0 if (i // 250) % 2 else -3.5
            if i % 97 == 13:
                special = float("nan")
            elif i % 211 == 7:
                special = float("inf")
            elif i % 307 == 5:
                special = float("-inf")
            else:
                special = 1e3 * math.cos(t)
            noise = rnd.uniform(-1e6, 1e6)
            row = [float(i), vib, temp, step, special, noise]
            if args.f32:
                row = [to_f32(v) for v in row]
                f.write(",".join(fmt(v, "%.9g") for v in row) + "\n")
            else:
                f.write(",".join(fmt(v, "%.17g") for v in row) + "\n")


def fmt(v, spec):
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return spec % v


def read_csv(path, f32):
    with open(path) as f:
        header = f.readline().rstrip("\r\n")
        rows = []
        for n, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            vals = [float(x) for x in line.split(",")]
            if f32:
                vals = [to_f32(v) for v in vals]
            rows.append(vals)
    return header, rows


def check(args):
    hin, rin = read_csv(args.input, args.f32)
    hout, rout = read_csv(args.output, args.f32)
    problems = []
    if hin != hout:
        problems.append("header differs: %r vs %r" % (hin, hout))
    names = hin.split(",")
    nch = len(names)
    if args.eps_file:
        with open(args.eps_file) as f:
            eps = [float(x) for x in f.read().replace(",", " ").split()]
    else:
        eps = [args.eps] * nch
    if len(eps) != nch:
        problems.append("%d bounds for %d channels" % (len(eps), nch))
        eps = (eps + [0.0] * nch)[:nch]
    index = names.index(args.index) if args.index in names else None
    violations = 0
    max_err = 0.0
    last = -1
    matched = []
    for k, row in enumerate(rout):
        if len(row) != nch:
            problems.append("output row %d has %d values" % (k + 1, len(row)))
            continue
        if index is not None:
            i = row[index]
            if not (i == int(i) and 0 <= i < len(rin)):
                problems.append("output row %d: index %r is not a sample number" % (k + 1, i))
                continue
            i = int(i)
        else:
            i = k
            if i >= len(rin):
                problems.append("more output rows than input rows")
                break
        if i <= last:
            problems.append("output row %d: sample %d after sample %d (order)" % (k + 1, i, last))
        last = i
        matched.append(i)
        for c in range(nch):
            x, y = rin[i][c], row[c]
            if math.isnan(x) or math.isinf(x) or eps[c] == 0:
                ok = (math.isnan(x) and math.isnan(y)) or x == y
                if ok and x == 0 and eps[c] == 0:
                    ok = math.copysign(1, x) == math.copysign(1, y)
            else:
                err = abs(y - x)
                lim = eps[c] * abs(x) if args.rel else eps[c]
                ok = err <= lim
                if math.isfinite(err):
                    max_err = max(max_err, err)
            if not ok:
                violations += 1
                if violations <= 10:
                    problems.append(
                        "sample %d channel %s: in %r out %r (eps %g%s)"
                        % (i, names[c], x, y, eps[c], " rel" if args.rel else "")
                    )
    missing = len(rin) - len(set(matched))
    if args.expect_all and missing:
        problems.append("%d input samples missing from the output" % missing)
    summary = {
        "input_rows": len(rin),
        "output_rows": len(rout),
        "missing_rows": missing,
        "violations": violations,
        "max_err": max_err,
        "problems": len(problems),
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f)
    print("twin_check: %d of %d samples present, %d missing, max error %.3g, %d violations"
          % (len(matched), len(rin), missing, max_err, violations))
    for p in problems[:20]:
        print("twin_check: " + p)
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--rows", type=int, required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--f32", action="store_true")
    c = sub.add_parser("check")
    c.add_argument("--input", required=True)
    c.add_argument("--output", required=True)
    c.add_argument("--eps", type=float, default=0.0)
    c.add_argument("--eps-file")
    c.add_argument("--rel", action="store_true")
    c.add_argument("--f32", action="store_true")
    c.add_argument("--index", default="idx")
    c.add_argument("--expect-all", action="store_true")
    c.add_argument("--json")
    args = ap.parse_args()
    if args.cmd == "gen":
        gen(args)
        return 0
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
