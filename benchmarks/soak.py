"""A bounded soak of the BentoML service: many requests at steady concurrency, zero failures expected, memory
watched for growth.

The server's process tree (the `bentoml serve` arbiter and its workers) is sampled for RSS at start, after the
warm-up, every `--sample-every` requests, at the end and once more after a short rest. Growth is measured from
the post-warm-up sample (caches, onnxruntime arenas and BentoML's batching statistics fill during the warm-up)
and must stay under `--bound-mb`. The traffic mixes the image routes as users would: of every 20 requests,
16 raw image/png to /predict, 2 JSON `pixels` to /predict, 1 JSON /predict_batch of 4 images, 1 /predict_all.
Usage:  python -m benchmarks.soak [--exported exported] [--quick] [--requests 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from benchmarks import harness as H
from testkit.digits import digit_pngs
from testkit.processes import tree_rss
from testkit.servers import REPO, Server, start_bentoml


def mix(model: str) -> list[H.Template]:
    """20 requests, repeated: 16 raw PNG /predict, 2 JSON pixels /predict, 1 /predict_batch of 4, 1 /predict_all."""
    pngs = digit_pngs()
    raw = [H.Template(f"/predict?model={model}", png, "image/png") for png in pngs]
    pixels = [255 - np.asarray(Image.open(io.BytesIO(pngs[d])).resize((28, 28)), dtype=np.int64) for d in (3, 8)]
    as_json = [
        H.Template("/predict", json.dumps({"pixels": p.tolist(), "model": model}).encode(), "application/json")
        for p in pixels
    ]
    batch = {"images": [{"image_base64": base64.b64encode(p).decode()} for p in pngs[:4]], "model": model}
    batch_t = H.Template("/predict_batch", json.dumps(batch).encode(), "application/json")
    every = H.Template("/predict_all", pngs[5], "image/png")
    return raw + raw[:6] + as_json + [batch_t, every]


def growth(samples: list[dict]) -> dict:
    """RSS after warm-up, at the end, peak, growth (in all and per process), and the slope over the second half
    in MB per 10,000 requests (near 0 once memory has levelled off; a steady leak keeps it positive)."""
    x = np.asarray([s["requests"] for s in samples], dtype=np.float64)
    y = np.asarray([s["total_mb"] for s in samples], dtype=np.float64)
    late = x >= x[-1] / 2
    slope = float(np.polyfit(x[late], y[late], 1)[0]) * 10_000 if late.sum() >= 3 else None
    half = float(y[-1] - y[late][0])  # growth over the second half: near 0 once memory has levelled off
    first, last = samples[0]["processes"], samples[-1]["processes"]
    return {
        "after_warmup_mb": round(y[0], 2),
        "end_mb": round(y[-1], 2),
        "peak_mb": round(float(y.max()), 2),
        "growth_mb": round(float(y[-1] - y[0]), 2),
        "peak_growth_mb": round(float(y.max() - y[0]), 2),
        "growth_per_process_mb": {p: round(last[p] - first.get(p, 0.0), 2) for p in last},
        "second_half_growth_mb": round(half, 2),
        "second_half_slope_mb_per_10k_requests": None if slope is None else round(slope, 3),
    }


def run(args) -> dict:
    exported = H.require_manifest(args.exported)
    model = args.model or H.default_model(exported)
    pinning = H.split_cpus(not args.no_pin)
    server_cpus = pinning["servers"] if pinning else None
    threads = len(server_cpus) if server_cpus else 0
    env = {"MNISTSERVE_ORT_THREADS": str(threads)} if threads else {}
    if args.adaptive_batching is not None:
        env["MNISTSERVE_ADAPTIVE_BATCHING"] = args.adaptive_batching
    report = {
        "schema": "mnistserve.soak/1",
        **H.environment(pinning, exported=exported),
        "model": model,
        "server_env": env,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "warmup_requests": args.warmup,
        "sample_every": args.sample_every,
        "bound_mb": args.bound_mb,
        "level_mb": args.level_mb,
        "rest_s": args.rest_s,
    }
    work = H.scratch_dir("mnistserve-soak-")
    try:
        server = start_bentoml(exported, work, cpus=server_cpus, env=env)
        pid = server.process.pid
        try:
            report["rss_at_start"] = tree_rss(pid)
            load = H.Load(
                url=server.url,
                templates=[t.encode() for t in mix(model)],
                count=args.requests,
                concurrency=args.concurrency,
                warmup=args.warmup,
                deadline_s=args.deadline_s,
                watch_pids=[pid],
                sample_every=args.sample_every,
            )
            result = H.run_driver(load, pinning["load_generator"] if pinning else None)
            report["rss_at_end"] = tree_rss(pid)
            time.sleep(args.rest_s)  # let in-flight work finish: what stays resident is what leaks
            report["rss_after_rest"] = tree_rss(pid)
            samples = [
                {"requests": s["requests"], "t_s": s["t_s"], **s["rss"][str(pid)]} for s in result.pop("rss_samples")
            ]
            if samples[-1]["requests"] != result["sent"]:
                samples.append({"requests": result["sent"], "t_s": None, **report["rss_at_end"]})
            report["load"] = result
            report["rss_samples"] = samples
            report["memory"] = growth(samples)
            report["after"] = health(server, model)
        finally:
            server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mem, load = report["memory"], report["load"]
    report["verdicts"] = [
        {"goal": "zero failed requests", "measured": load["failed"], "met": load["failed"] == 0},
        {
            "goal": f"every one of the {args.requests} requests sent (no deadline stop)",
            "measured": load["sent"],
            "met": not load["stopped_by_deadline"],
        },
        {
            "goal": f"RSS growth after warm-up < {args.bound_mb} MB",
            "measured": mem["growth_mb"],
            "met": mem["growth_mb"] < args.bound_mb,
        },
        {
            "goal": f"memory levelled off: growth over the second half < {args.level_mb} MB",
            "measured": mem["second_half_growth_mb"],
            "met": mem["second_half_growth_mb"] < args.level_mb,
        },
        {
            "goal": "server alive, /readyz 200 and a good /predict afterwards",
            "measured": report["after"],
            "met": all(report["after"].values()),
        },
    ]
    return report


def health(server: Server, model: str) -> dict:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        ready = client.get("/readyz").status_code == 200
        png = digit_pngs()[7]
        good = client.post(f"/predict?model={model}", content=png, headers={"content-type": "image/png"})
    return {"alive": server.alive(), "readyz": ready, "predict": good.status_code == 200}


def markdown(report: dict) -> str:
    load, mem = report["load"], report["memory"]
    lines = H.markdown_head(report, "Soak: the BentoML service under a long steady load", servers="server") + [
        f"- server environment: {report.get('server_env') or 'defaults'}",
        f"- model {report['model']} from {report['measured']['exported']}; "
        f"{report['requests']} requests at concurrency "
        f"{report['concurrency']} after {report['warmup_requests']} warm-up requests; mix per 20 requests: 16 raw PNG "
        "/predict, 2 JSON pixels /predict, 1 /predict_batch of 4 images, 1 /predict_all",
        "",
        "## Verdicts",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *[f"| {v['goal']} | {v['measured']} | {'yes' if v['met'] else '**no**'} |" for v in report["verdicts"]],
        "",
        "## Load",
        "",
        f"- sent {load['sent']}, ok {load['ok']}, failed {load['failed']}, statuses {load['statuses']}, "
        f"{load['wall_s']} s, {load['requests_per_second']} req/s",
        f"- latency ms: {load['latency_ms']}",
        f"- CPU (CPU-seconds per second): {load['cpu_util']} (`other` = everything else on the machine)",
        "",
        "## Memory (RSS of the server's process tree, MB)",
        "",
        f"- at start {report['rss_at_start']['total_mb']}, after warm-up {mem['after_warmup_mb']}, "
        f"peak {mem['peak_mb']}, end {mem['end_mb']}, after a {report['rest_s']} s rest "
        f"{report['rss_after_rest']['total_mb']}",
        f"- growth after warm-up {mem['growth_mb']} MB (bound {report['bound_mb']} MB); peak growth "
        f"{mem['peak_growth_mb']} MB; over the second half {mem['second_half_growth_mb']} MB (slope "
        f"{mem['second_half_slope_mb_per_10k_requests']} MB per 10,000 requests)",
        f"- per process at end: {report['rss_at_end']['processes']}; growth per process {mem['growth_per_process_mb']}",
        "",
        "| requests | RSS MB (tree) | per process |",
        "|---|---|---|",
        *[f"| {s['requests']} | {s['total_mb']} | {s['processes']} |" for s in report["rss_samples"]],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exported", type=Path, default=REPO / "exported")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "soak")
    parser.add_argument("--model", help="model to request (default: the manifest's default)")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2000, help="requests before the baseline RSS sample")
    parser.add_argument("--sample-every", type=int, default=1000)
    parser.add_argument("--bound-mb", type=float, default=50.0)
    parser.add_argument("--level-mb", type=float, default=10.0, help="most growth over the run's second half")
    parser.add_argument("--rest-s", type=float, default=3.0)
    parser.add_argument("--deadline-s", type=float, default=1800.0, help="the load stops by itself after this")
    parser.add_argument("--no-pin", action="store_true")
    parser.add_argument(
        "--adaptive-batching",
        choices=("0", "1"),
        help="MNISTSERVE_ADAPTIVE_BATCHING for the "
        "server (default: the service's default); the report is then soak-batching-<0|1>",
    )
    parser.add_argument("--quick", action="store_true", help="2,000 requests, 300 warm-up, a sample every 200")
    parser.add_argument("--name", help="report file name (default: soak, or soak-batching-<0|1>)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup, args.sample_every = 2000, 300, 200
    report = run(args)
    name = args.name or ("soak" if args.adaptive_batching is None else f"soak-batching-{args.adaptive_batching}")
    H.write_report(args.out, name, report, markdown(report))
    for v in report["verdicts"]:
        print(f"{'met' if v['met'] else 'NOT met'}: {v['goal']}: {v['measured']}")
    sys.exit(0 if all(v["met"] for v in report["verdicts"]) else 1)


if __name__ == "__main__":
    main()
