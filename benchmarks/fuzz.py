"""Fuzz the running service: schemathesis from its own /docs.json, then a hypothesis campaign of hostile requests
(testkit/attacks.py: random bytes, every PIL mode and format, 1x1 and huge sizes, decompression bombs,
truncated
files, wrong JSON, NaN/infinity/out-of-range numbers, unknown and path-traversal model names, oversized bodies,
malformed multipart, odd Content-Types, wrong methods and paths).

Pass: no 5xx, no dropped connection, no status outside an attack's expected set (path traversal: 400/404 only,
and no file content in any answer); afterwards the server is alive, /readyz is 200 and a good /predict is 200.
The server runs on loopback with its default limits, plus MNISTSERVE_ENABLE_BENCHMARK=1 (with at most 20 runs)
so that /latency/benchmark's validation is reached. Everything is bounded by request counts and a time budget.
Usage:  python -m benchmarks.fuzz [--exported exported] [--quick] [--requests 5000] [--schema-examples 100]
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from hypothesis import HealthCheck, Phase, given, seed, settings

from benchmarks import harness as H
from mnistserve.settings import Settings
from testkit.attacks import Probe, all_attacks, violation
from testkit.digits import digit_pngs
from testkit.processes import tree_rss
from testkit.servers import REPO, Server, start_bentoml

SERVER_ENV = {"MNISTSERVE_ENABLE_BENCHMARK": "1", "MNISTSERVE_BENCHMARK_MAX_RUNS": "20"}
MODES = {"direct": {"MNISTSERVE_ADAPTIVE_BATCHING": "0"}, "batching": {"MNISTSERVE_ADAPTIVE_BATCHING": "1"}}
GOAL_REQUESTS = 20_000  # generated requests per serving mode (schemathesis and the campaign together)
WEIGHTS = {"extreme-sizes": 0.4, "oversized-bodies": 0.4, "decompression-bombs": 0.7}  # the slow ones; others 1.0
SCHEMATHESIS_CHECKS = "all"
SKIPPED_CHECKS = "use_after_free,ensure_resource_availability,ignored_auth,object_level_authorization"


class Stop(Exception):
    """The campaign ends early: its time budget is spent, or the server died."""


class Campaign:
    """Sends probes, counts statuses per attack, keeps the requests that broke a rule."""

    def __init__(self, server: Server, deadline: float) -> None:
        self.server, self.deadline = server, deadline
        self.client = httpx.Client(base_url=server.url, timeout=120.0)
        self.statuses: dict[str, Counter[str]] = defaultdict(Counter)
        self.findings: list[dict] = []
        self.sent = 0
        self.stopped: str | None = None

    def send(self, attack: str, probe: Probe) -> None:
        if time.monotonic() > self.deadline:
            self.stopped = "time budget spent"
        if self.stopped:
            raise Stop(self.stopped)
        self.sent += 1
        try:
            r = self.client.request(
                probe.method, probe.path, content=probe.body(), headers=probe.headers(), params=list(probe.params)
            )
            status, text = str(r.status_code), r.text
        except (httpx.LocalProtocolError, httpx.InvalidURL, UnicodeEncodeError) as exc:  # refused by our own client
            status, text = f"not-sent:{type(exc).__name__}", str(exc)
        except httpx.HTTPError as exc:
            status, text = f"transport:{type(exc).__name__}", str(exc)
        self.statuses[attack][status] += 1
        problem = None if status.startswith("not-sent") else violation(probe, status, text)
        if problem:
            self.findings.append(
                {
                    "attack": attack,
                    "problem": problem,
                    "status": status,
                    "response": text[:400],
                    "request": probe.summary(),
                    "body_base64": _keep(probe.content),
                }
            )
            if status.startswith("transport") and not self.server.alive():
                self.stopped = f"the server died during {attack}: {self.server.log_tail(1500)}"
                raise Stop(self.stopped)

    def run(self, attack: str, strategy, examples: int, rng_seed: int) -> None:
        @seed(rng_seed)
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def one(probe: Probe) -> None:
            self.send(attack, probe)

        try:
            one()
        except Stop:
            pass


def _keep(content: bytes) -> str | None:
    return base64.b64encode(content).decode() if len(content) <= 65536 else None


class PeakRSS(threading.Thread):
    """Samples the server tree's RSS every 0.2 s; `take()` returns the peak since the last call."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak = max(self.peak, tree_rss(self.pid)["total_mb"])

    def take(self) -> float:
        peak, self.peak = max(self.peak, tree_rss(self.pid)["total_mb"]), 0.0
        return round(peak, 1)


