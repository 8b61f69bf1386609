"""
Input-transform defences for speech, as ART PyTorch preprocessors: MP3 compression, down-sampling and back, and
amplitude quantisation. (A low-pass filter is ART's own `LFilterPyTorch` with Butterworth coefficients, see
:func:`butterworth_lowpass`.)

Each says how an attacker differentiates it (Athalye et al., "Obfuscated gradients give a false sense of security"):

- :class:`SoundfileMp3CompressionPyTorch` has no gradient (an MP3 codec): BPDA, the identity backward;
- :class:`ResamplePyTorch` is linear and differentiable: its true gradient;
- :class:`QuantizationPyTorch` has a zero gradient almost everywhere: BPDA, the straight-through identity;
- the low-pass filter is linear and differentiable: its true gradient.

None is random, so expectation over transformation does not apply to them. :class:`StraightThroughPyTorch` attacks any
of them with BPDA instead, so that an evaluation can compare BPDA with the true gradient where there is one.

| Paper link: https://arxiv.org/abs/1802.00420
"""

import io
from typing import Any, Tuple

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_asr_ext.defences.preprocessor.device_following import FollowsEstimatorDevice
from art_asr_ext.utils.audio import MP3_BITRATES, MP3_SAMPLE_RATES, check_gradient_layout, split_numpy_batch
from art_asr_ext.utils.audio_torch import check_waveform_tensor


class _WaveformTransform(PreprocessorPyTorch):
    """One deterministic transform of each 1-D waveform; numpy batches are transformed utterance by utterance."""

    def __init__(self, device_type: str = "cpu", apply_fit: bool = False, apply_predict: bool = True) -> None:
        super().__init__(device_type=device_type, is_fitted=True, apply_fit=apply_fit, apply_predict=apply_predict)

    #: Not random: the same input always gives the same output, so EOT draws would all be equal.
    is_random = False

    def _transform(self, waveform: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: Any = None) -> Tuple[torch.Tensor, Any]:
        """
        :param x: One waveform `(samples,)` or equal-length waveforms `(batch, samples)`, float.
        :param y: Labels; returned unchanged.
        :return: The transformed waveforms, same shape, dtype and device, and `y`.
        """
        check_waveform_tensor(x)
        if x.ndim == 1:
            return self._transform(x), y
        return torch.stack([self._transform(row) for row in x]), y

    def __call__(self, x: np.ndarray, y: Any = None) -> Tuple[np.ndarray, Any]:
        """
        :param x: Numpy object array of 1-D float waveforms, or a 2-D float array `(batch, samples)`.
        :param y: Labels; returned unchanged.
        :return: The transformed waveforms in the layout and dtype of `x`, and `y`.
        """
        waveforms, pack = split_numpy_batch(x)
        with torch.no_grad():
            outputs = [self.forward(torch.from_numpy(np.ascontiguousarray(w)))[0].numpy() for w in waveforms]
        return pack(outputs), y


class _StraightThrough(_WaveformTransform):
    """A transform without a useful gradient, attacked with BPDA: the backward pass is the identity."""

    def estimate_forward(self, x: torch.Tensor, y: Any = None) -> torch.Tensor:
        """
        :param x: Waveforms.
        :param y: Labels (unused).
        :return: `x`: the identity stands in for the transform in the backward pass (BPDA).
        """
        check_waveform_tensor(x)
        return x

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """
        :return: `grad`, unchanged (BPDA).
        """
        check_gradient_layout(x, grad)
        return grad


