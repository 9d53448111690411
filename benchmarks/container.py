"""The Docker image of `make container`: its size, what is in it, and the time from `docker run` to a green /readyz.
Goals: image <= 450 MB with OpenCV inside (issue 21; issue 15 had 400 MB without it), /readyz green <= 5 s after
`docker run`. Every container is published on 127.0.0.1 only and removed by id.
Usage:  python -m benchmarks.container [--build] [--runs 5] [--image mnistserve:latest] [--out reports/container]
        (`make container-report` = --build: times `deploy/docker/container.sh` too)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from pathlib import Path

import httpx

from benchmarks import harness as H
from mnistserve.contracts import read_json
from testkit import containers
from testkit.digits import draw_seven, encode
from testkit.servers import REPO

GOAL_MB, GOAL_READY_S = 450, 5.0
ABSENT = ("gcc", "cc", "make", "git", "pip", "pip3")  # nothing that builds or fetches code in the final image
LARGEST = 12  # the venv's largest entries listed
# The versions that matter inside the image (the report's `versions` line is this checkout's venv, not the image's).
IMAGE_PACKAGES = ("bentoml", "onnxruntime", "numpy", "opencv-python-headless", "pillow", "uvicorn", "pydantic")
VERSIONS = (  # run in the image with the package names as arguments
    "import importlib.metadata as m, json, platform, sys; print(json.dumps({'python': platform.python_version(), "
    "**{d.name.lower(): d.version for d in m.distributions() if d.name.lower() in sys.argv[1:]}}))"
)


def build(image: str) -> dict:
    """`deploy/docker/container.sh` (bentoml build + containerize), timed; its last line says what it built."""
    start = time.monotonic()
    done = subprocess.run(
        ["deploy/docker/container.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "MNISTSERVE_IMAGE": image},
    )
    if done.returncode != 0:
        raise SystemExit(f"container.sh failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("container:")]
    return {"seconds": round(time.monotonic() - start, 1), "log": lines}


def contents(image: str, info: dict) -> dict:
    """Size, layers, user, base, and which build tools the image has on its PATH."""
    look = "for t in " + " ".join(ABSENT) + "; do command -v $t || true; done"
    found = containers.run_once(image, "sh", "-c", look).split()
    history = containers.docker_cli("history", "--no-trunc", "--format", "{{json .}}", image).stdout.splitlines()
    layers = [
        {"size": row["Size"], "step": row["CreatedBy"][:110]}
        for row in map(json.loads, history)
        if row["Size"] not in ("0B", "0")
    ]
    return {
        "id": info["Id"][7:19],
        "size_mb": round(info["Size"] / 1e6, 1),
        "user": info["Config"]["User"],
        "base": (info["Config"].get("Labels") or {}).get("org.opencontainers.image.base.name", "unknown"),
        "build_tools_found": found,
        "layers": layers,
        "site_packages": venv_weight(image),
        "versions": image_versions(image),
    }


def image_versions(image: str) -> dict[str, str]:
    """Python's and IMAGE_PACKAGES' versions inside the image ("absent" for a package it lacks)."""
    found = json.loads(containers.run_once(image, "python", "-c", VERSIONS, *IMAGE_PACKAGES))
    return {"python": found["python"], **{name: found.get(name, "absent") for name in IMAGE_PACKAGES}}


def venv_weight(image: str) -> dict:
    """site-packages in bytes, and its largest folders and files: where the image's weight is."""
    script = f"cd /app/.venv/lib/python3*/site-packages && du -sb . && du -sb -- * | sort -rn | head -n {LARGEST}"
    out = containers.run_once(image, "sh", "-c", script)
    rows = [line.split("\t", 1) for line in out.splitlines()]
    return {"bytes": int(rows[0][0]), "largest": [{"bytes": int(size), "path": path} for size, path in rows[1:]]}


