"""
Evaluation metrics: word error rate (per utterance and corpus-level), the size of a perturbation (L-infinity, SNR in
dB) and how audible it is (wide-band PESQ and STOI, from the `perceptual` extra, imported when first used).

| Paper link: https://arxiv.org/abs/2103.17122
"""

from art_asr_ext.metrics.perceptual import PerceptualScores, perceptual_scores, pesq_wideband, stoi_score
from art_asr_ext.metrics.snr import linf_norm, perturbation_size, snr_db
from art_asr_ext.metrics.wer import (
    WordErrors,
    corpus_wer,
    transcripts_wer,
    utterance_word_errors,
    word_alignment,
    word_errors,
)

__all__ = [
    "PerceptualScores",
    "WordErrors",
    "corpus_wer",
    "linf_norm",
    "perceptual_scores",
    "perturbation_size",
    "pesq_wideband",
    "snr_db",
    "stoi_score",
    "transcripts_wer",
    "utterance_word_errors",
    "word_alignment",
    "word_errors",
]
