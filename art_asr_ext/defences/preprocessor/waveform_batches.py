"""
Input handling shared by the speech defences: the shapes ART hands a preprocessor and the checks they need.

ART passes speech to a preprocessor as a numpy object array of 1-D waveforms (ragged), a 2-D float array
`(batch, samples)`, or, on the torch path, a 1-D or 2-D tensor. Defences run after one another, so a waveform is
not required to stay inside [-1, 1] (additive noise legitimately leaves it); it must be float, mono, non-empty and
finite.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from typing import Callable, List, Tuple

import numpy as np
import torch

from art_asr_ext.estimators.speech_recognition.speech_inputs import to_object_array


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


def split_numpy_batch(
    x: np.ndarray, name: str = "x"
) -> Tuple[List[np.ndarray], Callable[[List[np.ndarray]], np.ndarray]]:
    """
    Split an ART speech batch into waveforms, checking each.

    :param x: Numpy object array of 1-D float waveforms, or a 2-D float array `(batch, samples)`.
    :param name: Name of the argument, used in error messages.
    :return: The 1-D waveforms, and a function that packs processed waveforms back into `x`'s layout and dtype.
    :raises ValueError: For any other layout, non-float, multi-channel, empty or non-finite waveforms.
    """
    if isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a numpy array here; call forward() with torch tensors.")
    x = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if x.dtype == object and x.ndim == 1:
        waveforms = list(x)

        def pack(outputs: List[np.ndarray]) -> np.ndarray:
            return to_object_array(outputs)

    elif x.dtype == object and x.ndim == 2:
        # np.array([w1, w2], dtype=object) of equal-length waveforms is 2-D: its rows hold the samples as objects
        waveforms = [np.asarray(list(row)) for row in x]

        def pack(outputs: List[np.ndarray]) -> np.ndarray:
            return to_object_array(outputs)

    elif x.ndim == 2 and np.issubdtype(x.dtype, np.floating):
        waveforms = list(x)
        dtype = x.dtype

        def pack(outputs: List[np.ndarray]) -> np.ndarray:
            return np.stack(outputs).astype(dtype, copy=False)

    else:
        raise ValueError(
            f"{name} must be a numpy object array of 1-D waveforms or a 2-D float array (batch, samples). "
            f"Found shape {x.shape}, dtype {x.dtype}."
        )
    if len(waveforms) == 0:
        raise ValueError(f"{name} holds no utterances.")
    for index, waveform in enumerate(waveforms):
        waveform = np.asarray(waveform)
        if not np.issubdtype(waveform.dtype, np.floating):
            raise ValueError(f"{name}[{index}] has dtype {waveform.dtype}; waveforms must be float in [-1, 1].")
        if waveform.ndim != 1:
            raise ValueError(f"{name}[{index}] has shape {waveform.shape}; each waveform must be 1-D mono.")
        if waveform.size == 0:
            raise ValueError(f"{name}[{index}] is empty.")
        if not np.all(np.isfinite(waveform)):
            raise ValueError(f"{name}[{index}] contains NaN or inf samples.")
        waveforms[index] = waveform
    return waveforms, pack


def check_gradient_layout(x: np.ndarray, grad: np.ndarray) -> None:
    """
    :param x: Inputs as :func:`split_numpy_batch` accepts them.
    :param grad: Gradient with respect to the defence's output, in the same layout.
    :raises ValueError: When `grad` does not match `x` utterance by utterance.
    """
    waveforms, _ = split_numpy_batch(x)
    grad = np.asarray(grad) if not isinstance(grad, np.ndarray) else grad
    if len(grad) != len(waveforms):
        raise ValueError(f"grad holds {len(grad)} utterances for {len(waveforms)} in x.")
    for index, (waveform, gradient) in enumerate(zip(waveforms, grad)):
        if np.shape(gradient) != waveform.shape:
            raise ValueError(f"grad[{index}] has shape {np.shape(gradient)}; x[{index}] has {waveform.shape}.")
