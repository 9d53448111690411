"""Serving throughput and latency: the BentoML service against a minimal reference server, with and without
adaptive batching, under the same bounded load sent from a separate process.

Modes, each driven with the same raw image/png digits to POST /predict at every concurrency level:
  bentoml-batched    MNISTSERVE_ADAPTIVE_BATCHING=1: requests reach `classify` through BentoML's dispatcher,
                     which merges concurrent ones into one onnxruntime run
  bentoml-direct     MNISTSERVE_ADAPTIVE_BATCHING=0: each request runs the model in a worker thread, unmerged
  reference          benchmarks/reference_server.py: Starlette + uvicorn, the same ModelStore and preprocessing.
  bentoml-direct@REV with --baseline REV: bentoml-direct as git revision REV serves it (its tree from `git archive`),
                     for a before/after comparison in one run; --modes picks the modes to run.
Every non-2xx answer and every transport error counts as a failure; the exit status is 1 when any occurs.
On a machine with 2+ CPUs the servers are pinned to the first half and the load generator to the other half.
Usage:  python -m benchmarks.throughput [--exported exported] [--quick] [--requests 5000] [--concurrency 1 8 32 64]
        python -m benchmarks.throughput --quick --baseline main --rounds 3 --modes bentoml-direct reference
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from benchmarks import harness as H
from testkit.processes import tree_rss
from testkit.servers import REPO, Server, start_bentoml

MODES = ("bentoml-batched", "bentoml-direct", "reference")

GOALS = {"throughput_vs_reference": 0.70, "p50_ms_at_concurrency_1": 5.0, "batching_speedup": 2.0}


def measure(server: Server, mode: str, c: int, templates: list[H.Template], args, client_cpus) -> dict:
    """One concurrency level: throughput, latency, failures, CPU use of servers and load generator."""
    load = H.Load(
        url=server.url,
        templates=[t.encode() for t in templates],
        count=args.requests,
        concurrency=c,
        warmup=args.warmup,
        timeout_s=args.timeout_s,
        deadline_s=args.deadline_s,
        watch_pids=[server.process.pid],
    )
    result = H.run_driver(load, client_cpus)
    row = {
        "mode": mode,
        "concurrency": c,
        **result,
        "server_rss_mb": tree_rss(server.process.pid)["total_mb"],
        "server_alive": server.alive(),
    }
    rps = row["requests_per_second"]
    row["server_cpu_ms_per_request"] = round(1000 * row["cpu_util"]["servers"] / rps, 3) if rps else None
    lat, cpu = row["latency_ms"], row["cpu_util"]
    print(
        f"{mode:18s} c={c:<3d} {row['requests_per_second']:>8} req/s  p50 {lat['p50']} ms  p99 {lat['p99']} ms"
        f"  failed {row['failed']}  cpu: server {cpu['servers']} client {cpu['load_generator']} "
        f"other {cpu['other']}",
        flush=True,
    )
    if not server.alive():
        raise RuntimeError(f"{server.name} died during {mode} c={c}:\n{server.log_tail()}")
    return row


def answers(server: Server, templates: list[H.Template]) -> list[list[float]]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        out = []
        for t in templates:
            r = client.post(t.path, content=t.body, headers={"content-type": t.content_type})
            r.raise_for_status()
            body = r.json()
            out.append(body["predictions"][0]["probabilities"] if "predictions" in body else body["probabilities"])
        return out


def run(args) -> dict:
    exported = H.require_manifest(args.exported)
    model = args.model or H.default_model(exported)
    pinning = H.split_cpus(not args.no_pin)
    server_cpus = pinning["servers"] if pinning else None
    client_cpus = pinning["load_generator"] if pinning else None
    threads = len(server_cpus) if server_cpus else 0  # onnxruntime spin-waits: no more threads than cores
    env = {"MNISTSERVE_ORT_THREADS": str(threads)} if threads else {}
    env.update(dict(kv.split("=", 1) for kv in args.server_env))
    report = {
        "server_env": env,
        "schema": "mnistserve.serving-benchmark/1",
        **H.environment(pinning, exported=exported),
        "model": model,
        "requests_per_level": args.requests,
        "warmup_per_level": args.warmup,
        "concurrency": args.concurrency,
        "onnxruntime_threads": threads or "onnxruntime default",
        "goals": GOALS,
        "rows": [],
    }
    work = H.scratch_dir("mnistserve-bench-")
    templates = H.raw_png_templates("/predict", model, read_batch_size=True)
    report["baseline"] = args.baseline and revision_of(args.baseline)
    report["rounds"] = args.rounds
    checkouts = {REPO: None}
    if args.baseline:
        checkouts[export_revision(args.baseline, work / "baseline")] = args.baseline
    servers: dict[str, Server] = {}
    try:
        for checkout, revision in checkouts.items():
            for mode, switch in (("bentoml-batched", "1"), ("bentoml-direct", "0")):
                if mode in args.modes:
                    name = mode if revision is None else f"{mode}@{revision}"
                    servers[name] = start_bentoml(
                        exported,
                        work / name,
                        cpus=server_cpus,
                        name=name.replace("@", "-at-"),
                        env={**env, "MNISTSERVE_ADAPTIVE_BATCHING": switch},
                        checkout=checkout,
                    )
        if "reference" in args.modes:
            servers["reference"] = H.start_reference(exported, work, cpus=server_cpus, threads=threads)
        expected = None
        for name, server in servers.items():
            report.setdefault("rss_after_start_mb", {})[name] = tree_rss(server.process.pid)["total_mb"]
            got = np.asarray(answers(server, templates))
            expected = got if expected is None else expected
            report[f"parity_max_abs_diff_{name}"] = float(np.abs(got - expected).max())  # the same work everywhere
        # Every server is up (idle ones cost nothing) and the levels alternate between them, round after round, in
        # turn first and last: a machine whose other load drifts disturbs each server alike.
        for r in range(args.rounds):
            order = list(servers.items())[:: -1 if r % 2 else 1]  # who goes first alternates too
            for c in args.concurrency:
                for name, server in order:
                    report["rows"].append({**measure(server, name, c, templates, args, client_cpus), "round": r})
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report["all_rounds"], report["rows"] = report["rows"], least_disturbed(report["rows"])
    report["verdicts"] = verdicts(report)
    report["failed_requests"] = sum(r["failed"] for r in report["all_rounds"])
    return report


def least_disturbed(rows: list[dict]) -> list[dict]:
    """Per mode and level, the round with the least server CPU per request: others' jobs on the machine only ever
    add to it (the row itself, so its figures belong together; failures summed over every round)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["mode"], row["concurrency"]), []).append(row)
    return [
        {
            **min(group, key=lambda row: row["server_cpu_ms_per_request"] or float("inf")),
            "failed": sum(row["failed"] for row in group),
        }
        for group in groups.values()
    ]


