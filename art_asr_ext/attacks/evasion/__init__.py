"""
Evasion attacks on speech recognizers.
"""

from art_asr_ext.attacks.evasion.imperceptible_asr_pytorch import RaggedImperceptibleASRPyTorch
from art_asr_ext.attacks.evasion.random_restart_pgd import RandomRestartProjectedGradientDescent
from art_asr_ext.attacks.evasion.snr_projected_gradient_descent import SNRProjectedGradientDescent
from art_asr_ext.attacks.evasion.uniform_noise import UniformNoiseBaseline

__all__ = [
    "RaggedImperceptibleASRPyTorch",
    "RandomRestartProjectedGradientDescent",
    "SNRProjectedGradientDescent",
    "UniformNoiseBaseline",
]