class SoundfileMp3CompressionPyTorch(_StraightThrough):
    """
    MP3 compression at a chosen bitrate, encoded and decoded in memory by libsndfile (through `soundfile`; no
    FFmpeg, which ART's `Mp3Compression` needs through pydub). Attacked with BPDA.

    | Paper link: https://arxiv.org/abs/1802.00420
    """

    params = ["bitrate", "sample_rate"]

    def __init__(self, bitrate: int = 64, sample_rate: int = 16000, device_type: str = "cpu") -> None:
        """
        :param bitrate: Constant bitrate in kbit/s, one of :data:`MP3_BITRATES`.
        :param sample_rate: Sample rate of the waveforms, one of :data:`MP3_SAMPLE_RATES`.
        :param device_type: `cpu` or `gpu` (the codec runs on the CPU either way).
        """
        super().__init__(device_type=device_type)
        self.bitrate = bitrate
        self.sample_rate = sample_rate
        self._check_params()

    @property
    def compression_level(self) -> float:
        """libsndfile's compression level of :attr:`bitrate`: it maps 0..1 linearly onto 160..8 kbit/s."""
        return (MP3_BITRATES[-1] - self.bitrate) / (MP3_BITRATES[-1] - 8)

    def _transform(self, waveform: torch.Tensor) -> torch.Tensor:
        import soundfile

        samples = waveform.detach().cpu().numpy().astype(np.float32)
        buffer = io.BytesIO()
        soundfile.write(
            buffer,
            np.clip(samples, -1.0, 1.0),
            self.sample_rate,
            format="MP3",
            subtype="MPEG_LAYER_III",
            compression_level=self.compression_level,
            bitrate_mode="CONSTANT",
        )
        buffer.seek(0)
        decoded, _ = soundfile.read(buffer, dtype="float32")
        if len(decoded) > len(samples):
            # The encoder's delay and frame padding, which the decoder does not always trim (at some bitrates the
            # output starts 1105 samples late): keep the stretch that lines up with the input.
            lag = int(np.argmax(np.correlate(decoded, samples, mode="valid")))
            decoded = decoded[lag : lag + len(samples)]
        decoded = np.pad(decoded, (0, len(samples) - len(decoded)))
        return torch.from_numpy(decoded).to(device=waveform.device, dtype=waveform.dtype)

    def _check_params(self) -> None:
        if self.bitrate not in MP3_BITRATES or isinstance(self.bitrate, bool):
            raise ValueError(f"bitrate must be one of {list(MP3_BITRATES)} kbit/s. Found: {self.bitrate!r}")
        if self.sample_rate not in MP3_SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of {list(MP3_SAMPLE_RATES)}. Found: {self.sample_rate!r}")


class ResamplePyTorch(_WaveformTransform):
    """
    Down-sampling to a lower rate and back (band-limited sinc interpolation, torchaudio's `resample`): it removes
    everything above half the lower rate. Linear and differentiable, so attacked with its true gradient.

    | Paper link: https://arxiv.org/abs/1802.00420
    """

    params = ["down_sample_rate", "sample_rate"]
    #: Its gradient is exact: one pass through :meth:`forward` gives value and gradient.
    forward_is_differentiable = True

    def __init__(self, down_sample_rate: int = 8000, sample_rate: int = 16000, device_type: str = "cpu") -> None:
        """
        :param down_sample_rate: The lower rate in Hz.
        :param sample_rate: Sample rate of the waveforms in Hz.
        :param device_type: `cpu` or `gpu`.
        """
        super().__init__(device_type=device_type)
        self.down_sample_rate = down_sample_rate
        self.sample_rate = sample_rate
        self._check_params()

    def _transform(self, waveform: torch.Tensor) -> torch.Tensor:
        import torchaudio.functional as F

        down = F.resample(waveform, self.sample_rate, self.down_sample_rate)
        back = F.resample(down, self.down_sample_rate, self.sample_rate)
        length = waveform.shape[-1]
        if back.shape[-1] >= length:
            return back[..., :length]
        return torch.nn.functional.pad(back, (0, length - back.shape[-1]))

    def _check_params(self) -> None:
        for name in ("down_sample_rate", "sample_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{name} must be a positive integer (Hz). Found: {value!r}")
        if self.down_sample_rate >= self.sample_rate:
            raise ValueError(
                f"down_sample_rate must be below sample_rate {self.sample_rate}. Found: {self.down_sample_rate}"
            )


