"""
Validation and batching of speech inputs, for the estimators, defences, attacks and the benchmark runner.

ART passes speech as a numpy object array of 1-D float waveforms (or a 2-D float array of equal-length ones) and
transcripts as a numpy array of strings. These helpers turn bad input into a `ValueError` that says what is wrong
and what to do, instead of the silent guesses ART's own speech estimators make (dropping unknown characters,
accepting int16 samples as floats).

This module needs only numpy, so the data loaders, metrics and benchmark report can use it without loading torch;
the helpers that take or make tensors are in :mod:`art_asr_ext.utils.audio_torch`.
"""

import hashlib
import sys
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np


def _is_torch_tensor(x: Any) -> bool:
    """
    :param x: Any object.
    :return: Whether `x` is a `torch.Tensor`, found without importing torch: a tensor can only exist once something
             else has imported it.
    """
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def check_waveforms(x: np.ndarray, name: str = "x") -> List[np.ndarray]:
    """
    Validate a batch of waveforms.

    :param x: Numpy object array of 1-D float waveforms in [-1, 1], or a 2-D float array `(batch, samples)` (a list
              of waveforms is taken as either).
    :param name: Name of the argument, used in error messages.
    :return: List of 1-D float arrays (not copied when already float).
    :raises ValueError: For non-float samples, NaN/inf, samples outside [-1, 1], empty or multi-channel waveforms.
    """
    if _is_torch_tensor(x):
        raise ValueError(f"{name} must be a numpy array; for torch tensors use the estimator's torch path.")
    waveforms, _ = _batch_rows(x, name)
    return [check_waveform(waveform, f"{name}[{index}]") for index, waveform in enumerate(waveforms)]


def _batch_rows(x: np.ndarray, name: str) -> Tuple[List[np.ndarray], bool]:
    """
    The waveforms of an ART speech batch, unchecked.

    :return: The rows, and whether `x` is an object array (else a 2-D numeric one).
    :raises ValueError: For any other layout, or no utterances.
    """
    if isinstance(x, (list, tuple)) and len({np.shape(row) for row in x}) > 1:
        # Waveforms of different lengths, which no numeric array holds: the object array ART's speech batches are
        x = to_object_array(x)
    x = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if x.dtype == object and x.ndim == 2:
        # np.array([w1, w2], dtype=object) of equal-length waveforms is 2-D: its rows hold the samples as objects
        rows, is_object = [np.asarray(list(row)) for row in x], True
    elif x.dtype == object and x.ndim == 1:
        rows, is_object = list(x), True
    elif x.ndim == 2:
        rows, is_object = list(x), False
    elif x.ndim == 1 and x.size > 0 and np.issubdtype(x.dtype, np.number):
        raise ValueError(
            f"{name} is a single 1-D waveform of shape {x.shape}; pass a batch: np.array([waveform], dtype=object) "
            f"or waveform[None, :]."
        )
    else:
        raise ValueError(
            f"{name} must be a numpy object array of 1-D waveforms or a 2-D float array (batch, samples). "
            f"Found shape {x.shape}, dtype {x.dtype}."
        )
    if len(rows) == 0:
        raise ValueError(f"{name} holds no utterances.")
    return rows, is_object


def check_waveform(waveform: np.ndarray, name: str = "x", bounded: bool = True) -> np.ndarray:
    """
    Validate one waveform.

    :param waveform: A 1-D float array.
    :param name: Name of the waveform, used in error messages.
    :param bounded: Require samples in [-1, 1] (a recognizer's input); defences, which run one after another on
                    already-noisy audio, only need finite samples.
    :return: The waveform as an array (not copied).
    :raises ValueError: For non-float samples, NaN/inf, samples outside [-1, 1], an empty or multi-channel waveform.
    """
    waveform = np.asarray(waveform)
    if not np.issubdtype(waveform.dtype, np.floating):
        raise ValueError(
            f"{name} has dtype {waveform.dtype}; waveforms must be float in [-1, 1] (divide int16 PCM by 32768)."
        )
    if waveform.ndim != 1:
        raise ValueError(
            f"{name} has shape {waveform.shape}; each waveform must be 1-D mono "
            f"(average or pick a channel of multi-channel audio first)."
        )
    if waveform.size == 0:
        raise ValueError(f"{name} is empty.")
    if not np.all(np.isfinite(waveform)):
        raise ValueError(f"{name} contains NaN or inf samples.")
    if bounded:
        peak = float(np.max(np.abs(waveform)))
        if peak > 1.0:
            raise ValueError(
                f"{name} has samples outside [-1, 1] (peak {peak:.4g}); scale it to float in [-1, 1] "
                f"(int16 PCM / 32768)."
            )
    return waveform


