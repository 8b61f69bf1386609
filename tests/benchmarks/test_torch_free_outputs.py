"""
Reading a run's outputs needs neither torch nor ART: `art_asr_ext.benchmark.outputs` and `art-asr-benchmark report
--out DIR` load neither, so a report can be rewritten on a machine (or in a CI job) without the model stack.

Each check runs in a fresh interpreter, since this one has torch loaded by the fixtures.
"""

import json
import shutil
import subprocess
import sys

from tests.benchmarks.helpers import REPO

#: Prints, as its last line, which of the heavy packages the code before it loaded.
_LOADED = "import json; print(json.dumps(sorted(m for m in ('torch', 'art') if m in sys.modules)))"


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


def test_importing_outputs_loads_neither_torch_nor_art():
    result = _run(f"import sys\nimport art_asr_ext.benchmark.outputs\n{_LOADED}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_report_command_loads_neither_torch_nor_art(ci_tiny_run, tmp_path):
    finished, run = ci_tiny_run
    assert run.returncode == 0, run.stderr[-3000:]
    # A copy: the command rewrites report.html, which other tests compare with the run's own
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    code = (
        "import sys\n"
        "from art_asr_ext.benchmark.cli import main\n"
        "assert main(['report', '--out', sys.argv[1]]) == 0\n"
        f"{_LOADED}"
    )
    result = _run(code, str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Report in" in result.stdout
    assert json.loads(result.stdout.splitlines()[-1]) == []
