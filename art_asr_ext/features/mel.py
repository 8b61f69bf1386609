"""
Differentiable log-mel front ends that reproduce, in torch, the features neural vocoders were trained on.

A vocoder only re-synthesises speech faithfully from the exact features it was trained on, so every detail is a
parameter here: FFT size, hop, window length, mel basis (librosa's Slaney-normalised filters, which both recipes
below use), padding, the magnitude's epsilon, the floor and the log base. Two presets cover the vocoders this package
loads:

- :meth:`LogMelConfig.hifigan` is jik876/hifi-gan's ``meldataset.mel_spectrogram``: reflect padding of
  `(n_fft - hop) / 2` samples on each side, no centring, Hann window, magnitude `sqrt(re^2 + im^2 + 1e-9)`, mel
  projection, `log(clamp(x, 1e-5))`.
- :meth:`LogMelConfig.parallel_wavegan` is kan-bayashi/ParallelWaveGAN's ``logmelfilterbank``: a centred
  ``librosa.stft`` with reflect padding, magnitude `|X|`, mel projection, `log10(max(x, 1e-10))`.

| Paper link: https://arxiv.org/abs/2010.05646
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np
import torch

LOG_FUNCTIONS = {"e": torch.log, "10": torch.log10, "2": torch.log2}


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: Optional[float]) -> torch.Tensor:
    """
    The mel basis librosa builds by default (Slaney mel scale, Slaney area normalisation), as both vocoder recipes do.

    :param sample_rate: Sample rate in Hz.
    :param n_fft: FFT size.
    :param n_mels: Number of mel bands.
    :param fmin: Lowest frequency in Hz.
    :param fmax: Highest frequency in Hz; `None` means `sample_rate / 2`.
    :return: Filterbank of shape `(n_mels, n_fft // 2 + 1)`, float32 as librosa builds it.
    """
    import librosa  # imported here: librosa (and numba) take seconds to import

    basis = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    return torch.from_numpy(np.ascontiguousarray(basis))


def log_mel_spectrogram(
    waveforms: torch.Tensor,
    mel_basis: torch.Tensor,
    n_fft: int,
    hop_length: int,
    window: torch.Tensor,
    padding: int,
    magnitude_eps: float = 0.0,
    floor: float = 1e-10,
    log_base: str = "10",
) -> torch.Tensor:
    """
    Log-mel spectrogram of equal-length waveforms, differentiable with respect to the waveforms.

    :param waveforms: Waveforms of shape `(..., samples)`; `samples` must exceed `padding`.
    :param mel_basis: Mel filterbank `(n_mels, n_fft // 2 + 1)`, same dtype and device as `waveforms`.
    :param n_fft: FFT size.
    :param hop_length: Hop in samples.
    :param window: Analysis window of length `win_length <= n_fft`; torch (like librosa) centres it in the frame.
    :param padding: Samples of reflect padding added on each side before framing (`n_fft // 2` is librosa's
                    `center=True`).
    :param magnitude_eps: Magnitude is `sqrt(re^2 + im^2 + magnitude_eps)`; `0` gives `|X|`.
    :param floor: Mel energies are clamped to at least `floor` before the log.
    :param log_base: One of `"e"`, `"10"`, `"2"`.
    :return: Log-mel features of shape `(..., n_mels, frames)` with `frames = 1 + (samples + 2 padding - n_fft) //
             hop_length`.
    """
    if log_base not in LOG_FUNCTIONS:
        raise ValueError(f"log_base must be one of {sorted(LOG_FUNCTIONS)}. Found: {log_base!r}")
    batch_shape = waveforms.shape[:-1]
    flat = waveforms.reshape(-1, waveforms.shape[-1])
    if padding > 0:
        # Reflect padding needs a 3-D input: (batch, channel, samples).
        flat = torch.nn.functional.pad(flat[:, None, :], (padding, padding), mode="reflect")[:, 0, :]
    stft = torch.stft(
        flat,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=window.shape[-1],
        window=window,
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    # stft: (batch, n_fft // 2 + 1, frames)
    if magnitude_eps > 0:
        magnitude = torch.sqrt(stft.real**2 + stft.imag**2 + magnitude_eps)
    else:
        magnitude = stft.abs()
    mel = torch.matmul(mel_basis, magnitude)
    # mel: (batch, n_mels, frames)
    features = LOG_FUNCTIONS[log_base](torch.clamp(mel, min=floor))
    return features.reshape(*batch_shape, *features.shape[-2:])


@dataclass
class LogMelConfig:
    """
    Everything that defines a vocoder's log-mel features. The defaults are HiFi-GAN V1 / universal's.

    Fields: `sample_rate` (Hz), `n_fft`, `hop_length`, `win_length` (samples; the Hann window is centred in the
    frame), `n_mels`, `fmin`/`fmax` (Hz; `fmax=None` is Nyquist), `padding` (reflect padding on each side, samples),
    `magnitude_eps` (`sqrt(|X|^2 + eps)`, 0 for `|X|`), `floor` (clamp before the log) and `log_base` (`"e"`, `"10"`,
    `"2"`).

    | Paper link: https://arxiv.org/abs/2010.05646
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: Optional[float] = 8000.0
    padding: int = 384
    magnitude_eps: float = 1e-9
    floor: float = 1e-5
    log_base: str = "e"

    @classmethod
    def hifigan(
        cls,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 256,
        win_length: int = 1024,
        n_mels: int = 80,
        fmin: float = 0.0,
        fmax: Optional[float] = 8000.0,
    ) -> "LogMelConfig":
        """
        jik876/hifi-gan's ``mel_spectrogram`` (defaults: the V1 / universal configuration).

        :return: The configuration, with padding `(n_fft - hop_length) // 2`, magnitude epsilon 1e-9, floor 1e-5, ln.
        """
        return cls(
            sample_rate=sample_rate,
            n_fft=n_fft,
            hop_length=hop_length,
            win_length=win_length,
            n_mels=n_mels,
            fmin=fmin,
            fmax=fmax,
            padding=(n_fft - hop_length) // 2,
            magnitude_eps=1e-9,
            floor=1e-5,
            log_base="e",
        )

    @classmethod
    def from_hifigan_config(cls, config: Dict[str, Any]) -> "LogMelConfig":
        """
        :param config: A jik876/hifi-gan ``config.json`` as a dict (`sampling_rate`, `n_fft`, `hop_size`, `win_size`,
                       `num_mels`, `fmin`, `fmax`).
        :return: The configuration of the features that vocoder was trained on.
        """
        return cls.hifigan(
            sample_rate=int(config["sampling_rate"]),
            n_fft=int(config["n_fft"]),
            hop_length=int(config["hop_size"]),
            win_length=int(config["win_size"]),
            n_mels=int(config["num_mels"]),
            fmin=float(config["fmin"]),
            fmax=None if config["fmax"] is None else float(config["fmax"]),
        )

    @classmethod
    def from_parallel_wavegan_config(cls, config: Dict[str, Any]) -> "LogMelConfig":
        """
        :param config: A kan-bayashi/ParallelWaveGAN ``config.yml`` as a dict (`sampling_rate`, `fft_size`,
                       `hop_size`, `win_length`, `window`, `num_mels`, `fmin`, `fmax`).
        :return: The configuration of ``logmelfilterbank``: centred reflect-padded STFT, `|X|`, floor 1e-10, log10.
        """
        window = config.get("window", "hann")
        if window != "hann":
            raise ValueError(f"Only the Hann window is supported for ParallelWaveGAN features. Found: {window!r}")
        n_fft = int(config["fft_size"])
        win_length = config.get("win_length")
        return cls(
            sample_rate=int(config["sampling_rate"]),
            n_fft=n_fft,
            hop_length=int(config["hop_size"]),
            win_length=n_fft if win_length is None else int(win_length),
            n_mels=int(config["num_mels"]),
            fmin=0.0 if config.get("fmin") is None else float(config["fmin"]),
            fmax=None if config.get("fmax") is None else float(config["fmax"]),
            padding=n_fft // 2,
            magnitude_eps=0.0,
            floor=1e-10,
            log_base="10",
        )

    def check(self) -> None:
        """
        :raises ValueError: For sizes that cannot define an STFT or a mel basis.
        """
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be > 0. Found: {self.sample_rate}")
        if self.n_fft < 2:
            raise ValueError(f"n_fft must be >= 2. Found: {self.n_fft}")
        if not 1 <= self.hop_length:
            raise ValueError(f"hop_length must be >= 1. Found: {self.hop_length}")
        if not 1 <= self.win_length <= self.n_fft:
            raise ValueError(f"win_length must be in [1, n_fft={self.n_fft}]. Found: {self.win_length}")
        if self.n_mels < 1:
            raise ValueError(f"n_mels must be >= 1. Found: {self.n_mels}")
        if not 0 <= self.padding < self.n_fft:
            raise ValueError(f"padding must be in [0, n_fft={self.n_fft}). Found: {self.padding}")
        if self.log_base not in LOG_FUNCTIONS:
            raise ValueError(f"log_base must be one of {sorted(LOG_FUNCTIONS)}. Found: {self.log_base!r}")
        if self.floor <= 0:
            raise ValueError(f"floor must be > 0. Found: {self.floor}")


