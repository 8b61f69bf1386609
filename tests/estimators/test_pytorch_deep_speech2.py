import numpy as np
import pytest
import torch
from art.attacks.evasion import FastGradientMethod, ImperceptibleASRPyTorch, ProjectedGradientDescent
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.utils.audio import to_object_array
from art_asr_ext.models import DeepSpeech2
from art_asr_ext.models.deepspeech_checkpoint import save_deepspeech_checkpoint

TARGETS = np.array(["OPEN THE DOOR", "HELLO", "YES"])


@pytest.fixture
def tiny_estimator(device_type):
    """On each device (the GPU one runs the RNN through cuDNN, which differentiates only in training mode)."""
    return PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=32, hidden_layers=2), device_type=device_type)


@pytest.fixture
def clips(real_clips):
    return to_object_array(real_clips)


def test_predict_returns_one_transcript_per_utterance(tiny_estimator, clips):
    transcripts = tiny_estimator.predict(clips)
    assert transcripts.shape == (3,) and all(isinstance(t, str) for t in transcripts)
    assert set("".join(transcripts)) <= set(tiny_estimator.labels[1:])
    probabilities, sizes = tiny_estimator.predict(clips, transcription_output=False)
    assert probabilities.shape == (3, sizes.max(), 29)
    np.testing.assert_allclose(probabilities[0, : sizes[0]].sum(-1), 1.0, rtol=1e-5)


def test_predict_accepts_equal_length_2d_array(tiny_estimator, real_clips):
    batch = np.stack([c[:16000] for c in real_clips])
    assert tiny_estimator.predict(batch).shape == (3,)


def test_loss_gradient_matches_finite_differences():
    torch.manual_seed(3)
    estimator = PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=8, hidden_layers=1).double())
    rng = np.random.default_rng(0)
    x = to_object_array([0.1 * rng.standard_normal(2400), 0.1 * rng.standard_normal(1900)])
    y = np.array(["AB", "C"])
    gradients = estimator.loss_gradient(x, y)
    assert gradients[0].shape == (2400,) and gradients[1].shape == (1900,)
    step = 1e-6
    for utterance in (0, 1):
        for sample in rng.choice(len(x[utterance]), 6, replace=False):
            plus, minus = x.copy(), x.copy()
            plus[utterance] = x[utterance].copy()
            minus[utterance] = x[utterance].copy()
            plus[utterance][sample] += step
            minus[utterance][sample] -= step
            numeric = (estimator.compute_loss(plus, y)[utterance] - estimator.compute_loss(minus, y)[utterance]) / (
                2 * step
            )
            analytic = gradients[utterance][sample]
            assert abs(analytic - numeric) <= 1e-2 * max(abs(numeric), 1e-3), (utterance, sample, analytic, numeric)


def test_padding_never_changes_loss_or_gradient(clips):
    # double precision, so that only padding (not float32 summation order) could make a difference
    estimator = PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=32, hidden_layers=2).double())
    estimator.max_padding = float("inf")  # force one padded batch
    together = estimator.loss_gradient(clips, TARGETS, batch_size=3)
    losses_together = estimator.compute_loss(clips, TARGETS, batch_size=3)
    for i in range(3):
        alone = estimator.loss_gradient(clips[i : i + 1], TARGETS[i : i + 1])
        np.testing.assert_allclose(together[i], alone[0], rtol=1e-7, atol=1e-10)
        np.testing.assert_allclose(
            losses_together[i], estimator.compute_loss(clips[i : i + 1], TARGETS[i : i + 1]), rtol=1e-10
        )


def test_attacks_give_the_weights_no_gradient_and_leave_the_module_as_handed_over(tiny_estimator, clips):
    tiny_estimator.loss_gradient(clips, TARGETS)
    padded = torch.zeros(2, 9000).copy_(torch.from_numpy(np.stack([c[:9000] for c in clips[:2]])))
    padded.requires_grad_(True)
    loss, _ = tiny_estimator.compute_loss_and_decoded_output(padded, TARGETS[:2], real_lengths=[9000, 9000])
    loss.backward()  # as ART's imperceptible attack does, outside the estimator
    assert padded.grad is not None and float(padded.grad.abs().sum()) > 0
    assert all(p.grad is None and p.requires_grad for p in tiny_estimator.model.parameters())


