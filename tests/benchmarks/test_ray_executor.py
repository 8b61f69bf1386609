"""
The Ray executor on a real local Ray cluster (``ray start --head`` on 127.0.0.1 with 2 CPUs): the same table as the
serial runner, a killed worker's cell recorded as a failure and retried, and transfer cells that get their source's
examples from the driver (workers never read ``--out``).
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from art_asr_ext.benchmark.presets import preset_path
from tests.benchmarks.helpers import REPO, read_csv

pytest.importorskip("ray", reason="the Ray executor's tests need Ray: pip install 'art-asr-ext[ray]'")

RAY = Path(sys.executable).parent / "ray"
#: Ray titles a worker process after the actor method it runs: here, a cell.
TASK_TITLE = "ray::CellWorker.run_cell"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment():
    """
    This checkout first on the path (Ray's workers inherit the environment of `ray start`), no usage stats, and token
    authentication off for both the cluster and the driver: Ray 2.60 turns it on by itself wherever an earlier
    `ray.init()` left a token in ~/.ray, and a driver and a cluster that disagree on it cannot connect.
    """
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@pytest.fixture(scope="module")
def ray_cluster():
    """A real one-node Ray cluster on 127.0.0.1 with 2 CPUs and no dashboard; its address."""
    port = _free_port()
    command = [str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    command += ["--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"]
    started = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=120)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=_environment(), capture_output=True, timeout=120)


def _run(out, address, *options, cwd=REPO, timeout=400, wait=True):
    command = [sys.executable, "-m", "art_asr_ext.benchmark", *options, "--out", str(out), "--threads", "1"]
    command += ["--no-progress", "--executor", "ray", "--ray-address", address]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return subprocess.run(command, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=timeout)


def test_ci_tiny_on_ray_gives_the_serial_table(ray_cluster, ci_tiny_run, tmp_path):
    serial, serial_result = ci_tiny_run
    assert serial_result.returncode == 0, serial_result.stderr[-3000:]
    # A relative --out, resolved against the driver's directory: a worker that read or wrote it (for the transfer
    # row's source examples) would look in its own working directory and fail the transfer cells.
    result = _run("ray_out", ray_cluster, "--preset", "ci_tiny", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "ray_out"
    assert (out / "table1.csv").read_bytes() == (serial / "table1.csv").read_bytes()
    # Same rows in the same order (the tables sort them by row, attack and max-norm), apart from wall-clock time.
    assert read_csv(out / "utterances.csv", drop=("seconds",)) == read_csv(serial / "utterances.csv", drop=("seconds",))
    transfer = [row for row in read_csv(out / "utterances.csv") if row["row"].startswith("Transfer")]
    assert transfer and read_csv(out / "failures.csv") == []
    # The report's media, encoded by the workers and written by the driver: the same files, named by the content
    # they encode (an Ogg stream's serial number is random, so Opus bytes differ run to run; PNGs do not).
    media = {path.relative_to(out): path for path in (out / "report").rglob("*") if path.is_file()}
    expected = {path.relative_to(serial): path for path in (serial / "report").rglob("*") if path.is_file()}
    assert media and sorted(media) == sorted(expected)
    assert all(media[name].read_bytes() == expected[name].read_bytes() for name in media if name.suffix == ".png")
    assert '"executor": "ray (127.0.0.1:' in (out / "run.json").read_text()


def _small_config(tmp_path) -> Path:
    """Two systems of ci_tiny and its transfer row, FGSM and PGD at one max-norm: 8 short cells."""
    raw = yaml.safe_load(preset_path("ci_tiny").read_text())
    base = preset_path("ci_tiny").parent
    for section in ("data", "targets"):
        key = "librispeech" if section == "data" else "pool"
        raw[section][key] = str((base / raw[section][key]).resolve())
    raw["attacks"] = {"fgsm": {"eps": [0.01]}, "pgd": dict(raw["attacks"]["pgd"], eps=[0.01])}
    raw["systems"] = [s for s in raw["systems"] if s["label"].startswith(("(1)", "(8)"))]
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _kill_a_running_cell(process, timeout=300.0) -> int:
    """SIGKILL the first Ray worker seen running a cell; its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        listing = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True).stdout
        for line in listing.splitlines():
            pid, _, title = line.strip().partition(" ")
            if title.startswith(TASK_TITLE):
                os.kill(int(pid), signal.SIGKILL)
                return int(pid)
        time.sleep(0.02)
    pytest.fail("no Ray worker was seen running a cell")


def test_a_killed_worker_leaves_a_failure_that_the_rerun_retries(ray_cluster, ci_tiny_run, tmp_path):
    serial, _ = ci_tiny_run
    config, out = _small_config(tmp_path), tmp_path / "out"
    process = _run(out, ray_cluster, "--config", str(config), wait=False)
    _kill_a_running_cell(process)
    _, stderr = process.communicate(timeout=400)
    assert process.returncode == 1, stderr.decode()[-3000:]  # 1: some cells failed
    failures = read_csv(out / "failures.csv")
    assert failures and any("died" in failure["error"].lower() for failure in failures), failures

    rerun = _run(out, ray_cluster, "--config", str(config))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert read_csv(out / "failures.csv") == []
    assert f"Skipping {8 - len(failures)} finished cells." in (out / "run.log").read_text()
    # The same numbers as ci_tiny's serial run, row by row and column by column (the cells' seeds depend only on
    # the run's seed and the cell).
    expected = {row["System"]: row for row in read_csv(serial / "table1.csv")}
    table = read_csv(out / "table1.csv")
    labels = ["(1) DeepSpeech 2", "(8) DeepSpeech 2, other seed", "Transfer attack: (1) + attack from (8)"]
    assert [row["System"] for row in table] == labels
    for row in table:
        assert row == {column: expected[row["System"]][column] for column in row}
