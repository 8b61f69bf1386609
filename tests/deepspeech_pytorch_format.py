"""
Writes checkpoints exactly as deepspeech.pytorch does, without that package.

deepspeech.pytorch's v3 Lightning checkpoints pickle OmegaConf ``DictConfig`` objects whose metadata names the
package's own dataclasses and enums (``deepspeech_pytorch.configs.train_config.BiDirectionalConfig``,
``deepspeech_pytorch.enums.RNNType``...). To write byte-for-byte the same structure, this module registers stand-in
modules under those names while pickling, then removes them, so the loader under test never sees them.
"""

import contextlib
import dataclasses
import enum
import sys
import types
from typing import Any, Dict, Iterator

import torch
from omegaconf import OmegaConf
from torch import nn


@contextlib.contextmanager
def deepspeech_pytorch_modules() -> Iterator[types.SimpleNamespace]:
    """Registers `deepspeech_pytorch.enums` and `deepspeech_pytorch.configs.train_config` as in the real package."""
    enums = types.ModuleType("deepspeech_pytorch.enums")

    class SpectrogramWindow(enum.Enum):
        hamming = "hamming"
        hann = "hann"
        blackman = "blackman"
        bartlett = "bartlett"

    class RNNType(enum.Enum):
        lstm = nn.LSTM
        rnn = nn.RNN
        gru = nn.GRU

    for cls in (SpectrogramWindow, RNNType):
        cls.__module__ = enums.__name__
        cls.__qualname__ = cls.__name__
        setattr(enums, cls.__name__, cls)

    configs = types.ModuleType("deepspeech_pytorch.configs.train_config")

    @dataclasses.dataclass
    class SpectConfig:
        sample_rate: int = 16000
        window_size: float = 0.02
        window_stride: float = 0.01
        window: SpectrogramWindow = SpectrogramWindow.hamming

    @dataclasses.dataclass
    class BiDirectionalConfig:
        rnn_type: RNNType = RNNType.lstm
        hidden_size: int = 1024
        hidden_layers: int = 5

    @dataclasses.dataclass
    class UniDirectionalConfig(BiDirectionalConfig):
        lookahead_context: int = 20

    @dataclasses.dataclass
    class AdamConfig:
        learning_rate: float = 1.5e-4
        learning_anneal: float = 0.99
        weight_decay: float = 1e-5
        eps: float = 1e-8
        betas: tuple = (0.9, 0.999)

    @dataclasses.dataclass
    class DataConfig:
        train_path: str = "data/train_manifest.csv"
        val_path: str = "data/val_manifest.csv"
        batch_size: int = 64
        labels_path: str = "labels.json"
        spect: SpectConfig = dataclasses.field(default_factory=SpectConfig)

    @dataclasses.dataclass
    class DeepSpeechConfig:
        data: DataConfig = dataclasses.field(default_factory=DataConfig)
        model: Any = dataclasses.field(default_factory=BiDirectionalConfig)
        optim: Any = dataclasses.field(default_factory=AdamConfig)
        seed: int = 123456

    for cls in (SpectConfig, BiDirectionalConfig, UniDirectionalConfig, AdamConfig, DataConfig, DeepSpeechConfig):
        cls.__module__ = configs.__name__
        cls.__qualname__ = cls.__name__
        setattr(configs, cls.__name__, cls)

    names = ["deepspeech_pytorch", "deepspeech_pytorch.configs", enums.__name__, configs.__name__]
    sys.modules.update(
        {
            "deepspeech_pytorch": types.ModuleType("deepspeech_pytorch"),
            "deepspeech_pytorch.configs": types.ModuleType("deepspeech_pytorch.configs"),
            enums.__name__: enums,
            configs.__name__: configs,
        }
    )
    try:
        yield types.SimpleNamespace(enums=enums, configs=configs)
    finally:
        for name in names:
            sys.modules.pop(name, None)


def write_v3_checkpoint(
    path,
    state_dict: Dict[str, torch.Tensor],
    labels,
    rnn_type="lstm",
    hidden_size=1024,
    hidden_layers=5,
    bidirectional=True,
    lookahead_context=20,
    spect=None,
) -> None:
    """A PyTorch-Lightning checkpoint as deepspeech.pytorch v3 (`train.py` + `save_hyperparameters`) writes it."""
    spect = spect or {}
    with deepspeech_pytorch_modules() as ds:
        rnn = ds.enums.RNNType[rnn_type]
        if bidirectional:
            model_cfg = ds.configs.BiDirectionalConfig(
                rnn_type=rnn, hidden_size=hidden_size, hidden_layers=hidden_layers
            )
        else:
            model_cfg = ds.configs.UniDirectionalConfig(
                rnn_type=rnn, hidden_size=hidden_size, hidden_layers=hidden_layers, lookahead_context=lookahead_context
            )
        spect_cfg = ds.configs.SpectConfig(window=ds.enums.SpectrogramWindow[spect.pop("window", "hamming")], **spect)
        # Hydra hands train.py one structured config; the model receives its sub-nodes (with their parent).
        cfg = OmegaConf.structured(
            ds.configs.DeepSpeechConfig(data=ds.configs.DataConfig(spect=spect_cfg), model=model_cfg)
        )
        checkpoint = {
            "epoch": 16,
            "global_step": 123,
            "pytorch-lightning_version": "1.1.5",
            "callbacks": {},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1.5e-4, "params": [0]}]}],
            "lr_schedulers": [{"gamma": 0.99, "base_lrs": [1.5e-4], "last_epoch": 16}],
            "state_dict": state_dict,
            "hparams_name": "kwargs",
            "hyper_parameters": {
                "labels": list(labels),
                "model_cfg": cfg.model,
                "precision": 16,
                "optim_cfg": cfg.optim,
                "spect_cfg": cfg.data.spect,
            },
        }
        torch.save(checkpoint, path)


def write_v2_package(
    path,
    state_dict: Dict[str, torch.Tensor],
    labels,
    rnn_type="lstm",
    hidden_size=1024,
    hidden_layers=5,
    bidirectional=True,
    sample_rate=16000,
    window_size=0.02,
    window_stride=0.01,
    window="hamming",
) -> None:
    """A `.pth` package as deepspeech.pytorch v2 (`DeepSpeech.serialize`) writes it: labels as one string."""
    package = {
        "version": "0.0.1",
        "hidden_size": hidden_size,
        "hidden_layers": hidden_layers,
        "rnn_type": rnn_type,
        "audio_conf": {
            "sample_rate": sample_rate,
            "window_size": window_size,
            "window_stride": window_stride,
            "window": window,
            "noise_dir": None,
            "noise_prob": 0.4,
            "noise_levels": (0.0, 0.5),
        },
        "labels": "".join(labels),
        "state_dict": state_dict,
        "bidirectional": bidirectional,
        "epoch": 70,
        "avg_loss": 12.5,
        "loss_results": torch.zeros(70),
        "cer_results": torch.zeros(70),
        "wer_results": torch.zeros(70),
    }
    torch.save(package, path)
