# SPDX-License-Identifier: Apache-2.0
"""scripts/lib/bench_twin.py -- the twin benchmark (run by scripts/bench-twin.sh).

Streams: the rotor simulator (64 channels, 1 kHz), the MIT-BIH ECG record
that Debian's python3-scipy ships (scipy.misc.electrocardiogram, 360 Hz),
and the Mauna Loa weekly CO2 record that python3-statsmodels ships (with its
missing weeks as NaN). On the same float64 arrays, in one run:

  codec table (verification/twin/bench.csv, ratio.png)
    nangila twin, messages of 1 and of 64 samples, at eps = 1e-2, 1e-3, 1e-4
    of each channel's range and eps = 0; SZ3 (pysz, ABS) and ZFP (zfpy,
    fixed accuracy) per channel at the same eps, ZFP reversible at 0;
    lossless zstd -3 / -19 (whole array) and pcodec (per channel).
    Ratio against raw float64 and float32, compress / decompress MB/s of
    float64 input on one core (process CPU time, best of --repeat), the
    largest error reached (as a fraction of eps) and whether NaN survived.
  broker table (verification/twin/broker.csv, broker.png)
    the rotor stream in real time through a fresh mosquitto per run: raw
    float64 samples vs nangila twin (1 sample a message, eps 1e-3 of range),
    with and without the latency stamp: end-to-end latency (the sample taken
    -> decoded on the subscriber, p50 / p99) and the bytes the broker counted
    ($SYS/broker/bytes/received and /sent).
Chimp (PyPI chimp-encoding) is reported as not available when it does not
install (it needs Python >= 3.12; Debian 12 has 3.11).
"""
import argparse
import csv
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

EPS_LEVELS = [1e-2, 1e-3, 1e-4, 0.0]


def load_streams(nangila, tmp, seconds):
    streams = {}
    rotor_csv = os.path.join(tmp, "rotor.csv")
    subprocess.run([nangila, "twin", "simulate", "--channels", "64", "--rate-hz", "1000",
                    "--duration", str(seconds), "--seed", "1", "--out", rotor_csv], check=True)
    with open(rotor_csv) as f:
        names = f.readline().strip().split(",")
    streams["rotor"] = (np.loadtxt(rotor_csv, delimiter=",", skiprows=1, ndmin=2), names)
    try:
        import scipy.misc  # the data file ships in Debian's python3-scipy

        ecg = np.asarray(scipy.misc.electrocardiogram(), dtype=np.float64)
        streams["ecg"] = (ecg.reshape(-1, 1), ["ecg_mV"])
    except Exception as e:  # pragma: no cover
        print("bench-twin: no ECG record: %s" % e, file=sys.stderr)
    try:
        import statsmodels.datasets.co2 as co2

        path = os.path.join(os.path.dirname(co2.__file__), "co2.csv")
        vals = []
        with open(path) as f:
            for row in csv.DictReader(f):
                vals.append(float(row["co2"]) if row["co2"] else math.nan)
        streams["co2"] = (np.array(vals, dtype=np.float64).reshape(-1, 1), ["co2_ppm"])
    except Exception as e:  # pragma: no cover
        print("bench-twin: no CO2 record: %s" % e, file=sys.stderr)
    return streams


def write_csv(path, arr, names):
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        for row in arr:
            f.write(",".join("nan" if math.isnan(v) else ("%.17g" % v) for v in row) + "\n")


def channel_eps(arr, level):
    eps = []
    for c in range(arr.shape[1]):
        col = arr[:, c]
        col = col[np.isfinite(col)]
        eps.append(level * float(col.max() - col.min()) if col.size else 0.0)
    return eps


def timed(fn, repeat):
    best, out = math.inf, None
    for _ in range(repeat):
        t = time.process_time()
        out = fn()
        best = min(best, time.process_time() - t)
    return best, out


