"""
Fault injection on the CI preset through the command line, in real subprocesses: SIGKILL at random moments (then
resume), a full output directory and a read-only one. Nothing finished is lost, no file is left torn, and the final
tables match an uninterrupted run's.

The full and read-only directories are small tmpfs mounts (`mount -t tmpfs`), which needs root with CAP_SYS_ADMIN;
without it those two tests are skipped, saying so.
"""

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest

from art_asr_ext.benchmark.grid import build_grid
from art_asr_ext.benchmark.config import load_config
from art_asr_ext.benchmark.presets import preset_path
from tests.benchmarks.helpers import REPO, read_csv

CELLS = len(build_grid(load_config(preset_path("ci_tiny"))))


def _command(out):
    # `-m` from the checkout: the package under test, whatever is installed.
    return [sys.executable, "-m", "art_asr_ext.benchmark", "--preset", "ci_tiny", "--out", str(out)] + [
        "--threads",
        "1",
        "--no-progress",
        "--no-plot",
    ]


def _run(out, timeout=300):
    return subprocess.run(_command(out), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def _lines(path):
    return path.read_text().count("\n") if path.exists() else 0


def assert_same_tables(out, reference):
    assert (out / "table1.csv").read_text() == (reference / "table1.csv").read_text()
    assert read_csv(out / "utterances.csv", ("seconds",)) == read_csv(reference / "utterances.csv", ("seconds",))


def assert_nothing_torn(out, killed=False):
    """
    Every record is a whole JSON line, every output parses, and no temporary file is left behind. Just after a
    SIGKILL, the last line and temporary files may be the kill's (the next run drops them); the rest must be whole.
    """
    results = out / "results.jsonl"
    if results.exists():
        data = results.read_bytes()
        assert killed or not data or data.endswith(b"\n")
        for line in data[: data.rfind(b"\n") + 1].decode().splitlines():
            json.loads(line)
    for name in ("table1.csv", "utterances.csv", "failures.csv"):
        if (out / name).exists():
            read_csv(out / name)
    if (out / "run.json").exists():
        json.loads((out / "run.json").read_text())
    for archive in (out / "adversarial").glob("*.npz") if (out / "adversarial").is_dir() else []:
        with np.load(archive) as arrays:
            assert all(arrays[name].size for name in arrays.files)
    assert killed or not [path.name for path in out.rglob("*.tmp")]


@pytest.fixture(scope="module")
def reference(ci_tiny_run):
    """The uninterrupted run of the preset (the session's, shared with test_ci_tiny.py and the report's tests)."""
    out, result = ci_tiny_run
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_sigkill_at_five_random_moments_then_resume(reference, tmp_path):
    rng = random.Random(20210331)
    # Kill once the run has finished k cells (5 distinct k across the run), a random fraction of a cell later, so
    # kills land in the middle of attacks and of writes alike.
    targets = sorted(rng.sample(range(1, CELLS - 3), 5))
    results = tmp_path / "results.jsonl"
    kills = []
    for target in targets:
        process = subprocess.Popen(_command(tmp_path), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while process.poll() is None and _lines(results) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.25))
        alive = process.poll() is None
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate()
        assert alive, f"the run ended before the kill at {target} cells: {stderr.decode()[-2000:]}"
        kills.append(_lines(results))
        assert_nothing_torn(tmp_path, killed=True)
    assert kills == sorted(kills) and kills[-1] < CELLS, kills
    final = _run(tmp_path)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_same_tables(tmp_path, reference)
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert all(record["status"] == "ok" for record in records)
    assert Counter(record["key"] for record in records) == {key: 1 for key in {r["key"] for r in records}}
    assert len(records) == CELLS
    assert_nothing_torn(tmp_path)


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs; yield a function that remounts it with other options."""
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()

    def mount(*options):
        command = ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(mountpoint)]
        if options[0] == "remount":
            command = ["mount", "-o", ",".join(options), str(mountpoint)]
        return subprocess.run(command, capture_output=True, text=True)

    result = mount("size=600k")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {result.stderr.strip()}")
    try:
        yield mountpoint, mount
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)


def test_a_full_output_directory_stops_with_a_clear_error_and_resumes(reference, tmpfs):
    out, mount = tmpfs
    # 600 KiB holds the tables and the first of the transfer source's adversarial examples (256 KiB each), not all.
    result = _run(out)
    assert result.returncode == 2, result.stderr[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: Cannot write to the output directory {out}: No space left on device")
    assert f"No space left on device ({out}/" in error  # names the file it could not write
    assert "rerun the same command to resume" in error and "Traceback" not in result.stderr
    finished = _lines(out / "results.jsonl")
    assert 0 < finished < CELLS  # it filled up mid-run
    assert_nothing_torn(out)
    assert mount("remount", "size=64m").returncode == 0
    resumed = _run(out)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_tables(out, reference)
    assert _lines(out / "results.jsonl") == CELLS
    assert_nothing_torn(out)


def test_a_read_only_output_directory_stops_with_a_clear_error_and_changes_nothing(tmpfs):
    out, mount = tmpfs
    assert mount("remount", "size=64m").returncode == 0
    subprocess.run(_command(out) + ["--max-cells", "3"], cwd=REPO, check=True, capture_output=True, timeout=300)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert mount("remount", "ro").returncode == 0
    result = _run(out)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.startswith(f"error: Cannot write to the output directory {out}: Read-only file system")
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before
    assert _lines(out / "results.jsonl") == 3
