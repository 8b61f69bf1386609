import numpy as np
import pytest

from art_asr_ext.metrics import WordErrors, corpus_wer, utterance_word_errors, word_errors


@pytest.mark.parametrize(
    "reference, hypothesis, expected",
    [
        ("THE CAT SAT", "THE CAT SAT", WordErrors(0, 0, 0, 3)),
        ("THE CAT SAT", "THE BAT SAT", WordErrors(1, 0, 0, 2)),
        ("THE CAT SAT", "THE SAT", WordErrors(0, 1, 0, 2)),
        ("THE CAT SAT", "THE CAT SAT DOWN NOW", WordErrors(0, 0, 2, 3)),
        ("THE CAT SAT", "", WordErrors(0, 3, 0, 0)),
        ("THE CAT", "  ", WordErrors(0, 2, 0, 0)),
        ("", "HELLO", WordErrors(0, 0, 1, 0)),
        ("  THE   CAT ", "THE CAT", WordErrors(0, 0, 0, 2)),
    ],
)
def test_word_errors_count_each_edit(reference, hypothesis, expected):
    assert word_errors(reference, hypothesis) == expected


def test_errors_and_reference_words():
    counts = word_errors("A B C D", "A X C D E F")  # 1 substitution, 2 insertions
    assert (counts.errors, counts.reference_words) == (3, 4)


def test_corpus_wer_is_total_errors_over_total_words_not_the_mean_of_utterance_wers():
    references = ["ONE TWO THREE FOUR", "HI"]
    hypotheses = ["ONE TWO THREE FOUR", "OPEN THE DOOR NOW"]  # 0/4 and 4/1 (1 substitution + 3 insertions)
    counts = utterance_word_errors(references, hypotheses)
    assert [(c.errors, c.reference_words) for c in counts] == [(0, 4), (4, 1)]
    wer = corpus_wer([c.errors for c in counts], [c.reference_words for c in counts])
    assert wer == pytest.approx(4 / 5)  # the mean of the utterance WERs would be (0 + 4) / 2 = 2


def test_corpus_wer_exceeds_one_with_insertions():
    counts = utterance_word_errors(["GO", "STOP"], ["PLEASE DO NOT GO", "OPEN ALL THE DOORS NOW"])
    # "GO": 3 insertions; "STOP": 1 substitution + 4 insertions: 8 errors over 2 words
    assert corpus_wer([c.errors for c in counts], [c.reference_words for c in counts]) == 4.0


def test_bad_inputs_raise_with_the_value():
    with pytest.raises(ValueError, match="hypothesis must be a string. Found: NoneType"):
        word_errors("A", None)
    with pytest.raises(ValueError, match="2 references for 1 hypotheses"):
        utterance_word_errors(["A", "B"], ["A"])
    with pytest.raises(ValueError, match="no words"):
        corpus_wer([1], [0])
    with pytest.raises(ValueError, match="2 error counts for 1"):
        corpus_wer([1, 2], [3])
    with pytest.raises(ValueError, match=">= 0"):
        corpus_wer(np.array([-1]), np.array([2]))
