"""
Whisper's log-mel front end, batched and differentiable with respect to the waveform.

Reproduces ``whisper.log_mel_spectrogram(whisper.pad_or_trim(audio))`` for each utterance of a zero-padded batch:
the utterance is zero-padded (or cut) to a fixed number of samples, a centred 400-point Hann STFT with hop 160
(reflect padding) gives power spectra, the last frame is dropped, Whisper's mel filters are applied, and
``log10(max(x, 1e-10))`` is floored at 8 below the utterance's maximum and scaled by ``(x + 4) / 4``. Samples beyond
an utterance's real length are zeroed first, so its features do not depend on what pads it in a batch.

| Paper link: https://arxiv.org/abs/2212.04356
"""

import torch

N_FFT = 400
HOP_LENGTH = 160


def whisper_log_mel(
    waveforms: torch.Tensor, lengths: torch.Tensor, mel_filters: torch.Tensor, n_samples: int
) -> torch.Tensor:
    """
    :param waveforms: Zero-padded waveforms at 16 kHz, shape `(batch, samples)`.
    :param lengths: Real number of samples per utterance, shape `(batch,)`.
    :param mel_filters: Whisper's mel filterbank `(n_mels, N_FFT // 2 + 1)` (``whisper.audio.mel_filters``).
    :param n_samples: Samples Whisper's encoder sees (480000, 30 s, for the published models); each utterance is
                      zero-padded or cut to it.
    :return: Log-mel features of shape `(batch, n_mels, n_samples // HOP_LENGTH)`.
    """
    # waveforms: (batch, samples) -> (batch, n_samples), zero beyond each real length
    positions = torch.arange(waveforms.shape[1], device=waveforms.device)
    waveforms = waveforms * (positions[None, :] < lengths[:, None]).to(waveforms.dtype)
    if waveforms.shape[1] >= n_samples:
        waveforms = waveforms[:, :n_samples]
    else:
        waveforms = torch.nn.functional.pad(waveforms, (0, n_samples - waveforms.shape[1]))
    window = torch.hann_window(N_FFT, dtype=waveforms.dtype, device=waveforms.device)
    stft = torch.stft(waveforms, N_FFT, HOP_LENGTH, window=window, return_complex=True)
    # stft: (batch, N_FFT // 2 + 1, frames + 1); the power |X|^2 as re^2 + im^2 has a finite gradient at 0
    power = torch.view_as_real(stft[..., :-1]).pow(2).sum(-1)
    mel = mel_filters.to(power.dtype) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    # log_spec: (batch, n_mels, frames); floor each utterance at 8 (log10 units) below its own maximum
    log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
    return (log_spec + 4.0) / 4.0
