"""
Per-system attack settings (`systems[i].attack_overrides`), validated like every other key, reaching the cells and
their fingerprints; and `paper_table1` with the study's settings per system, shown by `--dry-run`.
"""

import copy
import re
from pathlib import Path

import pytest
import yaml

from art_asr_ext.benchmark import dry_run_report
from art_asr_ext.benchmark.config import ConfigError, parse_config
from art_asr_ext.benchmark.grid import build_grid
from art_asr_ext.benchmark.presets import EMBEDDED_SET, MODELS_DIR, preset_path
from tests.benchmarks.test_config import BASE


def _parse(overrides, system=0, **extra):
    raw = copy.deepcopy(BASE)
    raw["systems"][system]["attack_overrides"] = overrides
    raw["systems"][system].update(extra)
    return parse_config(raw, Path("/base"))


def test_a_system_overrides_any_setting_of_an_attack_and_its_cells_carry_it():
    config = _parse({"pgd": {"max_iter": 20, "step_ratio": 0.1}, "imperceptible": {"learning_rate_2": 1.0e-7}})
    first, second = config.systems
    assert first.attacks["pgd"].settings["max_iter"] == 20 and second.attacks["pgd"].settings["max_iter"] == 7
    assert first.attacks["imperceptible"].settings["learning_rate_2"] == 1.0e-7
    assert first.attacks["imperceptible"].settings["max_iter_1"] == 2  # the section's, where not overridden
    cells = {cell.key: cell for cell in build_grid(config)}
    assert cells["(1) DS2 | pgd | 0.0001"].params == {"max_iter": 20, "step_ratio": 0.1}
    assert cells["(2) DS2 + RS | pgd | 0.0001"].params == {"max_iter": 7, "step_ratio": 0.2}
    # The transfer cell made from (2) keeps (2)'s settings.
    assert cells["Transfer attack: (1) + attack from (2) | pgd | 0.0001"].params["max_iter"] == 7


def test_an_override_moves_the_budget_of_an_attack_with_one_cell_per_system():
    config = _parse({"imperceptible": {"eps": 0.75}})
    assert [c.key for c in build_grid(config) if c.attack == "imperceptible"] == ["(1) DS2 | imperceptible | 0.75"]


@pytest.mark.parametrize(
    "overrides, extra, message",
    [
        ({"pgd": {"max_iter": 0}}, {}, r"^systems\[0\]\.attack_overrides\.pgd\.max_iter: must be >= 1. Found: 0"),
        ({"pgd": {"eps": [0.1]}}, {}, r"^systems\[0\]\.attack_overrides\.pgd\.eps: unknown key"),
        ({"pgd": {"max_iter": [7, 50]}}, {}, r"^systems\[0\]\.attack_overrides\.pgd\.max_iter: takes one value"),
        ({"pgd_snr": {"max_iter": 5}}, {}, r"^systems\[0\]\.attack_overrides\.pgd_snr: overrides an attack the config"),
        ({"cw": {}}, {}, r"^systems\[0\]\.attack_overrides\.cw: unknown key"),
        ({"imperceptible": {"eps": -1}}, {}, r"^systems\[0\]\.attack_overrides\.imperceptible\.eps: must be > 0"),
        (
            {"imperceptible": {"eps": 0.1}},
            {"imperceptible": {"eps": 0.2}},
            r"^systems\[0\]\.attack_overrides\.imperceptible: overrides what systems\[0\]\.imperceptible sets",
        ),
        ([], {}, r"^systems\[0\]\.attack_overrides: must be a mapping"),
    ],
)
def test_bad_overrides_name_their_key(overrides, extra, message):
    with pytest.raises(ConfigError, match=message):
        _parse(overrides, **extra)


def test_a_black_box_system_takes_no_override():
    raw = copy.deepcopy(BASE)
    raw["systems"].append({"label": "PS", "estimator": {"type": "pocketsphinx"}, "attack_overrides": {"pgd": {}}})
    with pytest.raises(ConfigError, match=r"^systems\[2\]\.attack_overrides: a pocketsphinx system is black-box"):
        parse_config(raw, Path("/base"))


