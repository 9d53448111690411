"""benchmarks.same_weights: equal initializers read as the same weights whatever the metadata; one changed value not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from benchmarks.same_weights import compare


def export(folder: Path, w: np.ndarray, run_id: str) -> Path:
    """A one-MatMul ONNX file with weight `w` and `run_id` in its metadata, and a manifest naming it."""
    folder.mkdir()
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {"run_id": run_id})
    onnx.save(model, str(folder / f"m.{run_id}.onnx"))
    (folder / "manifest.json").write_text(json.dumps({"models": {"m": {"file": f"m.{run_id}.onnx"}}}))
    return folder


def test_equal_weights_match_across_metadata_and_a_changed_value_does_not(tmp_path: Path) -> None:
    w = np.arange(4, dtype=np.float32).reshape(2, 2)
    old = export(tmp_path / "old", w, "a")
    same = export(tmp_path / "same", w.copy(), "b")
    changed = w.copy()
    changed[1, 1] += 1e-6
    other = export(tmp_path / "other", changed, "c")
    assert (old / "m.a.onnx").read_bytes() != (same / "m.b.onnx").read_bytes()  # the metadata differs
    assert compare(old, same)["m"]["identical"] is True
    assert compare(old, other)["m"]["identical"] is False
    (other / "m.c.onnx").unlink()
    assert compare(old, other)["m"]["compared"] is False
