import numpy as np
import pytest
import torch

from art_asr_ext.defences.preprocessor import GaussianSmoothingPyTorch


def smoothing(**kwargs):
    return GaussianSmoothingPyTorch(device_type="cpu", **kwargs)


def object_array(*waveforms):
    result = np.empty(len(waveforms), dtype=object)
    result[:] = list(waveforms)
    return result


def eot_gradient(defence, x, loss):
    """
    What an estimator does (the contract): values from forward(), gradients from estimate_forward() (straight
    through), averaged over defence.eot_samples calls, each drawing fresh noise.
    """
    total = torch.zeros_like(x)
    for _ in range(defence.eot_samples):
        with torch.no_grad():
            value = defence.forward(x)[0]
        leaf = x.clone().requires_grad_(True)
        estimate = defence.estimate_forward(leaf)
        defended = estimate + (value - estimate).detach()
        (gradient,) = torch.autograd.grad(loss(defended), leaf)
        total += gradient
    return total / defence.eot_samples


# ----------------------------------------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_keeps_shape_and_dtype_for_1d_and_2d(dtype):
    defence = smoothing(sigma=0.01, seed=0)
    one, labels = defence.forward(torch.zeros(500, dtype=dtype), y="label")
    batch, _ = defence.forward(torch.zeros(3, 500, dtype=dtype))
    assert one.shape == (500,) and one.dtype == dtype and labels == "label"
    assert batch.shape == (3, 500) and batch.dtype == dtype
    assert float(one.abs().max()) > 0


def test_object_array_and_2d_array_through_call():
    defence = smoothing(sigma=0.01, seed=0)
    ragged = object_array(np.zeros(300, np.float32), np.zeros(451, np.float32))
    labels = np.array(["A B", "C"])
    noisy, labels_out = defence(ragged, labels)
    assert noisy.dtype == object and [len(w) for w in noisy] == [300, 451]
    assert all(w.dtype == np.float32 for w in noisy)
    assert labels_out is labels
    square, _ = defence(np.zeros((2, 400), dtype=np.float64))
    assert square.shape == (2, 400) and square.dtype == np.float64


def test_noise_standard_deviation_is_sigma():
    defence = smoothing(sigma=0.01, seed=1)
    noise = defence.forward(torch.zeros(200000, dtype=torch.float64))[0]
    assert abs(float(noise.mean())) < 1e-4
    assert float(noise.std()) == pytest.approx(0.01, rel=0.01)


def test_augmentation_draws_one_sigma_per_utterance_in_range():
    defence = GaussianSmoothingPyTorch.training_augmentation(sigma_range=(0.0, 0.3), seed=2, device_type="cpu")
    assert defence.apply_fit and not defence.apply_predict and defence.is_augmentation
    stds = defence.forward(torch.zeros(64, 8000, dtype=torch.float64))[0].std(dim=1).numpy()
    assert stds.min() >= 0.0 and stds.max() <= 0.3 * 1.05
    assert stds.min() < 0.05 and stds.max() > 0.25  # spread over the range, not one sigma
    numpy_stds = [w.std() for w in defence(object_array(*[np.zeros(8000)] * 16))[0]]
    assert len(set(np.round(numpy_stds, 4))) == 16


def test_default_flags_follow_inference_setting():
    defence = smoothing()
    assert defence.sigma == 0.01 and defence.eot_samples == 1
    assert defence.apply_predict and not defence.apply_fit


# ----------------------------------------------------------------------------------------------------- seeding


def test_same_seed_gives_same_sequence_of_outputs():
    x = torch.linspace(-0.5, 0.5, 1000)
    first, second, other = smoothing(seed=7), smoothing(seed=7), smoothing(seed=8)
    outputs = [first.forward(x)[0] for _ in range(3)]
    assert all(torch.equal(a, second.forward(x)[0]) for a in outputs)
    assert not torch.equal(outputs[0], outputs[1])  # fresh noise on every call
    assert not torch.equal(outputs[0], other.forward(x)[0])
    first.set_params(seed=7)  # restarts the sequence
    assert torch.equal(first.forward(x)[0], outputs[0])


def test_same_seed_same_output_through_numpy():
    x = object_array(np.zeros(300, np.float32), np.zeros(200, np.float32))
    a, _ = smoothing(sigma=(0.0, 0.3), seed=3)(x)
    b, _ = smoothing(sigma=(0.0, 0.3), seed=3)(x)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))


# -------------------------------------------------------------------------------------------------------- gradients


def test_torch_gradient_is_incoming_gradient_exactly():
    defence = smoothing(sigma=0.05, seed=0)
    x = torch.randn(777, requires_grad=True)
    incoming = torch.randn(777)
    defence.forward(x)[0].backward(incoming)
    assert torch.equal(x.grad, incoming)
    leaf = torch.randn(777, requires_grad=True)
    defence.estimate_forward(leaf).backward(incoming)
    assert torch.equal(leaf.grad, incoming)


