"""
The evaluation checks on hand-made cells: each passes on a sound grid, fails (naming the cells) on a grid that
breaks it, and is not applicable where the grid lacks what it compares.
"""

import copy
from pathlib import Path

import pytest

from art_asr_ext.benchmark.outputs.checks import FAILED, NOT_APPLICABLE, PASSED, checks_markdown, evaluation_checks
from art_asr_ext.benchmark.config import parse_config

CONFIG = {
    "data": {"librispeech": "data"},
    "targets": {"pool": "pool.txt"},
    "attacks": {
        "noise": {"eps": [0.01]},
        "fgsm": {"eps": [0.01, 0.1]},
        "pgd": {"eps": [0.01, 0.1, 1.0], "targeted": True},
    },
    "systems": [
        {"label": "(1) A", "estimator": {"type": "deepspeech2", "checkpoint": "a.ckpt"}},
        {
            "label": "(5) A + V",
            "estimator": {"type": "deepspeech2", "checkpoint": "a.ckpt"},
            "defences": [{"type": "vocoder", "mode": "black-box"}],
            "attacks": {"pgd": {"eps": [0.01]}},
        },
        {
            "label": "(5) A + V, white-box",
            "estimator": {"type": "deepspeech2", "checkpoint": "a.ckpt"},
            "defences": [{"type": "vocoder", "mode": "white-box"}],
            "attacks": {"pgd": {"eps": [0.01]}},
        },
        {"label": "(8) B", "estimator": {"type": "deepspeech2", "checkpoint": "b.ckpt"}},
    ],
    "transfer": [{"source": "(8) B", "target": "(1) A"}],
}

TRANSFER = "Transfer attack: (1) + attack from (8)"
#: Ground-truth WER of each (row, attack, eps) cell in a sound grid: 10 reference words per cell.
SOUND = {
    ("(1) A", "clean", 0.0): 10,
    ("(1) A", "noise", 0.01): 10,
    ("(1) A", "fgsm", 0.01): 30,
    ("(1) A", "fgsm", 0.1): 60,
    ("(1) A", "pgd", 0.01): 40,
    ("(1) A", "pgd", 0.1): 80,
    ("(1) A", "pgd", 1.0): 100,
    ("(5) A + V", "clean", 0.0): 10,
    ("(5) A + V", "fgsm", 0.01): 20,
    ("(5) A + V", "pgd", 0.01): 20,
    ("(5) A + V, white-box", "clean", 0.0): 10,
    ("(5) A + V, white-box", "fgsm", 0.01): 30,
    ("(5) A + V, white-box", "pgd", 0.01): 40,
    ("(8) B", "clean", 0.0): 20,
    ("(8) B", "fgsm", 0.01): 50,
    ("(8) B", "fgsm", 0.1): 70,
    ("(8) B", "pgd", 0.01): 60,
    ("(8) B", "pgd", 0.1): 90,
    ("(8) B", "pgd", 1.0): 100,
    ("Transfer attack: (1) + attack from (8)", "fgsm", 0.01): 20,
    ("Transfer attack: (1) + attack from (8)", "fgsm", 0.1): 30,
    ("Transfer attack: (1) + attack from (8)", "pgd", 0.01): 20,
    ("Transfer attack: (1) + attack from (8)", "pgd", 0.1): 30,
    ("Transfer attack: (1) + attack from (8)", "pgd", 1.0): 50,
}


def rows_of(wers, target_errors=5):
    """One 10-word utterance per cell with the given WER in percent; every cell `target_errors` of 10 from its target."""
    rows = []
    for (row, attack, eps), wer in wers.items():
        rows.append(
            {
                "row": row,
                "attack": attack,
                "eps": eps,
                "gt_errors": wer // 10,
                "gt_words": 10,
                "tgt_errors": 0 if (attack, eps) == ("pgd", 1.0) else target_errors,
                "tgt_words": 10,
            }
        )
    return rows


@pytest.fixture(scope="module")
def config():
    return parse_config(copy.deepcopy(CONFIG), Path("/base"))


def by_check(results):
    return {result.check: result for result in results}


