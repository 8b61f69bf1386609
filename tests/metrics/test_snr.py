import numpy as np
import pytest

from art_asr_ext.metrics import linf_norm, perturbation_size, snr_db


def test_snr_of_a_hand_checked_pair():
    signal = np.array([0.5, -0.5, 0.5, -0.5])  # energy 1
    perturbation = np.array([0.05, 0.0, -0.05, 0.0])  # energy 0.005
    assert snr_db(signal, perturbation) == pytest.approx(10 * np.log10(200))  # 23.01 dB
    assert linf_norm(perturbation) == pytest.approx(0.05)


def test_snr_drops_6_db_when_the_perturbation_doubles():
    rng = np.random.RandomState(0)
    signal, perturbation = rng.randn(1000), 0.01 * rng.randn(1000)
    assert snr_db(signal, 2 * perturbation) == pytest.approx(snr_db(signal, perturbation) - 20 * np.log10(2))


def test_perturbation_size_of_an_adversarial_waveform():
    original = np.full(100, 0.1, dtype=np.float32)
    adversarial = original.copy()
    adversarial[10] += 0.01
    linf, snr = perturbation_size(original, adversarial)
    assert linf == pytest.approx(0.01, rel=1e-5)
    assert snr == pytest.approx(10 * np.log10(100 * 0.01 / 0.0001), rel=1e-4)  # 20 dB


def test_edge_cases():
    assert snr_db(np.ones(3), np.zeros(3)) == float("inf")
    assert snr_db(np.zeros(3), np.ones(3)) == float("-inf")
    assert linf_norm(np.array([])) == 0.0
    with pytest.raises(ValueError, match=r"same length. Found shapes \(3,\) and \(2,\)"):
        perturbation_size(np.ones(3), np.ones(2))
