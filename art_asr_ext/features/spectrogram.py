"""
Differentiable STFT front ends, written in torch so that gradients reach the raw waveform.

The DeepSpeech2 front end reproduces deepspeech.pytorch's ``SpectrogramParser.compute_spectrogram``: a
``librosa.stft`` (centred, zero padded) with an ``n_fft = win_length = sample_rate * window_size`` periodic
window, hop ``sample_rate * window_stride``, magnitude, ``log1p`` and per-utterance mean/std normalisation.
Batched inputs carry their real lengths, and every statistic is computed over the real frames only, so an
utterance gets the same features alone or zero-padded in a batch.

| Paper link: https://arxiv.org/abs/1512.02595
"""

from typing import Tuple

import torch

WINDOW_FUNCTIONS = {
    "hamming": torch.hamming_window,
    "hann": torch.hann_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
}


def frame_lengths(sample_lengths: torch.Tensor, hop_length: int) -> torch.Tensor:
    """
    Number of frames a centred STFT produces for each utterance.

    :param sample_lengths: Real number of samples per utterance, shape `(batch,)`.
    :param hop_length: STFT hop in samples.
    :return: Number of frames, shape `(batch,)`, `1 + samples // hop` (librosa/torch with ``center=True``).
    """
    return torch.div(sample_lengths, hop_length, rounding_mode="floor") + 1


def time_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """
    :param lengths: Real lengths, shape `(batch,)`.
    :param max_length: Padded length.
    :return: Boolean mask of shape `(batch, max_length)`, True on real positions.
    """
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def log_spectrogram(
    waveforms: torch.Tensor,
    sample_lengths: torch.Tensor,
    n_fft: int,
    hop_length: int,
    window: torch.Tensor,
    normalize: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    ``log1p(|STFT|)`` with optional per-utterance mean/std normalisation over the real frames.

    :param waveforms: Zero-padded waveforms, shape `(batch, samples)`.
    :param sample_lengths: Real number of samples per utterance, shape `(batch,)`.
    :param n_fft: FFT size, also the window length.
    :param hop_length: Hop in samples.
    :param window: Window of length `n_fft`.
    :param normalize: Subtract the mean and divide by the (unbiased) standard deviation of each utterance.
    :return: Features of shape `(batch, n_fft // 2 + 1, frames)`, zero on padded frames, and frame lengths.
    """
    # Whatever the caller left beyond each length, the real frames see zeros there, as in the unpadded utterance.
    waveforms = waveforms * time_mask(sample_lengths, waveforms.shape[-1]).to(waveforms.dtype)
    # Zero ("constant") padding makes a padded utterance's real frames identical to its unpadded frames, and is
    # librosa's default since 0.10, which deepspeech.pytorch uses.
    stft = torch.stft(
        waveforms,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=n_fft,
        window=window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    # stft: (batch, freq, frames)
    features = torch.log1p(stft.abs())
    lengths = frame_lengths(sample_lengths, hop_length)
    mask = time_mask(lengths, features.shape[-1])[:, None, :].to(features.dtype)
    features = features * mask
    if normalize:
        count = lengths.to(features.dtype) * features.shape[1]
        mean = features.sum(dim=(1, 2)) / count
        centred = (features - mean[:, None, None]) * mask
        variance = (centred**2).sum(dim=(1, 2)) / (count - 1)
        # Silence (an all-zero utterance) has no spread: leave its centred features (zeros) as they are instead of
        # dividing 0 by 0. The guard is on the variance, so no sqrt(0) (an infinite derivative) enters the graph.
        std = torch.sqrt(torch.where(variance > 0, variance, torch.ones_like(variance)))
        features = centred / std[:, None, None]
    return features, lengths


class DeepSpeechSpectrogram(torch.nn.Module):
    """
    The deepspeech.pytorch spectrogram (``log1p`` STFT magnitude, per-utterance normalisation) as a module.

    | Paper link: https://arxiv.org/abs/1512.02595
    """

    def __init__(
        self, sample_rate: int = 16000, window_size: float = 0.02, window_stride: float = 0.01, window: str = "hamming"
    ) -> None:
        """
        :param sample_rate: Sample rate of the waveforms in Hz.
        :param window_size: Window length in seconds; the FFT size is `int(sample_rate * window_size)`.
        :param window_stride: Hop in seconds.
        :param window: One of `hamming`, `hann`, `blackman`, `bartlett` (periodic, as scipy/librosa build them).
        """
        super().__init__()
        if window not in WINDOW_FUNCTIONS:
            raise ValueError(f"window must be one of {sorted(WINDOW_FUNCTIONS)}. Found: {window!r}")
        self.sample_rate = sample_rate
        self.window_size = window_size
        self.window_stride = window_stride
        self.window_name = window
        self.n_fft = int(sample_rate * window_size)
        self.hop_length = int(sample_rate * window_stride)
        if self.n_fft < 2 or self.hop_length < 1:
            raise ValueError(
                f"window_size and window_stride give n_fft={self.n_fft}, hop={self.hop_length}: both must be positive."
            )
        self.register_buffer("window", WINDOW_FUNCTIONS[window](self.n_fft, periodic=True), persistent=False)

    @property
    def n_bins(self) -> int:
        """Number of frequency bins, `n_fft // 2 + 1`."""
        return self.n_fft // 2 + 1

    def forward(self, waveforms: torch.Tensor, sample_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        :param waveforms: Zero-padded waveforms, shape `(batch, samples)`.
        :param sample_lengths: Real lengths in samples, shape `(batch,)`.
        :return: Features `(batch, n_bins, frames)` and their lengths `(batch,)`.
        """
        return log_spectrogram(waveforms, sample_lengths, self.n_fft, self.hop_length, self.window.to(waveforms.dtype))