def test_a_second_estimator_on_the_same_module_can_fit(real_clips):
    model = DeepSpeech2(hidden_size=16, hidden_layers=1)
    first = PyTorchDeepSpeech2(model=model)
    first.loss_gradient(to_object_array([real_clips[0][:8000]]), TARGETS[:1])
    second = PyTorchDeepSpeech2(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    before = [p.detach().clone() for p in model.parameters()]
    second.fit(to_object_array([c[:8000] for c in real_clips]), TARGETS, batch_size=3, nb_epochs=1)
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters()) if a.numel() > 1)


def test_set_params_refuses_a_new_checkpoint_and_keeps_the_current_one(tmp_path, tiny_estimator):
    path = tmp_path / "model.ckpt"
    save_deepspeech_checkpoint(DeepSpeech2(hidden_size=16, hidden_layers=1), path)
    estimator = PyTorchDeepSpeech2(checkpoint=path)
    estimator.set_params(checkpoint=str(path), clip_values=(-0.5, 0.5))  # the current checkpoint: fine
    assert tuple(estimator.clip_values) == (-0.5, 0.5)
    with pytest.raises(ValueError, match=r"checkpoint cannot be changed by set_params.*Build a new PyTorchDeepSpeech2"):
        estimator.set_params(checkpoint=tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="device_type cannot be changed"):
        estimator.set_params(device_type="gpu")
    with pytest.raises(ValueError, match="model cannot be changed"):
        estimator.set_params(model=tiny_estimator.model)
    assert str(estimator.checkpoint) == str(path) and estimator.model is not tiny_estimator.model


def test_silence_gives_finite_features_an_empty_transcript_and_a_finite_gradient(tiny_estimator, real_clips):
    silence = np.zeros(8000, dtype=np.float32)
    batch = to_object_array([silence, real_clips[0][:8000]])
    device = tiny_estimator.device
    features, _ = tiny_estimator.model.spectrogram(
        torch.from_numpy(silence)[None].to(device), torch.tensor([8000], device=device)
    )
    assert torch.all(features == 0)
    assert tiny_estimator.predict(batch)[0] == tiny_estimator.predict(batch[:1])[0]
    gradients = tiny_estimator.loss_gradient(batch, TARGETS[:2])
    assert all(np.all(np.isfinite(g)) for g in gradients) and np.all(
        np.isfinite(tiny_estimator.compute_loss(batch, TARGETS[:2]))
    )


@pytest.mark.parametrize("attack, eps", [("fgsm", 1e-3), ("pgd", 1e-2)])
def test_art_attacks_respect_max_norm_on_real_clips(tiny_estimator, clips, attack, eps):
    if attack == "fgsm":
        attacker = FastGradientMethod(tiny_estimator, norm=np.inf, eps=eps, targeted=True, batch_size=3)
    else:
        attacker = ProjectedGradientDescent(
            tiny_estimator,
            norm=np.inf,
            eps=eps,
            eps_step=eps / 5,
            max_iter=7,
            targeted=True,
            batch_size=3,
            verbose=False,
        )
    adversarial = attacker.generate(clips, TARGETS)
    for original, perturbed in zip(clips, adversarial):
        assert perturbed.shape == original.shape and np.all(np.isfinite(perturbed))
        distance = np.max(np.abs(perturbed - original))
        # float32 samples: x + eps is rounded to the nearest float32, at most one ulp of 1.0 away
        assert 0 < distance <= eps + np.finfo(np.float32).eps
        assert np.max(np.abs(perturbed)) <= 1.0