def check(arr, dec, eps):
    """(largest error / eps over finite values, NaN kept, inf kept)"""
    worst = 0.0
    nan_ok = True
    for c in range(arr.shape[1]):
        x, y = arr[:, c], dec[:, c]
        fin = np.isfinite(x)
        if (~fin).any():
            nan_ok &= bool(np.all(np.isnan(y[np.isnan(x)])))
            nan_ok &= bool(np.all(y[np.isinf(x)] == x[np.isinf(x)]))
        if fin.any():
            err = float(np.max(np.abs(y[fin] - x[fin])))
            if eps[c] > 0:
                worst = max(worst, err / eps[c])
            elif err > 0:
                worst = math.inf
    return worst, nan_ok


def per_channel(arr, comp, decomp, repeat):
    cols = [np.ascontiguousarray(arr[:, c]) for c in range(arr.shape[1])]
    tc, blobs = timed(lambda: [comp(c, i) for i, c in enumerate(cols)], repeat)
    td, outs = timed(lambda: [decomp(b, i, cols[i]) for i, b in enumerate(blobs)], repeat)
    return sum(len(b) for b in blobs), tc, td, np.stack(outs, axis=1)


def baselines(arr, eps, level, repeat):
    """Rows for the other tools at one eps level (lossless tools at 0 only)."""
    rows = []
    mb = arr.size * 8 / 1e6
    if level == 0:
        import zstandard

        raw = arr.tobytes()
        for lvl in (3, 19):
            cz = zstandard.ZstdCompressor(level=lvl)
            dz = zstandard.ZstdDecompressor()
            tc, blob = timed(lambda: cz.compress(raw), repeat)
            td, back = timed(lambda: dz.decompress(blob), repeat)
            dec = np.frombuffer(back, dtype=np.float64).reshape(arr.shape)
            rows.append(("zstd-%d" % lvl, len(blob), mb / tc, mb / td) + check(arr, dec, eps))
        try:
            from pcodec import ChunkConfig, standalone

            n, tc, td, dec = per_channel(
                arr, lambda c, i: standalone.simple_compress(c, ChunkConfig()),
                lambda b, i, c: standalone.simple_decompress(b), repeat)
            rows.append(("pcodec", n, mb / tc, mb / td) + check(arr, dec, eps))
        except ImportError:
            rows.append(("pcodec", None, None, None, None, None))
    try:
        import zfpy

        if level == 0:
            comp = lambda c, i: zfpy.compress_numpy(c)  # noqa: E731 (reversible mode)
        else:
            comp = lambda c, i: zfpy.compress_numpy(c, tolerance=eps[i])  # noqa: E731
        n, tc, td, dec = per_channel(arr, comp, lambda b, i, c: zfpy.decompress_numpy(b), repeat)
        rows.append(("zfp", n, mb / tc, mb / td) + check(arr, dec, eps))
    except ImportError:
        rows.append(("zfp", None, None, None, None, None))
    if level > 0:
        try:
            from pysz import sz, szConfig, szErrorBoundMode

            def comp(c, i):
                cfg = szConfig()
                cfg.errorBoundMode = szErrorBoundMode.ABS
                cfg.absErrorBound = eps[i]
                return sz.compress(c, cfg)[0]

            n, tc, td, dec = per_channel(
                arr, comp, lambda b, i, c: sz.decompress(b, c.dtype, c.shape)[0], repeat)
            rows.append(("sz3", n, mb / tc, mb / td) + check(arr, dec, eps))
        except ImportError:
            rows.append(("sz3", None, None, None, None, None))
    if level == 0:
        # Chimp (PyPI chimp-encoding) requires Python >= 3.12 and so does not
        # install on Debian 12: an empty row says it was not measured.
        rows.append(("chimp", None, None, None, None, None))
    return rows


def nangila_rows(nangila, csv_path, eps, level, batch, repeat, tmp):
    eps_file = os.path.join(tmp, "eps.txt")
    with open(eps_file, "w") as f:
        f.write(",".join("%.17g" % e for e in eps) + "\n")
    out = subprocess.run([nangila, "twin", "bench", "--eps-file", eps_file, "--batch", str(batch),
                          "--repeat", str(repeat), csv_path],
                         check=True, capture_output=True, text=True).stdout
    j = json.loads(out)
    worst = j["max_err_over_eps"]
    return ("nangila-b%d" % batch, j["bytes_out"], j["encode_mb_s"], j["decode_mb_s"], worst,
            j["violations"] == 0)


