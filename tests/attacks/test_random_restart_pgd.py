"""
PGD with random restarts on a tiny DeepSpeech2 and the real clips: without restarts it is ART's PGD to the bit, every
restart stays in the ball and the clip range, and the kept output is per utterance the worst of the restarts.
"""

import numpy as np
import pytest
import torch
from art.attacks.evasion import ProjectedGradientDescent

from art_asr_ext.attacks.evasion import RandomRestartProjectedGradientDescent
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.metrics import word_errors
from art_asr_ext.models.deepspeech2 import DeepSpeech2
from art_asr_ext.utils.audio import to_object_array

pytestmark = pytest.mark.usefixtures("single_torch_thread")

EPS = 0.01
REFERENCES = np.array(["AFTER EARLY NIGHTFALL", "THE YELLOW LAMPS", "WOULD LIGHT UP"])


@pytest.fixture(scope="module")
def estimator():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=16, hidden_layers=1))


@pytest.fixture(scope="module")
def clips(real_clips):
    return [clip[:16000] for clip in real_clips]  # one second each: the restarts stay cheap


def test_without_restarts_it_is_arts_pgd(estimator, clips):
    settings = dict(eps=EPS, eps_step=EPS / 5, max_iter=3, targeted=False, batch_size=3)
    ours = RandomRestartProjectedGradientDescent(estimator, num_random_init=0, **settings)
    art = ProjectedGradientDescent(estimator, norm=np.inf, num_random_init=0, **settings)
    x = to_object_array(clips)
    for mine, theirs in zip(ours.generate(x, REFERENCES), art.generate(x, REFERENCES)):
        assert np.array_equal(mine, theirs)


def test_arts_pgd_refuses_restarts_on_a_speech_recognizer(estimator, clips):
    attack = ProjectedGradientDescent(estimator, norm=np.inf, eps=EPS, eps_step=EPS / 5, num_random_init=2)
    with pytest.raises(ValueError, match="only supported for classification"):
        attack.generate(to_object_array(clips), REFERENCES)


@pytest.mark.parametrize("targeted", [False, True])
def test_the_kept_restart_is_the_worst_case_of_each_utterance(estimator, clips, targeted):
    labels = np.array(["OPEN THE DOOR"] * 3) if targeted else REFERENCES
    settings = dict(eps=EPS, eps_step=EPS / 5, max_iter=2, targeted=targeted, batch_size=3)
    x = to_object_array(clips)
    np.random.seed(7)
    kept = RandomRestartProjectedGradientDescent(estimator, num_random_init=3, **settings).generate(x, labels)
    # The same three restarts, one at a time: numpy's generator gives each the same random start.
    np.random.seed(7)
    restarts = [RandomRestartProjectedGradientDescent(estimator, num_random_init=1, **settings) for _ in range(3)]
    singles = [attack.generate(x, labels) for attack in restarts]

    def errors(outputs):
        transcripts = estimator.predict(outputs, batch_size=3)
        return np.array([word_errors(str(a), str(b)).errors for a, b in zip(labels, transcripts)])

    single_errors = np.stack([errors(single) for single in singles])
    kept_errors = errors(kept)
    worst = single_errors.min(axis=0) if targeted else single_errors.max(axis=0)
    assert np.array_equal(kept_errors, worst)
    for i, (clean, adversarial) in enumerate(zip(clips, kept)):
        assert any(np.array_equal(adversarial, single[i]) for single in singles)
        assert np.abs(adversarial.astype(np.float64) - clean).max() <= EPS + 1e-6
        assert np.abs(adversarial).max() <= 1.0
        assert not np.array_equal(adversarial, clean)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_random_init": -1}, "greater than or equal to 0"),
        ({"eps": -0.1}, "nonnegative"),
    ],
)
def test_bad_parameters_name_the_value(estimator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        RandomRestartProjectedGradientDescent(estimator, **kwargs)
