"""benchmarks.versus' verdicts and Markdown, written from the measured rows (pure functions: tests/test_versus.py)."""

from __future__ import annotations

from benchmarks import harness as H

OURS, RIVAL = "bentoml-direct", "torchserve"
MAIN = ("bentoml-direct", "reference", "torchserve")  # the servers as installed


def row(rows: list[dict], mode: str, c: int) -> dict | None:
    """The row of `mode` at concurrency `c`, if it was measured."""
    return next((r for r in rows if r["mode"] == mode and r["concurrency"] == c), None)


def _p99(r: dict) -> float | None:
    return r["latency_ms"]["p99"]


def modes_of(rows: list[dict]) -> list[str]:
    """The servers measured, in the order they ran."""
    return list(dict.fromkeys(r["mode"] for r in rows))


def goal_verdicts(rows: list[dict], levels: list[int]) -> list[dict]:
    """The issue's goal at each level: this service (each HTTP variant run) ahead of TorchServe in req/s and p99."""
    out = []
    for mode in (m for m in modes_of(rows) if m.startswith(OURS)):
        for c in levels:
            ours, rival = row(rows, mode, c), row(rows, RIVAL, c)
            if ours is None or rival is None:
                continue
            rps = (ours["requests_per_second"], rival["requests_per_second"])
            out.append(
                {
                    "goal": f"{mode} more requests/s than {RIVAL} at concurrency {c}",
                    "measured": list(rps),
                    "met": None not in rps and rps[0] > rps[1] and not ours["failed"],
                }
            )
            p99 = (_p99(ours), _p99(rival))
            out.append(
                {
                    "goal": f"{mode} lower p99 than {RIVAL} at concurrency {c}",
                    "measured": list(p99),
                    "met": None not in p99 and p99[0] < p99[1],
                }
            )
    return out


def where_each_wins(rows: list[dict], levels: list[int]) -> list[str]:
    """One sentence per level: who served the most requests/s and who had the lowest p99, with the others' figures."""
    modes, lines = modes_of(rows), []
    for c in levels:
        here = [r for m in modes if (r := row(rows, m, c)) is not None and r["requests_per_second"]]
        if not here:
            continue
        fast = sorted(here, key=lambda r: -r["requests_per_second"])
        calm = sorted((r for r in here if _p99(r) is not None), key=_p99)
        rps = ", ".join(f"{r['mode']} {r['requests_per_second']}" for r in fast)
        p99 = ", ".join(f"{r['mode']} {_p99(r)}" for r in calm)
        failed = [f"{r['mode']} {r['failed']}" for r in here if r["failed"]]
        lines.append(
            f"- concurrency {c}: most requests/s: **{fast[0]['mode']}** ({rps} req/s); lowest p99: "
            f"**{calm[0]['mode'] if calm else 'none'}** ({p99} ms)"
            + (f"; failed requests: {', '.join(failed)}" if failed else "")
        )
    return lines


def http_gains(rows: list[dict], levels: list[int], suffix: str) -> list[dict]:
    """Each uvicorn server with httptools/uvloop (as installed) against itself with both hidden (`mode + suffix`)."""
    out = []
    for base in (m for m in MAIN if any(r["mode"] == m + suffix for r in rows)):
        for c in levels:
            native, plain = row(rows, base, c), row(rows, base + suffix, c)
            if native is None or plain is None or not plain["requests_per_second"]:
                continue
            out.append(
                {
                    "server": base,
                    "concurrency": c,
                    "rps_native": native["requests_per_second"],
                    "rps_h11_asyncio": plain["requests_per_second"],
                    "rps_gain": round(native["requests_per_second"] / plain["requests_per_second"] - 1, 3),
                    "p99_native": _p99(native),
                    "p99_h11_asyncio": _p99(plain),
                    "cpu_ms_native": native["server_cpu_ms_per_request"],
                    "cpu_ms_h11_asyncio": plain["server_cpu_ms_per_request"],
                }
            )
    return out


