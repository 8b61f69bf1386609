"""
Evasion attacks on speech recognizers.
"""

from art_asr_ext.attacks.evasion.imperceptible_asr_pytorch import RaggedImperceptibleASRPyTorch
