"""
Helpers shared by the estimators, defences, attacks and the benchmark runner: waveform validation and batching
(:mod:`art_asr_ext.utils.audio` in numpy, :mod:`art_asr_ext.utils.audio_torch` for tensors), crash-safe file writes
(:mod:`art_asr_ext.utils.io`) and LibriSpeech text normalisation (:mod:`art_asr_ext.utils.text`). They import neither
ART nor any model backend; `audio`, `io` and `text` do not import torch either.
"""
