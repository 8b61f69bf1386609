"""
Reading speech corpora in LibriSpeech's layout.
"""

from art_asr_ext.data.librispeech import (
    BadUtterance,
    Utterance,
    check_librispeech,
    librispeech_transcripts,
    load_librispeech,
    read_audio,
)
