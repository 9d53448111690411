"""Serving throughput and latency: the BentoML service against a minimal reference server, with and without
adaptive batching, under the same bounded load sent from a separate process.

Modes, each driven with the same raw image/png digits at every concurrency level:
  bentoml-batched    POST /predict: requests reach `classify` through BentoML's dispatcher, which merges them
  bentoml-unbatched  POST /predict_batch, one image per request: one onnxruntime run per request, never merged.
                     MNISTSERVE_MAX_BATCH_SIZE=1 would be the direct switch, but the service refuses to start
                     with it (the probe below records the message); were it accepted, `bentoml-max-batch-1`
                     (/predict on such a server) is measured too.
  reference          benchmarks/reference_server.py: Starlette + uvicorn, the same ModelStore and preprocessing.
Every non-2xx answer and every transport error counts as a failure; the exit status is 1 when any occurs.
On a machine with 2+ CPUs the servers are pinned to the first half and the load generator to the other half.
Usage:  python benchmarks/serving.py [--exported exported] [--quick] [--requests 5000] [--concurrency 1 8 32 64]
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a file: benchmarks/ heads sys.path and this very file would shadow `serving`
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "benchmarks"]
    sys.path.insert(0, str(REPO))

import argparse  # noqa: E402
import shutil  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import harness as H  # noqa: E402

GOALS = {"throughput_vs_reference": 0.70, "p50_ms_at_concurrency_1": 5.0, "batching_speedup": 2.0}


def measure(server: H.Server, mode: str, templates: list[H.Template], args, client_cpus) -> list[dict]:
    """One row per concurrency level: throughput, latency, failures, CPU use of servers and load generator."""
    rows = []
    for c in args.concurrency:
        load = H.Load(url=server.url, templates=[t.encode() for t in templates], count=args.requests,
                      concurrency=c, warmup=args.warmup, timeout_s=args.timeout_s, deadline_s=args.deadline_s,
                      watch_pids=[server.process.pid])
        result = H.run_driver(load, client_cpus)
        row = {"mode": mode, "concurrency": c, **result, "server_rss_mb": H.tree_rss(server.process.pid)["total_mb"],
               "server_alive": server.alive()}
        rps = row["requests_per_second"]
        row["server_cpu_ms_per_request"] = round(1000 * row["cpu_util"]["servers"] / rps, 3) if rps else None
        rows.append(row)
        lat, cpu = row["latency_ms"], row["cpu_util"]
        print(f"{mode:18s} c={c:<3d} {row['requests_per_second']:>8} req/s  p50 {lat['p50']} ms  p99 {lat['p99']} ms"
              f"  failed {row['failed']}  cpu: server {cpu['servers']} client {cpu['load_generator']} "
              f"other {cpu['other']}", flush=True)
        if not server.alive():
            raise RuntimeError(f"{server.name} died during {mode} c={c}:\n{server.log_tail()}")
    return rows


def answers(server: H.Server, templates: list[H.Template]) -> list[list[float]]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        out = []
        for t in templates:
            r = client.post(t.path, content=t.body, headers={"content-type": t.content_type})
            r.raise_for_status()
            body = r.json()
            out.append(body["predictions"][0]["probabilities"] if "predictions" in body else body["probabilities"])
        return out


def probe_max_batch_1(exported: Path, work: Path, cpus, env: dict) -> tuple[H.Server | None, str]:
    """Try MNISTSERVE_MAX_BATCH_SIZE=1, the direct way to switch merging off; return the server or why not."""
    try:
        server = H.start_bentoml(exported, work, cpus=cpus, env={**env, "MNISTSERVE_MAX_BATCH_SIZE": "1"},
                                 name="bentoml-max-batch-1", timeout=60)
    except RuntimeError as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()]
        return None, "refused at start-up: " + (lines[-1] if lines else str(exc))[:300]
    return server, "accepted"


def run(args) -> dict:
    exported = H.require_manifest(args.exported)
    model = args.model or H.default_model(exported)
    pinning = H.split_cpus(not args.no_pin)
    server_cpus = pinning["servers"] if pinning else None
    client_cpus = pinning["load_generator"] if pinning else None
    threads = len(server_cpus) if server_cpus else 0  # onnxruntime spin-waits: no more threads than cores
    env = {"MNISTSERVE_ORT_THREADS": str(threads)} if threads else {}
    report = {"schema": "mnistserve.serving-benchmark/1", **H.environment(pinning), "exported": str(exported),
              "model": model, "requests_per_level": args.requests, "warmup_per_level": args.warmup,
              "concurrency": args.concurrency, "onnxruntime_threads": threads or "onnxruntime default",
              "goals": GOALS, "rows": []}
    work = H.scratch_dir("mnistserve-bench-")
    batched = H.raw_png_templates("/predict", model, read_batch_size=True)
    unbatched = H.raw_png_templates("/predict_batch", model, read_batch_size=True)
    try:
        bento = H.start_bentoml(exported, work, cpus=server_cpus, env=env)
        try:
            report["rss_after_start_mb"] = {"bentoml": H.tree_rss(bento.process.pid)["total_mb"]}
            reference_answers = answers(bento, batched)
            report["rows"] += measure(bento, "bentoml-batched", batched, args, client_cpus)
            report["rows"] += measure(bento, "bentoml-unbatched", unbatched, args, client_cpus)
        finally:
            bento.stop()
        one, report["max_batch_size_1"] = probe_max_batch_1(exported, work, server_cpus, env)
        if one is not None:
            try:
                report["rows"] += measure(one, "bentoml-max-batch-1", batched, args, client_cpus)
            finally:
                one.stop()
        ref = H.start_reference(exported, work, cpus=server_cpus, threads=threads)
        try:
            report["rss_after_start_mb"]["reference"] = H.tree_rss(ref.process.pid)["total_mb"]
            diff = np.abs(np.asarray(answers(ref, batched)) - np.asarray(reference_answers)).max()
            report["parity_max_abs_diff"] = float(diff)  # both servers must do the same work
            report["rows"] += measure(ref, "reference", batched, args, client_cpus)
        finally:
            ref.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["verdicts"] = verdicts(report)
    report["failed_requests"] = sum(r["failed"] for r in report["rows"])
    return report


def _rps(rows: list[dict], mode: str, c: int) -> float | None:
    return next((r["requests_per_second"] for r in rows if r["mode"] == mode and r["concurrency"] == c), None)


def verdicts(report: dict) -> list[dict]:
    """Each goal with the measured value and whether it is met."""
    rows, levels, out = report["rows"], report["concurrency"], []
    for c in levels:
        b, ref = _rps(rows, "bentoml-batched", c), _rps(rows, "reference", c)
        ratio = round(b / ref, 3) if b and ref else None
        out.append({"goal": f"BentoML /predict throughput >= 70% of the reference at concurrency {c}",
                    "measured": ratio, "met": ratio is not None and ratio >= GOALS["throughput_vs_reference"]})
    c1 = next((r for r in rows if r["mode"] == "bentoml-batched" and r["concurrency"] == 1), None)
    if c1:
        p50 = c1["latency_ms"]["p50"]
        note = "" if report["model"] == "cnn" else f" (measured model: {report['model']}; the goal is for the CNN)"
        out.append({"goal": "p50 < 5 ms at concurrency 1 for the CNN" + note, "measured": p50,
                    "met": p50 is not None and p50 < GOALS["p50_ms_at_concurrency_1"]})
    top = max(levels)
    b, u = _rps(rows, "bentoml-batched", top), _rps(rows, "bentoml-unbatched", top)
    speedup = round(b / u, 3) if b and u else None
    out.append({"goal": f"adaptive batching >= 2x the unbatched throughput at concurrency {top}",
                "measured": speedup, "met": speedup is not None and speedup >= GOALS["batching_speedup"]})
    return out


def markdown(report: dict) -> str:
    pin = report["pinning"]
    lines = [
        "# Serving benchmark: BentoML service vs a minimal reference server", "",
        f"- command: `{report['command']}`",
        f"- device: {report['device']['cpu']}, {report['device']['cores']} cores, "
        f"{report['device']['memory_gib']} GiB; load average at start {report['device']['load_average_at_start']}",
        "- pinning: " + ("none" if pin == "none" else
                          f"servers on CPUs {pin['servers']}, load generator on CPUs {pin['load_generator']}"),
        f"- git revision: {report['git_revision']}; started {report['started']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        f"- model: {report['model']} from {report['exported']}; onnxruntime threads: {report['onnxruntime_threads']}",
        f"- {report['requests_per_level']} measured requests per level after {report['warmup_per_level']} warm-up "
        f"requests; failed requests in total: **{report['failed_requests']}**",
        f"- answers of the two servers agree to {report.get('parity_max_abs_diff')} (max |probability difference|)",
        f"- MNISTSERVE_MAX_BATCH_SIZE=1: {report.get('max_batch_size_1')}", "",
        "## Goals", "", "| goal | measured | met |", "|---|---|---|",
    ]
    lines += [f"| {v['goal']} | {v['measured']} | {'yes' if v['met'] else '**no**'} |" for v in report["verdicts"]]
    lines += ["", "## Results", "",
              "| mode | concurrency | req/s | p50 ms | p90 ms | p99 ms | failed | server CPU ms/request | CPU server "
              "| CPU load-gen | CPU other | images per run |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lat, cpu = r["latency_ms"], r["cpu_util"]
        cells = [r["mode"], r["concurrency"], r["requests_per_second"], lat["p50"], lat["p90"], lat["p99"], r["failed"],
                 r["server_cpu_ms_per_request"], cpu["servers"], cpu["load_generator"], cpu["other"],
                 _sizes(r["batch_sizes"])]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "## How to read it", "", *NOTES, ""]
    return "\n".join(lines)


def _sizes(sizes: dict | None) -> str:
    if not sizes:
        return ""
    total = sum(sizes.values())
    mean = sum(int(k) * v for k, v in sizes.items()) / total
    return f"mean {mean:.1f}, max {max(int(k) for k in sizes)}"


NOTES = [
    "- CPU columns are CPU-seconds per wall second over the measured requests (1.0 = one core busy): the server's "
    "process tree, the load generator, and everything else on the machine (`other`: other people's jobs). A load "
    "generator near 1.0 on its own core means the client sets the pace; `other` well above 0 means the numbers are "
    "from a busy machine.",
    "- `bentoml-unbatched` drives /predict_batch with one image per request: it calls onnxruntime directly and never "
    "passes the dispatcher, so nothing is merged (every answer holds one prediction). It also skips the service's "
    "internal call of `classify` through its own client, so it is cheaper per request than /predict would be without "
    "batching; the speedup goal therefore compares batching against the cheapest unmerged path the service has.",
    "- `server CPU ms/request` = server CPU-seconds per second / requests per second: what one request costs the "
    "server whatever the machine's other load; the most robust column on a busy machine.",
    "- `images per run` comes from each answer: /predict's `batch_size` (images in the onnxruntime run that answered "
    "it, i.e. how many requests adaptive batching merged), /predict_batch's number of predictions.",
    "- The reference server runs the same ModelStore and preprocessing in uvicorn with no access log and no "
    "batching; BentoML writes an access-log line per request.",
    "- Numbers from a shared or busy machine (see the load average) are indicative only; rerun on a quiet one.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exported", type=Path, default=REPO / "exported")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "serving")
    parser.add_argument("--model", help="model to request (default: the manifest's default)")
    parser.add_argument("--requests", type=int, default=5000, help="measured requests per concurrency level")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured requests before each level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--timeout-s", type=float, default=30.0, help="per request")
    parser.add_argument("--deadline-s", type=float, default=900.0, help="per level: it stops by itself after this")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load generator to CPUs")
    parser.add_argument("--quick", action="store_true", help="300 requests per level, 30 warm-up")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup = min(args.requests, 300), min(args.warmup, 30)
    report = run(args)
    H.write_report(args.out, "serving", report, markdown(report))
    for v in report["verdicts"]:
        print(f"{'met' if v['met'] else 'NOT met'}: {v['goal']}: {v['measured']}")
    sys.exit(1 if report["failed_requests"] else 0)


if __name__ == "__main__":
    main()