def test_targeted_pgd_lowers_target_loss_by_half(clips):
    model = DeepSpeech2(hidden_size=32, hidden_layers=2)
    # Freshly initialised logits are nearly uniform whatever the input; a trained model's are sharp. Scaling the
    # output layer gives the random model a trained model's confidence, so the loss depends on the input.
    with torch.no_grad():
        model.fc[0].module[1].weight.mul_(5)
    estimator = PyTorchDeepSpeech2(model=model)
    before = estimator.compute_loss(clips, TARGETS)
    attack = ProjectedGradientDescent(
        estimator, norm=np.inf, eps=0.1, eps_step=0.02, max_iter=10, targeted=True, batch_size=3, verbose=False
    )
    after = estimator.compute_loss(attack.generate(clips, TARGETS), TARGETS)
    assert np.all(after <= 0.5 * before), (before, after)


def test_imperceptible_attack_returns_finite_changed_audio(tiny_estimator, real_clips):
    clips = to_object_array([c[:8000].astype(np.float32) for c in real_clips[:2]])
    attack = ImperceptibleASRPyTorch(
        tiny_estimator,
        eps=0.05,
        max_iter_1=3,
        max_iter_2=2,
        learning_rate_1=0.001,
        learning_rate_2=5e-4,
        global_max_length=8000,
        batch_size=2,
        num_iter_decrease_eps=1,
    )
    adversarial = attack.generate(clips, np.array(["HI", "NO"]))
    for original, perturbed in zip(clips, adversarial):
        assert perturbed.shape == original.shape and np.all(np.isfinite(perturbed))
        assert np.max(np.abs(perturbed - original)) > 0


class _HalfVolume(PreprocessorPyTorch):
    """A defence whose attacker gradient is the identity (BPDA), to check how estimators use defences."""

    def __init__(self, apply_fit=False, apply_predict=True):
        super().__init__(device_type="cpu", apply_fit=apply_fit, apply_predict=apply_predict)
        self.calls = 0

    def forward(self, x, y=None):
        self.calls += 1
        return 0.5 * x, y

    def estimate_forward(self, x, y=None):
        return x


def test_defences_apply_on_every_path_with_their_declared_gradient(real_clips):
    model = DeepSpeech2(hidden_size=16, hidden_layers=1)
    defended = PyTorchDeepSpeech2(model=model, preprocessing_defences=_HalfVolume())
    plain = PyTorchDeepSpeech2(model=model)
    clips = to_object_array(real_clips[:2])
    halved = to_object_array([0.5 * c for c in real_clips[:2]])
    targets = TARGETS[:2]
    assert list(defended.predict(clips)) == list(plain.predict(halved))
    np.testing.assert_allclose(defended.compute_loss(clips, targets), plain.compute_loss(halved, targets), rtol=1e-5)
    # BPDA: the gradient at the defended input, passed straight through (no factor 0.5)
    for got, expected in zip(defended.loss_gradient(clips, targets), plain.loss_gradient(halved, targets)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    padded = torch.nn.utils.rnn.pad_sequence([torch.from_numpy(c) for c in clips], batch_first=True)
    lengths = np.array([len(c) for c in clips])
    loss, decoded = defended.compute_loss_and_decoded_output(padded, targets, real_lengths=lengths)
    plain_loss, plain_decoded = plain.compute_loss_and_decoded_output(0.5 * padded, targets, real_lengths=lengths)
    torch.testing.assert_close(loss, plain_loss)
    assert list(decoded) == list(plain_decoded)


def test_eot_averages_gradients_over_draws(real_clips):
    class Noise(PreprocessorPyTorch):
        eot_samples = 3

        def __init__(self):
            super().__init__(device_type="cpu")
            self.generator = torch.Generator().manual_seed(0)

        def forward(self, x, y=None):
            return x + 0.01 * torch.randn(x.shape, generator=self.generator), y

    model = DeepSpeech2(hidden_size=16, hidden_layers=1)
    clip = to_object_array([real_clips[2][:6000]])
    eot = PyTorchDeepSpeech2(model=model, preprocessing_defences=Noise()).loss_gradient(clip, TARGETS[2:])[0]
    generator = torch.Generator().manual_seed(0)
    plain = PyTorchDeepSpeech2(model=model)
    draws = [
        plain.loss_gradient(
            to_object_array([clip[0] + 0.01 * torch.randn(6000, generator=generator).numpy()]), TARGETS[2:]
        )[0]
        for _ in range(3)
    ]
    np.testing.assert_allclose(eot, np.mean(draws, axis=0), rtol=1e-4, atol=1e-8)
    assert not np.allclose(eot, draws[0])


def test_fit_trains_and_applies_fit_defences(real_clips):
    model = DeepSpeech2(hidden_size=16, hidden_layers=1)
    augmentation = _HalfVolume(apply_fit=True, apply_predict=False)
    estimator = PyTorchDeepSpeech2(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=3e-3), preprocessing_defences=augmentation
    )
    clips = to_object_array([c[:8000] for c in real_clips])
    before = estimator.compute_loss(clips, TARGETS)
    assert augmentation.calls == 0  # not applied at inference
    estimator.fit(clips, TARGETS, batch_size=3, nb_epochs=15)
    assert augmentation.calls == 15 * 3
    assert np.mean(estimator.compute_loss(clips, TARGETS)) < 0.8 * np.mean(before)
    assert all(p.requires_grad for p in model.parameters())  # as handed over


