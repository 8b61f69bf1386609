"""
The runner with the defences and attacks beyond the study, end to end on tiny random models, the real clips and
PocketSphinx: a vote and an input transform, Kenansville and the genetic attack (model queries recorded per utterance
and summed up in queries.csv), and PGD through simulated rooms (rooms cached with the run, examples heard in the test
rooms).
"""

import csv
import io
import json

import pytest

from art_asr_ext.benchmark import dry_run_report
from art_asr_ext.benchmark.config import load_config
from art_asr_ext.benchmark.runner import RunOptions, run_benchmark
from tests.benchmarks.helpers import mini_config_dict, write_config

TINY = {"type": "deepspeech2", "random_init": {"hidden_size": 8, "seed": 1}}


def _beyond_config(folder):
    raw = mini_config_dict()
    raw["attacks"] = {
        "pgd": {"eps": [0.01], "max_iter": 2},
        "kenansville": {"snr_db": [20]},
        "genetic": {"eps": [0.01], "max_queries": 6, "population": 3, "elite": 1, "targeted": False},
        "ota_pgd": {"eps": 0.01, "max_iter": 2, "train_rooms": 2, "test_rooms": 2},
        "room_pgd": {"eps": 0.01, "max_iter": 2, "train_rooms": 2, "test_rooms": 2},
        "room_clean": {"train_rooms": 2, "test_rooms": 2},
    }
    raw["systems"] = [
        {
            "label": "(1) Tiny",
            "estimator": TINY,
            "attacks": {"kenansville": True},
            "ota_pgd": True,
            "room_pgd": True,
            "room_clean": True,
        },
        {
            "label": "(2) Tiny + vote",
            "estimator": TINY,
            "defences": [{"type": "vote", "sigma": 0.01, "draws": 3}, {"type": "quantize", "bits": 8}],
        },
        {"label": "(19) PocketSphinx", "estimator": {"type": "pocketsphinx"}, "attacks": {"genetic": True}},
    ]
    raw["transfer"] = []
    return write_config(folder, raw)


@pytest.fixture(scope="module")
def beyond(tmp_path_factory):
    folder = tmp_path_factory.mktemp("beyond")
    path = _beyond_config(folder)
    out = folder / "out"
    run_benchmark(load_config(path), out, RunOptions(progress=False, threads=1))
    assert (out / "failures.csv").read_text() == "key,error\n"
    rows = list(csv.DictReader(io.StringIO((out / "utterances.csv").read_text())))
    return out, rows


def test_the_dry_run_counts_each_of_a_votes_draws_as_a_forward_pass(tmp_path):
    report = dry_run_report(load_config(_beyond_config(tmp_path)))
    cells = [line for line in report.splitlines() if line.count(" | ") >= 2]
    passes = {" | ".join(line.split(" | ")[:2]): line.split()[-2:] for line in cells}
    assert passes["(1) Tiny | clean"] == ["0", "1"]
    assert passes["(2) Tiny + vote | clean"] == ["0", "3"]  # three noisy draws decoded, then voted
    assert passes["(2) Tiny + vote | pgd"] == ["2", "3"]  # the attack's 2 steps see no vote; its transcription does


def _cells(rows, system, attack):
    return [row for row in rows if row["row"] == system and row["attack"] == attack]


def test_black_box_cells_record_their_queries(beyond):
    out, rows = beyond
    genetic = _cells(rows, "(19) PocketSphinx", "genetic")
    assert len(genetic) == 2 and all(1 <= int(row["queries"]) <= 6 for row in genetic)
    kenansville = _cells(rows, "(1) Tiny", "kenansville")
    assert [row["queries"] for row in kenansville] == ["0", "0"]
    assert all(float(row["snr_db"]) >= 19.9 for row in kenansville)
    assert all(row["queries"] == "" for row in _cells(rows, "(1) Tiny", "pgd"))
    summary = list(csv.DictReader(io.StringIO((out / "queries.csv").read_text())))
    by_cell = {(row["row"], row["attack"]): row for row in summary}
    sphinx = by_cell[("(19) PocketSphinx", "genetic")]
    assert int(sphinx["query_budget"]) == 6 and int(sphinx["queries_max"]) <= 6
    assert float(sphinx["queries_mean"]) == pytest.approx(sum(int(row["queries"]) for row in genetic) / 2)
    assert "(19) PocketSphinx | pgd | 0.01" not in (out / "table1.md").read_text()


def test_over_the_air_cells_are_heard_in_every_test_room_with_the_rooms_cached(beyond):
    out, rows = beyond
    for attack in ("ota_pgd", "room_pgd", "room_clean"):
        for row in _cells(rows, "(1) Tiny", attack):
            assert len(row["hypothesis"].split(" | ")) == 2  # one transcript per test room
            assert int(row["gt_words"]) == 2 * len(row["reference"].split())  # errors summed over the rooms
    # the clean speech in the rooms: unperturbed, untargeted, one cell at max-norm 0
    clean_in_rooms = _cells(rows, "(1) Tiny", "room_clean")
    assert len(clean_in_rooms) == 2 and all(
        float(row["linf"]) == 0 and row["targeted"] == "false" for row in clean_in_rooms
    )
    cached = sorted(path.name for path in (out / "rooms").iterdir())
    assert len(cached) == 2  # the three attacks share one room set: responses and parameters
    parameters = json.loads((out / "rooms" / [n for n in cached if n.endswith(".json")][0]).read_text())
    assert len(parameters["train"]) == 2 and len(parameters["test"]) == 2 and parameters["seed"] == 0
    table = (out / "table1.md").read_text()
    assert "Over-the-air PGD GT" in table and "PGD in rooms TGT" in table
    assert "Clean in rooms GT" in table and "Clean in rooms TGT" not in table
    # nothing was added to the speech: no perceptual score, no SNR column, no line in perceptual.csv
    assert all(row["pesq"] == "" and row["stoi"] == "" for row in clean_in_rooms)
    assert "Clean in rooms" not in table.split("Median SNR")[1].split("\n\n")[1]
    assert "room_clean" not in (out / "perceptual.csv").read_text()


def test_a_voting_system_reports_its_stability(beyond):
    _, rows = beyond
    voted = _cells(rows, "(2) Tiny + vote", "clean") + _cells(rows, "(2) Tiny + vote", "pgd")
    assert voted and all(0 < float(row["vote_agreement"]) <= 1 for row in voted)
    assert all(float(row["vote_draw_wer"]) >= 0 for row in voted)
    assert all(row["vote_agreement"] == "" for row in _cells(rows, "(1) Tiny", "clean"))
