"""
Speech defences as ART PyTorch preprocessors: randomized smoothing and neural-vocoder re-synthesis.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from art_asr_ext.defences.preprocessor.gaussian_smoothing_pytorch import GaussianSmoothingPyTorch
from art_asr_ext.defences.preprocessor.wavegan_vocoder_pytorch import WaveGANVocoderPyTorch

__all__ = ["GaussianSmoothingPyTorch", "WaveGANVocoderPyTorch"]
