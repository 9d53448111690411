"""This service against TorchServe and the reference server: the same exported model, the same pinned cores, the
same load generator, in one run.

Servers, each driven with the same raw image/png digits at every concurrency level (default 1, 8, 64):
  bentoml-direct   the service as shipped (adaptive batching off: /predict runs onnxruntime in a worker thread)
  reference        benchmarks/reference_server.py: Starlette + uvicorn, the same ModelStore and preprocessing
  torchserve       TorchServe 0.12 (Java frontend) with benchmarks/torchserve/handler.py: the same ModelStore,
                   preprocessing and answer; one worker, batch size 1, token auth, the metrics API and
                   per-request debug/metric logging off (its access log kept, like BentoML's)
With --http-variants the two uvicorn servers run twice: as installed (uvicorn's `auto` takes httptools and uvloop
when importable) and with both hidden (`:h11-asyncio`), which makes uvicorn fall back to h11 and asyncio.
Every non-2xx answer and every transport error counts as a failure; the exit status is 1 when any occurs.
Usage:  python -m benchmarks.versus [--quick] [--http-variants] [--requests 2000] [--concurrency 1 8 64]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import harness as H
from benchmarks import throughput as T
from benchmarks.torchserve.serve import java_version, start_torchserve, stop_torchserve
from benchmarks.versus_report import goal_verdicts, http_gains, markdown, where_each_wins
from mnistserve.provenance import versions
from testkit.processes import tree_pids, tree_rss
from testkit.servers import Server, start_bentoml

NATIVE = ("uvloop", "httptools")  # what uvicorn's `auto` loop and http settings pick when they import
H11 = ":h11-asyncio"  # the mode suffix of a server run with both hidden


@dataclass
class Spec:
    """One server to measure: its mode name, request path, how to start and stop it."""

    mode: str
    path: str
    start: Callable[[], Server]
    stop: Callable[[Server], None] = Server.stop
    uvicorn: bool = True  # serves through uvicorn (its http/loop choice is recorded)


def hide_modules(directory: Path, names: tuple[str, ...] = NATIVE) -> Path:
    """A directory of stand-in packages that raise ImportError: first on PYTHONPATH, they hide the real ones."""
    for name in names:
        (directory / name).mkdir(parents=True, exist_ok=True)
        (directory / name / "__init__.py").write_text(
            f"raise ImportError('{name} hidden by benchmarks.versus: uvicorn falls back as if it were not installed')\n"
        )
    return directory


def native_in_use(pid: int) -> dict[str, bool]:
    """Whether uvloop's and httptools' compiled modules are mapped into any process of the server's tree."""
    maps = ""
    for p in tree_pids(pid):
        try:
            maps += Path(f"/proc/{p}/maps").read_text()
        except OSError:
            continue  # a process that ended meanwhile
    return {"uvloop": "/uvloop/loop." in maps, "httptools": "/httptools/parser/" in maps}


def specs(args, exported: Path, model: str, work: Path, cpus: list[int] | None, threads: int) -> list[Spec]:
    """The servers of this run, in the order they are measured."""
    env = {"MNISTSERVE_ORT_THREADS": str(threads)} if threads else {}
    workers = {"MNISTSERVE_WORKERS": str(args.workers)}
    variants = {"": {}}
    if args.http_variants:
        variants[H11] = {"PYTHONPATH": str(hide_modules(work / "hidden"))}
    out = []
    for suffix, extra in variants.items():
        bento, ref = "bentoml-direct" + suffix, "reference" + suffix
        out.append(
            Spec(
                bento,
                "/predict",
                lambda n=bento, e=extra: start_bentoml(
                    exported,
                    work / n.replace(":", "-"),
                    cpus=cpus,
                    name=n.replace(":", "-"),
                    env={**env, **workers, "MNISTSERVE_ADAPTIVE_BATCHING": "0", **e},
                ),
            )
        )
        out.append(
            Spec(
                ref,
                "/predict",
                lambda n=ref, e=extra: H.start_reference(
                    exported, work, cpus=cpus, threads=threads, env=e, name=n.replace(":", "-")
                ),
            )
        )
    out.append(
        Spec(
            "torchserve",
            f"/predictions/{model}",
            lambda: start_torchserve(exported, model, work / "torchserve", cpus=cpus, threads=threads),
            stop=stop_torchserve,
            uvicorn=False,
        )
    )
    return out


