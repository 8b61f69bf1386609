"""
FGSM as the study runs it, and its untargeted variant: the registry's `fgsm` steps toward the target phrase (its
loss against the target falls), `fgsm_u` away from the reference (its loss against the reference rises). Both are
ART's FastGradientMethod on a real clip through a DeepSpeech2 model.
"""

import numpy as np
import pytest

from art_asr_ext.benchmark.grid import Cell
from art_asr_ext.benchmark.registry import ATTACKS
from art_asr_ext.data import load_librispeech
from art_asr_ext.estimators.speech_recognition.pytorch_deep_speech2 import PyTorchDeepSpeech2
from art_asr_ext.models.deepspeech2 import DeepSpeech2
from art_asr_ext.utils.audio import to_object_array
from tests.benchmarks.helpers import DATA

TARGET = "OPEN THE DOOR AND LET THE LIGHT IN"


@pytest.fixture(scope="module")
def recognizer_and_clip():
    import torch

    torch.manual_seed(0)
    estimator = PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=32, hidden_layers=1), device_type="cpu")
    utterance = load_librispeech(DATA / "LibriSpeech" / "test-clean", max_utterances=1)[0]
    return estimator, to_object_array([utterance.waveform]), utterance.transcript


def _attack(key: str, estimator, x, label: str):
    spec = ATTACKS[key]
    cell = Cell("(1)", "(1)", "(1)", key, 0.002, spec.is_targeted({}))
    return spec.build(cell, estimator, 1, len(x[0]), 0).generate(x, np.array([label]))


def test_fgsm_is_targeted_and_lowers_the_loss_against_the_target(recognizer_and_clip):
    estimator, x, _ = recognizer_and_clip
    assert ATTACKS["fgsm"].is_targeted({}) and ATTACKS["fgsm"].column(0.01) == "FGSM 0.01"
    x_adv = _attack("fgsm", estimator, x, TARGET)
    before, after = (float(estimator.compute_loss(batch, np.array([TARGET]))[0]) for batch in (x, x_adv))
    assert after < before
    assert np.max(np.abs(x_adv[0] - x[0])) <= 0.002 + 1e-6


def test_fgsm_u_is_untargeted_and_raises_the_loss_against_the_reference(recognizer_and_clip):
    estimator, x, reference = recognizer_and_clip
    assert not ATTACKS["fgsm_u"].is_targeted({}) and ATTACKS["fgsm_u"].column(0.01) == "FGSM-U 0.01"
    x_adv = _attack("fgsm_u", estimator, x, reference)
    before, after = (float(estimator.compute_loss(batch, np.array([reference]))[0]) for batch in (x, x_adv))
    assert after > before