def test_checkpoint_constructor(tmp_path, clips):
    model = DeepSpeech2(hidden_size=16, hidden_layers=1).eval()
    save_deepspeech_checkpoint(model, tmp_path / "m.ckpt")
    from_file = PyTorchDeepSpeech2(checkpoint=tmp_path / "m.ckpt")
    assert list(from_file.predict(clips)) == list(PyTorchDeepSpeech2(model=model).predict(clips))
    assert from_file.sample_rate == 16000


@pytest.mark.parametrize(
    "make_x, match",
    [
        (lambda c: to_object_array([c[0].copy(), np.full(100, np.nan, dtype=np.float32)]), "NaN or inf"),
        (lambda c: to_object_array([np.where(np.arange(len(c[0])) == 5, np.inf, c[0]), c[1]]), "NaN or inf"),
        (lambda c: to_object_array([(c[0] * 32767).astype(np.int16), c[1]]), "dtype int16"),
        (lambda c: to_object_array([c[0] * 4, c[1]]), r"outside \[-1, 1\]"),
        (lambda c: to_object_array([np.stack([c[0], c[0]]), c[1]]), "1-D mono"),
        (lambda c: to_object_array([np.zeros(0, dtype=np.float32), c[1]]), "empty"),
        (lambda c: c[0], "single 1-D waveform"),
        (lambda c: np.zeros((0,), dtype=object), "no utterances"),
    ],
)
def test_bad_audio_raises_clear_errors(tiny_estimator, real_clips, make_x, match):
    x = make_x(real_clips)
    with pytest.raises(ValueError, match=match):
        tiny_estimator.predict(x)
    if len(x) == 2:
        with pytest.raises(ValueError, match=match):
            tiny_estimator.loss_gradient(x, TARGETS[:2])


@pytest.mark.parametrize(
    "y, match",
    [
        (np.array(["OPEN THE DOOR", "hello", "YES"]), r"cannot emit: \['e', 'h', 'l', 'o'\]"),
        (np.array(["OPEN THE DOOR!", "HELLO", "YES"]), r"cannot emit: \['!'\]"),
        (np.array(["HELLO", "YES"]), "2 transcripts for 3 utterances"),
        (np.array(["A" * 400, "HELLO", "YES"]), "needs 799 CTC frames"),
        (np.array(["OPEN", "HELLO", "Y_S"]), r"cannot emit: \['_'\]"),
    ],
)
def test_bad_transcripts_raise_clear_errors(tiny_estimator, clips, y, match):
    with pytest.raises(ValueError, match=match):
        tiny_estimator.loss_gradient(clips, y)


