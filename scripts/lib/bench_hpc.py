#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""bench_hpc.py -- the comparison behind scripts/bench-hpc.sh (run that).

For each trajectory (a LAMMPS text dump) and each eps in 1e-2, 1e-3, 1e-4,
absolute and range-relative, this runs in one go:

  nangila-cli-L3/L2/L1/L0  `nangila hpc compress` on the text dump (container
                         with ids, types, headers), decompress, `verify`
                         (levels: --best, default, --fast, --fastest)
  nangila-lib-L3/L2/L1/L0  `nangila hpc bench`: the codec on float32 xyz
  zfp                    Debian `zfp -a eps` (fixed accuracy) on float32 xyz,
                         one 2-D array [frames][atoms] per axis
and once per file the lossless baselines zstd -3, zstd -19 and xz -9 on the
text dump and on float32 xyz.

Ratios are baseline bytes / output bytes, output headers included. Speeds are
MB of float32 xyz (or of the text dump, for text inputs) per CPU second of one
process, best of --repeat. The max error is what each tool reached: read back
and compared with numpy (float32 tools), or by `nangila hpc verify`
(containers). Writes results.csv, summary.md and PNG plots to --out.

--levels and --no-baselines run a part of this (say, one level after a change
to it); with --merge those rows replace their namesakes (same file, tool,
input, mode and eps) in --out/results.csv and every other row stays.
"""
import argparse
import csv
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

EPSS = [1e-2, 1e-3, 1e-4]
LEVELS = ((3, ["--best"]), (2, []), (1, ["--fast"]), (0, ["--fastest"]))


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd, repeat=1, stdout_path=None, capture=False):
    """Run cmd (best of repeat); return (cpu seconds, stdout text)."""
    best = None
    out = ""
    for _ in range(repeat):
        c0 = cpu_children()
        if stdout_path is not None:
            with open(stdout_path, "wb") as f:
                p = subprocess.run(cmd, stdout=f, stderr=subprocess.PIPE)
        else:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        c1 = cpu_children()
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), p.returncode,
                                                      p.stderr.decode(errors="replace")))
        if capture and stdout_path is None:
            out = p.stdout.decode()
        t = c1 - c0
        best = t if best is None else min(best, t)
    return max(best, 1e-6), out


def kv(line):
    return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nangila", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--merge", action="store_true",
                    help="replace only the rows run now in --out/results.csv, keep the others")
    ap.add_argument("--levels", default="3,2,1,0", help="Nangila levels to run, e.g. 3 or 2,0")
    ap.add_argument("--no-baselines", action="store_true", help="skip zstd, xz and ZFP")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    levels = [lv for lv in LEVELS if str(lv[0]) in a.levels.split(",")]
    nangila = os.path.abspath(a.nangila)
    os.makedirs(a.out, exist_ok=True)
    rows = []
    load0 = os.getloadavg()
    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="bench-hpc-")
    try:
        for name in a.files:
            rows += bench_file(nangila, os.path.join(a.data, name + ".dump"), name, tmp, a.repeat,
                               levels, not a.no_baselines)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    load1 = os.getloadavg()
    machine = "%s, %d CPUs, %s; load average %.1f at start, %.1f at end; %.0f s" % (
        cpu_model(), os.cpu_count(), platform.platform(), load0[0], load1[0],
        time.time() - t_start)
    if a.merge:
        what = ", ".join(a.files) + ("" if a.levels == "3,2,1,0" and not a.no_baselines else
                                     " (levels %s%s)" % (a.levels, ", no baselines" * a.no_baselines))
        rows, machine = merge(a.out, rows, what, machine)
    write_outputs(rows, a.out, machine)
    print("wrote %s/results.csv, summary.md and plots (%s)" % (a.out, machine))


FIELDS = ["file", "frames", "atoms", "tool", "input", "mode", "eps", "eps_abs", "bytes",
          "ratio_vs_text", "ratio_vs_f32", "comp_MBps", "decomp_MBps", "max_err", "within_eps"]


def merge(out, rows, what, machine):
    """The rows of out/results.csv with their namesakes in `rows` replaced
    (a new row goes after the last old row of its file), and the summary's
    machine line saying what was re-run."""
    old = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    for r in old:
        r["eps"] = float(r["eps"])

    def key(r):
        return (r["file"], r["tool"], r["input"], r["mode"], float(r["eps"]))

    new = {key(n): n for n in rows}
    merged = [new.pop(key(r), r) for r in old]
    for n in rows:
        if key(n) in new:  # not in the old file: after its file's last row
            last = max((i for i, r in enumerate(merged) if r["file"] == n["file"]), default=None)
            merged.insert(len(merged) if last is None else last + 1, n)
            del new[key(n)]
    prev = ""
    summary = os.path.join(out, "summary.md")
    if os.path.exists(summary):
        for line in open(summary):
            if line.startswith("Machine: "):
                prev = line[len("Machine: "):].split(". Speeds are")[0]
    prev = drop_replaced_notes(prev, what)
    return merged, "%s; rows of %s re-run later (%s)" % (prev, what, machine)


def drop_replaced_notes(prev, what):
    """The machine line `prev` without the notes of earlier re-runs whose rows
    the re-run `what` ("FILES" or "FILES (levels ...)") has replaced again:
    same level spec, files among this run's."""
    def split(w):
        m = re.match(r"(.*?)( \(levels .*\))?$", w)
        return set(m.group(1).split(", ")), m.group(2) or ""
    files, spec = split(what)
    cut = prev.find("; rows of ")
    head = prev if cut < 0 else prev[:cut]
    # each note ends at the parenthesis that closes its machine part
    kept, rest = [], prev[len(head):]
    while rest:
        j = rest.index(" re-run later (") + len(" re-run later (") - 1
        depth = 0
        for end in range(j, len(rest)):
            depth += {"(": 1, ")": -1}.get(rest[end], 0)
            if depth == 0:
                break
        note = rest[:end + 1]
        nfiles, nspec = split(note[len("; rows of "):note.index(" re-run later (")])
        if not (nspec == spec and nfiles <= files):
            kept.append(note)
        rest = rest[end + 1:]
    return head + "".join(kept)


