"""
Batching and validation of speech held as torch tensors: the half of :mod:`art_asr_ext.utils.audio` that needs torch,
kept apart so that the numpy half (used by the data loaders, metrics and benchmark report) never loads it.
"""

from typing import Sequence, Tuple

import torch


def pad_waveforms(waveforms: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Zero-pad 1-D waveforms into a batch.

    :param waveforms: 1-D tensors of possibly different lengths, on one device.
    :return: Padded batch `(batch, max_samples)` and real lengths `(batch,)` (int64, same device).
    """
    lengths = torch.tensor([len(w) for w in waveforms], dtype=torch.long, device=waveforms[0].device)
    return torch.nn.utils.rnn.pad_sequence(list(waveforms), batch_first=True), lengths


# --------------------------------------------------------------------------------------------------------------------
# Defences: they run after one another, so a waveform need not stay inside [-1, 1] (additive noise legitimately
# leaves it); it must be float, mono, non-empty and finite.
# --------------------------------------------------------------------------------------------------------------------


def check_waveform_tensor(x: torch.Tensor, name: str = "x") -> None:
    """
    :param x: One waveform `(samples,)` or a batch of equal-length waveforms `(batch, samples)`.
    :param name: Name of the argument, used in error messages.
    :raises ValueError: For a non-tensor, a non-float dtype, ndim other than 1 or 2, no samples, or NaN/inf.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor. Found: {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a float tensor in [-1, 1]. Found dtype: {x.dtype}")
    if x.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be one mono waveform (samples,) or a batch (batch, samples). Found shape: {tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} holds no samples. Found shape: {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf samples.")
