"""
The random-noise baseline: uniform noise of the given max-norm, clipped to the estimator's range, seeded.
"""

import numpy as np
import pytest
import torch

from art_asr_ext.attacks.evasion import UniformNoiseBaseline
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.models.deepspeech2 import DeepSpeech2
from art_asr_ext.utils.audio import to_object_array


@pytest.fixture(scope="module")
def estimator():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=8, hidden_layers=1))


def test_noise_fills_the_max_norm_ball_and_stays_in_range(estimator, real_clips):
    loud = (real_clips[0] * (0.999 / np.abs(real_clips[0]).max())).astype(np.float32)
    clean = [loud] + list(real_clips[1:])
    noisy = UniformNoiseBaseline(estimator, eps=0.01, seed=3).generate(to_object_array(clean))
    for c, n in zip(clean, noisy):
        delta = n.astype(np.float64) - c
        assert n.dtype == np.float32 and n.shape == c.shape and np.abs(n).max() <= 1.0
        assert np.abs(delta).max() <= 0.01 + 1e-7 and np.abs(delta).max() > 0.0099
        assert abs(delta.mean()) < 1e-3  # zero-mean noise, not a bias
    again = UniformNoiseBaseline(estimator, eps=0.01, seed=3).generate(to_object_array(clean))
    assert all(np.array_equal(a, b) for a, b in zip(noisy, again))  # seeded
    attack = UniformNoiseBaseline(estimator, eps=0.01, seed=3)
    first, second = attack.generate(to_object_array(clean[:1])), attack.generate(to_object_array(clean[:1]))
    assert not np.array_equal(first[0], second[0])  # each call draws fresh noise


@pytest.mark.parametrize("kwargs, message", [({"eps": 0}, "eps must be a positive number"), ({"seed": -1}, "seed")])
def test_bad_parameters_name_the_value(estimator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        UniformNoiseBaseline(estimator, **kwargs)
