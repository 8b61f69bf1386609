"""
art-asr-ext: adversarial attacks and defences for automatic speech recognition, as an extension of ART.

| Paper link: https://arxiv.org/abs/2103.17122
"""

__version__ = "0.1.0"
