import numpy as np
import pytest

from art_asr_ext.data import Utterance
from art_asr_ext.benchmark.config import DataConfig, TargetConfig
from art_asr_ext.benchmark.evaluation_data import (
    crop_utterance,
    load_utterances,
    phrase_length,
    read_phrase_pool,
    sample_target,
    sample_targets,
)
from tests.benchmarks.helpers import DATA

POOL = [
    "GO",
    "STOP NOW",
    "OPEN THE DOOR",
    "CLOSE THE GATE",
    "TURN OFF LIGHTS",
    "CALL MY BROTHER NOW",
    "A B C D E F",
    "DELETE ALL OF MY FILES RIGHT NOW PLEASE",
]


def test_read_phrase_pool_formats(tmp_path):
    tsv = tmp_path / "pool.tsv"
    tsv.write_text("id\ttext\nA1\tHello, world.\nA2\tIn 1850.\nA3\tHELLO WORLD\nA4\t -- \n", encoding="utf-8")
    # digits spelled out, duplicates merged, a phrase without words dropped
    assert read_phrase_pool(tsv) == ["HELLO WORLD", "IN EIGHTEEN FIFTY"]
    plain = tmp_path / "pool.txt"
    plain.write_text("open the door\n\nclose it\n", encoding="utf-8")
    assert read_phrase_pool(plain) == ["OPEN THE DOOR", "CLOSE IT"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tsentence\nA\tB\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'text' column"):
        read_phrase_pool(bad)
    with pytest.raises(FileNotFoundError):
        read_phrase_pool(tmp_path / "absent.txt")


def test_target_has_the_reference_word_count_and_is_never_the_reference():
    picks = {sample_target("ONE TWO THREE", f"u{i}", POOL, 0, "words", 1) for i in range(40)}
    assert picks == {"OPEN THE DOOR", "CLOSE THE GATE", "TURN OFF LIGHTS"}  # all the 3-word phrases get drawn
    assert sample_target("OPEN THE DOOR", "u0", ["OPEN THE DOOR", "GO"], 0, "words", 1) == "GO"
    with pytest.raises(ValueError, match="no phrase other than the reference"):
        sample_target("GO", "u0", ["GO"], 0, "words", 1)


def test_nearest_widens_the_draw_and_chars_match_characters():
    # 5 words: none in the pool; nearest=1 gives the 4- and 6-word phrases (distance 1), nearest=4 adds distance 2.
    picks = {sample_target("A B C D E", f"u{i}", POOL, 0, "words", 1) for i in range(40)}
    assert picks == {"CALL MY BROTHER NOW", "A B C D E F"}
    wider = {sample_target("A B C D E", f"u{i}", POOL, 0, "words", 4) for i in range(80)}
    assert {phrase_length(p, "words") for p in wider} == {3, 4, 6}
    assert sample_target("HELLO THERE WORLDS", "u", POOL, 0, "chars", 1) == "CALL MY BROTHER NOW"  # 19 vs 18 chars


def test_targets_are_deterministic_and_per_utterance():
    utterances = [Utterance(f"id-{i}", np.zeros(10, np.float32), 16000, "ONE TWO THREE") for i in range(6)]
    config = TargetConfig(pool=DATA / "text" / "librispeech_transcripts.tsv")
    first = sample_targets(utterances, config, seed=7)
    assert first == sample_targets(utterances, config, seed=7)
    assert sample_targets(utterances[3:4], config, seed=7) == {"id-3": first["id-3"]}  # independent of the others
    assert first != sample_targets(utterances, config, seed=8)


def test_real_references_get_targets_of_their_length():
    utterances = load_utterances(DataConfig(DATA / "LibriSpeech" / "test-clean"))
    pool_path = DATA / "text" / "ljspeech_sentences.tsv"
    pool = read_phrase_pool(pool_path)
    for match in ("words", "chars"):
        targets = sample_targets(utterances, TargetConfig(pool=pool_path, match=match), seed=0)
        for u in utterances:
            wanted = phrase_length(u.transcript, match)
            closest = min(abs(phrase_length(p, match) - wanted) for p in pool)
            assert abs(phrase_length(targets[u.utterance_id], match) - wanted) == closest
            assert set(targets[u.utterance_id]) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ' ")


def test_crop_keeps_the_same_fraction_of_words():
    utterance = Utterance("u", np.ones(16000 * 4, np.float32), 16000, "A B C D E F G H")
    cropped = crop_utterance(utterance, 1.0)
    assert len(cropped.waveform) == 16000 and cropped.transcript == "A B"
    assert crop_utterance(utterance, 10.0) is utterance
