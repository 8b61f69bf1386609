"""
SNR-budget PGD on tiny DeepSpeech2 models and the real clips: every output meets its budget, the attack moves the
loss the right way, and ART's own PGD, which this class replaces for ragged audio, does not meet an L2 budget.
"""

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent

from art_asr_ext.attacks.evasion import SNRProjectedGradientDescent
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.metrics import snr_db
from art_asr_ext.models.deepspeech2 import DeepSpeech2
from art_asr_ext.utils.audio import to_object_array

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def estimator():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=16, hidden_layers=1))


def measured_snr(clean, adversarial):
    return [snr_db(c, a.astype(np.float64) - c) for c, a in zip(clean, adversarial)]


@pytest.mark.parametrize("budget", [20.0, 35.0, 40.0])
def test_every_output_meets_its_budget_on_ragged_real_clips(estimator, real_clips, budget):
    loud = real_clips[0] * (0.999 / np.abs(real_clips[0]).max())  # peaks at the clip range: clipping must not hurt
    clean = [loud.astype(np.float32)] + list(real_clips[1:])
    attack = SNRProjectedGradientDescent(estimator, snr_db=budget, step_ratio=0.5, max_iter=4, batch_size=2)
    adversarial = attack.generate(to_object_array(clean), np.array(["OPEN THE DOOR"] * 3))
    assert adversarial.dtype == object and all(a.dtype == np.float32 for a in adversarial)
    snr = measured_snr(clean, adversarial)
    # At least the budget, and at it: 4 steps of half the budget reach the ball's boundary.
    assert all(budget - 0.01 <= value <= budget + 0.01 for value in snr), snr
    assert all(np.abs(a).max() <= 1.0 for a in adversarial)


def test_the_attack_moves_the_loss_the_right_way(estimator, real_clips):
    x = to_object_array(real_clips)
    references, targets = np.array(["AFTER EARLY"] * 3), np.array(["OPEN THE DOOR"] * 3)
    untargeted = SNRProjectedGradientDescent(estimator, snr_db=20.0, max_iter=5, step_ratio=0.3)
    targeted = SNRProjectedGradientDescent(estimator, snr_db=20.0, max_iter=5, step_ratio=0.3, targeted=True)
    clean_loss = estimator.compute_loss(x, references)
    assert np.all(estimator.compute_loss(untargeted.generate(x, references), references) > clean_loss)
    target_loss = estimator.compute_loss(x, targets)
    assert np.all(estimator.compute_loss(targeted.generate(x, targets), targets) < target_loss)


def test_silence_is_returned_unchanged_and_2d_input_keeps_its_layout(estimator, real_clips):
    attack = SNRProjectedGradientDescent(estimator, snr_db=30.0, max_iter=2)
    silent = np.zeros(8000, dtype=np.float32)
    adversarial = attack.generate(to_object_array([silent, real_clips[0][:8000]]), np.array(["A", "B"]))
    assert np.array_equal(adversarial[0], silent) and not np.array_equal(adversarial[1], real_clips[0][:8000])
    two_d = np.stack([clip[:8000] for clip in real_clips])
    result = attack.generate(two_d, np.array(["A"] * 3))
    assert result.shape == two_d.shape and result.dtype == two_d.dtype
    assert min(measured_snr(two_d, result)) >= 30.0 - 0.01


def test_arts_pgd_does_not_project_ragged_audio_onto_an_l2_ball(estimator, real_clips):
    # Why the class exists: ART 1.20's PGD with norm=2 and a per-utterance budget clips each sample of an object-array
    # waveform to the budget instead of scaling the perturbation into the L2 ball, so the SNR falls below the budget.
    clean = list(real_clips)
    budgets = np.array([np.linalg.norm(c.astype(np.float64)) * 10 ** (-30.0 / 20) for c in clean])
    art_pgd = ProjectedGradientDescent(
        estimator, norm=2, eps=budgets, eps_step=budgets, max_iter=3, targeted=True, batch_size=3, verbose=False
    )
    adversarial = art_pgd.generate(to_object_array(clean), np.array(["OPEN THE DOOR"] * 3))
    assert max(measured_snr(clean, adversarial)) < 30.0 - 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"snr_db": float("nan")}, "snr_db must be a finite number"),
        ({"step_ratio": 0}, "step_ratio must be a positive number. Found: 0"),
        ({"max_iter": 0}, "max_iter must be a positive integer. Found: 0"),
        ({"batch_size": 1.5}, "batch_size must be a positive integer"),
    ],
)
def test_bad_parameters_name_the_value(estimator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        SNRProjectedGradientDescent(estimator, **kwargs)
