"""An export that cannot be half-applied: the exporter is SIGKILLed at every commit step, and the previous
export must still be served whole, the next export must complete, and nothing may be left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from mnistserve.contracts import read_json, sha256_file, shipped_comparison, validate_manifest
from serving.store import ModelStore
from training import publish as P
from training.export import export_run

ROOT = Path(__file__).resolve().parents[1]
FIXED = {"manifest.json", ".gitignore", ".bentoignore"}

# Publishes a prepared staging folder the way export_run does, SIGKILLed where `publish._step` is told to die.
KILLER = """
import json, os, shutil, signal, sys
from pathlib import Path
from training import publish
out, template, step = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
publish._step = lambda name: name == step and os.kill(os.getpid(), signal.SIGKILL)
with publish.publishing(out) as staging:
    shutil.copytree(template / "files", staging, dirs_exist_ok=True)
    publish.commit(staging, out, json.loads((template / "manifest.json").read_text()))
"""


@pytest.fixture(scope="module")
def first(smoke_runs, mnist, tmp_path_factory):
    """A real export of the smoke run: the one that every killed export must leave served."""
    out = tmp_path_factory.mktemp("real") / "exported"
    return out, export_run(smoke_runs / "latest", out, mnist, log=lambda m: None)


def make_next(out: Path, manifest: dict, template: Path, tag: str) -> dict:
    """A second export of the same models into `template` (files/ + manifest.json), every file's bytes changed."""
    files = template / "files"
    (files / "plots").mkdir(parents=True)
    models = {}
    for name, entry in manifest["models"].items():
        proto = onnx.load(str(out / entry["file"]))
        onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, "export": tag})
        staged = files / f"{name}.onnx"
        onnx.save(proto, str(staged))
        digest = sha256_file(staged)
        staged.rename(files / P.versioned(staged.name, digest))
        models[name] = {
            **entry,
            "file": P.versioned(staged.name, digest),
            "sha256": digest,
            "size_bytes": (files / P.versioned(staged.name, digest)).stat().st_size,
        }
    comparison = {**read_json(shipped_comparison(out)), "run_id": tag}
    data = json.dumps(comparison).encode()
    (files / "comparison.json").write_bytes(data)
    comparison_file = P.versioned("comparison.json", sha256_file(files / "comparison.json"))
    (files / "comparison.json").rename(files / comparison_file)
    plots = []
    for rel in manifest["plots"]:
        png = (out / rel).read_bytes() + tag.encode()  # bytes after IEND: still a PNG, another checksum
        (files / "plots" / "new.png").write_bytes(png)
        name = P.versioned(Path(rel).name, sha256_file(files / "plots" / "new.png"))
        (files / "plots" / "new.png").rename(files / "plots" / name)
        plots.append(f"plots/{name}")
    new = {
        **manifest,
        "run_id": tag,
        "models": models,
        "plots": plots,
        "comparison": {"file": comparison_file, "sha256": sha256_file(files / comparison_file)},
    }
    (template / "manifest.json").write_text(json.dumps(validate_manifest(new)))
    return new


def assert_served_whole(out: Path, manifest: dict) -> None:
    """The service loads exactly `manifest`: every model with its checksum, its comparison, its plots."""
    store = ModelStore(out)
    assert store.manifest == manifest and not store.skipped
    assert {n: m.entry["sha256"] for n, m in store.models.items()} == {
        n: e["sha256"] for n, e in manifest["models"].items()
    }
    for name, entry in manifest["models"].items():
        assert sha256_file(out / entry["file"]) == entry["sha256"], name
    assert store.comparison == read_json(out / manifest["comparison"]["file"])
    assert sha256_file(out / manifest["comparison"]["file"]) == manifest["comparison"]["sha256"]
    assert all((out / p).is_file() for p in manifest["plots"])


def assert_no_debris(out: Path, manifest: dict) -> None:
    """Only what the manifest names (and the ignore files for its unshipped models); no staging anywhere."""
    found = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert found == P.named_files(manifest) | FIXED
    unshipped = sorted(f"/{e['file']}" for e in manifest["models"].values() if not e["shipped"])
    for name in (".gitignore", ".bentoignore"):
        assert (out / name).read_text().split() == unshipped
    assert not [p for p in out.parent.iterdir() if "staging" in p.name]


def test_a_real_export_is_content_addressed_and_leaves_nothing_else(first):
    out, manifest = first
    assert_served_whole(out, manifest)
    assert_no_debris(out, manifest)
    entry = manifest["models"]["cnn"]
    assert entry["file"] == f"cnn.{entry['sha256'][:12]}.onnx"
    assert manifest["comparison"]["file"].startswith("comparison.") and all(".png" in p for p in manifest["plots"])


