#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Judge a scripts/gpu-check.sh run from its logs and result files.

Passes when: (a) allreduce-check.json is ok; (b) both DDP runs finished,
their losses are finite and agree (mean of the last 20 steps within 5%,
and the plugin run learned as much); and the NCCL_DEBUG=INFO logs of every
plugin run show nangila loaded as net and collNet plugin, NCCL using it, the
collNet connected on both ranks and iallreduce calls made through it, with
no collNet fallback message. Writes a summary and exits 1 on failure.
"""
import argparse
import json
import math
import os
import re
import sys


def log_checks(path):
    text = open(path, errors="replace").read() if os.path.exists(path) else ""
    calls = [int(m) for m in re.findall(r"NET/Nangila collNet rank \d+/\d+ closed: (\d+) calls", text)]
    checks = {
        "net plugin loaded": re.search(r"Loaded net plugin nangila", text) is not None,
        "collnet plugin loaded": re.search(r"Loaded collnet plugin nangila", text) is not None,
        "NCCL uses network nangila": re.search(r"Using network nangila", text) is not None,
        "collNet connected on both ranks":
            len(re.findall(r"NET/Nangila collNet rank \d+/2 connected", text)) >= 2,
        "iallreduce calls through nangila": len(calls) >= 2 and min(calls) > 0,
        "no collNet fallback": re.search(r"Cannot initialize CollNet|disabling CollNet|"
                                         r"using point-to-point network instead", text) is None,
        "no plugin warnings": re.search(r"NCCL WARN NET/Nangila", text) is None,
    }
    return checks, calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--meta", default="")
    a = ap.parse_args()
    d = a.dir
    lines = ["gpu-check " + a.meta]
    ok = True

    def record(name, passed, detail=""):
        nonlocal ok
        ok &= bool(passed)
        lines.append("%-4s %s%s" % ("ok" if passed else "FAIL", name, (": " + detail) if detail else ""))

    ar = os.path.join(d, "allreduce-check.json")
    if os.path.exists(ar):
        rep = json.load(open(ar))
        for r in rep["results"]:
            record("allreduce %s n=%d" % (r["dtype"], r["count"]), r["ok"],
                   "worst %.3f of bound, rel rms %.3g, identical %s" %
                   (r["worst_err_over_bound"], r["rel_rms_err"], r["identical_on_all_ranks"]))
    else:
        record("allreduce check ran", False, "no " + ar)

    for log in ("allreduce-nangila.log", "ddp-nangila.log"):
        checks, calls = log_checks(os.path.join(d, log))
        for name, passed in checks.items():
            record("%s: %s" % (log, name), passed, ("calls per rank %s" % calls) if "calls" in name else "")

    base, plug = os.path.join(d, "ddp-baseline.json"), os.path.join(d, "ddp-nangila.json")
    if os.path.exists(base) and os.path.exists(plug):
        lb, lp = json.load(open(base))["losses"], json.load(open(plug))["losses"]
        finite = all(math.isfinite(x) for x in lb + lp)
        tb, tp = sum(lb[-20:]) / 20, sum(lp[-20:]) / 20
        rel = abs(tp - tb) / max(abs(tb), 1e-12)
        record("ddp losses finite", finite)
        record("ddp final loss agrees", rel <= 0.05,
               "baseline %.4f, nangila %.4f (first %.4f / %.4f), rel diff %.3f" %
               (tb, tp, lb[0], lp[0], rel))
        record("ddp learned with nangila", tp < 0.8 * lp[0], "%.4f -> %.4f" % (lp[0], tp))
        with open(os.path.join(d, "ddp-losses.csv"), "w") as f:
            f.write("step,loss_baseline,loss_nangila\n")
            for i, (x, y) in enumerate(zip(lb, lp)):
                f.write("%d,%.6f,%.6f\n" % (i, x, y))
    else:
        record("ddp runs finished", False)

    lines.append("RESULT: " + ("PASS" if ok else "FAIL"))
    with open(a.summary, "w") as f:
        f.write("\n".join(lines) + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
