"""
The README's commands stay true: CI runs the install and test lines; the main command is checked here.
"""

import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tagged_line(tag: str) -> str:
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if line.endswith(f"# {tag}")]
    assert len(lines) == 1, f"README.md must hold exactly one command tagged '# {tag}'"
    return lines[0].rsplit("#", 1)[0].strip()


def test_main_command_names_a_valid_config_and_plans_its_grid(tmp_path):
    words = shlex.split(_tagged_line("main"))
    assert words[0] == ".venv/bin/art-asr-benchmark" and "--preset" in words
    words[words.index("--out") + 1] = str(tmp_path / "out")
    # The console script of this environment, from another directory: the preset resolves from the package.
    command = [str(Path(sys.executable).with_name("art-asr-benchmark")), *words[1:], "--dry-run"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pgd" in result.stdout.lower() and "fgsm" in result.stdout.lower()


def test_install_and_test_commands_are_what_ci_runs():
    ci = (REPO / ".ci" / "run").read_text()
    assert "# install$" in ci and "# test$" in ci
    assert "-c constraints.txt" in _tagged_line("install")
    assert "pytest" in _tagged_line("test")
