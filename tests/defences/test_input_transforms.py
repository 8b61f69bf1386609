"""
The input-transform defences on real speech: what each does to the signal, and the gradient an attacker gets through
it (BPDA's identity for MP3 and quantisation, the true gradient for resampling and ART's low-pass filter).
"""

import numpy as np
import pytest
import torch

from art_asr_ext.defences.preprocessor import (
    QuantizationPyTorch,
    ResamplePyTorch,
    SoundfileMp3CompressionPyTorch,
    StraightThroughPyTorch,
    butterworth_lowpass,
)
from art_asr_ext.utils.audio import MP3_BITRATES, to_object_array


@pytest.fixture
def clip(real_clips):
    return np.asarray(real_clips[0][:32000], dtype=np.float32)


def _energy_above(waveform: np.ndarray, hz: float, sample_rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(waveform)) ** 2
    frequencies = np.fft.rfftfreq(len(waveform), 1 / sample_rate)
    return float(spectrum[frequencies > hz].sum() / spectrum.sum())


def test_mp3_compresses_at_the_chosen_bitrate_and_keeps_the_speech(clip):
    for bitrate in (32, 128):
        defence = SoundfileMp3CompressionPyTorch(bitrate=bitrate)
        out = defence.forward(torch.from_numpy(clip))[0].numpy()
        assert out.shape == clip.shape and out.dtype == np.float32
        snr = 10 * np.log10(np.sum(clip**2) / np.sum((out - clip) ** 2))
        assert 3 < snr < 60, (bitrate, snr)  # changed, but still the same speech
    low, high = (
        SoundfileMp3CompressionPyTorch(bitrate=b).forward(torch.from_numpy(clip))[0].numpy() for b in (32, 128)
    )
    assert np.sum((low - clip) ** 2) > np.sum((high - clip) ** 2)  # a lower bitrate loses more


def test_mp3_measured_bitrate_is_the_chosen_one(clip):
    import io

    import soundfile

    for bitrate in (32, 64, 128):
        defence = SoundfileMp3CompressionPyTorch(bitrate=bitrate)
        buffer = io.BytesIO()
        soundfile.write(
            buffer,
            clip,
            16000,
            format="MP3",
            subtype="MPEG_LAYER_III",
            compression_level=defence.compression_level,
            bitrate_mode="CONSTANT",
        )
        measured = len(buffer.getvalue()) * 8 / (len(clip) / 16000) / 1000
        assert abs(measured - bitrate) / bitrate < 0.1, (bitrate, measured)


@pytest.mark.parametrize("defence", [SoundfileMp3CompressionPyTorch(bitrate=64), QuantizationPyTorch(bits=4)])
def test_codecs_without_a_gradient_are_attacked_with_bpda(defence, clip):
    x = torch.from_numpy(clip).requires_grad_(True)
    estimate = defence.estimate_forward(x)
    estimate.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # the identity stands in for the codec
    assert not getattr(defence, "forward_is_differentiable", False) and not defence.is_random


def test_quantisation_rounds_to_the_levels_of_its_bits(clip):
    out = QuantizationPyTorch(bits=4).forward(torch.from_numpy(clip))[0].numpy()
    levels = np.unique(out)
    assert len(levels) <= 15 and np.allclose(levels * 7, np.round(levels * 7))


def test_resampling_removes_the_upper_band_and_has_its_true_gradient(clip):
    defence = ResamplePyTorch(down_sample_rate=8000)
    out = defence.forward(torch.from_numpy(clip))[0].numpy()
    assert out.shape == clip.shape
    assert _energy_above(clip, 4200) > 10 * _energy_above(out, 4200)
    x = torch.from_numpy(clip).requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    (defence.forward(x)[0] * weights).sum().backward()
    assert defence.forward_is_differentiable and not torch.allclose(x.grad, weights)  # not the identity
    # The true gradient of a linear map: its adjoint applied to the weights, checked along a random direction.
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)) * 1e-3
    with torch.no_grad():
        change = ((defence.forward(x + direction)[0] - defence.forward(x)[0]) * weights).sum()
    assert torch.isclose(change, (x.grad * direction).sum(), rtol=1e-3, atol=1e-5)


def test_arts_low_pass_filter_cuts_above_its_cut_off_and_differentiates(clip):
    defence = butterworth_lowpass(3000.0, order=4)
    out = defence.forward(torch.from_numpy(clip))[0].numpy()
    assert _energy_above(clip, 5000) > 20 * _energy_above(out, 5000)
    x = torch.from_numpy(clip).requires_grad_(True)
    defence.forward(x)[0].sum().backward()
    assert torch.isfinite(x.grad).all() and not torch.allclose(x.grad, torch.ones_like(x))


