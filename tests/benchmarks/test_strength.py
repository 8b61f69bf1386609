"""
The attack-strength axis: a list of PGD `max_iter` and of a defence's `eot_samples` add cells that fill strength.csv
(and checks (a) and (c)) but leave Table I as it was; random restarts run through RandomRestartProjectedGradientDescent;
bad settings name their key.
"""

import copy
import json
from pathlib import Path

import pytest

from art_asr_ext.attacks.evasion import RandomRestartProjectedGradientDescent
from art_asr_ext.benchmark import load_config, run_benchmark
from art_asr_ext.benchmark.grid import build_grid
from art_asr_ext.benchmark.registry import ATTACKS
from art_asr_ext.benchmark.config import ConfigError, parse_config
from art_asr_ext.benchmark.systems import build_system, set_eot_samples
from tests.benchmarks.helpers import mini_config_dict, read_csv, write_config


def strength_config():
    config = mini_config_dict()
    config["systems"] = [copy.deepcopy(config["systems"][1])]  # (2) Tiny + RS
    config["systems"][0]["defences"][0]["eot_samples"] = [1, 3]
    config["attacks"]["pgd"]["max_iter"] = [1, 3]
    config["transfer"] = []
    return config


def plain_config():
    config = strength_config()
    config["systems"][0]["defences"][0]["eot_samples"] = 1
    config["attacks"]["pgd"]["max_iter"] = 1
    return config


def run(tmp_path: Path, name: str, config: dict) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    out = directory / "out"
    run_benchmark(load_config(write_config(directory, config)), out, progress=False, threads=1, plot=True)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("strength")
    return run(tmp_path, "strength", strength_config()), run(tmp_path, "plain", plain_config())


def test_strength_cells_fill_strength_csv_and_leave_table_one_unchanged(runs):
    strength, plain = runs
    assert (strength / "table1.csv").read_text() == (plain / "table1.csv").read_text()
    assert not (plain / "strength.csv").exists()
    lines = read_csv(strength / "strength.csv")
    found = [(r["attack"], r["strength"], r["max_iter"], r["eot_samples"]) for r in lines]
    assert found == [
        ("fgsm", "", "1", "1"),
        ("fgsm", "eot_samples=3", "1", "3"),
        ("pgd", "", "1", "1"),
        ("pgd", "max_iter=3", "3", "1"),
        ("pgd", "eot_samples=3", "1", "3"),
    ]
    assert all(r["utterances"] == "2" and 0.0 <= float(r["gt_wer"]) for r in lines)
    # The Table I lines of strength.csv are Table I's values.
    table = read_csv(strength / "table1.csv")[0]
    assert float(lines[0]["gt_wer"]) == float(table["FGSM 0.01"]) and float(lines[2]["gt_wer"]) == float(
        table["PGD 0.01"]
    )
    utterances = read_csv(strength / "utterances.csv")
    assert {r["strength"] for r in utterances} == {"", "max_iter=3", "eot_samples=3"}
    assert (strength / "strength.png").stat().st_size > 1000

    # The report's heatmap is Table I (strength cells do not overwrite their Table I cells), and links the figure.
    def heatmap(out):
        page = (out / "report.html").read_text()
        return page[page.index('<h2 id="table">') : page.index('<h2 id="figures">')]

    assert heatmap(strength) == heatmap(plain) and heatmap(plain).count("data-column") == 3  # Clean, FGSM, PGD
    assert 'src="strength.png"' in (strength / "report.html").read_text()


def test_checks_compare_along_the_strength_axis(runs):
    strength, plain = runs
    checks = {c["check"]: c for c in json.loads((strength / "checks.json").read_text())["checks"]}
    plain_checks = {c["check"]: c for c in json.loads((plain / "checks.json").read_text())["checks"]}
    assert checks["a"]["compared"] == plain_checks["a"]["compared"] + 1  # PGD 1 -> 3 iterations
    assert checks["c"]["compared"] == 2 and plain_checks["c"]["status"] == "not applicable"  # FGSM and PGD, EOT 1 -> 3
    assert checks["c"]["status"] in ("passed", "failed")


def test_each_cell_sets_its_eot_draws_on_the_defence(tmp_path):
    config = load_config(write_config(tmp_path, strength_config()))
    system = config.systems[0]
    estimator = build_system(system, "cpu", 0)
    defence = estimator.preprocessing_operations[0]
    cells = {cell.key: cell for cell in build_grid(config)}
    set_eot_samples(estimator, system, cells["(2) Tiny + RS | pgd | 0.01 | eot_samples=3"])
    assert defence.eot_samples == 3 and estimator._eot_samples() == 3
    set_eot_samples(estimator, system, cells["(2) Tiny + RS | pgd | 0.01"])
    assert defence.eot_samples == 1


def test_random_restarts_use_the_restart_attack(tmp_path):
    raw = strength_config()
    raw["attacks"]["pgd"]["num_random_init"] = 2
    config = load_config(write_config(tmp_path, raw))
    pgd = [cell for cell in build_grid(config) if cell.attack == "pgd"]
    assert all(cell.params["num_random_init"] == 2 for cell in pgd)
    estimator = build_system(config.systems[0], "cpu", 0)
    attack = ATTACKS["pgd"].build(pgd[0], estimator, batch_size=2, max_length=16000, seed=0)
    assert isinstance(attack, RandomRestartProjectedGradientDescent) and attack.num_random_init == 2
    # Without restarts the cells keep their earlier settings (and so their fingerprints).
    plain = load_config(write_config(tmp_path, plain_config()))
    assert all("num_random_init" not in cell.params for cell in build_grid(plain) if cell.attack == "pgd")


def test_strength_cells_are_not_transferred(tmp_path):
    raw = mini_config_dict()
    raw["attacks"]["pgd"]["max_iter"] = [2, 4]
    config = load_config(write_config(tmp_path, raw))
    grid = build_grid(config)
    assert [c.key for c in grid if c.strength] == [
        "(1) Tiny | pgd | 0.01 | max_iter=4",
        "(2) Tiny + RS | pgd | 0.01 | max_iter=4",
    ]
    assert not any(c.strength for c in grid if c.is_transfer)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["attacks"]["pgd"].update(max_iter=[3, 3]), r"^attacks.pgd.max_iter: must not repeat"),
        (lambda c: c["attacks"]["pgd"].update(max_iter=[]), r"^attacks.pgd.max_iter: must not be empty"),
        (lambda c: c["attacks"]["pgd"].update(max_iter=[7, 0]), r"^attacks.pgd.max_iter\[1\]: must be >= 1"),
        (lambda c: c["attacks"]["pgd"].update(num_random_init=-1), r"^attacks.pgd.num_random_init: must be >= 0"),
        (lambda c: c["attacks"]["pgd"].update(num_random_init=1000), r"^attacks.pgd.num_random_init: must be <= 100"),
        (
            lambda c: c["systems"][0]["defences"][0].update(eot_samples=[1, "16"]),
            r"^systems\[0\].defences\[0\].eot_samples\[1\]: must be an integer. Found: '16'",
        ),
        (
            lambda c: c["systems"][0]["defences"].append({"type": "rs", "sigma": 0.02, "eot_samples": [1, 2, 4]}),
            r"^systems\[0\].defences: every eot_samples list of one defence chain must be as long",
        ),
    ],
)
def test_bad_strength_settings_name_their_key(change, message):
    raw = strength_config()
    change(raw)
    with pytest.raises(ConfigError, match=message):
        parse_config(raw, Path("/base"))
