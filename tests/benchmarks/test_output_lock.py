"""
One run per output directory: a second runner is refused while a live run holds `--out`, naming its pid, and the
lock of a run that died is taken over. The holder is a real runner process.
"""

import os
import signal
import subprocess
import sys
import time

from art_asr_ext.benchmark.cli import main
from tests.benchmarks.helpers import MINI_CELLS, REPO


def _arguments(config, out):
    return ["--config", str(config), "--out", str(out), "--threads", "1", "--no-progress", "--no-plot"]


def _wait_for_lock(lock, pid, process, seconds=180):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        if lock.exists() and lock.read_text().strip() == str(pid):
            return
        time.sleep(0.01)
    raise AssertionError(f"the runner (pid {pid}) never took the lock; exit status {process.poll()}")


def test_a_second_run_is_refused_and_a_dead_runs_lock_is_taken_over(mini_config_path, tmp_path, capsys):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "art_asr_ext.benchmark"] + _arguments(mini_config_path, out)
    holder = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_lock(out / ".lock", holder.pid, holder)
        os.kill(holder.pid, signal.SIGSTOP)  # alive and holding the lock, however fast the run would be
        before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
        assert main(_arguments(mini_config_path, out)) == 2
        error = capsys.readouterr().err
        assert f"in use by another run (pid {holder.pid}" in error and "Traceback" not in error
        assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before
        assert main(["--config", str(mini_config_path), "--out", str(out), "--dry-run"]) == 0  # reading is fine
        capsys.readouterr()
    finally:
        holder.kill()
        holder.wait()
    # The holder is dead; its pid is still in the lock file: the next run takes over and completes.
    assert (out / ".lock").read_text().strip() == str(holder.pid)
    assert main(_arguments(mini_config_path, out)) == 0
    log = (out / "run.log").read_text()
    assert f"Taking over the lock of {out} from pid {holder.pid} (no longer running)" in log
    assert (out / "results.jsonl").read_text().count("\n") <= MINI_CELLS
    assert (out / ".lock").read_text() == ""  # released
