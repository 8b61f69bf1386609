"""
The attack registry: an attack added with one registry entry (and its implementation) shows up in the config, the
grid, the table header, the dry run, the run's tables and the report, with nothing else edited.
"""

import dataclasses
import inspect

import numpy as np
import pytest
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import ImperceptibleASRPyTorch

from art_asr_ext.benchmark import dry_run_report, run_benchmark
from art_asr_ext.benchmark.config import ConfigError, load_config
from art_asr_ext.benchmark.config.fields import setting
from art_asr_ext.benchmark.grid import build_grid
from art_asr_ext.benchmark.outputs.tables import table_layout
from art_asr_ext.benchmark.registry import (
    ATTACKS,
    IMPERCEPTIBLE_FROM_RUN,
    AttackSpec,
    ImperceptibleSettings,
    register_attack,
)
from art_asr_ext.utils.audio import to_object_array
from tests.benchmarks.helpers import mini_config_dict, read_csv, write_config


class ToyGain(EvasionAttack):
    """A toy attack for the test: every sample pushed away from zero by `eps`, `repeats` times (clipped to [-1, 1])."""

    attack_params = EvasionAttack.attack_params + ["eps", "repeats"]
    _estimator_requirements = ()

    def __init__(self, estimator, eps: float, repeats: int) -> None:
        super().__init__(estimator=estimator)
        self.eps, self.repeats = eps, repeats

    def generate(self, x, y=None, **kwargs):
        out = []
        for waveform in x:
            for _ in range(self.repeats):
                waveform = np.clip(waveform + self.eps * np.sign(waveform), -1.0, 1.0)
            out.append(np.asarray(waveform, dtype=np.float32))
        return to_object_array(out)


@dataclasses.dataclass(frozen=True)
class ToyGainSettings:
    """The toy attack's one setting."""

    repeats: int = setting(1, minimum=1, doc="how many times the gain is applied")


@pytest.fixture
def toy_attack():
    """The toy attack registered, as a new attack would be; removed again afterwards."""
    spec = register_attack(
        AttackSpec(
            key="toy_gain",
            title="Toy gain",
            settings=ToyGainSettings,
            build=lambda cell, estimator, batch_size, max_length, seed: ToyGain(estimator, cell.eps, **cell.params),
            passes=lambda params, eot_samples: {"forward_backward": 0, "forward": 1},
            stronger_with_budget=None,
            eot_axis=False,
        )
    )
    yield spec
    del ATTACKS[spec.key]


def _toy_config(tmp_path, **toy):
    raw = mini_config_dict()
    raw["attacks"]["toy_gain"] = {"eps": [0.001, 0.002], **toy}
    raw["systems"][1]["attacks"] = {"toy_gain": {"eps": [0.002]}}
    return load_config(write_config(tmp_path, raw))


def test_a_registered_attack_has_a_config_section_with_its_settings_checked(toy_attack, tmp_path):
    config = _toy_config(tmp_path, repeats=2)
    assert config.attacks.budgets("toy_gain") == (0.001, 0.002)
    assert dict(config.attacks.settings("toy_gain")) == {"repeats": 2}
    assert [system.budgets("toy_gain") for system in config.systems] == [(0.001, 0.002), (0.002,)]
    with pytest.raises(ConfigError, match=r"^attacks.toy_gain.repeats: must be >= 1. Found: 0$"):
        _toy_config(tmp_path, repeats=0)
    with pytest.raises(ConfigError, match=r"^attacks.toy_gain.gain: unknown key; expected one of \['eps', 'repeats'\]"):
        _toy_config(tmp_path, gain=3)


def test_a_registered_attack_gets_cells_columns_and_a_dry_run_cost(toy_attack, tmp_path):
    config = _toy_config(tmp_path, repeats=2)
    toy = [cell for cell in build_grid(config) if cell.attack == "toy_gain"]
    assert [cell.key for cell in toy] == [
        "(1) Tiny | toy_gain | 0.001",
        "(1) Tiny | toy_gain | 0.002",
        "(2) Tiny + RS | toy_gain | 0.002",
        "Transfer attack: (1) + attack from (2) | toy_gain | 0.002",
    ]
    assert all(cell.params == {"repeats": 2} and not cell.targeted for cell in toy)
    columns = table_layout(config).columns
    assert columns[-4:] == ["Toy gain 0.001", "Toy gain 0.002", "Imperceptible GT", "Imperceptible TGT"]
    report = dry_run_report(config)
    assert "(2) Tiny + RS | toy_gain | 0.002" in report
    line = next(line for line in report.splitlines() if line.startswith("(1) Tiny | toy_gain | 0.001"))
    assert line.split()[-2:] == ["0", "1"]  # its forward+backward and forward passes, from the registry entry


def test_a_registered_attack_runs_into_the_table_and_the_report(toy_attack, tmp_path):
    config = _toy_config(tmp_path, repeats=2)
    out = tmp_path / "out"
    summary = run_benchmark(config, out, progress=False, threads=1)
    assert not summary.failed
    table = read_csv(out / "table1.csv")
    assert table[0]["Toy gain 0.002"] != "" and table[1]["Toy gain 0.001"] == ""  # (2) takes only 0.002
    assert table[2]["Toy gain 0.002"] != ""  # the transfer row
    rows = [row for row in read_csv(out / "utterances.csv") if row["attack"] == "toy_gain"]
    assert {(row["row"], row["eps"]) for row in rows} == {
        ("(1) Tiny", "0.001"),
        ("(1) Tiny", "0.002"),
        ("(2) Tiny + RS", "0.002"),
        ("Transfer attack: (1) + attack from (2)", "0.002"),
    }
    assert all(float(row["linf"]) > 0 for row in rows)
    html = (out / "report.html").read_text()
    assert "Toy gain 0.001" in html and "Toy gain 0.002" in html


def test_an_attack_key_is_registered_once():
    with pytest.raises(ValueError, match="'pgd'"):
        register_attack(dataclasses.replace(ATTACKS["pgd"]))
    with pytest.raises(ValueError, match="'clean'"):
        register_attack(dataclasses.replace(ATTACKS["pgd"], key="clean"))


def test_the_imperceptible_settings_are_arts():
    """The registry states ART's settings and defaults once, for the config; ART is their source of truth."""
    parameters = inspect.signature(ImperceptibleASRPyTorch.__init__).parameters
    expected = {
        name: parameters[name].default
        for name in ImperceptibleASRPyTorch.attack_params
        if name not in IMPERCEPTIBLE_FROM_RUN and isinstance(parameters[name].default, (int, float))
    }
    declared = {field.name: field.default for field in dataclasses.fields(ImperceptibleSettings)}
    assert declared == expected
    assert {f.name: f.type for f in dataclasses.fields(ImperceptibleSettings)} == {
        name: type(value) for name, value in expected.items()
    }
