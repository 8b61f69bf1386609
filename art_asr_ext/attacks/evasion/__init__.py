"""
Evasion attacks on speech recognizers: white-box (gradient) attacks, black-box attacks that only call `predict`
(Kenansville, genetic), and the over-the-air wrapper that attacks through simulated rooms.
"""

from art_asr_ext.attacks.evasion.genetic import GeneticASRAttack
from art_asr_ext.attacks.evasion.imperceptible_asr_pytorch import RaggedImperceptibleASRPyTorch
from art_asr_ext.attacks.evasion.kenansville import KenansvilleAttack
from art_asr_ext.attacks.evasion.over_the_air import OverTheAirAttack
from art_asr_ext.attacks.evasion.random_restart_pgd import RandomRestartProjectedGradientDescent
from art_asr_ext.attacks.evasion.snr_projected_gradient_descent import SNRProjectedGradientDescent
from art_asr_ext.attacks.evasion.uniform_noise import UniformNoiseBaseline

__all__ = [
    "GeneticASRAttack",
    "KenansvilleAttack",
    "OverTheAirAttack",
    "RaggedImperceptibleASRPyTorch",
    "RandomRestartProjectedGradientDescent",
    "SNRProjectedGradientDescent",
    "UniformNoiseBaseline",
]