def _paper_table1_on_embedded_models(tmp_path: Path) -> Path:
    """paper_table1.yaml with its FILL_ME paths replaced by the embedded models and evaluation set."""
    text = preset_path("paper_table1").read_text()
    replacements = {
        "FILL_ME/LibriSpeech/test-clean": str(EMBEDDED_SET),
        "FILL_ME/deepspeech2_librispeech_rs_aug.ckpt": str(MODELS_DIR / "deepspeech2_rs_aug" / "model.ckpt"),
        "FILL_ME/deepspeech2_librispeech.ckpt": str(MODELS_DIR / "deepspeech2_baseline" / "model.ckpt"),
        "FILL_ME/espnet_librispeech_transformer_rs_aug": str(MODELS_DIR / "transformer_rs_aug"),
        "FILL_ME/espnet_librispeech_transformer_no_label_smoothing": str(MODELS_DIR / "transformer_no_lsm"),
        "FILL_ME/espnet_librispeech_transformer": str(MODELS_DIR / "transformer_baseline"),
        "FILL_ME/parallel_wavegan_librispeech": "null",
    }
    for placeholder, path in replacements.items():
        text = text.replace(placeholder, path)
    raw = yaml.safe_load(text.replace("path: null", "random_init: {seed: 0}"))
    assert "FILL_ME" not in yaml.safe_dump(raw)
    raw["targets"]["pool"] = str(preset_path("paper_table1").parent / raw["targets"]["pool"])
    raw["data"]["max_utterances"] = 2
    path = tmp_path / "paper_table1.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_paper_table1_on_the_embedded_models_dry_runs_with_the_studys_imperceptible_settings(tmp_path):
    from art_asr_ext.benchmark.config import load_config, missing_files

    config = load_config(_paper_table1_on_embedded_models(tmp_path))
    assert missing_files(config) == []
    report = dry_run_report(config)
    settings = dict(re.findall(r"^  (\(\d+\) [^:]+): imperceptible: (.*)$", report, flags=re.M))
    deepspeech2 = "eps 0.01, max_iter_1 100, max_iter_2 25, learning_rate_1 0.0008, learning_rate_2 8e-07, "
    deepspeech2 += "decrease_factor_eps 0.5"
    for row in ("(1) DeepSpeech 2", "(4) DeepSpeech 2 + RS-aug + RS", "(7) DeepSpeech 2 + RS-aug + WaveGAN + RS"):
        assert settings[row] == deepspeech2
    for row in ("(8) Transformer", "(14) Transformer + RS-aug + WaveGAN + RS"):
        assert settings[row].startswith("eps 0.75") and "learning_rate_2 1e-07" in settings[row]
        assert "learning_rate_1" not in settings[row]  # 1e-3, ART's default
    imperceptible = [c for c in build_grid(config) if c.attack == "imperceptible" and c.row == "(1) DeepSpeech 2"]
    assert imperceptible[0].eps == 0.01 and imperceptible[0].params["decrease_factor_eps"] == 0.5
    # FGSM is targeted, as in the study.
    assert all(c.targeted for c in build_grid(config) if c.attack == "fgsm")


@pytest.mark.parametrize(
    "defence, message",
    [
        ({"type": "mp3", "bitrate": 100}, r"defences\[0\]\.bitrate: must be one of \[16, 24, .*\]. Found: 100"),
        ({"type": "mp3", "eot_samples": 2}, r"defences\[0\]\.eot_samples: unknown key; expected one of \['bitrate', "),
        ({"type": "resample", "rate": 16000}, r"defences\[0\]\.rate: must be <= 15999. Found: 16000"),
        ({"type": "quantize", "bits": 1}, r"defences\[0\]\.bits: must be >= 2. Found: 1"),
        ({"type": "lowpass", "cutoff_hz": 8000}, r"defences\[0\]\.cutoff_hz: must be below half the sample rate, 8000"),
        ({"type": "lowpass", "order": 0}, r"defences\[0\]\.order: must be >= 1. Found: 0"),
    ],
)
def test_input_transform_defences_are_checked_like_every_key(defence, message):
    raw = copy.deepcopy(BASE)
    raw["systems"][1]["defences"] = [defence]
    with pytest.raises(ConfigError, match=r"^systems\[1\]\." + message):
        parse_config(raw, Path("/base"))


def test_input_transform_defences_parse_and_say_how_they_are_attacked():
    raw = copy.deepcopy(BASE)
    raw["systems"][1]["defences"] = [
        {"type": "mp3", "bitrate": 32},
        {"type": "resample", "rate": 8000},
        {"type": "quantize"},
        {"type": "lowpass", "cutoff_hz": 3000},
    ]
    config = parse_config(raw, Path("/base"))
    defences = config.systems[1].defences
    assert [(d.type, dict(d.settings)) for d in defences] == [
        ("mp3", {"bitrate": 32}),
        ("resample", {"rate": 8000, "gradient": "true-gradient"}),
        ("quantize", {"bits": 8}),
        ("lowpass", {"cutoff_hz": 3000.0, "order": 4, "gradient": "true-gradient"}),
    ]
    assert all(d.eot_samples == 1 for d in defences)  # deterministic: nothing to average
    report = dry_run_report(config)
    assert "(2) DS2 + RS: mp3 (BPDA) -> resample (true gradient) -> quantize (BPDA (straight-through)) -> " in report
