"""Temperature scaling (Guo et al. 2017): training's fit of one scalar per model, on MNIST's validation split.

The export serves another, fitted on the real-world development split as served (training.export.dev_temperature),
and keeps this one beside it under `calibration.validation`; neither is fitted on test or the sealed split. MNIST's
validation images are easier than what users send, so a temperature fitted on them alone leaves the model over-
confident on real inputs; the validation images are therefore also passed through the training augmentation (fixed
seed) and the temperature is fitted on both halves together (the choice and its effect: reports/augment/).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from mnistserve.contracts import softmax
from training.augment import augment, parse
from training.config import TrainConfig
from training.data import Split
from training.loop import predict_scores, to_input
from training.metrics import expected_calibration_error, fit_temperature, nll

FITTED_ON = "validation split, clean + augmented (training.augment 'all' less the label-drawn styles, seed 0)"


def validation_scores(model: nn.Module, val: Split, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of the validation split, clean and augmented, stacked."""
    x = to_input(val.images)
    generator = torch.Generator(device=val.images.device).manual_seed(0)
    augmented = augment(x, parse("all"), generator)  # no labels: `styles` is skipped, the rest is label-free
    labels = val.labels.cpu().numpy()
    scores = np.concatenate([predict_scores(model, x, cfg), predict_scores(model, augmented, cfg)])
    return scores, np.concatenate([labels, labels])


def calibrate(model: nn.Module, val: Split, cfg: TrainConfig) -> dict:
    """Fit the temperature; report validation NLL before and after."""
    scores, labels = validation_scores(model, val, cfg)
    temperature = fit_temperature(scores, labels)
    return {
        "temperature": temperature,
        "fitted_on": FITTED_ON,
        "images": len(labels),
        "val_nll_before": nll(scores, labels),
        "val_nll_after": nll(scores, labels, temperature),
    }


def ece_before_after(scores: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """ECE (15 bins) at temperature 1 and at the fitted one."""
    return {
        "before": expected_calibration_error(softmax(scores), labels),
        "after": expected_calibration_error(softmax(scores, temperature), labels),
    }
