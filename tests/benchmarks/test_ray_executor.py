"""
The Ray executor on a real local Ray cluster (``ray start --head`` on 127.0.0.1 with 2 CPUs): the same table as the
serial runner, a killed worker's cell recorded as a failure and retried, and transfer cells that get their source's
examples from the driver (workers never read ``--out``). The tests stop only the processes of the cluster they started,
never another Ray cluster on the machine.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, NamedTuple

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


class RayCluster(NamedTuple):
    """A Ray cluster started by :func:`local_ray_cluster`."""

    #: `127.0.0.1:PORT` of its head.
    address: str
    #: The session id of its processes (the pid of the `ray start` that started them).
    session: int


def session_processes(session: int) -> List[int]:
    """
    :param session: A session id.
    :return: The pids of the live processes in that session (zombies, already dead, left out).
    """
    listing = subprocess.run(["ps", "-eo", "pid=,sid=,stat="], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in listing.splitlines()]
    return [int(pid) for pid, sid, stat in rows if int(sid) == session and not stat.startswith("Z")]


def _kill_session(session: int, timeout: float = 60.0) -> None:
    """
    SIGKILL every process of a session until none is left (a raylet may start a worker while its session is killed).
    SIGKILL, as `ray stop --force` sends, because the GCS and the raylet outlive a SIGTERM by many seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        pids = session_processes(session)
        if not pids:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"Ray processes {pids} of session {session} outlived SIGKILL for {timeout:g} s")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # it exited since the listing
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


@contextlib.contextmanager
def local_ray_cluster(num_cpus: int = 2):
    """
    A real one-node Ray cluster on 127.0.0.1 with no dashboard, stopped on exit by killing its processes alone: not
    with `ray stop`, which stops every Ray process on the machine, a user's own cluster among them.

    :param num_cpus: The CPUs it offers.
    :return: Its :class:`RayCluster`.
    """
    port = _free_port()
    # Its own temporary directory, so that it leaves a user's /tmp/ray (their session and the address file
    # `--ray-address auto` reads) as it is; short, as Ray's Unix sockets inside it must stay under 108 characters.
    temp_dir = tempfile.mkdtemp(prefix="ray-test-")
    command = [str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port)]
    command += ["--num-cpus", str(num_cpus), "--include-dashboard", "false", "--disable-usage-stats"]
    command += ["--temp-dir", temp_dir]
    # A session of its own: every process of the cluster stays in it (Ray gives each worker a process group of its
    # own, so the process group would miss the workers), and no other process is in it.
    started = subprocess.Popen(
        command, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, stderr = started.communicate(timeout=120)
        assert started.returncode == 0, stderr[-3000:]
        yield RayCluster(f"127.0.0.1:{port}", started.pid)
    finally:
        _kill_session(started.pid)
        started.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_cluster():
    """The tests' Ray cluster (:func:`local_ray_cluster`, 2 CPUs)."""
    with local_ray_cluster() as cluster:
        yield cluster


def test_stopping_the_tests_cluster_leaves_another_cluster_running():
    # A user's cluster, already running on this machine (on a port of its own) when the tests start and stop theirs.
    with local_ray_cluster(num_cpus=1) as users:
        processes = session_processes(users.session)
        assert processes
        with local_ray_cluster(num_cpus=1) as tests:
            assert tests.session != users.session and tests.address != users.address
        assert session_processes(tests.session) == []  # the tests' cluster is stopped
        # Every process of the user's cluster still runs, and its head still answers.
        assert set(processes) <= set(session_processes(users.session))
        status = subprocess.run(
            [str(RAY), "status", "--address", users.address],
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert status.returncode == 0, status.stderr[-3000:]


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
    result = _run("ray_out", ray_cluster.address, "--preset", "ci_tiny", cwd=tmp_path)
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


def _kill_a_running_cell(process, session: int, timeout=300.0) -> int:
    """SIGKILL the first worker of the tests' cluster (its `session`) seen running a cell; its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        listing = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True, text=True).stdout
        for line in listing.splitlines():
            pid, sid, *title = line.split(maxsplit=2)
            # Only in the tests' cluster: a worker of another cluster on the machine is not the tests' to kill.
            if int(sid) == session and title and title[0].startswith(TASK_TITLE):
                os.kill(int(pid), signal.SIGKILL)
                return int(pid)
        time.sleep(0.02)
    pytest.fail("no Ray worker was seen running a cell")


def test_a_killed_worker_leaves_a_failure_that_the_rerun_retries(ray_cluster, ci_tiny_run, tmp_path):
    serial, _ = ci_tiny_run
    config, out = _small_config(tmp_path), tmp_path / "out"
    process = _run(out, ray_cluster.address, "--config", str(config), wait=False)
    _kill_a_running_cell(process, ray_cluster.session)
    _, stderr = process.communicate(timeout=400)
    assert process.returncode == 1, stderr.decode()[-3000:]  # 1: some cells failed
    failures = read_csv(out / "failures.csv")
    assert failures and any("died" in failure["error"].lower() for failure in failures), failures

    rerun = _run(out, ray_cluster.address, "--config", str(config))
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
