"""The Kneser-Ney ARPA writer: a proper distribution in ARPA's back-off reading, and what KenLM makes of it."""

import gzip
import math

import pytest

from art_asr_ext.models.ngram import SPECIAL_TOKENS, SentenceScorer, arpa_vocabulary, kneser_ney_arpa

SENTENCES = ["THE CAT SAT", "THE CAT RAN", "A DOG SAT ON THE MAT", "THE DOG RAN"]


def read_arpa(text):
    """`{n-gram tuple: (log10 p, log10 back-off)}` of an ARPA text."""
    entries, order = {}, 0
    for line in text.splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1:].split("-")[0])
        elif order and line.strip() and not line.startswith("\\"):
            fields = line.split("\t")
            ngram = tuple(fields[1].split())
            assert len(ngram) == order
            entries[ngram] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else 0.0)
    return entries


def probability(entries, history, word):
    """P(word | history) by ARPA's back-off rule."""
    ngram = (*history, word)
    if ngram in entries:
        return 10 ** entries[ngram][0]
    back_off = 10 ** entries.get(tuple(history), (0.0, 0.0))[1] if history else 1.0
    return back_off * probability(entries, history[1:], word)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_every_context_gives_a_distribution_over_the_vocabulary(order):
    entries = read_arpa(kneser_ney_arpa(SENTENCES, order=order, vocabulary=["BIRD", "FLEW"]))
    words = [ngram[0] for ngram in entries if len(ngram) == 1 and ngram[0] != "<s>"]
    assert {"BIRD", "FLEW", "<unk>", "</s>", "CAT"} <= set(words)
    contexts = [(), ("<s>",), ("THE",), ("<s>", "THE"), ("THE", "CAT"), ("MAT",), ("DOG", "SAT")]
    for context in contexts:
        history = context[-(order - 1) :] if order > 1 else ()
        total = sum(probability(entries, history, word) for word in words)
        assert total == pytest.approx(1.0, abs=1e-5), (order, context)


def test_seen_continuations_are_likelier_than_dictionary_words():
    entries = read_arpa(kneser_ney_arpa(SENTENCES, order=3, vocabulary=["BIRD"]))
    assert probability(entries, ("<s>", "THE"), "CAT") > 0.4  # 2 of the 3 sentences that start with THE
    assert probability(entries, ("THE",), "CAT") > 3 * probability(entries, ("THE",), "BIRD")
    assert probability(entries, ("THE",), "BIRD") == pytest.approx(probability(entries, ("THE",), "<unk>"))
    assert probability(entries, ("THE",), "BIRD") < 0.05
    assert entries[("<s>",)][0] == -99.0  # the sentence start is never predicted


def test_kenlm_reads_it_and_scores_sentences_as_its_back_off_rule_says(tmp_path):
    text = kneser_ney_arpa(SENTENCES, order=3, vocabulary=["BIRD"])
    path = tmp_path / "lm.arpa.gz"
    path.write_bytes(gzip.compress(text.encode()))
    scorer = SentenceScorer(path)
    entries = read_arpa(text)
    steps = [(("<s>",), "THE"), (("<s>", "THE"), "CAT"), (("THE", "CAT"), "SAT"), (("CAT", "SAT"), "</s>")]
    assert scorer("THE CAT SAT") == pytest.approx(
        sum(math.log10(probability(entries, h, w)) for h, w in steps), abs=1e-4
    )
    unknown = [(("<s>",), "THE"), (("<s>", "THE"), "<unk>"), (("THE", "<unk>"), "</s>")]
    assert scorer("THE ZEBRA") == pytest.approx(
        sum(math.log10(probability(entries, h, w)) for h, w in unknown), abs=1e-4
    )


def test_arpa_vocabulary_lists_the_words_without_special_tokens(tmp_path):
    path = tmp_path / "lm.arpa"
    path.write_text(kneser_ney_arpa(SENTENCES, order=2, vocabulary=["BIRD"]))
    words = arpa_vocabulary(path)
    assert set(words) == {"THE", "CAT", "SAT", "RAN", "A", "DOG", "ON", "MAT", "BIRD"}
    assert not set(words) & set(SPECIAL_TOKENS)
    (tmp_path / "empty.arpa").write_text("\\data\\\n\\end\\\n")
    with pytest.raises(ValueError, match="empty.arpa holds no unigrams"):
        arpa_vocabulary(tmp_path / "empty.arpa")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(order=0), "order must be an integer >= 1. Found: 0"),
        (dict(discount=1.0), r"discount must lie in \(0, 1\). Found: 1.0"),
        (dict(vocabulary=["<s>"]), "not ARPA's special tokens. Found: '<s>'"),
    ],
)
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kneser_ney_arpa(SENTENCES, **kwargs)


def test_no_sentences_is_an_error():
    with pytest.raises(ValueError, match="at least one sentence"):
        kneser_ney_arpa([])
