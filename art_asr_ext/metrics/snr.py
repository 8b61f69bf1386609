"""
Size of an adversarial perturbation: its L-infinity norm and its signal-to-noise ratio in dB.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from typing import Tuple

import numpy as np


def _check_pair(original: np.ndarray, adversarial: np.ndarray) -> None:
    if original.ndim != 1 or original.shape != adversarial.shape:
        raise ValueError(
            f"original and adversarial must be 1-D waveforms of the same length. Found shapes {original.shape} and "
            f"{adversarial.shape}"
        )


def linf_norm(perturbation: np.ndarray) -> float:
    """
    :param perturbation: Perturbation of any shape (e.g. `adversarial - original`).
    :return: `max |perturbation|` (0 for an empty array).
    """
    perturbation = np.asarray(perturbation, dtype=np.float64)
    return float(np.max(np.abs(perturbation))) if perturbation.size else 0.0


def snr_db(signal: np.ndarray, perturbation: np.ndarray) -> float:
    """
    Signal-to-noise ratio of a perturbation, `10 log10(sum(signal^2) / sum(perturbation^2))`.

    :param signal: The clean waveform, 1-D.
    :param perturbation: The perturbation added to it, same shape.
    :return: SNR in dB; `inf` for a zero perturbation, `-inf` for a silent signal with a non-zero perturbation.
    :raises ValueError: For shapes that differ or are not 1-D.
    """
    signal = np.asarray(signal, dtype=np.float64)
    perturbation = np.asarray(perturbation, dtype=np.float64)
    _check_pair(signal, perturbation)
    noise_energy = float(np.sum(perturbation**2))
    signal_energy = float(np.sum(signal**2))
    if noise_energy == 0.0:
        return float("inf")
    if signal_energy == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(signal_energy / noise_energy))


def perturbation_size(original: np.ndarray, adversarial: np.ndarray) -> Tuple[float, float]:
    """
    :param original: Clean waveform, 1-D.
    :param adversarial: Adversarial waveform, same shape.
    :return: `(linf, snr_db)` of `adversarial - original`.
    :raises ValueError: For shapes that differ or are not 1-D.
    """
    original = np.asarray(original, dtype=np.float64)
    adversarial = np.asarray(adversarial, dtype=np.float64)
    _check_pair(original, adversarial)
    perturbation = adversarial - original
    return linf_norm(perturbation), snr_db(original, perturbation)