def write_outputs(rows, out, machine):
    with open(os.path.join(out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in FIELDS})
    write_summary(rows, out, machine)
    plot(rows, out)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def bench_file(nangila, dump, name, tmp, repeat, levels, baselines):
    rows = []
    text_size = os.path.getsize(dump)
    f32 = os.path.join(tmp, "xyz.f32")
    _, out = run([nangila, "hpc", "extract", dump, f32], capture=True)
    frames, atoms = (int(v) for v in out.split())
    xyz = np.fromfile(f32, dtype=np.float32).reshape(frames, atoms, 3)
    f32_size = xyz.nbytes
    rng = float(xyz[0].max()) - float(xyz[0].min())
    axes = []
    for ax in range(3):
        p = os.path.join(tmp, "axis%d.f32" % ax)
        np.ascontiguousarray(xyz[:, :, ax]).tofile(p)
        axes.append(p)
    mb_text, mb_f32 = text_size / 1e6, f32_size / 1e6
    base = {"file": name, "frames": frames, "atoms": atoms}
    print("%s: %d frames x %d atoms, text %d bytes, float32 %d bytes" %
          (name, frames, atoms, text_size, f32_size), flush=True)

    def row(tool, inp, mode, eps, eps_abs, nbytes, ct, dt, err):
        mb = mb_text if inp == "text" else mb_f32
        r = dict(base, tool=tool, input=inp, mode=mode, eps=eps, eps_abs="%.6g" % eps_abs,
                 bytes=nbytes, ratio_vs_text="%.3f" % (text_size / nbytes),
                 ratio_vs_f32="%.3f" % (f32_size / nbytes),
                 comp_MBps="%.1f" % (mb / ct) if ct else "",
                 decomp_MBps="%.1f" % (mb / dt) if dt else "",
                 max_err="%.6g" % err, within_eps=int(err <= eps_abs))
        rows.append(r)
        print("  %-15s %-4s %-8s eps %-6g ratio %7.2fx text %6.2fx f32  comp %7s  decomp %7s "
              "MB/s  max err %.3g" % (tool, inp, mode, eps, text_size / nbytes,
                                      f32_size / nbytes, r["comp_MBps"], r["decomp_MBps"], err),
              flush=True)

    # lossless baselines
    for inp, src in (("text", dump), ("f32", f32)) if baselines else ():
        for tool, comp, decomp in (
                ("zstd-3", ["zstd", "-3", "-q", "-f", "-c"], ["zstd", "-d", "-q", "-c"]),
                ("zstd-19", ["zstd", "-19", "-q", "-f", "-c"], ["zstd", "-d", "-q", "-c"]),
                ("xz-9", ["xz", "-9", "-c"], ["xz", "-d", "-c"])):
            z = os.path.join(tmp, "lossless.z")
            back = os.path.join(tmp, "lossless.back")
            ct, _ = run(comp + [src], repeat, stdout_path=z)
            dt, _ = run(decomp + [z], repeat, stdout_path=back)
            same = open(src, "rb").read() == open(back, "rb").read()
            row(tool, inp, "lossless", 0, 0, os.path.getsize(z), ct, dt, 0.0 if same else 1e300)

    for mode in ("abs", "rel"):
        for eps in EPSS:
            eps_abs = eps if mode == "abs" else eps * rng
            rel = ["--rel"] if mode == "rel" else []
            # Nangila CLI on the text dump
            for level, fast in levels:
                c = os.path.join(tmp, "c.nhd")
                d = os.path.join(tmp, "d.dump")
                ct, _ = run([nangila, "hpc", "compress", "--eps", repr(eps)] + rel + fast +
                            [dump, c], repeat)
                dt, _ = run([nangila, "hpc", "decompress", c, d], repeat)
                _, vout = run([nangila, "hpc", "verify", dump, d, "--eps", repr(eps)] + rel,
                              capture=True)
                m = re.search(r"within eps ([0-9.e+-]+) \(max error ([0-9.e+-]+)\)", vout)
                eabs, err = float(m.group(1)), float(m.group(2))
                row("nangila-cli-L%d" % level, "text", mode, eps, eabs, os.path.getsize(c), ct,
                    dt, err)
            # Nangila library on float32 xyz
            for level, fast in levels:
                _, out = run([nangila, "hpc", "bench", "--eps", repr(eps), "--repeat",
                              str(max(repeat, 2))] + rel + fast + [dump], capture=True)
                k = kv(out)
                row("nangila-lib-L%d" % level, "f32", mode, eps, float(k["eps"]), int(k["bytes"]),
                    mb_f32 / float(k["enc_MBps"]), mb_f32 / float(k["dec_MBps"]),
                    float(k["max_err"]))
            # ZFP, fixed accuracy, per axis [frames][atoms]
            if not baselines:
                continue
            nbytes, ct, dt, err = 0, 0.0, 0.0, 0.0
            for ax, p in enumerate(axes):
                z = os.path.join(tmp, "axis.zfp")
                back = os.path.join(tmp, "axis.back")
                t, _ = run(["zfp", "-q", "-h", "-f", "-2", str(atoms), str(frames), "-a",
                            repr(eps_abs), "-i", p, "-z", z], repeat)
                ct += t
                t, _ = run(["zfp", "-q", "-h", "-z", z, "-o", back], repeat)
                dt += t
                nbytes += os.path.getsize(z)
                orig = np.fromfile(p, dtype=np.float32).astype(np.float64)
                dec = np.fromfile(back, dtype=np.float32).astype(np.float64)
                err = max(err, float(np.max(np.abs(orig - dec))))
            row("zfp", "f32", mode, eps, eps_abs, nbytes, ct, dt, err)
    return rows


