"""
Bad command lines and output paths: exit 2 with one message naming the bad value, never a traceback.
"""

import shutil

import pytest
import torch

from art_asr_ext.benchmark.cli import main
from tests.benchmarks.helpers import mini_config_dict, write_config


def _status(argv):
    """main's exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exit:
        return exit.code


@pytest.mark.parametrize(
    "options, message",
    [
        (["--threads", "0"], "argument --threads: must be >= 1. Found: 0"),
        (["--max-cells", "-1"], "argument --max-cells: must be >= 0. Found: -1"),
        (["--max-cells", "two"], "argument --max-cells: must be an integer. Found: 'two'"),
        (["--max-utterances", "0"], "--max-utterances: must be >= 1. Found: 0"),
        (["--executor", "dask"], "argument --executor: invalid choice: 'dask'"),
        (["--ray-address", "head-node"], "ray address must be 'auto', 'local' or HOST:PORT (port 1-65535). Found: 'h"),
        (["--ray-address", "10.0.0.1:99999"], "HOST:PORT (port 1-65535). Found: '10.0.0.1:99999'"),
        (["--estimate"], "--estimate goes with --dry-run"),
        (["--workers", "0"], "argument --workers: must be >= 1. Found: 0"),
    ],
)
def test_bad_options(tmp_path, capsys, options, message):
    assert _status(["--preset", "ci_tiny", "--out", str(tmp_path / "out")] + options) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_output_path_that_cannot_be_a_directory(tmp_path, capsys, where):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    out = blocker if where == "a file" else blocker / "sub" / "out"
    assert _status(["--preset", "ci_tiny", "--out", str(out), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: The output directory {out} cannot be created") and "Traceback" not in error
    assert blocker.read_text() == "not a directory"


def test_a_binary_config_file(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    shutil.copy("/bin/ls", config)
    assert _status(["--config", str(config), "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {config} is not a UTF-8 text file")


def test_the_ray_executor_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    assert _status(["--preset", "ci_tiny", "--out", str(tmp_path / "out"), "--executor", "ray"]) == 2
    error = capsys.readouterr().err
    assert "--executor ray needs Ray, which is not installed: pip install 'art-asr-ext[ray]'" in error
    assert "Traceback" not in error and not (tmp_path / "out").exists()


def test_no_ray_cluster_at_the_address_is_one_clear_error(tmp_path, capsys):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = ["--preset", "ci_tiny", "--out", str(tmp_path / "out"), "--no-progress", "--executor", "ray"]
    assert _status(argv + ["--ray-address", f"127.0.0.1:{port}"]) == 2
    error = capsys.readouterr().err
    assert (
        error.startswith(f"error: Cannot connect to a Ray cluster at '127.0.0.1:{port}'") and "Traceback" not in error
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_device_gpu_without_a_cuda_device_is_one_clear_error(tmp_path, capsys):
    # ART's estimators would quietly run on the CPU, and the table would claim a GPU
    raw = mini_config_dict()
    raw["device"] = "gpu"
    config = write_config(tmp_path, raw)
    assert _status(["--config", str(config), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: device: gpu, but torch finds no CUDA device") and "Traceback" not in error
    assert not (tmp_path / "out").exists()
