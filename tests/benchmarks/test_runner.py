import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from art_asr_ext.benchmark import dry_run_report, load_config, run_benchmark
from art_asr_ext.benchmark.config import ConfigError
from art_asr_ext.benchmark.registry import ATTACKS
from tests.benchmarks.helpers import MINI_CELLS, REPO, mini_config_dict, read_csv, write_config


def run(config_path, out, **kwargs):
    return run_benchmark(load_config(config_path), out, progress=False, threads=1, plot=False, **kwargs)


def assert_same_results(out, reference):
    """Same table1.csv byte for byte, and same utterances.csv except the wall-clock `seconds` column."""
    assert (out / "table1.csv").read_text() == (reference / "table1.csv").read_text()
    assert read_csv(out / "utterances.csv", drop=("seconds",)) == read_csv(reference / "utterances.csv", ("seconds",))


def assert_no_duplicates(out):
    rows = read_csv(out / "utterances.csv")
    keys = Counter((r["row"], r["attack"], r["eps"], r["utterance_id"]) for r in rows)
    assert len(rows) == MINI_CELLS * 2 and max(keys.values()) == 1


def test_uninterrupted_run_fills_every_cell(uninterrupted):
    out, summary = uninterrupted
    assert len(summary.computed) == MINI_CELLS and not summary.failed and not summary.pending
    assert_no_duplicates(out)
    table = read_csv(out / "table1.csv")
    assert [r["System"] for r in table] == ["(1) Tiny", "(2) Tiny + RS", "Transfer attack: (1) + attack from (2)"]
    assert table[0]["Imperceptible GT"] and not table[1]["Imperceptible GT"]  # (2) has no imperceptible attack
    assert table[2]["Clean"] == table[0]["Clean"] and table[2]["PGD 0.01"] and not table[2]["Imperceptible TGT"]
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["seed"] == 3 and run_json["invocation"]["status"] == "finished"
    assert {"torch", "adversarial-robustness-toolbox", "espnet", "python"} <= set(run_json["versions"])
    assert "Finished (1) Tiny | clean | 0.0" in (out / "run.log").read_text()


def test_same_config_and_seed_give_identical_csvs(uninterrupted, mini_config_path, tmp_path):
    run(mini_config_path, tmp_path)
    assert_same_results(tmp_path, uninterrupted[0])


def test_rerun_skips_finished_cells_and_a_stopped_run_resumes(uninterrupted, mini_config_path, tmp_path):
    first = run(mini_config_path, tmp_path, max_cells=3)
    assert len(first.computed) == 3 and len(first.pending) == MINI_CELLS - 3
    assert len(read_csv(tmp_path / "utterances.csv")) == 3 * 2  # results so far are already written
    early_media = {path: path.stat().st_mtime_ns for path in (tmp_path / "report").rglob("*") if path.is_file()}
    second = run(mini_config_path, tmp_path)
    assert len(second.skipped) == 3 and len(second.computed) == MINI_CELLS - 3
    third = run(mini_config_path, tmp_path)
    assert len(third.skipped) == MINI_CELLS and not third.computed
    assert_same_results(tmp_path, uninterrupted[0])
    assert_no_duplicates(tmp_path)
    # The report keeps the audio of the cells of the first run: saved when they ran, never rewritten.
    assert early_media and all(path.stat().st_mtime_ns == mtime for path, mtime in early_media.items())
    page = (tmp_path / "report.html").read_text()
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(records) == MINI_CELLS and all(len(record["report_media"]) == 2 for record in records)
    linked = {
        entry[kind] for r in records for entry in r["report_media"] for kind in ("clean", "adversarial", "defended")
    }
    assert {path.relative_to(tmp_path).as_posix() for path in early_media if path.suffix == ".opus"} <= linked
    assert all(f'src="{name}"' in page and (tmp_path / name).is_file() for name in linked - {None})


