"""
How audible an adversarial perturbation is: wide-band PESQ (ITU-T P.862.2, the `pesq` package) and STOI (Taal et
al., the `pystoi` package) of the adversarial waveform against the clean one, beside the SNR of
:mod:`art_asr_ext.metrics.snr`.

An utterance a metric cannot score (PESQ finds no speech in silence, STOI has too few non-silent frames) gets None
and a short reason, so a table can count the gaps instead of failing.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import warnings
from typing import Optional, Tuple

import numpy as np

from art_asr_ext.metrics.snr import perturbation_size

#: The sample rate wide-band PESQ is defined at.
PESQ_SAMPLE_RATE = 16000
#: Range of wide-band PESQ's MOS-LQO mapping (P.862.2): scores lie in [1.04, 4.64].
PESQ_RANGE = (1.0, 4.65)
#: Decimals STOI is given to (far finer than any difference a listener hears).
STOI_DECIMALS = 9


@dataclasses.dataclass(frozen=True)
class PerceptualScores:
    """Perceptual measures of one perturbation; a metric that could not score the utterance is None, with a reason."""

    linf: float
    snr_db: float
    pesq: Optional[float]
    stoi: Optional[float]
    pesq_reason: Optional[str] = None
    stoi_reason: Optional[str] = None


def pesq_wideband(
    reference: np.ndarray, degraded: np.ndarray, sample_rate: int
) -> Tuple[Optional[float], Optional[str]]:
    """
    :param reference: Clean waveform, 1-D float in [-1, 1].
    :param degraded: Adversarial (or defended) waveform, same shape.
    :param sample_rate: Their sample rate; wide-band PESQ needs 16 kHz.
    :return: `(score, None)`, or `(None, reason)` when PESQ cannot score the pair.
    """
    from pesq import BufferTooShortError, NoUtterancesError, pesq

    if sample_rate != PESQ_SAMPLE_RATE:
        return None, f"wide-band PESQ needs {PESQ_SAMPLE_RATE} Hz audio, not {sample_rate} Hz"
    try:
        score = pesq(sample_rate, np.asarray(reference, np.float32), np.asarray(degraded, np.float32), "wb")
    except NoUtterancesError:
        return None, "no speech found (silence)"
    except BufferTooShortError:
        return None, "too short for PESQ"
    return float(score), None


def stoi_score(reference: np.ndarray, degraded: np.ndarray, sample_rate: int) -> Tuple[Optional[float], Optional[str]]:
    """
    :param reference: Clean waveform, 1-D float.
    :param degraded: Adversarial (or defended) waveform, same shape.
    :param sample_rate: Their sample rate (STOI resamples to 10 kHz itself).
    :return: `(score, None)`, or `(None, reason)` when STOI has too few non-silent frames to score.
    """
    from pystoi import stoi

    if not np.any(reference):
        return None, "silent reference"  # STOI's silence removal leaves nothing to compare (pystoi returns 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = stoi(np.asarray(reference, np.float64), np.asarray(degraded, np.float64), sample_rate, extended=False)
    # pystoi warns and returns 1e-5 when silence removal leaves fewer frames than one 384 ms analysis window.
    if any("Not enough STFT frames" in str(warning.message) for warning in caught):
        return None, "too little non-silent audio for STOI"
    # Rounded to 9 decimals: pystoi's matrix products differ in their last bits with the BLAS thread count (a Ray
    # worker runs with one thread), and a table must not depend on where its cells ran.
    return round(float(score), STOI_DECIMALS), None


def perceptual_scores(original: np.ndarray, adversarial: np.ndarray, sample_rate: int) -> PerceptualScores:
    """
    :param original: Clean waveform, 1-D float in [-1, 1].
    :param adversarial: Adversarial waveform, same shape.
    :param sample_rate: Their sample rate.
    :return: L-infinity norm, SNR (`10 log10(|x|^2 / |delta|^2)`), PESQ and STOI of `adversarial` against `original`.
    :raises ValueError: For shapes that differ or are not 1-D.
    """
    linf, snr = perturbation_size(original, adversarial)
    pesq_value, pesq_reason = pesq_wideband(original, adversarial, sample_rate)
    stoi_value, stoi_reason = stoi_score(original, adversarial, sample_rate)
    return PerceptualScores(linf, snr, pesq_value, stoi_value, pesq_reason, stoi_reason)
