"""The training contract: config, loop pieces, the stored comparison, interruption and resume, the CLI."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from typer.testing import CliRunner

from mnistserve.cli import app
from mnistserve.contracts import COMPARISON_SCHEMA, read_json
from training.config import make_config, resolve_device, resolve_profile
from training.loop import to_input
from training.run import RunRequest, latest_incomplete_run, publish_latest, run_training

runner = CliRunner()


def test_to_input_follows_the_model_contract():
    x = to_input(torch.full((3, 28, 28), 255, dtype=torch.uint8))
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32 and float(x.max()) == 1.0


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="known models: cnn"):
        make_config("resnet", "cpu", "cpu")
    with pytest.raises(ValueError, match="unknown profile"):
        resolve_profile("fast", "cpu")
    with pytest.raises(ValueError, match="--epochs must be at least 1"):
        make_config("cnn", "cpu", "cpu", epochs=0)
    assert make_config("cnn", "cpu", "cpu", epochs=None).epochs >= 1  # None keeps the profile's value
    assert resolve_profile("auto", "cpu") == "cpu" and resolve_profile("auto", "cuda") == "gpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_smoke_run_stores_a_complete_comparison(smoke_runs):
    comparison = read_json(smoke_runs / "latest" / "comparison.json")
    assert comparison["schema"] == COMPARISON_SCHEMA and comparison["complete"] is True
    assert comparison["profile"] == "smoke" and comparison["data"]["test_labels_sha256"]
    assert set(comparison["versions"]) >= {"python", "torch", "torchvision"}
    (entry,) = comparison["models"]
    m = entry["metrics"]
    assert entry["status"] == "ok" and entry["pretrained"] is False
    assert 0.5 < m["accuracy"] <= 1.0  # a few batches already learn far above chance (10%)
    assert 0.0 < m["macro_f1"] <= 1.0 and m["test_loss"] > 0 and m["images_per_second"] > 0
    assert m["parameters"] == sum(
        p.numel() for p in __import__("training.models", fromlist=["x"]).build_model("cnn").parameters()
    )
    cm = entry["confusion_matrix"]
    assert len(cm) == 10 and sum(map(sum, cm)) == m["test_images"]
    assert sum(cm[i][i] for i in range(10)) == round(m["accuracy"] * m["test_images"])
    assert [h["epoch"] for h in entry["history"]] == list(range(1, entry["hyperparameters"]["epochs"] + 1))
    assert (smoke_runs / "latest" / entry["checkpoint"]).is_file()
    ckpt = torch.load(smoke_runs / "latest" / entry["checkpoint"], weights_only=True)
    assert ckpt["name"] == "cnn" and ckpt["epoch"] == m["best_epoch"]


def test_smoke_run_measures_both_real_world_splits_and_calibrates(smoke_runs):
    from training.realworld import CONDITIONS

    comparison = read_json(smoke_runs / "latest" / "comparison.json")
    (entry,) = comparison["models"]
    splits, cal, sets = entry["realworld"], entry["calibration"], comparison["realworld"]
    assert (
        list(splits) == ["sealed", "dev"]
        and sets["headline"] == "sealed"
        and set(sets["conditions"]) == set(CONDITIONS)
    )
    for name, real in splits.items():
        assert list(real["per_condition"]) == list(CONDITIONS) and sets[name]["split"] == name
        assert real["images"] == sets[name]["images"] == len(CONDITIONS) * sets[name]["per_condition"]
        assert real["set"]["sha256"] == sets[name]["sha256"]
        assert (
            real["worst_condition"] in CONDITIONS
            and min(real["per_condition"].values()) == real["per_condition"][real["worst_condition"]]
        )
        assert 0.0 <= real["ece_uncalibrated"] <= 1.0 and 0.0 <= real["ece"] <= 1.0
    assert sets["dev"]["sha256"] != sets["sealed"]["sha256"] and sets["dev"]["seed"] != sets["sealed"]["seed"]
    assert entry["metrics"]["realworld_accuracy"] == splits["sealed"]["accuracy"]  # the headline
    assert entry["metrics"]["realworld_dev_accuracy"] == splits["dev"]["accuracy"]
    assert (
        cal["temperature"] > 0 and cal["val_nll_after"] <= cal["val_nll_before"] + 1e-9
    )  # the fit never makes NLL worse
    assert 0.0 <= cal["ece_test"]["after"] <= 1.0 and entry["metrics"]["ece_test"] == cal["ece_test"]["after"]


class Interrupt:
    """A reporter that presses Ctrl-C after `after` batches."""

    def __init__(self, after: int) -> None:
        self.after = after

    def model_started(self, cfg, total):
        pass

    def batch(self, n):
        self.after -= 1
        if self.after < 0:
            raise KeyboardInterrupt

    def epoch(self, record):
        pass

    def model_finished(self, entry):
        pass


def test_interrupted_run_keeps_latest_and_resumes(tmp_path, mnist):
    req = RunRequest(models=("cnn",), profile="smoke", device="cpu")
    good = run_training(req, mnist, tmp_path)
    publish_latest(tmp_path, good)
    before = (tmp_path / "latest" / "comparison.json").read_bytes()
    batches_per_epoch = 1024 // 64
    with pytest.raises(KeyboardInterrupt):  # dies in epoch 2, after epoch 1's checkpoint
        run_training(req, mnist, tmp_path, reporter=Interrupt(batches_per_epoch + 3))
    assert (tmp_path / "latest" / "comparison.json").read_bytes() == before
    broken = latest_incomplete_run(tmp_path)
    assert broken is not None and broken != good and (broken / "cnn" / "last.pt").is_file()
    result = runner.invoke(app, ["train", "--resume", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "latest").resolve() == broken.resolve()
    entry = read_json(broken / "comparison.json")["models"][0]
    assert [h["epoch"] for h in entry["history"]] == [1, 2] and not (broken / "cnn" / "last.pt").exists()


def test_cli_train_compare_and_report(tmp_path):
    result = runner.invoke(
        app,
        [
            "train",
            "--model",
            "cnn",
            "--profile",
            "smoke",
            "--device",
            "cpu",
            "--runs-dir",
            str(tmp_path),
            "--seed",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "test accuracy" in result.output and "cnn" in result.output
    latest = tmp_path / "latest"
    for name in ("report.md", "accuracy_vs_time.png", "validation_curves.png", "confusion_cnn.png", "realworld.png"):
        assert (latest / name).is_file(), name
    assert (latest / "accuracy_vs_time.png").read_bytes()[:4] == b"\x89PNG"
    as_json = runner.invoke(app, ["compare", "--runs-dir", str(tmp_path), "--format", "json"])
    assert json.loads(as_json.output)["seed"] == 3
    as_md = runner.invoke(app, ["compare", "--runs-dir", str(tmp_path), "--format", "markdown"])
    assert as_md.output.startswith("| model | test accuracy | real-world sealed | real-world dev |")
    assert "| cnn |" in as_md.output
    assert "Real-world accuracy by condition" in as_md.output and "marker" in as_md.output
    assert "real-world" in runner.invoke(app, ["compare", "--runs-dir", str(tmp_path)]).output
    assert "real-world" in (latest / "report.md").read_text() and "realworld.png" in (latest / "report.md").read_text()


def test_compare_without_runs_shows_the_shipped_comparison(tmp_path, smoke_runs, monkeypatch):
    shipped = tmp_path / "exported"
    shipped.mkdir()
    (shipped / "comparison.json").write_bytes((smoke_runs / "latest" / "comparison.json").read_bytes())
    monkeypatch.setenv("MNISTSERVE_EXPORTED", str(shipped))
    result = runner.invoke(app, ["compare", "--runs-dir", str(tmp_path / "no-runs-yet")])
    assert result.exit_code == 0, result.output
    assert "shipped comparison" in result.output and "cnn" in result.output and "real-world" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["train"], "choose models with --model"),
        (["train", "--model", "cnn", "--epochs", "0", "--profile", "smoke"], "--epochs must be at least 1"),
        (["train", "--resume"], "no interrupted run"),
        (["compare"], "train first"),
        (["export"], "train first"),
    ],
)
def test_cli_errors_are_messages_not_tracebacks(tmp_path, args, message, monkeypatch):
    monkeypatch.setenv("MNISTSERVE_EXPORTED", str(tmp_path / "nothing-exported"))  # no shipped comparison either
    result = runner.invoke(app, [*args, "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_cli_rejects_unknown_model_listing_choices(tmp_path):
    result = runner.invoke(app, ["train", "--model", "resnet", "--runs-dir", str(tmp_path)])
    assert result.exit_code == 2 and "cnn" in result.output


def test_data_info_json():
    result = runner.invoke(app, ["data", "info", "--format", "json"])
    info = json.loads(result.output)
    assert info["sizes"] == {"train": 50000, "val": 10000, "test": 10000}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_killed_train_leaves_the_last_comparison_untouched(tmp_path, smoke_runs, sig):
    runs = tmp_path / "runs"
    shutil.copytree(smoke_runs, runs, symlinks=True)
    before = (runs / "latest" / "comparison.json").read_bytes()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnistserve",
            "train",
            "--model",
            "cnn",
            "--profile",
            "smoke",
            "--epochs",
            "3",
            "--device",
            "cpu",
            "--runs-dir",
            str(runs),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        # A suite started in the background inherits SIGINT ignored, and Python keeps an ignored
        # SIGINT ignored: the child would never see the Ctrl-C this test sends.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not list(runs.glob("*/cnn/last.pt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # wait until the first epoch's checkpoint exists: then kill mid-run
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    if sig == signal.SIGKILL:  # nothing runs after SIGKILL: only that it struck mid-run can be checked
        assert proc.returncode == -signal.SIGKILL
    else:  # Ctrl-C is handled: a message, no traceback
        assert proc.returncode == 130 and b"Traceback" not in err
    assert (runs / "latest" / "comparison.json").read_bytes() == before
    result = runner.invoke(app, ["train", "--resume", "--runs-dir", str(runs)])
    assert result.exit_code == 0, result.output
    assert read_json(runs / "latest" / "comparison.json")["models"][0]["status"] == "ok"


def test_one_failing_model_is_recorded_and_the_others_still_train(tmp_path, mnist, monkeypatch):
    import training.run as R

    real = R.train_model

    def flaky(cfg, *args, **kwargs):
        if cfg.model == "vit":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(R, "train_model", flaky)
    run_dir = run_training(RunRequest(models=("vit", "cnn"), profile="smoke", device="cpu"), mnist, tmp_path)
    entries = {e["model"]: e for e in read_json(run_dir / "comparison.json")["models"]}
    assert entries["vit"]["status"] == "failed" and "out of memory" in entries["vit"]["error"]
    assert entries["cnn"]["status"] == "ok"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_the_cpu_only_where_the_profile_asks_and_the_cpu_has_it(monkeypatch, native: bool) -> None:
    monkeypatch.setattr("training.config.cpu_has_native_bf16", lambda: native)
    cnn = make_config("cnn", "cpu", "cpu")
    assert cnn.amp is native and cnn.channels_last is native  # the CNN's cpu profile asks for it
    vit = make_config("vit", "cpu", "cpu")
    assert not vit.amp and not vit.channels_last  # the ViT's does not
    assert make_config("vit", "gpu", "cuda").amp  # CUDA always trains in bf16


def test_compile_option_reaches_the_config_and_the_compiled_loss_matches() -> None:
    from training.loop import compiled_loss, model_loss
    from training.models import build_model
    from training.run import _configs

    (cfg,) = _configs(RunRequest(models=("cnn",), profile="smoke", device="cpu", compile=True))
    assert cfg.compile is True and cfg.to_dict()["compile"] is True  # stored with the run's hyperparameters
    (default,) = _configs(RunRequest(models=("cnn",), profile="smoke", device="cpu"))
    assert default.compile is False
    torch.manual_seed(0)
    model = build_model("cnn", width=8).eval()  # no dropout: compiled code draws other random numbers
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([1, 2, 3, 4])
    torch.testing.assert_close(compiled_loss()(model, x, y, 0.0), model_loss(model, x, y, 0.0), rtol=1e-4, atol=1e-5)
