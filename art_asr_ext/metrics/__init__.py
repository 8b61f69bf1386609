"""
Evaluation metrics: word error rate (per utterance and corpus-level) and the size of a perturbation (L-infinity,
SNR in dB).

| Paper link: https://arxiv.org/abs/2103.17122
"""

from art_asr_ext.metrics.snr import linf_norm, perturbation_size, snr_db
from art_asr_ext.metrics.wer import WordErrors, corpus_wer, utterance_word_errors, word_errors

__all__ = [
    "WordErrors",
    "corpus_wer",
    "linf_norm",
    "perturbation_size",
    "snr_db",
    "utterance_word_errors",
    "word_errors",
]
