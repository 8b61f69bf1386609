"""
Fixtures for the benchmark runner tests: the small config written to disk, one uninterrupted run of it that other
tests compare against, and one run of the CI preset through the command line (its outputs, report.html among them,
are checked by several tests).
"""

import subprocess
import sys

import pytest
import torch

from tests.benchmarks.helpers import DATA, REPO, mini_config_dict, write_config


@pytest.fixture(scope="session")
def mini_config_path(tmp_path_factory):
    return write_config(tmp_path_factory.mktemp("mini_config"), mini_config_dict())


@pytest.fixture(scope="session")
def uninterrupted(mini_config_path, tmp_path_factory):
    """One complete run of the small config: its output directory and summary."""
    from art_asr_ext.benchmark import load_config, run_benchmark

    out = tmp_path_factory.mktemp("uninterrupted")
    summary = run_benchmark(load_config(mini_config_path), out, progress=False, threads=1, plot=False)
    return out, summary


@pytest.fixture(scope="session")
def ci_tiny_run(tmp_path_factory):
    """The `ci_tiny` preset run once, serially, through the command line (one torch thread): its output directory and
    the finished process, checked by several tests and the table the other executors must reproduce."""
    assert (DATA / "LibriSpeech" / "test-clean").is_dir(), f"Real test data missing: {DATA}"
    out = tmp_path_factory.mktemp("ci_tiny")
    command = [sys.executable, "benchmarks/run.py", "--preset", "ci_tiny", "--out", str(out)]
    result = subprocess.run(
        command + ["--threads", "1", "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    return out, result


@pytest.fixture(autouse=True)
def _single_thread():
    """The tiny models are dominated by thread synchronisation on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