def ready_times(image: str, runs: int) -> list[dict]:
    """`docker run` -> /readyz 200, `runs` times (a new container each), and the first /predict after it."""
    seven, out = encode(draw_seven()), []
    for _ in range(runs):
        with containers.run(image) as box:
            ready = box.wait_ready(timeout=60)
            start = time.monotonic()
            with httpx.Client(base_url=box.url, timeout=30) as http:
                r = http.post("/predict", content=seven, headers={"Content-Type": "image/png"})
            out.append(
                {
                    "ready_s": round(ready, 2),
                    "first_predict_ms": round((time.monotonic() - start) * 1e3, 1),
                    "digit": r.json().get("digit") if r.status_code == 200 else r.status_code,
                }
            )
    return out


def image_manifest(image: str, info: dict) -> dict:
    """The image's exported/manifest.json (to compare with the checkout's)."""
    path = containers.image_env(info)["MNISTSERVE_EXPORTED"] + "/manifest.json"
    return json.loads(containers.image_text(image, path))


def markdown(report: dict) -> str:
    img, runs = report["image"], report["ready"]
    ready = [r["ready_s"] for r in runs]
    lines = H.markdown_head(report, "The Docker image (make container)", "containers")
    lines += [
        f"- load average at the end {report['load_average_at_end']} (a shared machine: start-up times grow with it)",
        "",
        f"- final stage on `{img['base']}`, user `{img['user']}`",
        "- versions in the image: " + ", ".join(f"{k} {v}" for k, v in img["versions"].items()),
    ]
    if report.get("build"):
        lines.append(
            f"- build (`deploy/docker/container.sh`, base image and pip cache reused): {report['build']['seconds']} s"
        )
    lines += [
        "",
        "| figure | measured | goal |",
        "|---|---|---|",
        f"| image size | {img['size_mb']:.0f} MB | <= {GOAL_MB} MB |",
        f"| `docker run` -> /readyz 200, median of {len(ready)} | {statistics.median(ready):.2f} s "
        f"(min {min(ready):.2f}, max {max(ready):.2f}) | <= {GOAL_READY_S:.0f} s |",
        f"| first /predict after ready, median | {statistics.median(r['first_predict_ms'] for r in runs):.0f} ms | |",
        f"| build tools on PATH ({', '.join(ABSENT)}) | {', '.join(img['build_tools_found']) or 'none'} | none |",
        "",
        "Models in the image (its exported/manifest.json; "
        + ("same as the checkout's" if report["manifest_matches_checkout"] else "**differs from the checkout's**")
        + "):",
        "",
        "| model | file | sha256 | shipped |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m['name']} | {m['file']} | {m['sha256'][:12]} | {m['shipped']} |" for m in report["models"]]
    lines += ["", "Layers with content:", "", "| size | step |", "|---|---|"]
    lines += [f"| {layer['size']} | `{layer['step'].replace('|', '/')}` |" for layer in img["layers"]]
    packages = img["site_packages"]
    lines += ["", f"The largest entries of the venv's site-packages ({packages['bytes'] / 1e6:.0f} MB in all):", ""]
    lines += ["| size | entry |", "|---|---|"]
    lines += [f"| {e['bytes'] / 1e6:.1f} MB | {e['path']} |" for e in packages["largest"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default=containers.IMAGE)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--build", action="store_true", help="build the image first (deploy/docker/container.sh)")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "container")
    args = parser.parse_args()
    if not containers.engine_answers():
        raise SystemExit("no Docker engine answers: run `make container` first (it starts one)")
    built = build(args.image) if args.build else None
    info = containers.inspect_image(args.image)
    if info is None:
        raise SystemExit(f"no image {args.image}: run `make container` first")
    manifest = image_manifest(args.image, info)
    report = {
        **H.environment(),
        "measured": H.measured_image(args.image),
        "tag": args.image,
        "build": built,
        "image": contents(args.image, info),
        "ready": ready_times(args.image, args.runs),
        "manifest_matches_checkout": manifest == read_json(REPO / "exported" / "manifest.json"),
        "models": [
            {"name": n, "file": e["file"], "sha256": e["sha256"], "shipped": e.get("shipped")}
            for n, e in manifest["models"].items()
        ],
    }
    report["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    report["goals_met"] = (
        report["image"]["size_mb"] <= GOAL_MB
        and statistics.median(r["ready_s"] for r in report["ready"]) <= GOAL_READY_S
    )
    H.write_report(args.out, "container", report, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