class QuantizationPyTorch(_StraightThrough):
    """
    Amplitude quantisation to `bits` bits: each sample rounded to the nearest of `2 ** bits - 1` levels evenly spaced
    over [-1, 1]. Its gradient is zero almost everywhere, so it is attacked with BPDA (straight-through).

    | Paper link: https://arxiv.org/abs/1802.00420
    """

    params = ["bits"]

    def __init__(self, bits: int = 8, device_type: str = "cpu") -> None:
        """
        :param bits: Bits per sample, 2 to 16.
        :param device_type: `cpu` or `gpu`.
        """
        super().__init__(device_type=device_type)
        self.bits = bits
        self._check_params()

    def _transform(self, waveform: torch.Tensor) -> torch.Tensor:
        levels = 2 ** (self.bits - 1) - 1
        return torch.round(waveform.clamp(-1.0, 1.0) * levels) / levels

    def _check_params(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, (int, np.integer)) or not 2 <= self.bits <= 16:
            raise ValueError(f"bits must be an integer from 2 to 16. Found: {self.bits!r}")


class StraightThroughPyTorch(PreprocessorPyTorch):
    """
    Another deterministic preprocessor attacked with BPDA: values from its `forward`, the identity in the backward
    pass. For a transform that has a true gradient (resampling, a filter), it is the weaker attacker an evaluation
    compares the true gradient with (Athalye et al.'s BPDA, applied where it is not needed).

    | Paper link: https://arxiv.org/abs/1802.00420
    """

    params = ["defence"]
    is_random = False
    #: Its `forward` may be differentiable, but the attacker must get the identity (see :meth:`estimate_forward`).
    forward_is_differentiable = False

    def __init__(self, defence: PreprocessorPyTorch) -> None:
        """
        :param defence: The preprocessor whose values are kept; it must not be random (EOT, not BPDA, is the attack
                        on a random one).
        :raises ValueError: For a random or non-torch preprocessor.
        """
        random = isinstance(defence, FollowsEstimatorDevice) or getattr(defence, "is_random", False)
        if not isinstance(defence, PreprocessorPyTorch) or random:
            raise ValueError(
                f"defence must be a deterministic PreprocessorPyTorch (is_random = False). Found: {defence!r}"
            )
        super().__init__(
            device_type=defence._device_type if hasattr(defence, "_device_type") else "cpu",
            is_fitted=True,
            apply_fit=defence.apply_fit,
            apply_predict=defence.apply_predict,
        )
        self.defence = defence

    def __getattr__(self, name: str) -> Any:
        # What the wrapped transform declares (its sample_rate, its settings) is read through the wrapper.
        if name == "defence":
            raise AttributeError(name)
        return getattr(self.defence, name)

    def forward(self, x: torch.Tensor, y: Any = None) -> Tuple[torch.Tensor, Any]:
        """The wrapped transform's values."""
        return self.defence.forward(x, y)

    def estimate_forward(self, x: torch.Tensor, y: Any = None) -> torch.Tensor:
        """
        :return: `x`: the identity stands in for the transform in the backward pass (BPDA).
        """
        check_waveform_tensor(x)
        return x

    def __call__(self, x: np.ndarray, y: Any = None) -> Tuple[np.ndarray, Any]:
        return self.defence(x, y)

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """
        :return: `grad`, unchanged (BPDA).
        """
        check_gradient_layout(x, grad)
        return grad


def butterworth_lowpass(cutoff_hz: float, order: int = 4, sample_rate: int = 16000, device_type: str = "cpu"):
    """
    A low-pass filter as ART's own `LFilterPyTorch` (torchaudio's `lfilter`, differentiable: attacked with its true
    gradient), with a Butterworth design.

    :param cutoff_hz: The cut-off frequency in Hz, below half the sample rate.
    :param order: The filter's order.
    :param sample_rate: Sample rate of the waveforms in Hz.
    :param device_type: `cpu` or `gpu`.
    :return: The preprocessor.
    :raises ValueError: For a cut-off outside (0, sample_rate / 2) or an order below 1.
    """
    from art.preprocessing.audio import LFilterPyTorch
    from scipy.signal import butter

    if not 0 < cutoff_hz < sample_rate / 2:
        raise ValueError(f"cutoff_hz must be between 0 and {sample_rate / 2} Hz. Found: {cutoff_hz!r}")
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order must be an integer >= 1. Found: {order!r}")
    numerator, denominator = butter(order, cutoff_hz, btype="low", fs=sample_rate)
    return LFilterPyTorch(
        numerator_coef=np.asarray(numerator), denominator_coef=np.asarray(denominator), device_type=device_type
    )
