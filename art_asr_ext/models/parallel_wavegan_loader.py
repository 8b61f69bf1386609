"""
Load kan-bayashi/ParallelWaveGAN experiment folders into ESPnet's ``ParallelWaveGANGenerator``, without the
``parallel-wavegan`` package.

A folder holds what that recipe's ``train.py`` and ``compute_statistics.py`` write:

- ``config.yml``: the training configuration (feature settings, ``generator_params``, ``format``, ...);
- ``checkpoint-<N>steps.pkl``: ``torch.save({"model": {"generator": ..., "discriminator": ...}, "optimizer": ...,
  "scheduler": ..., "steps": N, "epochs": ...})``;
- ``stats.h5`` (datasets ``mean`` and ``scale``) or ``stats.npy`` (``[mean, scale]``): the feature normalisation.

Files are read with ``yaml`` safe loading and ``torch.load(weights_only=True)``: nothing in them is executed.

| Paper link: https://arxiv.org/abs/1910.11480
"""

import re
import warnings
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch
import yaml

from art_asr_ext.features.mel import LogMelConfig, LogMelSpectrogram
from art_asr_ext.models.vocoder import Vocoder

CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)steps\.pkl$")

# kan-bayashi generator_params -> ESPnet ParallelWaveGANGenerator arguments.
_PARAM_NAMES = {
    "in_channels": "in_channels",
    "out_channels": "out_channels",
    "kernel_size": "kernel_size",
    "layers": "layers",
    "stacks": "stacks",
    "residual_channels": "residual_channels",
    "gate_channels": "gate_channels",
    "skip_channels": "skip_channels",
    "aux_channels": "aux_channels",
    "aux_context_window": "aux_context_window",
    "dropout": "dropout_rate",
    "bias": "bias",
    "use_weight_norm": "use_weight_norm",
    "upsample_conditional_features": "upsample_conditional_features",
    "upsample_net": "upsample_net",
    "upsample_params": "upsample_params",
}


class _ConfigLoader(yaml.SafeLoader):
    """Safe YAML loader that also reads the ``!!python/tuple`` tags ``yaml.dump(Dumper=yaml.Dumper)`` may write."""


_ConfigLoader.add_constructor(
    "tag:yaml.org,2002:python/tuple", lambda loader, node: list(loader.construct_sequence(node))
)