def markdown(report: dict) -> str:
    """The report: head, results table, where each wins, the goal, the httptools/uvloop comparison, notes."""
    lines = H.markdown_head(report, "Serving: this service vs TorchServe vs the reference server") + [
        f"- model: {report['model']}; onnxruntime threads: {report['onnxruntime_threads']}; "
        f"server cores: {report['server_cores']}; BentoML workers: {report.get('bentoml_workers', 'not recorded')} "
        "(MNISTSERVE_WORKERS), TorchServe workers: 1",
        f"- {report['requests_per_level']} measured requests per level after {report['warmup_per_level']} warm-up; "
        f"{report.get('rounds', 1)} round(s), every server started afresh each round, the order reversed every other "
        "round; each row is the round with the least server CPU per request (others' jobs only add to it); failed "
        f"requests in total: **{report['failed_requests']}**",
        "- answers agree (max |probability difference| against the first server): "
        + ", ".join(f"{k} {v:.2g}" for k, v in report["parity_max_abs_diff"].items()),
        "- uvicorn's HTTP stack as loaded (compiled modules mapped into the server's processes): "
        + "; ".join(f"{k}: uvloop {v['uvloop']}, httptools {v['httptools']}" for k, v in report["http_stack"].items()),
        "",
        "## Results",
        "",
        "| server | concurrency | req/s | req/s per server core | p50 ms | p99 ms | failed | server CPU ms/request "
        "| CPU server | CPU load-gen | CPU other |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lat, cpu = r["latency_ms"], r["cpu_util"]
        cells = [
            r["mode"],
            r["concurrency"],
            r["requests_per_second"],
            r["requests_per_second_per_core"],
            lat["p50"],
            lat["p99"],
            r["failed"],
            r["server_cpu_ms_per_request"],
            cpu["servers"],
            cpu["load_generator"],
            cpu["other"],
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "## Where each wins",
        "",
        *report["where_each_wins"],
        "",
        "## Goal: ahead of TorchServe",
        "",
        "| goal | measured (ours, TorchServe) | met |",
        "|---|---|---|",
    ]
    lines += [f"| {v['goal']} | {v['measured']} | {'yes' if v['met'] else '**no**'} |" for v in report["verdicts"]]
    if report["http_gains"]:
        lines += [
            "",
            "## httptools + uvloop against h11 + asyncio",
            "",
            "| server | concurrency | req/s native | req/s h11/asyncio | gain | p99 native | p99 h11/asyncio "
            "| CPU ms/request native | CPU ms/request h11/asyncio |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {g['server']} | {g['concurrency']} | {g['rps_native']} | {g['rps_h11_asyncio']} | "
            f"{g['rps_gain']:+.1%} | {g['p99_native']} | {g['p99_h11_asyncio']} | {g['cpu_ms_native']} | "
            f"{g['cpu_ms_h11_asyncio']} |"
            for g in report["http_gains"]
        ]
    lines += ["", "## How it was run", "", *NOTES, ""]
    return "\n".join(lines)


NOTES = [
    "- Every server runs on the same pinned CPUs, one at a time, driven by the same load generator "
    "(benchmarks/harness.py) on the other CPUs; the same raw image/png digits go to each.",
    "- bentoml-direct: `bentoml serve serving.service:MNISTService` with MNISTSERVE_ADAPTIVE_BATCHING=0 (one "
    "onnxruntime run per request, like the other two) and MNISTSERVE_WORKERS from --workers (default 1: one "
    "worker per server core, as TorchServe's one); BentoML's access log on, as shipped.",
    "- torchserve: `torchserve --foreground` with benchmarks/torchserve/config.properties: one worker, batch size 1 "
    "(model-config.yaml in the archive, made at run time in a scratch directory), token authorization off (every "
    "request would need a key), the metrics API and the system-metrics collector off, asynchronous logging, and "
    "benchmarks/torchserve/log4j2.xml: its access log kept (as BentoML's), its per-request DEBUG and metric log "
    "lines (on by default, each also copied to stdout) off. Its handler uses the same ModelStore, preprocessing "
    "and answer "
    "as the reference server. Its CPU figures include the JVM and the Python worker.",
    "- `:h11-asyncio` rows: the same server with PYTHONPATH pointing at stand-in `uvloop` and `httptools` packages "
    "that raise ImportError, so uvicorn's `auto` loop and HTTP settings (which BentoML leaves at their defaults) "
    "fall back to asyncio and h11 exactly as without them installed; the stack line above shows what each loaded.",
    "- `server CPU ms/request` = server CPU-seconds per second / requests per second: the column a busy machine "
    "disturbs least. `CPU other` well above 0 means someone else's work shared the machine.",
]