def test_constructor_errors(tmp_path):
    with pytest.raises(ValueError, match="exactly one of model"):
        PyTorchDeepSpeech2()
    with pytest.raises(FileNotFoundError):
        PyTorchDeepSpeech2(checkpoint=tmp_path / "missing.ckpt")
    with pytest.raises(ValueError, match="device_type"):
        PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=8, hidden_layers=1), device_type="tpu")
    with pytest.raises(ValueError, match="fit needs an optimizer"):
        PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=8, hidden_layers=1)).fit(
            to_object_array([np.zeros(8000, dtype=np.float32)]), np.array(["A"])
        )


def test_equal_length_object_array_is_a_batch_of_waveforms(tiny_estimator, real_clips):
    equal = np.array([real_clips[0][:8000], real_clips[1][:8000]], dtype=object)
    assert equal.ndim == 2  # numpy's doing: equal-length rows make a 2-D object array
    assert list(tiny_estimator.predict(equal)) == list(tiny_estimator.predict(np.stack(list(equal)).astype(np.float32)))


def test_samples_beyond_real_lengths_never_reach_the_loss(tiny_estimator, real_clips):
    padded = torch.zeros(2, 9000)
    padded[0, :9000] = torch.from_numpy(real_clips[0][:9000])
    padded[1, :6000] = torch.from_numpy(real_clips[1][:6000])
    garbage = padded.clone()
    garbage[1, 6000:] = 0.5
    lengths = np.array([9000, 6000])
    clean, _ = tiny_estimator.compute_loss_and_decoded_output(padded, TARGETS[:2], real_lengths=lengths)
    dirty, _ = tiny_estimator.compute_loss_and_decoded_output(garbage, TARGETS[:2], real_lengths=torch.tensor(lengths))
    assert float(clean) == float(dirty)
    with pytest.raises(ValueError, match="real_lengths"):
        tiny_estimator.compute_loss_and_decoded_output(padded, TARGETS[:2], real_lengths=[9000, 0])


def test_fit_keeps_parts_the_caller_froze_frozen(real_clips):
    model = DeepSpeech2(hidden_size=16, hidden_layers=1)
    model.conv.requires_grad_(False)
    frozen = [p.clone() for p in model.conv.parameters()]
    estimator = PyTorchDeepSpeech2(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    estimator.fit(to_object_array([c[:8000] for c in real_clips]), TARGETS, batch_size=3, nb_epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(frozen, model.conv.parameters()))
    assert not torch.equal(
        model.fc[0].module[1].weight,
        PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=16, hidden_layers=1)).model.fc[0].module[1].weight,
    )


def test_defence_at_another_sample_rate_is_refused():
    from art_asr_ext.defences.preprocessor import WaveGANVocoderPyTorch
    from art_asr_ext.models.vocoder import tiny_random_hifigan as random_init_vocoder

    vocoder = WaveGANVocoderPyTorch(vocoder=random_init_vocoder(0), sample_rate=8000, device_type="cpu")
    with pytest.raises(ValueError, match="expects 8000 Hz audio but the model takes 16000 Hz"):
        PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=8, hidden_layers=1), preprocessing_defences=vocoder)


def test_fit_clips_the_gradient_norm(real_clips):
    torch.manual_seed(0)
    model = DeepSpeech2(hidden_size=16, hidden_layers=1)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    estimator = PyTorchDeepSpeech2(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=1.0))
    clips = to_object_array([c[:8000] for c in real_clips])
    estimator.fit(clips, TARGETS, batch_size=3, nb_epochs=1, max_grad_norm=1e-3)
    step = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    # One SGD step with lr 1 moves the weights by exactly the clipped gradient (its norm is far above 1e-3 unclipped).
    assert 0 < step.norm() <= 1e-3 * (1 + 1e-4)
    with pytest.raises(ValueError, match="max_grad_norm must be positive"):
        estimator.fit(clips, TARGETS, batch_size=3, nb_epochs=1, max_grad_norm=0)
