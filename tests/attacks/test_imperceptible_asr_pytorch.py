import numpy as np
import pytest
from art.attacks.evasion import ImperceptibleASRPyTorch

from art_asr_ext.attacks.evasion import RaggedImperceptibleASRPyTorch
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.estimators.speech_recognition.speech_inputs import to_object_array
from art_asr_ext.models import DeepSpeech2

SETTINGS = dict(
    eps=0.05, max_iter_1=3, max_iter_2=2, learning_rate_1=0.001, learning_rate_2=5e-4, global_max_length=9000
)
TARGETS = np.array(["HI", "NO"])


@pytest.fixture
def setup(real_clips):
    estimator = PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=16, hidden_layers=1))
    clips = to_object_array([real_clips[0][:9000], real_clips[1][:6000]])
    return estimator, clips


def test_arts_own_attack_refuses_ragged_batches_under_numpy2(setup):
    estimator, clips = setup
    with pytest.raises(ValueError, match="inhomogeneous"):
        ImperceptibleASRPyTorch(estimator, batch_size=2, **SETTINGS).generate(clips, TARGETS)


def test_ragged_batch_equals_each_utterance_attacked_alone(setup):
    estimator, clips = setup
    together = RaggedImperceptibleASRPyTorch(estimator, batch_size=2, **SETTINGS).generate(clips, TARGETS)
    assert together.dtype == object
    for i, clip in enumerate(clips):
        alone = ImperceptibleASRPyTorch(estimator, batch_size=1, **SETTINGS).generate(clip[None, :], TARGETS[i : i + 1])
        assert together[i].shape == clip.shape and together[i].dtype == clip.dtype
        assert np.all(np.isfinite(together[i])) and np.max(np.abs(together[i] - clip)) > 0
        # Sign steps: where a gradient is ~0, float noise between the padded batch and the lone utterance can flip
        # its sign, so a few samples may differ by a step; the rest must agree.
        same = np.isclose(together[i], alone[0], atol=1e-6)
        assert same.mean() > 0.99