def check_transcripts(
    y: Iterable[str], alphabet: Iterable[str], n_expected: Optional[int] = None, name: str = "y"
) -> List[str]:
    """
    Validate transcripts against the characters a model can emit.

    :param y: Transcripts, one string per utterance.
    :param alphabet: Characters the model can emit (the CTC blank may be included; it is never valid in text).
    :param n_expected: Number of utterances the transcripts must match.
    :param name: Name of the argument, used in error messages.
    :return: The transcripts as a list of `str`.
    :raises ValueError: For a count mismatch, non-strings, or characters outside the alphabet (all of them named).
    """
    transcripts = list(np.asarray(y, dtype=object).reshape(-1)) if not isinstance(y, str) else [y]
    if n_expected is not None and len(transcripts) != n_expected:
        raise ValueError(f"{name} holds {len(transcripts)} transcripts for {n_expected} utterances.")
    allowed = set(alphabet)
    for index, text in enumerate(transcripts):
        if not isinstance(text, (str, np.str_)):
            raise ValueError(f"{name}[{index}] is {type(text).__name__}, not a string.")
        unknown = sorted(set(text) - allowed)
        if unknown:
            raise ValueError(
                f"{name}[{index}] {str(text)!r} has characters the model cannot emit: {unknown}. "
                f"Normalise the text to the model's alphabet {''.join(sorted(allowed))!r} first."
            )
    return [str(text) for text in transcripts]


#: The bitrates (kbit/s) of MPEG-2 Layer III, the MP3 of 16, 22.05 and 24 kHz audio, that libsndfile encodes (its
#: 8 kbit/s is compression level 1.0, which it refuses).
MP3_BITRATES = (16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
#: Sample rates whose MP3 is MPEG-2 Layer III (the bitrates above).
MP3_SAMPLE_RATES = (16000, 22050, 24000)


def length_sorted_batches(lengths: Sequence[int], batch_size: int, max_padding: float = 0.25) -> List[np.ndarray]:
    """
    Group utterance indices into batches of similar length (longest first), so padding stays small.

    A batch takes the next utterance (in decreasing length) while it has fewer than `batch_size` utterances and the
    padded batch would hold at most `1 + max_padding` times the real samples; otherwise a new batch starts. Padding
    costs compute in every layer, so a long utterance is better attacked alone than padded against short ones.

    :param lengths: Length of each utterance.
    :param batch_size: Maximum utterances per batch.
    :param max_padding: Largest allowed fraction of padded over real samples in a batch (`inf`: no limit).
    :return: Index arrays, one per batch, covering every utterance once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Found: {batch_size}")
    if max_padding < 0:
        raise ValueError(f"max_padding must be >= 0. Found: {max_padding}")
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches: List[List[int]] = []
    real = 0
    for index in order:
        current = batches[-1] if batches else None
        if current is not None and len(current) < batch_size:
            longest = lengths[current[0]]
            if (len(current) + 1) * longest <= (1 + max_padding) * (real + lengths[index]):
                current.append(int(index))
                real += lengths[index]
                continue
        batches.append([int(index)])
        real = lengths[index]
    return [np.array(batch) for batch in batches]


def waveform_digest(waveform: np.ndarray) -> str:
    """
    :param waveform: A 1-D waveform.
    :return: A short hex digest of its samples as float32, so a cache or a recorded result keyed on it notices a
             different recording under the same name.
    """
    samples = np.ascontiguousarray(waveform, dtype=np.float32)
    return hashlib.sha256(samples.tobytes()).hexdigest()[:16]


def to_object_array(items: Sequence) -> np.ndarray:
    """Numpy object array holding each item as one element, even when the items have equal shapes."""
    result = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        result[index] = item
    return result


# --------------------------------------------------------------------------------------------------------------------
# Defences: they run after one another, so a waveform need not stay inside [-1, 1] (additive noise legitimately
# leaves it); it must be float, mono, non-empty and finite.
# --------------------------------------------------------------------------------------------------------------------


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
    if _is_torch_tensor(x):
        raise ValueError(f"{name} must be a numpy array here; call forward() with torch tensors.")
    waveforms, is_object = _batch_rows(x, name)
    dtype = None if is_object else np.asarray(x).dtype

    def pack(outputs: List[np.ndarray]) -> np.ndarray:
        return to_object_array(outputs) if dtype is None else np.stack(outputs).astype(dtype, copy=False)

    waveforms = [check_waveform(w, f"{name}[{index}]", bounded=False) for index, w in enumerate(waveforms)]
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