class LogMelSpectrogram(torch.nn.Module):
    """
    A vocoder's log-mel front end as a module: holds the window and mel basis, calls :func:`log_mel_spectrogram`.

    | Paper link: https://arxiv.org/abs/2010.05646
    """

    def __init__(self, config: LogMelConfig) -> None:
        """
        :param config: The feature configuration (see :class:`LogMelConfig`).
        """
        super().__init__()
        config.check()
        self.config = config
        basis = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.fmin, config.fmax)
        self.register_buffer("mel_basis", basis, persistent=False)
        self.register_buffer("window", torch.hann_window(config.win_length, periodic=True), persistent=False)

    @property
    def min_samples(self) -> int:
        """Shortest input (in samples) the reflect padding and the first frame allow."""
        return max(self.config.padding + 1, self.config.n_fft - 2 * self.config.padding)

    def num_frames(self, num_samples: int) -> int:
        """
        :param num_samples: Input length in samples (at least :attr:`min_samples`).
        :return: Number of frames :meth:`forward` returns for it.
        """
        return 1 + (num_samples + 2 * self.config.padding - self.config.n_fft) // self.config.hop_length

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """
        :param waveforms: Equal-length waveforms at `config.sample_rate`, shape `(..., samples)`.
        :return: Log-mel features, shape `(..., n_mels, frames)`.
        """
        if waveforms.shape[-1] < self.min_samples:
            raise ValueError(
                f"waveforms must have at least {self.min_samples} samples for this front end. "
                f"Found: {waveforms.shape[-1]}"
            )
        return log_mel_spectrogram(
            waveforms,
            mel_basis=self.mel_basis.to(waveforms.dtype),
            n_fft=self.config.n_fft,
            hop_length=self.config.hop_length,
            window=self.window.to(waveforms.dtype),
            padding=self.config.padding,
            magnitude_eps=self.config.magnitude_eps,
            floor=self.config.floor,
            log_base=self.config.log_base,
        )