def run_schemathesis(server: Server, work: Path, examples: int, rng_seed: int, timeout: float) -> dict:
    """`schemathesis run` against /docs.json; statuses counted from its HAR log, its findings from its report."""
    out = work / "schemathesis"
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        server.url + "/docs.json",
        "--checks",
        SCHEMATHESIS_CHECKS,
        "--exclude-checks",
        SKIPPED_CHECKS,
        "--max-examples",
        str(examples),
        "--seed",
        str(rng_seed),
        "--mode",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--request-timeout",
        "120",
        "--continue-on-failure",
        "--report",
        "har,json",
        "--report-dir",
        str(out),
        "--no-color",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
    ]
    try:  # cwd=work: schemathesis keeps a .schemathesis/ cache in its working directory
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout)
        exit_code, tail = proc.returncode, proc.stdout[-3000:]
    except subprocess.TimeoutExpired as exc:
        exit_code, tail = "timeout", (exc.stdout or b"")[-3000:].decode(errors="replace")
    statuses: dict[str, Counter[str]] = defaultdict(Counter)
    for har in out.glob("har-*.json"):
        for entry in json.loads(har.read_text())["log"]["entries"]:
            op = f"{entry['request']['method']} {_template(urlsplit(entry['request']['url']).path)}"
            statuses[op][str(entry["response"]["status"])] += 1
    wrong_methods = Counter()  # schemathesis' unsupported_method check tries every other method once
    for op in [op for op, counts in statuses.items() if set(counts) == {"405"}]:
        wrong_methods.update(statuses.pop(op))
    if wrong_methods:
        statuses["undocumented methods, all routes"] = wrong_methods
    report = next((json.loads(p.read_text()) for p in out.glob("json-*.json")), {})
    return {
        "command": " ".join(cmd[1:]).replace(server.url, "http://127.0.0.1:PORT"),
        "exit_code": exit_code,
        "statuses": {k: dict(v) for k, v in sorted(statuses.items())},
        "sent": sum(sum(v.values()) for v in statuses.values()),
        "test_cases": report.get("test_cases"),
        "findings": report.get("failures", []),
        "errors": report.get("errors", []),
        "output_tail": None if report else tail,
    }


def _template(path: str) -> str:
    return re.sub(r"^/plots/.+", "/plots/{name}", path)


def scan_log(text: str) -> dict:
    """Exceptions the server logged, by type; pydantic's ValidationError (BentoML logs every 400 with a
    traceback) is counted apart from the others."""
    kinds: Counter[str] = Counter()
    for block in text.split("Traceback (most recent call last):")[1:]:
        last = next((ln for ln in block.splitlines() if re.match(r"^[\w.]+(Error|Exception|Exit|Group)\b", ln)), "?")
        kinds[last.split(":")[0]] += 1
    kinds["'ASGI callable returned without starting response'"] = text.count("ASGI callable returned without")
    return {k: v for k, v in kinds.items() if v}


def after_checks(server: Server, model: str) -> dict:
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            ready = client.get("/readyz").status_code
            good = client.post(
                f"/predict?model={model}", content=digit_pngs()[7], headers={"content-type": "image/png"}
            ).status_code
    except httpx.HTTPError as exc:
        ready = good = f"transport:{type(exc).__name__}"
    return {"alive": server.alive(), "readyz": ready, "good_predict": good}


def run(args) -> dict:
    exported = H.require_manifest(args.exported)
    model = H.default_model(exported)
    limits = Settings.from_env({})
    report = {
        "schema": "mnistserve.fuzz/2",
        **H.environment(exported=exported),
        "model": model,
        "server_env": SERVER_ENV,
        "limits": {"max_body_bytes": limits.max_body_bytes, "max_pixels": limits.max_pixels},
        "seed": args.seed,
        "modes": {},
    }
    for mode in args.modes:  # the same attacks on each serving path: direct, and through the batcher
        print(f"== serving mode: {mode}", flush=True)
        report["modes"][mode] = run_mode(args, exported, model, limits, MODES[mode])
        report["modes"][mode]["verdicts"] = verdicts(report["modes"][mode], args)
    report["verdicts"] = [
        {**v, "goal": f"{mode}: {v['goal']}"} for mode, r in report["modes"].items() for v in r["verdicts"]
    ]
    return report


