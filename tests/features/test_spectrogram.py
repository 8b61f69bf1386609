import librosa
import numpy as np
import pytest
import torch

from art_asr_ext.features.spectrogram import DeepSpeechSpectrogram


def deepspeech_pytorch_reference(y: np.ndarray, sample_rate=16000, window_size=0.02, window_stride=0.01):
    """deepspeech.pytorch's SpectrogramParser.compute_spectrogram, with librosa as it calls it."""
    n_fft = int(sample_rate * window_size)
    stft = librosa.stft(y, n_fft=n_fft, hop_length=int(sample_rate * window_stride), win_length=n_fft, window="hamming")
    spect = np.log1p(np.abs(stft))
    return (spect - spect.mean()) / spect.std(ddof=1)


def test_matches_deepspeech_pytorch_on_real_speech(real_clips):
    clip = real_clips[0].astype(np.float64)
    features, lengths = DeepSpeechSpectrogram().double()(torch.from_numpy(clip)[None], torch.tensor([len(clip)]))
    reference = deepspeech_pytorch_reference(clip)
    assert features.shape == (1, 161, reference.shape[1]) and int(lengths[0]) == reference.shape[1]
    np.testing.assert_allclose(features[0].numpy(), reference, atol=1e-6)


def test_padding_does_not_change_real_frames(real_clips):
    spectrogram = DeepSpeechSpectrogram()
    short, long = torch.from_numpy(real_clips[2]), torch.from_numpy(real_clips[0])
    batch = torch.nn.utils.rnn.pad_sequence([long, short], batch_first=True)
    features, lengths = spectrogram(batch, torch.tensor([len(long), len(short)]))
    alone, alone_lengths = spectrogram(short[None], torch.tensor([len(short)]))
    assert int(lengths[1]) == int(alone_lengths[0]) < features.shape[-1]
    torch.testing.assert_close(features[1, :, : lengths[1]], alone[0], rtol=1e-5, atol=1e-5)
    assert torch.all(features[1, :, lengths[1] :] == 0)


def test_gradient_reaches_waveform():
    waveform = (0.1 * torch.randn(1, 4000, dtype=torch.float64)).requires_grad_(True)
    spectrogram = DeepSpeechSpectrogram().double()
    assert torch.autograd.gradcheck(lambda w: spectrogram(w, torch.tensor([4000]))[0][:, :20, :5], (waveform[:, :800],))


def test_unknown_window_raises():
    with pytest.raises(ValueError, match="window must be one of"):
        DeepSpeechSpectrogram(window="kaiser")
