#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Judge a scripts/gpu-check.sh run from its logs and result files.

Passes when: (0) the plugin's device tests under the mock NCCL passed on
the GPU; (a) allreduce-check.json is ok; (b) both DDP runs finished, their
losses are finite and agree (mean of the last 20 steps within 5%, and the
plugin run learned as much); (c) and (d) the same with GPU Direct
(allreduce-check-gdr.json, ddp-nangila-gdr.json); and the NCCL_DEBUG=INFO
logs of every plugin run show nangila loaded as net and collNet plugin, NCCL
using it, the collNet connected on both ranks and iallreduce calls made
through it, with no collNet fallback message. The host-memory runs must show
no call on GPU memory; the GPU Direct runs must show NCCL's GDRDMA collNet
connections, the plugin's "compressing on the GPU (cuda)" line and calls on
GPU memory on both ranks. Writes a summary and exits 1 on failure.
"""
import argparse
import json
import math
import os
import re
import sys


def log_checks(path, gdr):
    text = open(path, errors="replace").read() if os.path.exists(path) else ""
    closed = re.findall(r"NET/Nangila collNet rank \d+/\d+ closed: (\d+) calls "
                        r"\((\d+) exact, (\d+) on GPU memory\)", text)
    calls = [int(c) for c, _, _ in closed]
    on_gpu = [int(g) for _, _, g in closed]
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
    if gdr:
        checks["NCCL connects the collNet with GPU Direct"] = \
            re.search(r"via COLLNET/nangila/\d+/GDRDMA", text) is not None
        checks["plugin codes on the GPU"] = \
            len(re.findall(r"NET/Nangila collNet rank \d+/2: device memory on GPU \d+; "
                           r"compressing on the GPU \(cuda\)", text)) >= 2
        checks["calls on GPU memory on both ranks"] = len(on_gpu) >= 2 and min(on_gpu) > 0
    else:
        checks["host memory only (GPU Direct off)"] = len(on_gpu) >= 2 and max(on_gpu) == 0
    return checks, calls, on_gpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--summary", required=True)
    ap.add_argument("--meta", default="")
    ap.add_argument("--device-tests", default="")
    a = ap.parse_args()
    d = a.dir
    lines = ["gpu-check " + a.meta]
    ok = True

    def record(name, passed, detail=""):
        nonlocal ok
        ok &= bool(passed)
        lines.append("%-4s %s%s" % ("ok" if passed else "FAIL", name, (": " + detail) if detail else ""))

    if a.device_tests:
        text = open(a.device_tests, errors="replace").read() if os.path.exists(a.device_tests) else ""
        m = re.search(r"^Ok:\s+(\d+)", text, re.M)
        bad = re.search(r"^(Fail|Unexpected Pass|Timeout):\s+[1-9]", text, re.M) or "SKIP" in text
        record("plugin device tests on the GPU (mock NCCL)", m is not None and int(m.group(1)) > 0
               and not bad, "%s passed" % (m.group(1) if m else "none"))

    for name, mem in (("allreduce-check.json", "host memory"),
                      ("allreduce-check-gdr.json", "GPU Direct")):
        ar = os.path.join(d, name)
        if os.path.exists(ar):
            rep = json.load(open(ar))
            for r in rep["results"]:
                record("allreduce (%s) %s n=%d" % (mem, r["dtype"], r["count"]), r["ok"],
                       "worst %.3f of bound, rel rms %.3g, identical %s" %
                       (r["worst_err_over_bound"], r["rel_rms_err"], r["identical_on_all_ranks"]))
        else:
            record("allreduce check ran (%s)" % mem, False, "no " + ar)

    for log, gdr in (("allreduce-nangila.log", False), ("ddp-nangila.log", False),
                     ("allreduce-nangila-gdr.log", True), ("ddp-nangila-gdr.log", True)):
        checks, calls, on_gpu = log_checks(os.path.join(d, log), gdr)
        for name, passed in checks.items():
            detail = ""
            if "calls" in name or "memory" in name:
                detail = "calls per rank %s, on GPU memory %s" % (calls, on_gpu)
            record("%s: %s" % (log, name), passed, detail)

    base = os.path.join(d, "ddp-baseline.json")
    runs = [(os.path.join(d, "ddp-nangila.json"), "host memory"),
            (os.path.join(d, "ddp-nangila-gdr.json"), "GPU Direct")]
    if os.path.exists(base) and all(os.path.exists(p) for p, _ in runs):
        lb = json.load(open(base))["losses"]
        cols = [json.load(open(p))["losses"] for p, _ in runs]
        tb = sum(lb[-20:]) / 20
        for (_, mem), lp in zip(runs, cols):
            finite = all(math.isfinite(x) for x in lb + lp)
            tp = sum(lp[-20:]) / 20
            rel = abs(tp - tb) / max(abs(tb), 1e-12)
            record("ddp (%s) losses finite" % mem, finite)
            record("ddp (%s) final loss agrees" % mem, rel <= 0.05,
                   "baseline %.4f, nangila %.4f (first %.4f / %.4f), rel diff %.3f" %
                   (tb, tp, lb[0], lp[0], rel))
            record("ddp (%s) learned with nangila" % mem, tp < 0.8 * lp[0],
                   "%.4f -> %.4f" % (lp[0], tp))
        with open(os.path.join(d, "ddp-losses.csv"), "w") as f:
            f.write("step,loss_baseline,loss_nangila,loss_nangila_gdr\n")
            for i, (x, y, z) in enumerate(zip(lb, cols[0], cols[1])):
                f.write("%d,%.6f,%.6f,%.6f\n" % (i, x, y, z))
    else:
        record("ddp runs finished", False)

    lines.append("RESULT: " + ("PASS" if ok else "FAIL"))
    with open(a.summary, "w") as f:
        f.write("\n".join(lines) + "\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
