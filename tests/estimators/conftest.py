"""Fixtures of the estimator tests that decode the committed embedded models."""

import pytest

from art_asr_ext.benchmark.presets import EMBEDDED_SET
from art_asr_ext.data import load_librispeech
from art_asr_ext.utils.audio import to_object_array


@pytest.fixture(scope="module")
def embedded_speech():
    """The first 8 utterances of the embedded evaluation set: `(waveforms, transcripts)`."""
    utterances = load_librispeech(EMBEDDED_SET, max_utterances=8)
    return to_object_array([u.waveform for u in utterances]), [u.transcript for u in utterances]