def test_a_sound_grid_passes_every_applicable_check(config):
    results = by_check(evaluation_checks(config, rows_of(SOUND)))
    assert [results[c].status for c in "abcdef"] == [PASSED] * 6
    assert results["c"].compared == 2 and results["e"].compared == 1 and results["f"].compared == 2


@pytest.mark.parametrize(
    "check, change, cells",
    [
        ("a", {("(1) A", "pgd", 0.1): 30}, ["(1) A | pgd | 0.01", "(1) A | pgd | 0.1", "(1) A | pgd | 1.0"]),
        ("b", {("(8) B", "pgd", 0.1): 60}, ["(8) B | fgsm | 0.1", "(8) B | pgd | 0.01", "(8) B | pgd | 0.1"]),
        # A gradient-masking defence: the white-box attacker does worse than the one that goes around it (BPDA).
        (
            "c",
            {("(5) A + V, white-box", "pgd", 0.01): 10, ("(5) A + V, white-box", "fgsm", 0.01): 10},
            [f"(5) A + V{kind} | {attack} | 0.01" for kind in ("", ", white-box") for attack in ("fgsm", "pgd")],
        ),
        # Transfer that hurts the target more than the white-box attack hurts its source: a weak white-box attack.
        ("d", {(TRANSFER, attack, eps): 90 for attack, eps in [("fgsm", 0.1), ("pgd", 0.1), ("pgd", 1.0)]}, None),
        # An attack no stronger than random noise of its max-norm: a masked gradient, or no attack at all.
        ("e", {("(1) A", "noise", 0.01): 60}, ["(1) A | noise | 0.01", "(1) A | pgd | 0.01"]),
    ],
)
def test_each_check_fails_on_a_grid_that_breaks_it(config, check, change, cells):
    results = by_check(evaluation_checks(config, rows_of({**SOUND, **change})))
    assert results[check].status == FAILED and results[check].details
    if cells is not None:
        assert set(results[check].cells) <= set(cells) and results[check].cells
    others = [c for c in "abcde" if c != check and results[c].status == FAILED]
    assert check in ("a", "b") or not others  # (a) and (b) share cells; the others fail alone
    assert f"({check})" in checks_markdown(list(results.values()))


def test_unbounded_pgd_that_never_reaches_its_target_fails_check_f(config):
    rows = [dict(row, tgt_errors=5) for row in rows_of(SOUND)]
    result = by_check(evaluation_checks(config, rows))["f"]
    assert result.status == FAILED and result.cells == ["(1) A | pgd | 1.0", "(8) B | pgd | 1.0"]


def test_checks_without_the_cells_they_compare_are_not_applicable(config):
    only_clean = {key: value for key, value in SOUND.items() if key[1] == "clean"}
    results = evaluation_checks(config, rows_of(only_clean))
    assert [result.status for result in results] == [NOT_APPLICABLE] * 6
    assert all(result.details for result in results)


def test_check_c_compares_bpda_with_the_true_gradient_of_a_transform_that_has_one():
    raw = copy.deepcopy(CONFIG)
    raw["systems"] = [
        {
            "label": "(1) A + resample",
            "estimator": {"type": "deepspeech2", "checkpoint": "a.ckpt"},
            "defences": [{"type": "resample", "rate": 8000}],
        },
        {
            "label": "(1) A + resample, BPDA",
            "estimator": {"type": "deepspeech2", "checkpoint": "a.ckpt"},
            "defences": [{"type": "resample", "rate": 8000, "gradient": "bpda"}],
        },
    ]
    raw["transfer"] = []
    config = parse_config(raw, Path("/base"))
    cells = {(label, "pgd", 0.01): 50 for label in ("(1) A + resample", "(1) A + resample, BPDA")}
    assert by_check(evaluation_checks(config, rows_of(cells)))["c"].status == PASSED
    # the true gradient doing worse than BPDA: a weak or masked gradient, flagged
    weaker = {**cells, ("(1) A + resample", "pgd", 0.01): 20}
    result = by_check(evaluation_checks(config, rows_of(weaker)))["c"]
    assert result.status == FAILED and "(1) A + resample | pgd | 0.01" in result.cells