def test_numpy_batches_are_transformed_utterance_by_utterance(clip):
    x = to_object_array([clip, clip[:16000]])
    out, _ = QuantizationPyTorch(bits=8)(x)
    assert [len(w) for w in out] == [32000, 16000]


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: SoundfileMp3CompressionPyTorch(bitrate=100), r"bitrate must be one of \[16, 24"),
        (lambda: SoundfileMp3CompressionPyTorch(sample_rate=44100), "sample_rate must be one of"),
        (lambda: ResamplePyTorch(down_sample_rate=16000), "down_sample_rate must be below sample_rate 16000"),
        (lambda: QuantizationPyTorch(bits=1), "bits must be an integer from 2 to 16. Found: 1"),
        (lambda: butterworth_lowpass(9000.0), r"cutoff_hz must be between 0 and 8000.0 Hz. Found: 9000.0"),
    ],
)
def test_bad_settings_are_named(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_every_bitrate_encodes():
    clip = (np.random.RandomState(0).randn(8000) * 0.1).astype(np.float32)
    for bitrate in MP3_BITRATES:
        assert SoundfileMp3CompressionPyTorch(bitrate=bitrate).forward(torch.from_numpy(clip))[0].shape == (8000,)


@pytest.mark.parametrize(
    "build",
    [lambda: ResamplePyTorch(down_sample_rate=8000), lambda: butterworth_lowpass(3000.0, order=4)],
    ids=["resample", "lowpass"],
)
def test_true_gradients_match_a_finite_difference_in_double_precision(build, clip):
    defence = build()
    x = torch.from_numpy(clip[:8000].astype(np.float64)).requires_grad_(True)
    weights = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    output = defence.forward(x)[0]
    assert output.dtype == torch.float64
    (output * weights).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.shape == x.shape
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    step = 1e-6
    with torch.no_grad():
        plus = (defence.forward(x + step * direction)[0] * weights).sum()
        minus = (defence.forward(x - step * direction)[0] * weights).sum()
    finite_difference = (plus - minus) / (2 * step)
    assert torch.isclose(finite_difference, (x.grad * direction).sum(), rtol=1e-7)


@pytest.mark.parametrize(
    "build",
    [lambda: ResamplePyTorch(down_sample_rate=8000), lambda: butterworth_lowpass(3000.0, order=4)],
    ids=["resample", "lowpass"],
)
def test_bpda_on_a_transform_with_a_true_gradient_keeps_its_values_and_passes_the_gradient_through(build, clip):
    defence = build()
    bpda = StraightThroughPyTorch(defence)
    x = torch.from_numpy(clip)
    assert torch.equal(bpda.forward(x)[0], defence.forward(x)[0])
    given = x.clone().requires_grad_(True)
    bpda.estimate_forward(given).sum().backward()
    assert torch.equal(given.grad, torch.ones_like(given))  # exactly the identity
    assert not bpda.forward_is_differentiable and not bpda.is_random
    assert np.array_equal(bpda(clip[None, :])[0], defence(clip[None, :])[0])


def test_bpda_refuses_a_random_defence():
    from art_asr_ext.defences.preprocessor import GaussianSmoothingPyTorch

    with pytest.raises(ValueError, match="deterministic PreprocessorPyTorch"):
        StraightThroughPyTorch(GaussianSmoothingPyTorch(sigma=0.01, seed=0))


def test_an_estimator_attacks_the_bpda_transform_with_the_identity(clip):
    from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
    from art_asr_ext.models import DeepSpeech2

    torch.manual_seed(0)
    model = DeepSpeech2(hidden_size=16, hidden_layers=1)
    x, y = clip[None, :16000], np.array(["HELLO"])
    gradients = {}
    for name, chain in (
        ("none", None),
        ("true", [ResamplePyTorch(down_sample_rate=4000)]),
        ("bpda", [StraightThroughPyTorch(ResamplePyTorch(down_sample_rate=4000))]),
    ):
        gradients[name] = PyTorchDeepSpeech2(model=model, preprocessing_defences=chain).loss_gradient(x, y)[0]
    resampled = ResamplePyTorch(down_sample_rate=4000)(x)[0]
    undefended_at_resampled = PyTorchDeepSpeech2(model=model).loss_gradient(resampled, y)[0]
    # BPDA: the model's gradient at the transformed input, passed through unchanged; the true gradient differs
    np.testing.assert_allclose(gradients["bpda"], undefended_at_resampled, rtol=1e-5, atol=1e-7)
    assert not np.allclose(gradients["bpda"], gradients["true"], atol=1e-7)
