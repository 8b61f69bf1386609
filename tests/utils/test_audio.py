"""
The split of the waveform helpers: the numpy half loads no torch (nor do the data loaders and metrics built on it),
yet still refuses a tensor passed where it expects numpy.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch

from art_asr_ext.utils.audio import check_waveforms, split_numpy_batch
from art_asr_ext.utils.audio_torch import check_waveform_tensor, pad_waveforms


@pytest.mark.parametrize(
    "module",
    [
        "art_asr_ext.utils.audio",
        "art_asr_ext.utils.io",
        "art_asr_ext.utils.text",
        "art_asr_ext.data",
        "art_asr_ext.metrics",
        "art_asr_ext.metrics.wer",
        "art_asr_ext.defences.vocoder_settings",
    ],
)
def test_numpy_modules_load_neither_torch_nor_art(module):
    # A fresh interpreter: this one has torch loaded already
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'art') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"import {module} loaded {result.stdout.strip()}"


@pytest.mark.parametrize("check", [check_waveforms, lambda x: split_numpy_batch(x)])
def test_numpy_checks_refuse_a_tensor(check):
    with pytest.raises(ValueError, match="must be a numpy array"):
        check(torch.zeros(2, 100))


def test_numpy_checks_accept_numpy_with_torch_loaded():
    waveforms, pack = split_numpy_batch(np.zeros((2, 100), dtype=np.float32))
    assert len(waveforms) == 2 and pack(waveforms).shape == (2, 100)
    assert len(check_waveforms(np.zeros((1, 50), dtype=np.float32))) == 1


def test_pad_waveforms_pads_and_returns_lengths():
    padded, lengths = pad_waveforms([torch.ones(3), torch.ones(5)])
    assert padded.shape == (2, 5) and lengths.tolist() == [3, 5]
    assert padded[0, 3:].abs().sum() == 0


def test_check_waveform_tensor_refuses_numpy():
    with pytest.raises(ValueError, match="must be a torch.Tensor"):
        check_waveform_tensor(np.zeros(10, dtype=np.float32))


def test_a_list_of_waveforms_of_different_lengths_is_a_batch():
    waveforms = check_waveforms([np.zeros(100, dtype=np.float32), np.zeros(50, dtype=np.float32)])
    assert [len(waveform) for waveform in waveforms] == [100, 50]
    rows, pack = split_numpy_batch([np.zeros(100, dtype=np.float32), np.zeros(50, dtype=np.float32)])
    assert pack(rows).dtype == object
    with pytest.raises(ValueError, match=r"x\[1\] has shape \(2, 50\); each waveform must be 1-D mono"):
        check_waveforms([np.zeros(100, dtype=np.float32), np.zeros((2, 50), dtype=np.float32)])