def test_numpy_estimate_gradient_returns_incoming_gradient():
    defence = smoothing(seed=0)
    x = object_array(np.zeros(10, np.float32), np.zeros(20, np.float32))
    grad = object_array(np.arange(10, dtype=np.float32), -np.arange(20, dtype=np.float32))
    result = defence.estimate_gradient(x, grad)
    assert all(np.array_equal(r, g) for r, g in zip(result, grad))
    square = np.random.RandomState(0).randn(2, 30).astype(np.float32)
    assert np.array_equal(defence.estimate_gradient(np.zeros((2, 30), np.float32), square), square)


@pytest.mark.parametrize("k", [1, 4])
def test_eot_averages_k_gradients(k):
    x = torch.linspace(-0.4, 0.4, 256, dtype=torch.float64)
    weights = torch.linspace(0.5, 2.0, 256, dtype=torch.float64)

    def loss(defended):  # a tiny nonlinear model: its gradient depends on the noise draw
        return (weights * torch.tanh(3.0 * defended) ** 2).sum()

    defence = smoothing(sigma=0.2, eot_samples=k, seed=11)
    estimated = eot_gradient(defence, x, loss)

    twin = smoothing(sigma=0.2, seed=11)  # same seed: the same k draws, taken explicitly
    draws = [twin.forward(x)[0] for _ in range(k)]
    per_draw = [weights * 2 * torch.tanh(3 * d) * (1 - torch.tanh(3 * d) ** 2) * 3 for d in draws]
    manual = torch.stack(per_draw).mean(dim=0)
    torch.testing.assert_close(estimated, manual, rtol=1e-10, atol=1e-12)
    if k > 1:
        assert not torch.allclose(per_draw[0], manual)  # the average differs from a single draw's gradient


# ------------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.tensor([0.0, float("nan"), 0.1]), "NaN"),
        (torch.zeros(2, 2, 100), "mono"),
        (torch.zeros(0), "no samples"),
        (torch.zeros(100, dtype=torch.int16), "float"),
        (np.zeros(100, np.float32), "torch.Tensor"),
    ],
)
def test_bad_tensor_input_raises(x, message):
    with pytest.raises(ValueError, match=message):
        smoothing(seed=0).forward(x)


@pytest.mark.parametrize(
    "x, message",
    [
        (object_array(np.zeros((2, 100), np.float32)), "1-D mono"),
        (object_array(np.array([np.nan], np.float32)), "NaN"),
        (object_array(np.zeros(0, np.float32)), "empty"),
        (object_array(np.zeros(10, np.int16)), "float"),
        (np.zeros((2, 3, 4), np.float32), "object array"),
    ],
)
def test_bad_numpy_input_raises(x, message):
    with pytest.raises(ValueError, match=message):
        smoothing(seed=0)(x)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sigma": -1}, "sigma must be >= 0. Found: -1"),
        ({"sigma": (0.3, 0.1)}, r"0 <= low <= high. Found: \(0.3, 0.1\)"),
        ({"sigma": (-0.1, 0.1)}, "0 <= low <= high"),
        ({"sigma": (0.1,)}, "low, high"),
        ({"sigma": float("nan")}, "finite"),
        ({"eot_samples": 0}, "eot_samples must be >= 1. Found: 0"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_bad_parameters_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        smoothing(**kwargs)


def test_gradient_layout_mismatch_raises():
    x = object_array(np.zeros(10, np.float32))
    with pytest.raises(ValueError, match=r"grad\[0\] has shape \(9,\)"):
        smoothing(seed=0).estimate_gradient(x, object_array(np.zeros(9, np.float32)))


def test_a_defence_without_device_type_follows_its_estimator_and_a_pinned_one_is_checked():
    from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
    from art_asr_ext.models.deepspeech2 import DeepSpeech2

    follower = GaussianSmoothingPyTorch(sigma=0.01, seed=0)
    assert not follower.device_pinned and follower.device.type == "cpu"
    estimator = PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=8, hidden_layers=1), preprocessing_defences=follower)
    assert follower.device == estimator.device
    pinned = GaussianSmoothingPyTorch(sigma=0.01, seed=0, device_type="cpu")
    assert pinned.device_pinned
    with pytest.raises(ValueError, match="pinned to cpu but its estimator runs on cuda"):
        pinned.follow_device(torch.device("cuda"))
    # The same seed on the same device gives the same noise, whichever way the device was chosen.
    x = torch.zeros(1000)
    assert torch.equal(follower.forward(x)[0], pinned.forward(x)[0])


def test_noise_and_gradient_on_each_device(device_type):
    defence = GaussianSmoothingPyTorch(sigma=0.05, seed=0, device_type=device_type)
    x = torch.zeros(20000, device=defence.device, requires_grad=True)
    output = defence.forward(x)[0]
    assert output.device == defence.device and output.shape == x.shape and output.dtype == x.dtype
    assert abs(float(output.detach().std()) - 0.05) < 0.005
    incoming = torch.randn(20000, device=defence.device)
    output.backward(incoming)
    assert torch.equal(x.grad, incoming)
    again = GaussianSmoothingPyTorch(sigma=0.05, seed=0, device_type=device_type).forward(x.detach())[0]
    assert torch.equal(output.detach(), again)  # the same seed on the same device: the same noise
    noisy, _ = defence(object_array(np.zeros(100, np.float32)))
    assert noisy[0].dtype == np.float32 and np.all(np.isfinite(noisy[0]))
