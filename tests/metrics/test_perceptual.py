"""
Perceptual metrics of a perturbation: SNR against a hand computation on a sine plus known noise, wide-band PESQ and
STOI in their ranges and ordered by the noise level, on a synthetic tone and on the real clips, and the reasons given
where a metric cannot score.
"""

import math

import numpy as np
import pytest

from art_asr_ext.metrics import perceptual_scores, pesq_wideband, stoi_score
from art_asr_ext.metrics.perceptual import PESQ_RANGE

RATE = 16000


def sine_and_noise(noise_amplitude: float, seconds: float = 3.0):
    time = np.arange(int(seconds * RATE)) / RATE
    clean = 0.5 * np.sin(2 * np.pi * 440.0 * time)
    noise = noise_amplitude * np.where(np.random.default_rng(0).random(time.size) < 0.5, -1.0, 1.0)
    return clean.astype(np.float32), (clean + noise).astype(np.float32)


def test_snr_is_signal_energy_over_perturbation_energy():
    clean, adversarial = sine_and_noise(0.01)
    # Hand computation: a 0.5-amplitude sine has mean power 0.5^2 / 2 and +-0.01 noise has power 0.01^2, so the SNR is
    # 10 log10(0.125 / 1e-4) = 30.97 dB (up to the float32 rounding of the samples).
    expected = 10 * math.log10((0.5**2 / 2) / 0.01**2)
    scores = perceptual_scores(clean, adversarial, RATE)
    assert scores.snr_db == pytest.approx(expected, abs=0.01)
    assert scores.linf == pytest.approx(0.01, rel=1e-5)


def test_pesq_and_stoi_fall_as_the_noise_grows_on_real_speech(librispeech_utterances):
    speech = librispeech_utterances[2].waveform
    rng = np.random.default_rng(1)
    previous_pesq, previous_stoi = PESQ_RANGE[1], 1.0
    for amplitude in (0.0005, 0.005, 0.05):
        noisy = np.clip(speech + amplitude * rng.standard_normal(speech.size), -1, 1).astype(np.float32)
        scores = perceptual_scores(speech, noisy, RATE)
        assert PESQ_RANGE[0] <= scores.pesq <= PESQ_RANGE[1] and 0.0 <= scores.stoi <= 1.0
        assert scores.pesq < previous_pesq and scores.stoi < previous_stoi
        previous_pesq, previous_stoi = scores.pesq, scores.stoi
    identical = perceptual_scores(speech, speech, RATE)
    assert identical.snr_db == math.inf and identical.pesq > 4.5 and identical.stoi == pytest.approx(1.0)


def test_unscorable_utterances_get_none_and_a_reason():
    silence = np.zeros(RATE, dtype=np.float32)
    scores = perceptual_scores(silence, silence + 0.01, RATE)
    assert scores.snr_db == -math.inf
    assert scores.pesq is None and "silence" in scores.pesq_reason
    assert scores.stoi is None and "silent" in scores.stoi_reason
    clean, adversarial = sine_and_noise(0.001, seconds=0.2)  # shorter than one STOI analysis window
    assert stoi_score(clean, adversarial, RATE) == (None, "too little non-silent audio for STOI")
    assert pesq_wideband(clean, adversarial, 8000) == (None, "wide-band PESQ needs 16000 Hz audio, not 8000 Hz")


def test_shapes_that_differ_are_refused():
    with pytest.raises(ValueError, match="same length"):
        perceptual_scores(np.zeros(10, np.float32), np.zeros(11, np.float32), RATE)
