"""
The defences of art_asr_ext.defences chained with each other, with ART's own preprocessors and with the estimators,
on every path an attack takes (the study's rows with RS, RS-aug, the vocoder and their combinations).
"""

import numpy as np
import pytest
import torch
from art.attacks.evasion import ImperceptibleASRPyTorch, ProjectedGradientDescent
from art.preprocessing.audio import LFilterPyTorch

from art_asr_ext.defences.preprocessor import GaussianSmoothingPyTorch, WaveGANVocoderPyTorch
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.utils.audio import to_object_array
from art_asr_ext.models import DeepSpeech2
from tests.defences.conftest import tiny_hifigan_vocoder

TARGETS = np.array(["OPEN THE DOOR", "HELLO"])


@pytest.fixture
def clips(real_clips):
    return to_object_array([c[:12000] for c in real_clips[:2]])


@pytest.fixture
def model():
    return DeepSpeech2(hidden_size=16, hidden_layers=1)


def _chain(mode: str):
    return [
        GaussianSmoothingPyTorch(sigma=0.01, seed=3, device_type="cpu"),
        WaveGANVocoderPyTorch(vocoder=tiny_hifigan_vocoder(), mode=mode, seed=0, device_type="cpu"),
    ]


def _defended_inputs(clips, mode):
    """What the chain turns each utterance into, computed outside the estimator."""
    smoothing, vocoder = _chain(mode)
    return to_object_array(
        [vocoder.forward(smoothing.forward(torch.from_numpy(c))[0])[0].detach().numpy() for c in clips]
    )


def test_black_box_chain_gives_the_gradient_at_the_defended_input(model, clips):
    defended = PyTorchDeepSpeech2(model=model, preprocessing_defences=_chain("black-box"))
    plain = PyTorchDeepSpeech2(model=model)
    inputs = _defended_inputs(clips, "black-box")
    assert list(defended.predict(clips)) == list(plain.predict(inputs))
    defended = PyTorchDeepSpeech2(model=model, preprocessing_defences=_chain("black-box"))
    for got, expected in zip(defended.loss_gradient(clips, TARGETS), plain.loss_gradient(inputs, TARGETS)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7 * np.abs(expected).max())


def test_white_box_chain_differentiates_through_the_vocoder(model, clips):
    black = PyTorchDeepSpeech2(model=model, preprocessing_defences=_chain("black-box")).loss_gradient(clips, TARGETS)
    white = PyTorchDeepSpeech2(model=model, preprocessing_defences=_chain("white-box")).loss_gradient(clips, TARGETS)
    for b, w in zip(black, white):
        assert np.all(np.isfinite(w)) and np.abs(w).max() > 0
        assert not np.allclose(b, w, rtol=1e-2)


def test_rs_aug_in_training_then_vocoder_and_rs_at_test(model, clips):
    """The study's rows 7 and 14: RS-aug trains the model, the vocoder and RS defend it at test time."""
    augmentation = GaussianSmoothingPyTorch(
        sigma=(0.0, 0.3), seed=0, apply_fit=True, apply_predict=False, device_type="cpu"
    )
    estimator = PyTorchDeepSpeech2(
        model=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        preprocessing_defences=[augmentation] + _chain("black-box"),
    )
    estimator.fit(clips, TARGETS, batch_size=2, nb_epochs=1)
    assert [type(d).__name__ for d in estimator._active_defences(fit=True)] == ["GaussianSmoothingPyTorch"]
    assert [type(d).__name__ for d in estimator._active_defences(fit=False)] == [
        "GaussianSmoothingPyTorch",
        "WaveGANVocoderPyTorch",
    ]
    assert estimator.predict(clips).shape == (2,)


def test_chains_with_arts_own_preprocessor(model, clips):
    low_pass = LFilterPyTorch(
        numerator_coef=np.array([0.5, 0.5]), denominator_coef=np.array([1.0, 0.0]), device_type="cpu"
    )
    estimator = PyTorchDeepSpeech2(model=model, preprocessing_defences=[low_pass] + _chain("white-box"))
    gradients = estimator.loss_gradient(clips, TARGETS)
    assert all(g.shape == c.shape and np.all(np.isfinite(g)) for g, c in zip(gradients, clips))
    attack = ProjectedGradientDescent(
        estimator, norm=np.inf, eps=0.01, eps_step=0.002, max_iter=2, targeted=True, verbose=False
    )
    adversarial = attack.generate(clips, TARGETS)
    assert all(np.max(np.abs(a - c)) <= 0.01 + 1e-7 for a, c in zip(adversarial, clips))


