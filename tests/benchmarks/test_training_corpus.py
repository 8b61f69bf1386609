"""The offline synthetic corpus: Piper speech at 16 kHz in LibriSpeech's layout, deterministic from a seed."""

import numpy as np
import pytest

from art_asr_ext.data.librispeech import load_librispeech
from art_asr_ext.benchmark.training.synthesize import main as synthesize_corpus
from art_asr_ext.benchmark.training.corpus import SAMPLE_RATE, PiperSynthesizer, Sentence, write_split

SENTENCES = [
    Sentence("a", "the cat sat on the mat.", "THE CAT SAT ON THE MAT"),
    Sentence("b", "mister brown owns two dogs.", "MISTER BROWN OWNS TWO DOGS"),
]


@pytest.fixture(scope="module")
def synthesizer():
    return PiperSynthesizer(seed=3)


def test_split_in_librispeech_layout(tmp_path, synthesizer):
    assert write_split(tmp_path, "test-synth", SENTENCES, synthesizer, chapter=3) == 2
    utterances = load_librispeech(tmp_path / "test-synth")
    assert [u.utterance_id for u in utterances] == ["9001-3-0000", "9001-3-0001"]
    assert [u.transcript for u in utterances] == ["THE CAT SAT ON THE MAT", "MISTER BROWN OWNS TWO DOGS"]
    for utterance in utterances:
        assert utterance.sample_rate == SAMPLE_RATE
        assert 0.8 < len(utterance.waveform) / SAMPLE_RATE < 4.0  # a short sentence, not silence or a run-away
        assert 0.2 < np.abs(utterance.waveform).max() <= 0.91  # the drawn peak level
        assert np.sqrt(np.mean(utterance.waveform**2)) > 0.02  # speech, not near-silence


def test_fresh_runs_with_the_same_seed_are_identical(tmp_path):
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("The first sentence is short.\nA second sentence follows it here.\nAnd a third one ends it.\n")
    for name in ("one", "two"):
        assert (
            synthesize_corpus(["--sentences", str(sentences), "--out", str(tmp_path / name), "--only-split", "x"]) == 0
        )
    one, two = (load_librispeech(tmp_path / name / "x") for name in ("one", "two"))
    assert len(one) == 3 and all(np.array_equal(a.waveform, b.waveform) for a, b in zip(one, two))