def revision_of(rev: str) -> str:
    """The commit `rev` names, abbreviated."""
    return subprocess.run(
        ["git", "rev-parse", "--short=12", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def export_revision(rev: str, target: Path) -> Path:
    """The tracked tree of git revision `rev`, written to `target` (`git archive`; the working tree is untouched)."""
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _rps(rows: list[dict], mode: str, c: int) -> float | None:
    return next((r["requests_per_second"] for r in rows if r["mode"] == mode and r["concurrency"] == c), None)


def verdicts(report: dict) -> list[dict]:
    """Each goal with the measured value and whether it is met, for both BentoML modes."""
    rows, levels, out = report["rows"], report["concurrency"], []
    ran = {r["mode"] for r in rows}
    for mode in [m for m in ("bentoml-batched", "bentoml-direct") if m in ran and "reference" in ran]:
        for c in levels:
            b, ref = _rps(rows, mode, c), _rps(rows, "reference", c)
            ratio = round(b / ref, 3) if b and ref else None
            out.append(
                {
                    "goal": f"{mode} throughput >= 70% of the reference at concurrency {c}",
                    "measured": ratio,
                    "met": ratio is not None and ratio >= GOALS["throughput_vs_reference"],
                }
            )
        c1 = next((r for r in rows if r["mode"] == mode and r["concurrency"] == 1), None)
        if c1:
            p50 = c1["latency_ms"]["p50"]
            note = "" if report["model"] == "cnn" else f" (measured model: {report['model']}; the goal is for the CNN)"
            out.append(
                {
                    "goal": f"{mode}: p50 < 5 ms at concurrency 1" + note,
                    "measured": p50,
                    "met": p50 is not None and p50 < GOALS["p50_ms_at_concurrency_1"],
                }
            )
    top = max(levels)
    if not {"bentoml-batched", "bentoml-direct"} <= ran:
        return out
    b, u = _rps(rows, "bentoml-batched", top), _rps(rows, "bentoml-direct", top)
    speedup = round(b / u, 3) if b and u else None
    out.append(
        {
            "goal": f"adaptive batching >= 2x the unbatched (direct) throughput at concurrency {top}",
            "measured": speedup,
            "met": speedup is not None and speedup >= GOALS["batching_speedup"],
        }
    )
    return out


def markdown(report: dict) -> str:
    lines = H.markdown_head(report, "Serving benchmark: BentoML service vs a minimal reference server") + [
        f"- model: {report['model']} from {report['measured']['exported']}; "
        f"onnxruntime threads: {report['onnxruntime_threads']}",
        f"- BentoML servers' environment: {report['server_env'] or 'defaults'}",
        f"- {report['requests_per_level']} measured requests per level after {report['warmup_per_level']} warm-up "
        f"requests, {report['rounds']} round(s), every server up at once and the levels alternating between them; "
        f"each row is the round with the least server CPU per request; failed requests in all rounds: "
        f"**{report['failed_requests']}**",
        "- answers agree (max |probability difference| against the first server): "
        + ", ".join(
            f"{k.removeprefix('parity_max_abs_diff_') if k != 'parity_max_abs_diff' else 'reference'} {v}"
            for k, v in report.items()
            if k.startswith("parity_max_abs_diff")
        ),
        "",
        "## Goals",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
    ]
    lines += [f"| {v['goal']} | {v['measured']} | {'yes' if v['met'] else '**no**'} |" for v in report["verdicts"]]
    lines += [
        "",
        "## Results",
        "",
        "| mode | concurrency | req/s | p50 ms | p90 ms | p99 ms | failed | server CPU ms/request | CPU server "
        "| CPU load-gen | CPU other | images per run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lat, cpu = r["latency_ms"], r["cpu_util"]
        cells = [
            r["mode"],
            r["concurrency"],
            r["requests_per_second"],
            lat["p50"],
            lat["p90"],
            lat["p99"],
            r["failed"],
            r["server_cpu_ms_per_request"],
            cpu["servers"],
            cpu["load_generator"],
            cpu["other"],
            _sizes(r["batch_sizes"]),
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    if report.get("baseline"):
        lines += ["", *before_after(report)]
    lines += ["", "## How to read it", "", *NOTES, ""]
    return "\n".join(lines)


def before_after(report: dict) -> list[str]:
    """Each BentoML mode as the baseline revision serves it beside this tree's, per concurrency level."""
    rows = {(r["mode"], r["concurrency"]): r for r in report["rows"]}
    lines = [
        f"## Before ({report['baseline']}) and after (this tree), side by side",
        "",
        "| mode | concurrency | server CPU ms/request before | after | req/s before | after | p50 ms before | after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (mode, c), before in rows.items():
        after = rows.get((mode.split("@")[0], c)) if "@" in mode else None
        if after:
            cells = [mode.split("@")[0], c, before["server_cpu_ms_per_request"], after["server_cpu_ms_per_request"]]
            cells += [before["requests_per_second"], after["requests_per_second"]]
            cells += [before["latency_ms"]["p50"], after["latency_ms"]["p50"]]
            lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    return lines


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
    "- `bentoml-direct` is the same service with MNISTSERVE_ADAPTIVE_BATCHING=0: /predict runs onnxruntime in a "
    "worker thread, skipping the hop through BentoML's client to the batchable `classify` (every answer reports "
    "`batch_size` 1). The speedup goal compares the two modes at the highest concurrency.",
    "- `server CPU ms/request` = server CPU-seconds per second / requests per second: what one request costs the "
    "server whatever the machine's other load; the most robust column on a busy machine.",
    "- `images per run` comes from each answer: /predict's `batch_size` (images in the onnxruntime run that answered "
    "it, i.e. how many requests adaptive batching merged).",
    "- The reference server runs the same ModelStore and preprocessing in uvicorn with no access log and no "
    "batching; BentoML writes an access-log line per request.",
    "- Numbers from a shared or busy machine (see the load average) are indicative only; rerun on a quiet one.",
]


def load_arguments(
    parser: argparse.ArgumentParser, *, name: str, requests: int, warmup: int, concurrency: list[int], deadline_s: float
) -> None:
    """The options every serving comparison takes (export, report, model, load, pinning, --quick); also versus.py's."""
    parser.add_argument("--name", default=name, help=f"report file name (reports/serving/<name>.md; default {name})")
    parser.add_argument("--quick", action="store_true", help="300 requests per level, 30 warm-up")
    parser.add_argument("--exported", type=Path, default=REPO / "exported")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "serving")
    parser.add_argument("--model", help="model to request (default: the manifest's default)")
    parser.add_argument("--requests", type=int, default=requests, help="measured requests per concurrency level")
    parser.add_argument("--warmup", type=int, default=warmup, help="unmeasured requests before each level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=concurrency)
    parser.add_argument("--timeout-s", type=float, default=30.0, help="per request")
    parser.add_argument("--deadline-s", type=float, default=deadline_s, help="per level: it stops by itself after this")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and load generator to CPUs")


def parse(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """The arguments, with --quick applied and the load checked (a clear message, not a traceback)."""
    args = parser.parse_args()
    if args.quick:
        args.requests, args.warmup = min(args.requests, 300), min(args.warmup, 30)
    if min(args.concurrency) < 1 or args.requests < 1 or args.warmup < 0:
        parser.error("--concurrency and --requests must be >= 1, --warmup >= 0")
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    load_arguments(parser, name="serving", requests=5000, warmup=300, concurrency=[1, 8, 32, 64], deadline_s=900.0)
    parser.add_argument(
        "--server-env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment of both BentoML servers, e.g. MNISTSERVE_ACCESS_LOG=0",
    )
    parser.add_argument("--baseline", metavar="REV", help="also run the BentoML modes as git revision REV serves them")
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every level this often; the least disturbed round shows"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES), help="modes to run (default: all)")
    args = parse(parser)
    report = run(args)
    H.write_report(args.out, args.name, report, markdown(report))
    for v in report["verdicts"]:
        print(f"{'met' if v['met'] else 'NOT met'}: {v['goal']}: {v['measured']}")
    sys.exit(1 if report["failed_requests"] else 0)


if __name__ == "__main__":
    main()
