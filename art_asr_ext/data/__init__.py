"""
Reading speech corpora in LibriSpeech's layout.
"""

from art_asr_ext.data.librispeech import Utterance, load_librispeech, read_audio
