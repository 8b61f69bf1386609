"""
Pure torch models and their checkpoint loaders; nothing here imports ART.
"""

from art_asr_ext.models.deepspeech2 import DeepSpeech2
