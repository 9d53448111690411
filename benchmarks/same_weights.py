"""Do two exports hold the same weights? Each model's ONNX initializers compared tensor by tensor; the files' own
checksums differ whenever the embedded metadata does (run id, train seconds, thresholds), so they cannot say.

Usage:  python -m benchmarks.same_weights OLD_EXPORTED NEW_EXPORTED [--out reports/cpu/same-weights.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from benchmarks import harness as H
from mnistserve.contracts import atomic_write_bytes


def weights(path: Path) -> dict[str, np.ndarray]:
    """An ONNX file's initializers by name."""
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def compare(old: Path, new: Path) -> dict[str, dict]:
    """Each model in both manifests whose files are here: whether every initializer is equal, and how many there are."""
    a, b = (json.loads((d / "manifest.json").read_text())["models"] for d in (old, new))
    out = {}
    for name in sorted(set(a) & set(b)):
        files = old / a[name]["file"], new / b[name]["file"]
        if not all(f.is_file() for f in files):
            out[name] = {
                "compared": False,
                "why": "file missing: " + ", ".join(str(f) for f in files if not f.is_file()),
            }
            continue
        wa, wb = weights(files[0]), weights(files[1])
        equal = wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
        out[name] = {
            "compared": True,
            "identical": equal,
            "tensors": len(wa),
            "values": int(sum(v.size for v in wa.values())),
            "files": [f.name for f in files],
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--out", type=Path, default=Path("reports/cpu/same-weights.md"))
    args = ap.parse_args()
    env = H.environment()
    rows = compare(args.old, args.new)
    lines = [
        *H.markdown_head(env, "Same weights? Two exports' ONNX initializers, tensor by tensor"),
        f"- old: `{args.old}`, new: `{args.new}`",
        "",
        "| model | files (old, new) | tensors | values | every tensor equal |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        if r["compared"]:
            equal = "yes" if r["identical"] else "no"
            lines.append(f"| {name} | {', '.join(r['files'])} | {r['tensors']} | {r['values']:,} | {equal} |")
        else:
            lines.append(f"| {name} | {r['why']} | - | - | not compared |")
    text = "\n".join(lines) + "\n"
    atomic_write_bytes(args.out, text.encode())
    print(text)


if __name__ == "__main__":
    main()