def run_mode(args, exported: Path, model: str, limits: Settings, env: dict[str, str]) -> dict:
    """Schemathesis, then the campaign, against one server started with `env`; then the after-checks."""
    result: dict = {"server_env": {**SERVER_ENV, **env}}
    work = H.scratch_dir("mnistserve-fuzz-")
    try:
        server = start_bentoml(exported, work, cpus=None, env=result["server_env"])
        peak = PeakRSS(server.process.pid)
        peak.start()
        try:
            result["rss_at_start_mb"] = tree_rss(server.process.pid)["total_mb"]
            started = time.monotonic()
            result["schemathesis"] = run_schemathesis(
                server, work, args.schema_examples, args.seed, timeout=args.time_budget_s / 2
            )
            result["schemathesis"]["peak_rss_mb"] = peak.take()
            result["schemathesis"]["seconds"] = round(time.monotonic() - started, 1)
            result["campaign"] = campaign(server, args, limits, peak)
            result["after"] = after_checks(server, model)
            result["rss_at_end_mb"] = tree_rss(server.process.pid)["total_mb"]
        finally:
            peak.done.set()
            server.stop()
            result["server_log_exceptions"] = scan_log(server.log.read_text(errors="replace"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def campaign(server: Server, args, limits: Settings, peak: PeakRSS) -> dict:
    attacks = all_attacks(max_pixels=limits.max_pixels, max_body_bytes=limits.max_body_bytes, digit_png=digit_pngs()[7])
    share = args.requests / sum(WEIGHTS.get(name, 1.0) for name in attacks)
    runner = Campaign(server, time.monotonic() + args.time_budget_s / 2)
    per_attack = {}
    for i, (name, strategy) in enumerate(attacks.items()):
        started, before = time.monotonic(), runner.sent
        runner.run(name, strategy, max(1, round(share * WEIGHTS.get(name, 1.0))), args.seed + i)
        per_attack[name] = {
            "sent": runner.sent - before,
            "statuses": dict(sorted(runner.statuses[name].items())),
            "seconds": round(time.monotonic() - started, 1),
            "peak_rss_mb": peak.take(),
        }
        print(f"{name:24s} {per_attack[name]}", flush=True)
        if runner.stopped:
            break
    totals = Counter()
    for counts in runner.statuses.values():
        totals.update(counts)
    return {
        "sent": runner.sent,
        "stopped_early": runner.stopped,
        "statuses": dict(sorted(totals.items())),
        "attacks": per_attack,
        "findings": runner.findings[:100],
        "findings_total": len(runner.findings),
    }


def verdicts(report: dict, args) -> list[dict]:
    st, camp, after = report["schemathesis"], report["campaign"], report["after"]
    st_5xx = sum(n for op in st["statuses"].values() for s, n in op.items() if s.startswith("5"))
    camp_bad = Counter(f["problem"] for f in camp["findings"])
    total = st["sent"] + camp["sent"]
    out = [
        {"goal": "schemathesis: no 5xx", "measured": st_5xx, "met": st_5xx == 0},
        {
            "goal": "campaign: no 5xx, no failed connection, no unexpected status, no file content",
            "measured": dict(camp_bad) or 0,
            "met": not camp_bad,
        },
        {
            "goal": "campaign ran to the end",
            "measured": camp["stopped_early"] or "yes",
            "met": camp["stopped_early"] is None,
        },
        {
            "goal": "afterwards: alive, /readyz 200, a good /predict 200",
            "measured": after,
            "met": after["alive"] and after["readyz"] == 200 and after["good_predict"] == 200,
        },
    ]
    if not args.quick:
        out.append(
            {"goal": f"at least {GOAL_REQUESTS:,} generated requests", "measured": total, "met": total >= GOAL_REQUESTS}
        )
    return out


def markdown(report: dict) -> str:
    """The report: what ran and on which models, the verdicts, then each serving mode's details."""
    sent = {mode: r["schemathesis"]["sent"] + r["campaign"]["sent"] for mode, r in report["modes"].items()}
    lines = [
        "# Fuzzing the MNIST service",
        "",
        f"- command: `{report['command']}`",
        f"- device: {report['device']['cpu']}, {report['device']['cores']} cores; load average at start "
        f"{report['device']['load_average_at_start']}",
        f"- git revision: {report['git_revision']}; started {report['started']}; seed {report['seed']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        *H.measured_lines(report),
        f"- server: `bentoml serve` on loopback, default limits {report['limits']}, plus {report['server_env']}",
        "- requests per serving mode (schemathesis + campaign): "
        + ", ".join(f"{mode} **{n:,}**" for mode, n in sent.items()),
        "",
        "## Verdicts",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        *[f"| {v['goal']} | {v['measured']} | {'yes' if v['met'] else '**no**'} |" for v in report["verdicts"]],
        "",
    ]
    for mode, r in report["modes"].items():
        lines += mode_markdown(mode, r)
    return "\n".join(lines)


def mode_markdown(mode: str, r: dict) -> list[str]:
    """One serving mode's campaign, findings, schemathesis table and logged exceptions."""
    st, camp = r["schemathesis"], r["campaign"]
    return [
        f"## Serving mode `{mode}` ({r['server_env']})",
        "",
        f"- server RSS: start {r['rss_at_start_mb']} MB, end {r['rss_at_end_mb']} MB; afterwards {r['after']}",
        "",
        "### Campaign: statuses per attack",
        "",
        "| attack | sent | statuses | seconds | peak server RSS MB |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | {a['sent']} | {a['statuses']} | {a['seconds']} | {a['peak_rss_mb']} |"
            for name, a in camp["attacks"].items()
        ],
        f"| **all** | {camp['sent']} | {camp['statuses']} | | |",
        "",
        "### Campaign findings (requests that broke a rule; bodies in the JSON)",
        "",
        *(
            [
                f"- {f['attack']}: {f['problem']}: {f['status']} for {f['request']} -> {f['response'][:160]!r}"
                for f in camp["findings"][:30]
            ]
            or ["- none"]
        ),
        "",
        "### Schemathesis (from /docs.json)",
        "",
        f"- `schemathesis {st['command']}` (exit {st['exit_code']}, "
        f"{st['seconds']} s, peak server RSS {st['peak_rss_mb']} MB); test cases {st['test_cases']}",
        "",
        "| operation | statuses |",
        "|---|---|",
        *[f"| {op} | {s} |" for op, s in st["statuses"].items()],
        "",
        "Schemathesis findings (contract checks: documented statuses, schema-valid input accepted, invalid input "
        "rejected; only a 5xx fails this run; each is explained in reports/fuzz/FINDINGS.md):",
        "",
        *(
            [f"- {f['code']} {f['title']}: {f['count']} on {', '.join(f['operations'])}" for f in st["findings"]]
            or ["- none"]
        ),
        "",
        "### Exceptions in the server log",
        "",
        f"{r['server_log_exceptions'] or 'none'}",
        "",
        "BentoML logs every request its pydantic validation rejects (400) with a full traceback at ERROR level; "
        "those are counted under ValidationError. Anything else here deserves a look.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exported", type=Path, default=REPO / "exported")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "fuzz")
    parser.add_argument(
        "--requests", type=int, default=24_000, help="hypothesis campaign requests per serving mode, over all attacks"
    )
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES), default=list(MODES), help="serving modes to fuzz")
    parser.add_argument("--schema-examples", type=int, default=100, help="schemathesis --max-examples per operation")
    parser.add_argument(
        "--time-budget-s", type=float, default=2400.0, help="per serving mode, half for each phase; stops by itself"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="400 campaign requests, 5 schemathesis examples")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.schema_examples, args.time_budget_s = 400, 5, min(args.time_budget_s, 900.0)
    report = run(args)
    H.write_report(args.out, "fuzz", report, markdown(report))
    for v in report["verdicts"]:
        print(f"{'met' if v['met'] else 'NOT met'}: {v['goal']}: {v['measured']}")
    sys.exit(0 if all(v["met"] for v in report["verdicts"]) else 1)


if __name__ == "__main__":
    main()
