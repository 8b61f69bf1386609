"""
The evaluation checks can fail: a deliberately obfuscated defence (a quantiser whose gradient is zero everywhere)
on the embedded DeepSpeech2, attacked white-box, leaves PGD no stronger than random noise of its max-norm, and check
(e) fails; attacked through BPDA (the quantiser's gradient taken as the identity) the same PGD beats the noise and
the check passes.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_asr_ext.benchmark.grid import Cell
from art_asr_ext.benchmark.execution import run_cell
from art_asr_ext.benchmark.outputs.checks import FAILED, PASSED, evaluation_checks
from art_asr_ext.benchmark.config import parse_config
from art_asr_ext.benchmark.presets import EMBEDDED_SET, MODELS_DIR
from art_asr_ext.data import load_librispeech
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2

CHECKPOINT = MODELS_DIR / "deepspeech2_baseline" / "model.ckpt"
EPS = 0.01


class Quantiser(PreprocessorPyTorch):
    """Rounds every sample to a multiple of 2^-10: a forward pass with zero gradient, the textbook masked gradient."""

    def __init__(self, bpda: bool) -> None:
        super().__init__(device_type="cpu", apply_fit=False, apply_predict=True)
        self.bpda = bpda

    def forward(self, x: torch.Tensor, y=None):
        return torch.round(x * 1024.0) / 1024.0, y

    def estimate_forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        # BPDA differentiates the identity instead; white-box, the attacker gets the true (zero) gradient.
        return x if self.bpda else self.forward(x)[0]


CONFIG = {
    "data": {"librispeech": str(EMBEDDED_SET)},
    "targets": {"pool": "pool.txt"},
    "attacks": {"noise": {"eps": [EPS]}, "pgd": {"eps": [EPS], "targeted": False}},
    "systems": [
        {"label": label, "estimator": {"type": "deepspeech2", "checkpoint": str(CHECKPOINT)}}
        for label in ("quantiser, white-box", "quantiser, BPDA")
    ],
}


@pytest.fixture(scope="module")
def utterances():
    return load_librispeech(EMBEDDED_SET)[:3]


def rows_for(label: str, bpda: bool, utterances):
    estimator = PyTorchDeepSpeech2(checkpoint=CHECKPOINT, preprocessing_defences=[Quantiser(bpda)])
    targets = {u.utterance_id: u.transcript for u in utterances}  # untargeted PGD: away from the reference
    rows = []
    for attack, params in (("noise", {}), ("pgd", {"max_iter": 7, "step_ratio": 0.2})):
        np.random.seed(0)
        cell = Cell(label, label, label, attack, EPS, False, params)
        rows += run_cell(cell, estimator, utterances, targets, batch_size=3).rows
    return rows


@pytest.mark.usefixtures("single_torch_thread")
def test_check_e_fails_on_a_masked_gradient_and_passes_with_bpda(utterances):
    config = parse_config(copy.deepcopy(CONFIG), Path("/"))
    results = {}
    for label, bpda in (("quantiser, white-box", False), ("quantiser, BPDA", True)):
        rows = rows_for(label, bpda, utterances)
        pgd = [r for r in rows if r["attack"] == "pgd"]
        if not bpda:
            # Zero gradient: ART's PGD does not move at all, whatever the budget.
            assert all(r["linf"] == 0.0 for r in pgd)
        results[label] = {result.check: result for result in evaluation_checks(config, rows)}["e"]
    assert results["quantiser, white-box"].status == FAILED, results["quantiser, white-box"]
    assert results["quantiser, white-box"].cells == [
        f"quantiser, white-box | noise | {EPS!r}",
        f"quantiser, white-box | pgd | {EPS!r}",
    ]
    assert results["quantiser, BPDA"].status == PASSED, results["quantiser, BPDA"]