# ---- broker -----------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_broker(tmp):
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
                "sys_interval 1\nset_tcp_nodelay true\nmax_queued_messages 1000000\n"
                "log_dest stderr\nlog_type error\n" % port)
    mosq = "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else "mosquitto"
    proc = subprocess.Popen([mosq, "-c", conf], stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def sys_bytes(port):
    """$SYS/broker/bytes/{received,sent}, refreshed every second (retained)."""
    time.sleep(2.2)
    out = subprocess.run(["mosquitto_sub", "-p", str(port), "-t", "$SYS/broker/bytes/+", "-v",
                          "-C", "2", "-W", "5"], capture_output=True, text=True).stdout
    got = {}
    for line in out.splitlines():
        topic, _, val = line.partition(" ")
        got[topic.rsplit("/", 1)[-1]] = int(val)
    return got.get("received"), got.get("sent")


def broker_run(nangila, tmp, seconds, mode, stamp, eps_file):
    proc, port = start_broker(tmp)
    try:
        stats = os.path.join(tmp, "sub.json")
        log = open(os.path.join(tmp, "sub.log"), "w+")
        sub = subprocess.Popen([nangila, "twin", "subscribe", "--port", str(port), "--topic",
                                "rotor", "--timeout", "30", "--out", os.path.join(tmp, "sub.csv"),
                                "--stats-json", stats], stderr=log)
        for _ in range(200):
            log.seek(0)
            if "subscribed to" in log.read():
                break
            time.sleep(0.05)
        pub = [nangila, "twin", "publish", "--port", str(port), "--topic", "rotor",
               "--simulate", "rotor", "--rate-hz", "1000", "--channels", "64", "--duration",
               str(seconds), "--seed", "1"]
        pub += ["--raw"] if mode == "raw" else ["--eps-file", eps_file, "--keyframe", "100"]
        if not stamp:
            pub.append("--no-stamp")
        subprocess.run(pub, check=True, stderr=subprocess.DEVNULL)
        sub.wait(timeout=60)
        j = json.load(open(stats))
        rec, sent = sys_bytes(port)
    finally:
        proc.terminate()
        proc.wait()
    return j, rec, sent


def plot(out_dir, rows, broker_rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streams = sorted({r["stream"] for r in rows})
    fig, axes = plt.subplots(1, len(streams), figsize=(5 * len(streams), 4), squeeze=False)
    for ax, s in zip(axes[0], streams):
        tools = sorted({r["tool"] for r in rows if r["stream"] == s and r["ratio_f64"]})
        levels = [lv for lv in EPS_LEVELS]
        w = 0.8 / max(1, len(tools))
        for k, t in enumerate(tools):
            ys = []
            for lv in levels:
                m = [r for r in rows if r["stream"] == s and r["tool"] == t and
                     float(r["eps_rel"]) == lv and r["ratio_f64"]]
                ys.append(float(m[0]["ratio_f64"]) if m else 0)
            ax.bar([i + k * w for i in range(len(levels))], ys, w, label=t)
        ax.set_xticks([i + 0.4 - w / 2 for i in range(len(levels))])
        ax.set_xticklabels(["%g" % lv for lv in levels])
        ax.set_yscale("log")
        ax.set_xlabel("eps / channel range")
        ax.set_ylabel("ratio vs float64")
        ax.set_title(s)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "ratio.png"), dpi=90)
    if broker_rows:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
        labels = [r["run"] for r in broker_rows]
        x = range(len(labels))
        a1.bar([i - 0.2 for i in x], [float(r["latency_p50_ms"]) for r in broker_rows], 0.4,
               label="p50")
        a1.bar([i + 0.2 for i in x], [float(r["latency_p99_ms"]) for r in broker_rows], 0.4,
               label="p99")
        a1.set_xticks(list(x))
        a1.set_xticklabels(labels, fontsize=7)
        a1.set_ylabel("ms, sample taken -> decoded")
        a1.legend()
        a2.bar(list(x), [int(r["broker_bytes_received"] or 0) / 1e6 for r in broker_rows])
        a2.set_xticks(list(x))
        a2.set_xticklabels(labels, fontsize=7)
        a2.set_ylabel("MB received by the broker")
        fig.suptitle("rotor, 64 channels x 1 kHz, through mosquitto")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "broker.png"), dpi=90)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nangila", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=10.0, help="rotor stream length")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-broker", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="bench-twin-")
    rows = []
    streams = load_streams(args.nangila, tmp, args.seconds)
    fields = ["stream", "samples", "channels", "eps_rel", "tool", "bytes", "ratio_f64",
              "ratio_f32", "compress_mb_s", "decompress_mb_s", "max_err_over_eps", "nan_inf_kept"]
    for name, (arr, names) in streams.items():
        csv_path = os.path.join(tmp, name + ".csv")
        write_csv(csv_path, arr, names)
        for level in EPS_LEVELS:
            eps = channel_eps(arr, level)
            got = [nangila_rows(args.nangila, csv_path, eps, level, b, args.repeat, tmp)
                   for b in (1, 64)]
            got += baselines(arr, eps, level, args.repeat)
            for tool, nbytes, cmb, dmb, worst, kept in got:
                rows.append({
                    "stream": name, "samples": arr.shape[0], "channels": arr.shape[1],
                    "eps_rel": level, "tool": tool, "bytes": nbytes if nbytes else "",
                    "ratio_f64": "%.3f" % (arr.size * 8 / nbytes) if nbytes else "",
                    "ratio_f32": "%.3f" % (arr.size * 4 / nbytes) if nbytes else "",
                    "compress_mb_s": "%.1f" % cmb if cmb else "",
                    "decompress_mb_s": "%.1f" % dmb if dmb else "",
                    "max_err_over_eps": "%.4f" % worst if worst is not None else "",
                    "nan_inf_kept": "" if kept is None else int(bool(kept)),
                })
                print("%-6s eps %-7g %-11s %s" % (name, level, tool, rows[-1]["ratio_f64"] or "n/a"),
                      flush=True)
    with open(os.path.join(args.out, "bench.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    broker_rows = []
    if not args.no_broker:
        arr = streams["rotor"][0]
        eps_file = os.path.join(tmp, "rotor-eps.txt")
        with open(eps_file, "w") as f:
            f.write(",".join("%.17g" % e for e in channel_eps(arr, 1e-3)) + "\n")
        for mode, stamp in (("raw", True), ("twin", True), ("raw", False), ("twin", False)):
            j, rec, sent = broker_run(args.nangila, tmp, args.seconds, mode, stamp, eps_file)
            run = "%s%s" % (mode, "" if stamp else "-nostamp")
            broker_rows.append({
                "run": run, "samples": j["samples"], "channels": j["channels"],
                "messages": j["messages"], "payload_bytes": j["bytes"],
                "broker_bytes_received": rec, "broker_bytes_sent": sent,
                "ratio_payload": "%.3f" % j["ratio"],
                "ratio_at_broker": "%.3f" % (j["samples"] * j["channels"] * 8 / rec) if rec else "",
                "gaps": j["gaps"],
                "latency_p50_ms": "%.3f" % j["latency_p50_ms"],
                "latency_p99_ms": "%.3f" % j["latency_p99_ms"],
                "latency_max_ms": "%.3f" % j["latency_max_ms"],
            })
            print("broker %-14s %s" % (run, broker_rows[-1]), flush=True)
        with open(os.path.join(args.out, "broker.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(broker_rows[0].keys()))
            w.writeheader()
            w.writerows(broker_rows)
    plot(args.out, rows, broker_rows)
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