def test_killed_run_loses_at_most_the_cell_in_flight(uninterrupted, mini_config_path, tmp_path):
    command = [sys.executable, str(REPO / "benchmarks" / "run.py"), "--config", str(mini_config_path)]
    command += ["--out", str(tmp_path), "--threads", "1", "--no-progress", "--no-plot"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = tmp_path / "results.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = results.read_text().count("\n")
    assert 1 <= finished < MINI_CELLS, "the run was not killed mid-way"
    with open(results, "a") as file:
        file.write('{"key": "(1) Tiny | pgd | 0.01", "status": "o')  # as if killed in the middle of a write
    summary = run(mini_config_path, tmp_path)
    assert len(summary.skipped) == finished and len(summary.computed) == MINI_CELLS - finished
    assert_same_results(tmp_path, uninterrupted[0])
    assert_no_duplicates(tmp_path)


def test_a_failing_cell_is_recorded_and_the_rest_complete(uninterrupted, mini_config_path, tmp_path, monkeypatch):
    pgd = ATTACKS["pgd"]

    def failing(cell, *args, **kwargs):
        if cell.system == "(2) Tiny + RS":
            raise RuntimeError("injected failure")
        return pgd.build(cell, *args, **kwargs)

    monkeypatch.setitem(ATTACKS, "pgd", dataclasses.replace(pgd, build=failing))
    summary = run(mini_config_path, tmp_path)
    source, transfer = "(2) Tiny + RS | pgd | 0.01", "Transfer attack: (1) + attack from (2) | pgd | 0.01"
    assert set(summary.failed) == {source, transfer}  # the transfer cell needs the failed source cell
    assert summary.failed[source] == "RuntimeError: injected failure"
    assert "Source cell '(2) Tiny + RS | pgd | 0.01' failed" in summary.failed[transfer]
    assert len(summary.computed) == MINI_CELLS - 2
    failures = read_csv(tmp_path / "failures.csv")
    assert {f["key"] for f in failures} == {source, transfer}
    table = read_csv(tmp_path / "table1.csv")
    assert table[1]["PGD 0.01"] == "" and table[1]["FGSM 0.01"] != "" and table[0]["PGD 0.01"] != ""
    assert "Failed cells" in (tmp_path / "table1.md").read_text()
    # The next run retries the failed cells only, and the outputs match an uninterrupted run.
    monkeypatch.setitem(ATTACKS, "pgd", pgd)
    rerun = run(mini_config_path, tmp_path)
    assert set(rerun.computed) == {source, transfer} and not rerun.failed
    assert_same_results(tmp_path, uninterrupted[0])
    assert read_csv(tmp_path / "failures.csv") == []


def test_a_system_that_cannot_be_built_fails_its_cells_only(tmp_path):
    config = mini_config_dict()
    config["systems"][1]["defences"] = [{"type": "vocoder", "path": str(tmp_path / "vocoder.pt")}]
    config["transfer"] = []
    (tmp_path / "vocoder.pt").write_bytes(b"not a checkpoint")
    path = write_config(tmp_path, config)
    summary = run(path, tmp_path / "out")
    assert len(summary.failed) == 3 and all(key.startswith("(2)") for key in summary.failed)
    assert all("Building system '(2) Tiny + RS' failed" in message for message in summary.failed.values())
    assert len(summary.computed) == 4


def test_config_change_recomputes_only_the_affected_cells(uninterrupted, tmp_path):
    out = tmp_path / "out"
    config = mini_config_dict()
    run(write_config(tmp_path, config), out, max_cells=MINI_CELLS)
    config["systems"][1]["defences"][0]["sigma"] = 0.02
    summary = run(write_config(tmp_path, config), out)
    # (2)'s own 3 cells and the 2 transfer cells made from them
    assert len(summary.computed) == 5 and len(summary.skipped) == 4
    assert_no_duplicates(out)


def test_missing_files_stop_the_run_before_it_starts(tmp_path):
    config = mini_config_dict()
    config["systems"][0]["estimator"] = {"type": "deepspeech2", "checkpoint": "FILL_ME/ds2.ckpt"}
    path = write_config(tmp_path, config)
    with pytest.raises(ConfigError, match=r"systems\[0\].estimator.checkpoint: placeholder"):
        run(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_dry_run_prints_the_grid_status_and_cost(uninterrupted, mini_config_path):
    out, _ = uninterrupted
    report = dry_run_report(load_config(mini_config_path), out)
    assert "9 cells" in report and "2.0 s of audio" in report
    assert report.count(" done ") == MINI_CELLS
    fresh = dry_run_report(load_config(mini_config_path), out / "absent")
    assert fresh.count(" pending ") == MINI_CELLS
    # per utterance: FGSM 1 + PGD 2 + imperceptible 1 + 1 on (1); FGSM 1 + PGD 2 on (2): 8 forward+backward passes
    assert "8 forward+backward and 9 forward passes" in fresh and not (out / "absent").exists()


def test_the_estimate_times_each_pending_system_and_projects_the_wall_time(uninterrupted, mini_config_path):
    import re

    from art_asr_ext.benchmark.dry_run import projected_wall_time

    out, _ = uninterrupted
    report = dry_run_report(load_config(mini_config_path), out / "absent", estimate=True, workers=(1, 2))
    seconds = [float(found) for found in re.findall(r" pending +\d+ +\d+ +([0-9.]+)$", report, re.MULTILINE)]
    assert len(seconds) == MINI_CELLS and all(value >= 0 for value in seconds) and sum(seconds) > 0
    assert "(1) Tiny: build" in report and "(2) Tiny + RS: build" in report and "forward+backward 0." in report
    one, two = (float(re.search(rf"on {n} workers?: ([0-9.]+) s", report).group(1)) for n in (1, 2))
    assert one >= sum(seconds) - 0.1 * MINI_CELLS and two < one
    # Every cell finished: nothing to time, nothing to run.
    assert "Projected wall time on 2 workers: 0.0 s" in dry_run_report(load_config(mini_config_path), out, True)
    # Longest first on 2 workers, a system's build paid once per worker that runs it.
    costs, systems = {"a": 3.0, "b": 2.0, "c": 2.0}, {"a": "x", "b": "x", "c": "y"}
    assert projected_wall_time(costs, systems, {"x": 1.0, "y": 0.5}, 2) == 5.5  # a: 1 + 3; b: 1 + 2, then c: 0.5 + 2


def test_a_retrained_checkpoint_at_the_same_path_changes_the_fingerprint(tmp_path):
    from art_asr_ext.benchmark.fingerprint import content_digest

    model_dir = tmp_path / "model"
    (model_dir / "exp").mkdir(parents=True)
    (model_dir / "exp" / "weights.pth").write_bytes(b"old weights")
    (model_dir / "meta.yaml").write_text("files: {}\n")
    before = content_digest(model_dir)
    assert before == content_digest(model_dir) and content_digest(None) is None
    (model_dir / "exp" / "weights.pth").write_bytes(b"new weights")
    assert content_digest(model_dir) != before
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"a")
    first = content_digest(checkpoint)
    checkpoint.write_bytes(b"b")
    assert content_digest(checkpoint) != first


def test_serial_order_builds_each_system_once_except_targets_of_later_sources():
    from itertools import groupby

    from art_asr_ext.benchmark.grid import build_grid
    from art_asr_ext.benchmark.presets import preset_path
    from art_asr_ext.benchmark.runner import serial_order

    config = load_config(preset_path("quick"))
    grid = build_grid(config)
    order = serial_order(config, list(reversed(grid)))
    assert sorted(c.key for c in order) == sorted(c.key for c in grid)
    position = {cell.key: i for i, cell in enumerate(order)}
    assert all(position[c.source_key] < position[c.key] for c in order if c.is_transfer)  # examples made first
    builds = [system for system, _ in groupby(c.system for c in order)]
    # (8) -> (1) is the quick preset's one transfer whose source comes after its target: (1) is built again for it.
    assert builds == [s.label for s in config.systems] + ["(1) DeepSpeech 2"]


def test_a_machine_resolved_precision_never_hides_that_two_rows_are_one_defence(tmp_path, monkeypatch):
    # On bf16 matrix units `precision: auto` resolves to bf16 against BPDA and to float32 against a white-box attacker;
    # the cells run that way, but check (c) compares the two attackers of the defence as the config gives it.
    from art_asr_ext.utils import environment

    monkeypatch.setattr(environment, "cpu_has_bf16_matmul", lambda: True)
    config = mini_config_dict()
    config["attacks"] = {"fgsm": {"eps": [0.01]}}
    config["systems"][0].pop("imperceptible")
    vocoder = {"type": "vocoder", "random_init": {"seed": 0}}
    config["systems"] = [
        {**config["systems"][0], "label": f"(5) Tiny + WaveGAN{suffix}", "defences": [{**vocoder, "mode": mode}]}
        for suffix, mode in (("", "black-box"), (", white-box", "white-box"))
    ]
    config["transfer"] = []
    out = tmp_path / "out"
    summary = run(write_config(tmp_path, config), out)
    assert len(summary.computed) == 4 and not summary.failed
    checks = {check["check"]: check for check in json.loads((out / "checks.json").read_text())["checks"]}
    assert checks["c"]["compared"] == 1