@pytest.mark.parametrize("step", P.STEPS)
def test_a_kill_at_each_step_leaves_one_whole_export_served(first, step, tmp_path):
    out, manifest = _copy_of(first, tmp_path)
    nxt = make_next(out, manifest, tmp_path / "template", tag=f"next-{step}")
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(out), str(tmp_path / "template"), step],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not list(out.glob("*staging*"))  # staging is a sibling of exported/, never inside it
    committed = P.STEPS.index(step) >= P.STEPS.index("committed")
    assert_served_whole(out, nxt if committed else manifest)  # before the manifest's rename: the old one, whole
    # The next export clears what the killed one left (its staging folder, unnamed files) and publishes whole.
    again = make_next(out, nxt if committed else manifest, tmp_path / "again", tag="again")
    done = subprocess.run(
        [sys.executable, "-c", KILLER, str(out), str(tmp_path / "again"), "never"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert_served_whole(out, again)
    assert_no_debris(out, again)


def _copy_of(first, tmp_path) -> tuple[Path, dict]:
    """A private copy of the first export (tests publish over it) and its manifest."""
    real, manifest = first
    shutil.copytree(real, tmp_path / "exported")
    return tmp_path / "exported", manifest


def test_the_real_exporter_killed_while_moving_files_in_leaves_the_old_export_served(first, smoke_runs, tmp_path):
    out, manifest = _copy_of(first, tmp_path)
    script = (
        "import os, signal, sys; from pathlib import Path; from training import publish; "
        "from training.data import load_mnist; from training.export import export_run; "
        "publish._step = lambda name: name == 'move' and os.kill(os.getpid(), signal.SIGKILL); "
        "export_run(Path(sys.argv[1]), Path(sys.argv[2]), load_mnist(allow_download=False), log=print)"
    )
    killed = subprocess.run(
        [sys.executable, "-c", script, str(smoke_runs / "latest"), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert list(tmp_path.glob(".exported.staging-*")) and len(list(out.glob("*.onnx"))) == 2  # debris, never named
    assert_served_whole(out, manifest)


def test_a_real_export_after_a_killed_one_completes_without_debris(first, smoke_runs, mnist, tmp_path):
    out, manifest = _copy_of(first, tmp_path)
    (tmp_path / ".exported.staging-dead").mkdir()  # as a SIGKILLed export leaves it
    (tmp_path / ".exported.staging-dead" / "cnn.onnx").write_bytes(b"half")
    (out / "cnn.0123456789ab.onnx").write_bytes(b"moved in, never named")
    (out / ".staging-old").mkdir()  # where exporters before this one staged
    fresh = export_run(smoke_runs / "latest", out, mnist, log=lambda m: None)
    assert fresh["models"]["cnn"]["sha256"] != manifest["models"]["cnn"]["sha256"]  # new latency, new bytes
    assert_served_whole(out, fresh)
    assert_no_debris(out, fresh)


def test_a_store_loading_while_an_export_commits_serves_the_new_export_whole(first, tmp_path, monkeypatch):
    out, manifest = _copy_of(first, tmp_path)
    nxt = make_next(out, manifest, tmp_path / "template", tag="during-load")
    original, calls = ModelStore._load, []

    def load_then_export(self, name, entry):  # the export commits (and deletes the old files) mid-load
        if not calls:
            with P.publishing(out) as staging:
                shutil.copytree(tmp_path / "template" / "files", staging, dirs_exist_ok=True)
                P.commit(staging, out, nxt)
        calls.append(name)
        return original(self, name, entry)

    monkeypatch.setattr(ModelStore, "_load", load_then_export)
    store = ModelStore(out)
    assert store.manifest == nxt and not store.skipped and len(calls) == 2 * len(nxt["models"])
    assert store.comparison["run_id"] == "during-load"


def test_a_second_exporter_is_refused_while_one_runs(tmp_path):
    out = tmp_path / "exported"
    with P.publishing(out):
        with pytest.raises(P.ExportError, match="another export"):
            with P.publishing(out):
                pass
    with P.publishing(out):  # released on exit (and by the kernel when a holder is killed)
        pass


def test_a_comparison_that_does_not_match_the_manifest_is_ignored(first, tmp_path):
    out, manifest = _copy_of(first, tmp_path)
    (out / manifest["comparison"]["file"]).write_text('{"run_id": "altered"}')
    store = ModelStore(out)
    assert store.comparison is None and set(store.models) == set(manifest["models"])


def test_migration_renames_a_legacy_export_with_checksums_unchanged(first, tmp_path):
    real, manifest = first
    out = tmp_path / "exported"
    out.mkdir()
    (out / "plots").mkdir()
    legacy = {k: v for k, v in manifest.items() if k != "comparison"}
    legacy["models"] = {n: {**e, "file": f"{n}.onnx"} for n, e in manifest["models"].items()}
    legacy["plots"] = [f"plots/{P.VERSIONED.sub('', Path(p).stem)}.png" for p in manifest["plots"]]
    for name, entry in manifest["models"].items():
        shutil.copyfile(real / entry["file"], out / f"{name}.onnx")
    for old, new in zip(manifest["plots"], legacy["plots"], strict=True):
        shutil.copyfile(real / old, out / new)
    shutil.copyfile(real / manifest["comparison"]["file"], out / "comparison.json")
    (out / "manifest.json").write_text(json.dumps(legacy))
    assert ModelStore(out).comparison == read_json(out / "comparison.json")  # the old layout is served too

    migrated = P.migrate(out)
    assert migrated == manifest  # content-addressed: the same names a fresh export gives these bytes
    assert {n: e["sha256"] for n, e in migrated["models"].items()} == {
        n: e["sha256"] for n, e in manifest["models"].items()
    }
    assert_served_whole(out, migrated)
    assert_no_debris(out, migrated)
    assert P.migrate(out) == migrated  # idempotent
    assert shipped_comparison(out) == out / migrated["comparison"]["file"]
    assert os.listdir(tmp_path) == ["exported"]