def test_imperceptible_attack_through_a_defended_estimator(model, clips):
    estimator = PyTorchDeepSpeech2(model=model, preprocessing_defences=_chain("white-box"))
    attack = ImperceptibleASRPyTorch(
        estimator, eps=0.05, max_iter_1=2, max_iter_2=1, learning_rate_1=0.001, global_max_length=12000, batch_size=2
    )
    adversarial = attack.generate(clips, np.array(["HI", "NO"]))
    assert all(np.all(np.isfinite(a)) and a.shape == c.shape for a, c in zip(adversarial, clips))


def test_chains_with_the_espnet_estimator(clips):
    from art_asr_ext.estimators.speech_recognition import PyTorchESPnet
    from tests.estimators.test_pytorch_espnet import tiny_config, tiny_model

    model = tiny_model()
    plain = PyTorchESPnet(model=model, asr_config=tiny_config())
    inputs = _defended_inputs(clips, "black-box")
    black = PyTorchESPnet(model=model, asr_config=tiny_config(), preprocessing_defences=_chain("black-box"))
    for got, expected in zip(black.loss_gradient(clips, TARGETS), plain.loss_gradient(inputs, TARGETS)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7 * np.abs(expected).max())
    white = PyTorchESPnet(model=model, asr_config=tiny_config(), preprocessing_defences=_chain("white-box"))
    for b, w in zip(black.loss_gradient(clips, TARGETS), white.loss_gradient(clips, TARGETS)):
        assert np.all(np.isfinite(w)) and not np.allclose(b, w, rtol=1e-2)
    assert white.predict(clips).shape == (2,)


def test_white_box_vocoder_runs_once_per_gradient(model, clips):
    smoothing, vocoder = _chain("white-box")
    calls = []
    # The vocoder module, not its generator: under a gradient, `Vocoder.forward` runs the generator's layers itself
    # (its residual blocks recomputed in the backward pass, to bound memory), so the generator's own hook never fires.
    vocoder._vocoder.register_forward_hook(lambda *args: calls.append(1))
    PyTorchDeepSpeech2(model=model, preprocessing_defences=[smoothing, vocoder]).loss_gradient(clips, TARGETS)
    assert len(calls) == len(clips)


def test_pgd_through_a_defended_estimator_on_each_device(model, clips, device_type):
    # Defences built without a device follow the estimator's.
    chain = [
        GaussianSmoothingPyTorch(sigma=0.01, seed=3),
        WaveGANVocoderPyTorch(vocoder=tiny_hifigan_vocoder(), mode="white-box", seed=0),
    ]
    estimator = PyTorchDeepSpeech2(model=model, preprocessing_defences=chain, device_type=device_type)
    assert all(defence.device == estimator.device for defence in chain)
    attack = ProjectedGradientDescent(
        estimator, norm=np.inf, eps=0.01, eps_step=0.002, max_iter=2, targeted=True, batch_size=2, verbose=False
    )
    adversarial = attack.generate(clips, TARGETS)
    for clean, example in zip(clips, adversarial):
        assert np.all(np.isfinite(example)) and 0 < np.max(np.abs(example - clean)) <= 0.01 + 1e-6
    assert len(estimator.predict(adversarial)) == 2


def test_recording_defended_inputs_gives_what_the_model_received(model, clips):
    defended = PyTorchDeepSpeech2(model=model, preprocessing_defences=_chain("black-box"))
    with defended.recording_defended_inputs() as received:
        transcripts = defended.predict(clips)
    for (given, after), clip, expected in zip(received, clips, _defended_inputs(clips, "black-box")):
        np.testing.assert_array_equal(given, clip)
        np.testing.assert_array_equal(after, expected)  # the same noise draw as the chain's first
    plain = PyTorchDeepSpeech2(model=model)
    assert list(plain.predict(to_object_array([after for _, after in received]))) == list(transcripts)
    with defended.recording_defended_inputs() as received:
        defended.loss_gradient(clips, TARGETS)  # an attack's gradient pass is not recorded
    defended.predict(clips)  # nor anything after the block
    assert received == []
