"""
art-asr-ext: adversarial attacks and defences for automatic speech recognition, as an extension of ART.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from art_asr_ext import _offline

__version__ = "0.1.0"

# Before anything imports ESPnet: its g2p_en dependency would otherwise try to download NLTK data.
_offline.install()