def run(args) -> dict:
    exported = H.require_manifest(args.exported)
    model = args.model or H.default_model(exported)
    if args.http_variants and any(importlib.util.find_spec(m) is None for m in NATIVE):
        raise SystemExit(
            "--http-variants compares uvicorn with and without httptools and uvloop: install them "
            "first (.venv/bin/pip install uvloop httptools)"
        )
    pinning = H.split_cpus(not args.no_pin)
    server_cpus = pinning["servers"] if pinning else None
    client_cpus = pinning["load_generator"] if pinning else None
    threads = len(server_cpus) if server_cpus else 0  # onnxruntime spin-waits: no more threads than cores
    cores = len(server_cpus) if server_cpus else len(os.sched_getaffinity(0))
    report = {
        "schema": "mnistserve.versus/1",
        **H.environment(pinning, exported=exported),
        "model": model,
        "requests_per_level": args.requests,
        "warmup_per_level": args.warmup,
        "concurrency": args.concurrency,
        "server_cores": cores,
        "bentoml_workers": args.workers,
        "onnxruntime_threads": threads or "onnxruntime default",
        "http_variants": args.http_variants,
        "rows": [],
        "parity_max_abs_diff": {},
        "http_stack": {},
        "rss_after_start_mb": {},
    }
    report["versions"].update(versions(("torchserve", "torch-model-archiver", "uvloop", "httptools")))
    report["versions"]["java"] = java_version() or "none"
    work = H.scratch_dir("mnistserve-versus-")
    expected = None
    report["rounds"] = args.rounds
    try:
        # Each round starts every server afresh, one at a time, the order reversed every other round: a machine
        # whose other load drifts, or one server's unlucky start, disturbs each alike; the least disturbed round of
        # each server and level is the row (T.least_disturbed).
        for r in range(args.rounds):
            for spec in specs(args, exported, model, work, server_cpus, threads)[:: -1 if r % 2 else 1]:
                templates = H.raw_png_templates(spec.path, model, read_batch_size=True)
                server = spec.start()
                try:
                    report["rss_after_start_mb"][spec.mode] = tree_rss(server.process.pid)["total_mb"]
                    got = np.asarray(T.answers(server, templates))
                    expected = got if expected is None else expected
                    report["parity_max_abs_diff"][spec.mode] = float(np.abs(got - expected).max())
                    if spec.uvicorn:
                        report["http_stack"][spec.mode] = native_in_use(server.process.pid)
                    for c in args.concurrency:
                        row = T.measure(server, spec.mode, c, templates, args, client_cpus)
                        report["rows"].append({**row, "round": r})
                finally:
                    spec.stop(server)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["all_rounds"], report["rows"] = report["rows"], T.least_disturbed(report["rows"])
    for row in report["rows"]:
        rps = row["requests_per_second"]
        row["requests_per_second_per_core"] = round(rps / cores, 1) if rps else None
    report["failed_requests"] = sum(r["failed"] for r in report["all_rounds"])
    report["verdicts"] = goal_verdicts(report["rows"], args.concurrency)
    report["where_each_wins"] = where_each_wins(report["rows"], args.concurrency)
    report["http_gains"] = http_gains(report["rows"], args.concurrency, H11) if args.http_variants else []
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    T.load_arguments(parser, name="versus", requests=2000, warmup=200, concurrency=[1, 8, 64], deadline_s=300.0)
    parser.add_argument(
        "--http-variants",
        action="store_true",
        help="also run both uvicorn servers with httptools and uvloop hidden (h11, asyncio)",
    )
    # One worker process per core the server gets (the service's own advice), and TorchServe runs one.
    parser.add_argument("--workers", type=int, default=1, help="BentoML worker processes (MNISTSERVE_WORKERS)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every server this often; each level's least disturbed round"
    )
    args = T.parse(parser)
    report = run(args)
    H.write_report(args.out, args.name, report, markdown(report))
    print("\n".join(report["where_each_wins"]))
    for v in report["verdicts"]:
        print(f"{'met' if v['met'] else 'NOT met'}: {v['goal']}: {v['measured']}")
    sys.exit(1 if report["failed_requests"] else 0)


if __name__ == "__main__":
    main()
