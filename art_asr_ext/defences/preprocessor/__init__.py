"""
Speech defences as ART PyTorch preprocessors: randomized smoothing, neural-vocoder re-synthesis, and input transforms
(MP3 compression, resampling, quantisation, a low-pass filter).

| Paper link: https://arxiv.org/abs/2103.17122
"""

from art_asr_ext.defences.preprocessor.gaussian_smoothing_pytorch import GaussianSmoothingPyTorch
from art_asr_ext.defences.preprocessor.input_transforms import (
    QuantizationPyTorch,
    ResamplePyTorch,
    SoundfileMp3CompressionPyTorch,
    StraightThroughPyTorch,
    butterworth_lowpass,
)
from art_asr_ext.defences.preprocessor.wavegan_vocoder_pytorch import WaveGANVocoderPyTorch

__all__ = [
    "GaussianSmoothingPyTorch",
    "QuantizationPyTorch",
    "ResamplePyTorch",
    "SoundfileMp3CompressionPyTorch",
    "StraightThroughPyTorch",
    "WaveGANVocoderPyTorch",
    "butterworth_lowpass",
]
