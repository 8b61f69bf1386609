"""
Bad command lines and output paths: exit 2 with one message naming the bad value, never a traceback.
"""

import shutil

import pytest

from art_asr_ext.benchmark.cli import main


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
