"""The framework floor: what one request costs BentoML and Starlette when the handler does nothing.

Both servers echo a JSON number, pinned to the same CPU, driven by the same load generator as throughput.py.
Their ratio bounds the ratio throughput.py can reach: when BentoML's own per-request work already exceeds the
reference server's whole request (preprocessing and inference included), no service code can close the gap.
Usage:  python -m benchmarks.floor [--requests 5000] [--concurrency 8 64] [--out reports/serving]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from benchmarks import harness as H
from testkit.servers import REPO, free_port, launch


def servers(work: Path) -> dict[str, tuple[list[str], dict, int]]:
    """name -> (argv, env, port) of each floor server, on free ports."""
    env = {"BENTOML_DO_NOT_TRACK": "true", "BENTOML_HOME": str(work / "bentoml-home")}
    bento_port, star_port = free_port(), free_port()
    return {
        "bentoml": (
            [
                sys.executable,
                "-m",
                "bentoml",
                "serve",
                "benchmarks.floor_apps:Floor",
                "--host",
                "127.0.0.1",
                "--port",
                str(bento_port),
            ],
            env,
            bento_port,
        ),
        "starlette": (
            [
                sys.executable,
                "-m",
                "uvicorn",
                "benchmarks.floor_apps:STARLETTE",
                "--host",
                "127.0.0.1",
                "--port",
                str(star_port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env,
            star_port,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "serving")
    args = parser.parse_args()
    pinning = H.split_cpus(True)
    report = {"schema": "mnistserve.floor/1", **H.environment(pinning), "requests_per_level": args.requests, "rows": []}
    work = H.scratch_dir("mnistserve-floor-")
    template = H.Template("/echo", b'{"x": 1}', "application/json").encode()
    try:
        for name, (argv, env, port) in servers(work).items():
            server = launch(
                name,
                argv,
                env=env,
                log=work / f"{name}.log",
                cpus=pinning and pinning["servers"],
                url=f"http://127.0.0.1:{port}",
            )
            try:
                for c in args.concurrency:
                    load = H.Load(
                        url=server.url,
                        templates=[template],
                        count=args.requests,
                        concurrency=c,
                        warmup=args.warmup,
                        timeout_s=30,
                        deadline_s=300,
                        watch_pids=[server.process.pid],
                    )
                    r = H.run_driver(load, pinning and pinning["load_generator"])
                    rps, cpu = r["requests_per_second"], r["cpu_util"]["servers"]
                    row = {
                        "server": name,
                        "concurrency": c,
                        "requests_per_second": rps,
                        "failed": r["failed"],
                        "latency_ms": r["latency_ms"],
                        "server_cpu": cpu,
                        "server_cpu_ms_per_request": round(1000 * cpu / rps, 3) if rps else None,
                    }
                    report["rows"].append(row)
                    print(
                        f"{name:10s} c={c:<3d} {rps:>8} req/s  p50 {r['latency_ms']['p50']} ms  "
                        f"failed {r['failed']}  server CPU {row['server_cpu_ms_per_request']} ms/request",
                        flush=True,
                    )
            finally:
                server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        "# Framework floor: BentoML vs Starlette with a handler that does nothing",
        "",
        f"- command: `{report['command']}`",
        f"- device: {report['device']['cpu']}, {report['device']['cores']} "
        f"cores; load average at start {report['device']['load_average_at_start']}",
        f"- git revision: {report['git_revision']}; started {report['started']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        '- both servers on the same pinned CPU, BentoML\'s access log off; POST /echo {"x": 1}',
        "",
        "| server | concurrency | req/s | p50 ms | server CPU ms/request | failed |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['server']} | {r['concurrency']} | {r['requests_per_second']} | {r['latency_ms']['p50']} | "
        f"{r['server_cpu_ms_per_request']} | {r['failed']} |"
        for r in report["rows"]
    ]
    H.write_report(args.out, "floor", report, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
