"""
Fixtures for the benchmark runner tests: the small config written to disk, and one uninterrupted run of it that other
tests compare against.
"""

import pytest
import torch

from tests.benchmarks.helpers import mini_config_dict, write_config


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


@pytest.fixture(autouse=True)
def _single_thread():
    """The tiny models are dominated by thread synchronisation on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def ci_tiny_serial(tmp_path_factory):
    """One serial run of the `ci_tiny` preset through the command line (one torch thread): its output directory and
    the finished process, shared by the end-to-end test and the executors that must reproduce its table."""
    import subprocess
    import sys

    from tests.benchmarks.helpers import DATA, REPO

    assert (DATA / "LibriSpeech" / "test-clean").is_dir(), f"Real test data missing: {DATA}"
    out = tmp_path_factory.mktemp("ci_tiny_serial")
    command = [sys.executable, "benchmarks/run.py", "--preset", "ci_tiny", "--out", str(out)]
    result = subprocess.run(
        command + ["--threads", "1", "--no-progress"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    return out, result