def read_config(path: Union[str, Path]) -> Dict[str, Any]:
    """
    :param path: A ParallelWaveGAN ``config.yml``.
    :return: The configuration.
    :raises FileNotFoundError: When the file does not exist.
    :raises ValueError: When it is not a YAML mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ParallelWaveGAN config not found: {path}")
    try:
        config = yaml.load(path.read_text(), Loader=_ConfigLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"ParallelWaveGAN config {path} is not readable YAML: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"ParallelWaveGAN config {path} must be a mapping. Found: {type(config).__name__}")
    return config


def find_checkpoint(folder: Union[str, Path]) -> Path:
    """
    :param folder: An experiment folder.
    :return: Its ``checkpoint-<N>steps.pkl`` with the most steps.
    :raises FileNotFoundError: When there is none.
    """
    candidates = [
        (int(match.group(1)), path)
        for path in Path(folder).iterdir()
        if path.is_file() and (match := CHECKPOINT_PATTERN.match(path.name))
    ]
    if not candidates:
        raise FileNotFoundError(f"No checkpoint-<N>steps.pkl in {folder}")
    return max(candidates)[1]


def read_stats(folder: Union[str, Path], file_format: str = "hdf5") -> Tuple[np.ndarray, np.ndarray]:
    """
    Read the feature statistics ``compute_statistics.py`` writes.

    :param folder: The experiment folder.
    :param file_format: The config's ``format``: ``"hdf5"`` looks for ``stats.h5`` first, ``"npy"`` for ``stats.npy``.
    :return: `mean` and `scale`, each of shape `(n_mels,)`.
    :raises FileNotFoundError: When neither file exists.
    :raises ValueError: When the file cannot be read or lacks `mean`/`scale`.
    """
    folder = Path(folder)
    names = ["stats.h5", "stats.npy"] if file_format == "hdf5" else ["stats.npy", "stats.h5"]
    path = next((folder / name for name in names if (folder / name).is_file()), None)
    if path is None:
        raise FileNotFoundError(f"No stats.h5 or stats.npy in {folder}: ParallelWaveGAN features need its statistics.")
    try:
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as stats:
                missing = [name for name in ("mean", "scale") if name not in stats]
                if missing:
                    raise ValueError(f"{path} lacks the dataset(s) {missing}.")
                mean, scale = np.asarray(stats["mean"][()]), np.asarray(stats["scale"][()])
        else:
            stats = np.load(path, allow_pickle=False)
            if stats.ndim != 2 or stats.shape[0] != 2:
                raise ValueError(f"{path} must hold [mean, scale] of shape (2, n_mels). Found: {stats.shape}")
            mean, scale = stats[0], stats[1]
    except ValueError:
        raise
    except Exception as error:  # h5py/numpy raise OSError and others for corrupt files
        raise ValueError(f"Cannot read ParallelWaveGAN statistics {path}: {error}") from error
    return mean.reshape(-1).astype(np.float32), scale.reshape(-1).astype(np.float32)


def generator_arguments(config: Mapping[str, Any]) -> Dict[str, Any]:
    """
    Translate a ParallelWaveGAN ``generator_params`` into ESPnet ``ParallelWaveGANGenerator`` arguments.

    :param config: The full configuration.
    :return: Keyword arguments for ESPnet's generator.
    :raises ValueError: For a generator type or option ESPnet's generator does not implement.
    """
    generator_type = config.get("generator_type", "ParallelWaveGANGenerator")
    if generator_type != "ParallelWaveGANGenerator":
        raise ValueError(f"Only generator_type 'ParallelWaveGANGenerator' is supported. Found: {generator_type!r}")
    params = dict(config.get("generator_params") or {})
    if params.pop("use_causal_conv", False):
        raise ValueError("use_causal_conv=True is not supported by ESPnet's ParallelWaveGANGenerator.")
    unknown = sorted(set(params) - set(_PARAM_NAMES))
    if unknown:
        raise ValueError(f"Unsupported ParallelWaveGAN generator_params: {unknown}")
    arguments = {_PARAM_NAMES[key]: value for key, value in params.items()}
    if arguments.get("in_channels", 1) != 1 or arguments.get("out_channels", 1) != 1:
        raise ValueError(
            f"Only single-band generators (in_channels = out_channels = 1) are supported. Found: "
            f"in_channels={arguments.get('in_channels', 1)}, out_channels={arguments.get('out_channels', 1)}"
        )
    if "upsample_params" in arguments:
        # ESPnet updates this dict in place; keep the caller's config intact.
        upsample_params = dict(arguments["upsample_params"])
        # ParallelWaveGAN adds use_causal_conv to this dict when it builds a model; ESPnet's network has no such option.
        if upsample_params.pop("use_causal_conv", False):
            raise ValueError("upsample_params use_causal_conv=True is not supported by ESPnet's upsampling network.")
        arguments["upsample_params"] = upsample_params
    return arguments


def load_parallel_wavegan(folder: Union[str, Path], checkpoint: Optional[Union[str, Path]] = None) -> Vocoder:
    """
    Load a kan-bayashi/ParallelWaveGAN experiment folder as a :class:`Vocoder`.

    :param folder: Folder with ``config.yml``, ``checkpoint-<N>steps.pkl`` and ``stats.h5`` or ``stats.npy``.
    :param checkpoint: A specific checkpoint file; by default the one with the most steps in `folder`.
    :return: The vocoder (features as ``logmelfilterbank`` computes them, normalised with the statistics) in eval
             mode on the CPU, weight normalisation removed.
    :raises FileNotFoundError: When the folder or one of its files is missing.
    :raises ValueError: When a file is corrupt or describes a model ESPnet's generator cannot load.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"ParallelWaveGAN folder not found: {folder}")
    config = read_config(folder / "config.yml")
    checkpoint = find_checkpoint(folder) if checkpoint is None else Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"ParallelWaveGAN checkpoint not found: {checkpoint}")
    mean, scale = read_stats(folder, str(config.get("format", "hdf5")))
    try:
        content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"Cannot read ParallelWaveGAN checkpoint {checkpoint}: {error}") from error
    model = content.get("model") if isinstance(content, Mapping) else None
    if not isinstance(model, Mapping) or "generator" not in model:
        found = sorted(content) if isinstance(content, Mapping) else type(content).__name__
        raise ValueError(
            f"ParallelWaveGAN checkpoint {checkpoint} must hold {{'model': {{'generator': state_dict, ...}}, ...}}. "
            f"Found keys: {found}"
        )

    with warnings.catch_warnings():
        # ESPnet (like ParallelWaveGAN, whose weight_g/weight_v names the checkpoint uses) calls the deprecated
        # torch.nn.utils.weight_norm; it is removed right after loading.
        warnings.filterwarnings("ignore", message=".*weight_norm.* is deprecated", category=FutureWarning)
        try:
            from espnet2.gan_tts.parallel_wavegan.parallel_wavegan import ParallelWaveGANGenerator

            generator = ParallelWaveGANGenerator(**generator_arguments(config))
        except (TypeError, AssertionError) as error:
            raise ValueError(f"{folder / 'config.yml'} generator_params cannot build a generator: {error}") from error
        try:
            generator.load_state_dict(dict(model["generator"]))
        except RuntimeError as error:
            raise ValueError(f"Generator weights in {checkpoint} do not fit config.yml: {error}") from error
        generator.remove_weight_norm()
    generator.eval()

    mel_config = LogMelConfig.from_parallel_wavegan_config(config)
    hop_length = int(config["hop_size"])
    if "sampling_rate_for_feats" in config:
        # Features at another rate than the audio (ParallelWaveGAN's preprocess.py): the hop scales with the rate.
        feature_rate = int(config["sampling_rate_for_feats"])
        mel_config.sample_rate = feature_rate
        mel_config.hop_length = hop_length * feature_rate // int(config["sampling_rate"])
    if generator.upsample_factor != hop_length:
        raise ValueError(f"The generator upsamples by {generator.upsample_factor} but hop_size is {hop_length}.")
    if mean.shape[0] != mel_config.n_mels:
        raise ValueError(f"Statistics have {mean.shape[0]} bands but num_mels is {mel_config.n_mels}.")
    gain = float(config.get("global_gain_scale", 1.0) or 1.0)
    return Vocoder(
        LogMelSpectrogram(mel_config),
        generator,
        hop_length=hop_length,
        sample_rate=int(config["sampling_rate"]),
        mean=torch.from_numpy(mean),
        scale=torch.from_numpy(scale),
        noise_input=True,
        output_gain=gain if gain > 0 else 1.0,
        name=f"parallel_wavegan:{folder.name}/{checkpoint.name}",
    ).eval()
