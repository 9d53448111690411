"""The service's own CPU per request, in-process: its ASGI app driven with no socket and no load generator.

Each variant (this tree; a git revision with --baseline; this tree under extra environment with --variant) runs in
a child process that imports that tree's `serving.service`, enters the app's lifespan and sends raw image/png
digits to POST /predict?model=... in batches of 100 (concurrency 1 or --concurrency), measuring each batch's
process CPU and its event-loop thread's CPU. Variants alternate, round after round. The minimum over batches is
the figure a busy machine disturbs least (others' jobs only ever add); the median shows the spread. No HTTP
parsing (uvicorn) and no access-log file are in these figures: `benchmarks.throughput` measures the whole server.
Usage:  python -m benchmarks.service_cpu [--baseline main] [--variant LABEL:KEY=VALUE ...] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# The child process runs in another revision's tree: it imports nothing of this one but `serving.service` (the
# variant's own); the parent's imports are in `parent`.
BATCH = 100  # requests per measured batch


def child(model: str, bodies_file: str, batches: int, concurrency: int) -> None:
    """In the variant's process: drive its app and print one JSON line of per-batch CPU figures (ms per request)."""
    import uvloop

    from serving.service import MNISTService

    bodies = json.loads(Path(bodies_file).read_text())
    app = MNISTService.to_asgi()

    async def post(body: bytes) -> int:
        head = [(b"host", b"x"), (b"content-type", b"image/png"), (b"content-length", str(len(body)).encode())]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST"}
        scope |= {"scheme": "http", "path": "/predict", "raw_path": b"/predict", "root_path": "", "headers": head}
        scope |= {"query_string": f"model={model}".encode(), "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = []

        async def receive() -> dict:
            return messages.pop() if messages else await asyncio.Event().wait()

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app(scope, receive, send)
        return status[0] if status else 0

    async def main() -> None:
        started, startup = asyncio.Event(), [{"type": "lifespan.startup"}]

        async def lifespan_receive() -> dict:
            return startup.pop() if startup else await asyncio.Event().wait()

        async def lifespan_send(message: dict) -> None:
            started.set()

        lifespan = asyncio.ensure_future(app({"type": "lifespan", "state": {}}, lifespan_receive, lifespan_send))
        await started.wait()
        raw = [bytes.fromhex(b) for b in bodies]
        statuses = [await post(raw[i % len(raw)]) for i in range(BATCH)]  # warm-up
        samples = []
        for _ in range(batches):
            wall, cpu, loop = time.perf_counter(), time.process_time(), time.thread_time()
            for i in range(0, BATCH, concurrency):
                statuses += await asyncio.gather(*[post(raw[(i + j) % len(raw)]) for j in range(concurrency)])
            samples.append(
                [1000 * (f() - t) / BATCH for f, t in ((time.perf_counter, wall), (time.process_time, cpu))]
                + [1000 * (time.thread_time() - loop) / BATCH]
            )
        print(json.dumps({"samples": samples, "failed": sum(s != 200 for s in statuses)}), flush=True)
        lifespan.cancel()

    uvloop.run(main())


def run_variant(checkout: Path, env: dict[str, str], args: argparse.Namespace, bodies_file: Path) -> dict:
    """One child run of a variant: its per-batch samples."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--child", args.model, str(bodies_file)]
    argv += [str(args.batches), str(args.concurrency)]
    environ = {**os.environ, "BENTOML_DO_NOT_TRACK": "true", "PYTHONPATH": str(checkout), **env}
    done = subprocess.run(argv, cwd=checkout, env=environ, capture_output=True, text=True, timeout=args.timeout_s)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"variant in {checkout} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def summary(runs: list[dict]) -> dict:
    """Min and median over every batch of every round, per column, in ms per request."""
    columns = list(zip(*[s for run in runs for s in run["samples"]], strict=True))
    names = ("wall", "cpu", "event_loop")
    out = {f"{n}_min": round(min(c), 3) for n, c in zip(names, columns, strict=True)}
    out |= {f"{n}_median": round(statistics.median(c), 3) for n, c in zip(names, columns, strict=True)}
    out["worker_thread_min"] = round(out["cpu_min"] - out["event_loop_min"], 3)
    out["failed"] = sum(run["failed"] for run in runs)
    return out


def markdown(report: dict) -> str:
    from benchmarks import harness as H

    lines = H.markdown_head(report, "The service's CPU per request, in-process (no socket, no load generator)") + [
        f"- POST /predict?model={report['model']}, a raw image/png digit (the versus benchmark's request), "
        f"concurrency {report['concurrency']}; {report['batches']} batches of {BATCH} requests per variant and "
        f"round, {report['rounds']} rounds, variants alternating; environment {report['env']}",
        "",
        "| variant | CPU ms/request min | median | event loop min | median | worker thread min | wall min | failed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in report["variants"].items():
        cells = [name, s["cpu_min"], s["cpu_median"], s["event_loop_min"], s["event_loop_median"]]
        cells += [s["worker_thread_min"], s["wall_min"], s["failed"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "- `event loop`: BentoML's middlewares and routing, ours, parsing the request and writing the answer; "
        "`worker thread` (CPU minus event loop): decoding and preprocessing the image, onnxruntime, the answer, "
        "and the hand-over between the two threads.",
        "- min: the batch least disturbed by the machine's other jobs; median: what a typical batch cost.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        model, bodies, batches, concurrency = sys.argv[2:6]
        return child(model, bodies, int(batches), int(concurrency))
    parent()


def parent() -> None:
    from benchmarks import harness as H
    from benchmarks.throughput import export_revision, revision_of
    from testkit.servers import REPO

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exported", type=Path, default=REPO / "exported")
    parser.add_argument("--model", help="model to request (default: the manifest's default)")
    parser.add_argument("--baseline", metavar="REV", help="also measure git revision REV (its tree from git archive)")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL:KEY=VALUE", help="this tree again")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=15, help="batches of 100 requests per variant and round")
    parser.add_argument("--concurrency", type=int, default=1, choices=(1, 2, 4, 5, 10, 20, 25, 50, 100))
    parser.add_argument("--timeout-s", type=float, default=600.0)
    parser.add_argument("--name", default="service-cpu")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "serving")
    args = parser.parse_args()
    exported = H.require_manifest(args.exported)
    args.model = args.model or H.default_model(exported)
    env = {"MNISTSERVE_EXPORTED": str(exported), "MNISTSERVE_ORT_THREADS": "1"}
    work = H.scratch_dir("mnistserve-service-cpu-")
    variants = {"this tree": (REPO, env)}
    try:
        if args.baseline:
            variants[f"{args.baseline} ({revision_of(args.baseline)})"] = (
                export_revision(args.baseline, work / "baseline"),
                env,
            )
        for spec in args.variant:
            label, _, assignment = spec.partition(":")
            key, _, value = assignment.partition("=")
            variants[label] = (REPO, {**env, key: value})
        bodies_file = work / "bodies.json"
        bodies_file.write_text(json.dumps([t.body.hex() for t in H.raw_png_templates("/predict", args.model)]))
        runs: dict[str, list[dict]] = {name: [] for name in variants}
        for r in range(args.rounds):
            for name, (checkout, variant_env) in variants.items():
                runs[name].append(run_variant(checkout, variant_env, args, bodies_file))
                print(f"round {r}: {name}: {summary(runs[name][-1:])}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "schema": "mnistserve.service-cpu/1",
        **H.environment(None, exported=exported),
        "model": args.model,
        "concurrency": args.concurrency,
        "batches": args.batches,
        "rounds": args.rounds,
        "env": env,
        "variants": {name: summary(r) for name, r in runs.items()},
        "runs": runs,
    }
    H.write_report(args.out, args.name, report, markdown(report))


if __name__ == "__main__":
    main()