def write_summary(rows, out, machine):
    lines = ["# hpc benchmark: generated by scripts/bench-hpc.sh", "",
             "Machine: " + machine + ". Speeds are CPU time of one process; the load average includes "
             "the benchmark itself, and timings taken while other work runs are inflated.", "",
             "Ratios: baseline bytes / output bytes. `text` tools compress the whole dump "
             "(ids, types, headers included); `f32` tools only the float32 xyz array.", ""]
    files = []
    for r in rows:
        if r["file"] not in files:
            files.append(r["file"])
    for mode in ("abs", "rel"):
        for eps in EPSS:
            lines += ["## %s eps = %g" % ("absolute" if mode == "abs" else "range-relative", eps),
                      "", "| file | tool | input | eps (abs) | ratio vs text | ratio vs f32 | "
                      "comp MB/s | decomp MB/s | max error |", "|---|---|---|---|---|---|---|---|---|"]
            for f in files:
                for r in rows:
                    if r["file"] == f and ((r["mode"] == mode and r["eps"] == eps) or
                                           (r["mode"] == "lossless" and r["tool"] == "zstd-19")):
                        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                            f, r["tool"], r["input"], r["eps_abs"], r["ratio_vs_text"],
                            r["ratio_vs_f32"], r["comp_MBps"], r["decomp_MBps"], r["max_err"]))
            lines.append("")
    lines += ["## lossless baselines", "", "| file | tool | input | ratio vs text | ratio vs f32 |"
              " comp MB/s | decomp MB/s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["mode"] == "lossless":
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                r["file"], r["tool"], r["input"], r["ratio_vs_text"], r["ratio_vs_f32"],
                r["comp_MBps"], r["decomp_MBps"]))
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(rows, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for r in rows:
        if r["file"] not in files:
            files.append(r["file"])
    tools = [("nangila-lib-L3", "Nangila L3 (--best)"), ("nangila-lib-L2", "Nangila L2"),
             ("nangila-lib-L1", "Nangila L1 (--fast)"),
             ("nangila-lib-L0", "Nangila L0 (--fastest)"), ("zfp", "ZFP -a eps"), ("zstd-19", "zstd -19"), ("xz-9", "xz -9")]

    def pick(f, tool, mode, eps):
        for r in rows:
            if r["file"] == f and r["tool"] == tool and r["input"] == "f32" and (
                    r["mode"] == "lossless" or (r["mode"] == mode and r["eps"] == eps)):
                return r
        return None

    for mode in ("abs", "rel"):
        fig, axs = plt.subplots(1, 3, figsize=(16, 4.8), sharey=False)
        for ax, eps in zip(axs, EPSS):
            width = 0.8 / len(tools)
            for i, (tool, label) in enumerate(tools):
                vals = []
                for f in files:
                    r = pick(f, tool, mode, eps)
                    vals.append(float(r["ratio_vs_f32"]) if r else 0)
                ax.bar(np.arange(len(files)) + i * width, vals, width, label=label)
            ax.set_xticks(np.arange(len(files)) + 0.4 - width / 2)
            ax.set_xticklabels(files, rotation=30, ha="right")
            ax.set_title("%s eps %g" % ("absolute" if mode == "abs" else "relative", eps))
            ax.set_ylabel("ratio vs float32 xyz")
            ax.set_yscale("log")
            ax.grid(axis="y", alpha=0.3)
        handles, labels = axs[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(tools), fontsize=9)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        fig.savefig(os.path.join(out, "hpc-ratio-%s.png" % mode), dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 5))
    marks = {"nangila-lib-L3": "*", "nangila-lib-L2": "o", "nangila-lib-L1": "s",
             "nangila-lib-L0": "P", "zfp": "^",
             "zstd-3": "v",
             "zstd-19": "D", "xz-9": "x"}
    for tool, mk in marks.items():
        xs, ys = [], []
        for r in rows:
            if r["tool"] == tool and r["input"] == "f32" and r["comp_MBps"] and (
                    r["mode"] == "lossless" or (r["mode"] == "abs" and r["eps"] == 1e-3)):
                xs.append(float(r["ratio_vs_f32"]))
                ys.append(float(r["comp_MBps"]))
        ax.scatter(xs, ys, marker=mk, label=tool)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("ratio vs float32 xyz (abs eps 1e-3; lossless tools: eps 0)")
    ax.set_ylabel("compress MB/s of float32 xyz (one core, CPU time)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "hpc-speed.png"), dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
