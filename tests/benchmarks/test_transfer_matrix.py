"""
The transfer matrix: `transfer: all` and `{sources, targets}` in the config, PocketSphinx as a black-box target, and
`transfer: all` run on the ci_tiny preset with PocketSphinx added.
"""

import copy
from pathlib import Path

import pytest
import yaml

from art_asr_ext.benchmark.grid import build_grid
from art_asr_ext.benchmark.config import ConfigError, parse_config
from art_asr_ext.benchmark.presets import preset_path
from art_asr_ext.benchmark.runner import run_benchmark
from art_asr_ext.benchmark.registry import ATTACKS, format_eps
from tests.benchmarks.helpers import read_csv

POCKETSPHINX = {"label": "(P) PocketSphinx", "estimator": {"type": "pocketsphinx"}}

BASE = {
    "data": {"librispeech": "data/test-clean"},
    "targets": {"pool": "pool.txt"},
    "attacks": {"fgsm": {"eps": [0.01]}, "pgd": {"eps": [0.01]}, "imperceptible": {"max_iter_1": 1}},
    "systems": [
        {"label": "(1) DS2", "estimator": {"type": "deepspeech2", "random_init": {"hidden_size": 8}}},
        {"label": "(2) DS2, other seed", "estimator": {"type": "deepspeech2", "random_init": {"seed": 2}}},
        {"label": "(3) DS2 + RS", "estimator": {"type": "deepspeech2", "checkpoint": "a.ckpt"}, "imperceptible": False},
        POCKETSPHINX,
    ],
}


def parse(**changes):
    raw = copy.deepcopy(BASE)
    raw.update(changes)
    return parse_config(raw, Path("/base"))


def test_a_black_box_system_gets_a_clean_cell_only():
    config = parse()
    assert [cell.attack for cell in build_grid(config) if cell.system == "(P) PocketSphinx"] == ["clean"]
    assert config.system("(P) PocketSphinx").estimator.black_box


def test_transfer_all_runs_every_attackable_source_on_every_other_system():
    config = parse(transfer="all")
    pairs = [(row.source, row.target) for row in config.transfer]
    sources = ["(1) DS2", "(2) DS2, other seed", "(3) DS2 + RS"]
    targets = sources + ["(P) PocketSphinx"]
    assert pairs == [(s, t) for s in sources for t in targets if s != t]
    assert config.transfer[0].label == "Transfer attack: (2) + attack from (1)"
    # Every attacked cell of a source, once per target.
    grid = build_grid(config)
    assert sum(cell.is_transfer for cell in grid) == 3 * 3 + 3 * 3 + 2 * 3


def test_matrices_and_pairs_combine_without_repeating_a_pair():
    config = parse(
        transfer=[
            {"source": "(1) DS2", "target": "(P) PocketSphinx", "label": "Mine", "attacks": ["pgd"]},
            {"sources": ["(1) DS2", "(2) DS2, other seed"], "targets": ["(P) PocketSphinx"], "attacks": ["fgsm"]},
        ]
    )
    assert [(row.source, row.label, row.attacks) for row in config.transfer] == [
        ("(1) DS2", "Mine", ("pgd",)),
        ("(2) DS2, other seed", "Transfer attack: (P) + attack from (2)", ("fgsm",)),
    ]


def test_matrix_rows_with_the_same_row_numbers_get_full_labels():
    raw = copy.deepcopy(BASE)
    raw["systems"][1]["label"] = "(1) DS2, other seed"
    config = parse_config({**raw, "transfer": {"sources": "all", "targets": ["(P) PocketSphinx"]}}, Path("/base"))
    assert [row.label for row in config.transfer] == [
        "Transfer attack: (P) PocketSphinx + attack from (1) DS2",
        "Transfer attack: (P) PocketSphinx + attack from (1) DS2, other seed",
        "Transfer attack: (P) + attack from (3)",
    ]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"transfer": [{"source": "(P) PocketSphinx", "target": "(1) DS2"}]}, r"transfer\[0\]\.source.*black-box"),
        ({"transfer": {"sources": ["(P) PocketSphinx"], "targets": "all"}}, r"transfer\.sources\[0\].*black-box"),
        ({"transfer": {"sources": ["(9) Nobody"], "targets": "all"}}, r"transfer\.sources\[0\].*names no system"),
        ({"transfer": {"sources": "all"}}, r"transfer.*targets"),
        ({"transfer": "everything"}, r"transfer.*must be `all`"),
        ({"systems": [{**POCKETSPHINX, "attacks": {"pgd": {"eps": [0.01]}}}]}, r"systems\[0\]\.attacks.*black-box"),
        ({"systems": [{**POCKETSPHINX, "imperceptible": {"max_iter_1": 2}}]}, r"systems\[0\]\.imperceptible"),
        (
            {"systems": [{**POCKETSPHINX, "defences": [{"type": "rs", "sigma": 0.01}]}]},
            r"systems\[0\]\.defences.*no defences",
        ),
        (
            {"systems": [{"label": "P", "estimator": {"type": "pocketsphinx", "checkpoint": "x.ckpt"}}]},
            r"systems\[0\]\.estimator\.checkpoint.*not a pocketsphinx key",
        ),
        (
            {"systems": [{"label": "D", "estimator": {"type": "deepspeech2", "checkpoint": "a", "dictionary": "d"}}]},
            r"systems\[0\]\.estimator\.dictionary.*pocketsphinx",
        ),
    ],
)
def test_bad_transfer_and_black_box_settings_name_their_key(change, message):
    with pytest.raises(ConfigError, match=message):
        parse(**change)


