import pytest

from art_asr_ext.benchmark.training.corpus import Sentence, read_sentences, split_by_sentence
from art_asr_ext.utils.text import librispeech_transcript, spoken_form, to_librispeech_text


@pytest.mark.parametrize(
    "text, transcript",
    [
        (
            "Mr. Smith paid 1,250 dollars in 1863.",
            "MISTER SMITH PAID ONE THOUSAND TWO HUNDRED AND FIFTY DOLLARS IN EIGHTEEN SIXTY THREE",
        ),
        ("On the 3rd of May, Dr. Jones's dog ran.", "ON THE THIRD OF MAY DOCTOR JONES'S DOG RAN"),
        (
            "In 1905 and 1900 it cost 3.5 pounds",
            "IN NINETEEN O FIVE AND NINETEEN HUNDRED IT COST THREE POINT FIVE POUNDS",
        ),
        ("Caf\u00e9 \u201cd\u00e9j\u00e0 vu\u201d -- well-known.", "CAFE DEJA VU WELL KNOWN"),
        ("No. 7 was the 21st house", "NUMBER SEVEN WAS THE TWENTY FIRST HOUSE"),
    ],
)
def test_transcripts_follow_librispeech_conventions(text, transcript):
    assert librispeech_transcript(spoken_form(text)) == transcript


@pytest.mark.parametrize("text", ["He paid \u00a35.", "See [note] here", "Costs 5% more", "A & B"])
def test_sentences_without_an_agreed_spoken_form_are_rejected(text):
    assert spoken_form(text) is None


def test_read_sentences_filters_and_keeps_ids(tmp_path):
    path = tmp_path / "sentences.tsv"
    path.write_text(
        "id\ttext\nA1\tThe cat sat on the mat.\nA2\tToo short\nA3\tIt cost \u00a35 today.\nA4\tThe cat sat on the mat!\n"
    )
    sentences = read_sentences(path)
    assert sentences == [Sentence("A1", "the cat sat on the mat.", "THE CAT SAT ON THE MAT")]


def test_split_is_by_sentence_and_stable_under_additions():
    sentences = [Sentence(f"S{i}", "x", f"WORD {i}") for i in range(100)]
    splits = split_by_sentence(sentences, n_dev=10, n_test=10)
    assert [len(splits[k]) for k in ("train", "dev", "test")] == [80, 10, 10]
    assert not {s.source_id for s in splits["test"]} & {s.source_id for s in splits["train"]}
    grown = split_by_sentence(sentences + [Sentence("NEW", "x", "NEW ONE")], n_dev=10, n_test=10)
    # The new sentence lands somewhere in the order; the test split changes by at most that one sentence.
    assert len({s.source_id for s in splits["test"]} - {s.source_id for s in grown["test"]}) <= 1
    with pytest.raises(ValueError, match="cannot hold"):
        split_by_sentence(sentences, n_dev=50, n_test=50)


@pytest.mark.parametrize(
    "text, expected",
    [
        (" After early nightfall, the yellow lamps.", "AFTER EARLY NIGHTFALL THE YELLOW LAMPS"),
        ("\u201cDon\u2019t,\u201d she said\u2014\u2018well-known\u2019 caf\u00e9.", "DON'T SHE SAID WELL KNOWN CAFE"),
        (
            "The parents' 3,000 & 25% in 101.",
            "THE PARENTS THREE THOUSAND AND TWENTY FIVE PERCENT IN ONE HUNDRED AND ONE",
        ),
        ("Mr. Quilter, 1850, the 2nd.", "MISTER QUILTER EIGHTEEN FIFTY THE SECOND"),
        (
            "Printing, in the only sense -- with which we are concerned,",
            "PRINTING IN THE ONLY SENSE WITH WHICH WE ARE CONCERNED",
        ),
        ("'Tis said 'hello'", "TIS SAID HELLO"),
        ("It cost \u00a35 [sic].", "IT COST FIVE SIC"),
        (" -- ", ""),
    ],
)
def test_any_transcript_is_normalised_by_the_same_rules(text, expected):
    assert to_librispeech_text(text) == expected


@pytest.mark.parametrize("text", ["Mr. Smith paid 1,250 dollars in 1863.", "On the 3rd of May, Dr. Jones's dog ran."])
def test_references_and_hypotheses_are_normalised_alike(text):
    assert to_librispeech_text(text) == librispeech_transcript(spoken_form(text))