def test_pocketsphinx_model_files_are_resolved_and_checked(tmp_path):
    config = parse(systems=[{"label": "P", "estimator": {"type": "pocketsphinx", "dictionary": "my.dict"}}])
    assert config.systems[0].estimator.dictionary == Path("/base/my.dict")


def test_transfer_all_on_ci_tiny_writes_a_complete_matrix(tmp_path, single_torch_thread):
    preset = preset_path("ci_tiny")
    raw = yaml.safe_load(preset.read_text(encoding="utf-8"))
    raw["systems"].append(POCKETSPHINX)
    raw["transfer"] = "all"
    config = parse_config(raw, preset.parent)
    summary = run_benchmark(config, tmp_path, progress=False, threads=1)
    assert summary.failed == {}

    matrix = read_csv(tmp_path / "transfer_matrix.csv")
    attackable = [system.label for system in config.systems if not system.estimator.black_box]
    targets = [system.label for system in config.systems]
    own_cells = [(cell.attack, format_eps(cell.eps)) for cell in build_grid(config) if cell.row == attackable[0]][1:]
    # Every source x target x attack cell is there, once, and filled.
    expected = {(s, t, a, e) for s in attackable for t in targets for a, e in own_cells}
    found = [(row["source"], row["target"], row["attack"], row["eps"]) for row in matrix]
    assert len(found) == len(set(found)) and set(found) == expected
    for row in matrix:
        assert int(row["utterances"]) == 2 and float(row["gt_wer"]) >= 0 and float(row["tgt_wer"]) >= 0
        assert row["white_box"] == ("true" if row["source"] == row["target"] else "false")

    # The diagonal is the white-box cells of Table I; an off-diagonal entry is its transfer row's cell.
    table = {row["System"]: row for row in read_csv(tmp_path / "table1.csv")}
    labels = {(row.source, row.target): row.label for row in config.transfer}
    for row in matrix:
        table_row = table[row["source"] if row["white_box"] == "true" else labels[(row["source"], row["target"])]]
        if row["attack"] == "imperceptible":
            assert (row["gt_wer"], row["tgt_wer"]) == (table_row["Imperceptible GT"], table_row["Imperceptible TGT"])
        elif row["attack"] == "noise":
            assert row["gt_wer"] == table_row[f"Noise {row['eps']}"]
        elif row["attack"] == "pgd_snr":
            assert row["gt_wer"] == table_row[f"PGD SNR {row['eps']} dB"]
        else:
            assert row["gt_wer"] == table_row[ATTACKS[row["attack"]].column(float(row["eps"]))]
    # PocketSphinx has a clean column and nothing else of its own.
    assert table["(P) PocketSphinx"]["Clean"] and table["(P) PocketSphinx"]["PGD 0.01"] == ""
    assert (tmp_path / "transfer_matrix.png").stat().st_size > 10_000


def test_the_target_wer_panel_shows_the_attackers_success_bright_like_the_others(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from art_asr_ext.benchmark.outputs.transfer_matrix import plot_transfer_matrix

    config = parse(transfer=[{"source": "(1) DS2", "target": "(2) DS2, other seed"}])
    entries = [
        {"source": "(1) DS2", "target": target, "attack": attack, "eps": 0.0, "gt_wer": 100.0, "tgt_wer": 0.0}
        for target in ("(1) DS2", "(2) DS2, other seed")
        for attack in ("pgd", "imperceptible")
    ]
    figures = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda figure: (figures.append(figure), close(figure)))
    assert plot_transfer_matrix(config, entries, tmp_path / "transfer_matrix.png")
    panels = {axis.get_title(): axis for axis in figures[0].axes if axis.get_title()}
    ground_truth, target = panels["PGD 0, ground-truth WER"], panels["Imperceptible, target WER"]
    # A successful attack: ground-truth WER 100 and target WER 0, the same bright colour in both panels.
    assert ground_truth.images[0].get_cmap().name == "viridis" and target.images[0].get_cmap().name == "viridis_r"
    assert ground_truth.images[0].to_rgba(100.0) == target.images[0].to_rgba(0.0)
    labels = [axis.get_ylabel() for axis in figures[0].axes]
    assert "target WER (%), low: the attacker succeeded" in labels
