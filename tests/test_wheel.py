"""
The package works where it is installed: a wheel built from the checkout holds the runner, the presets, the embedded
models and the evaluation set, and its command line runs from a directory that has no checkout on `sys.path`.
"""

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    # No build isolation: the build uses this environment's setuptools (pinned < 74 for ESPnet), not a download.
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (path,) = out.glob("art_asr_ext-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh venv holding the wheel; the other dependencies come from this environment's site-packages."""
    env = tmp_path_factory.mktemp("env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=300)
    env_python = env / "bin" / "python"
    env_site = Path(
        subprocess.run(
            [str(env_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # A plain path line: the dependencies are importable, but this environment's .pth files (the editable install
    # of the checkout among them) are not run.
    (env_site / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(env_python), "install", "--no-deps", "-q", str(wheel)]
    result = subprocess.run(install, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return env


def run_in(env: Path, cwd: Path, *command: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment["PATH"] = f"{env / 'bin'}{os.pathsep}{environment.get('PATH', '')}"
    return subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)


def test_the_wheel_holds_runner_presets_models_and_evaluation_set(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "art_asr_ext/benchmark/cli.py" in names and "art_asr_ext/benchmark/training/train.py" in names
    for preset in ("quick", "whisper_real", "paper_table1", "ci_tiny"):
        assert f"art_asr_ext/benchmark/configs/{preset}.yaml" in names
    for model in ("deepspeech2_baseline", "deepspeech2_rs_aug", "deepspeech2_waveaug"):
        assert f"art_asr_ext/benchmark/models/{model}/model.ckpt" in names
        assert f"art_asr_ext/benchmark/models/{model}/MODEL_CARD.md" in names
    for model in ("transformer_baseline", "transformer_rs_aug", "transformer_no_lsm"):
        assert f"art_asr_ext/benchmark/models/{model}/meta.yaml" in names
    assert sum(name.startswith("art_asr_ext/benchmark/data/LibriSpeech/test-synth/") for name in names) == 31
    assert not any(name.endswith("training_state.pt") for name in names)
    assert any(name.endswith("LICENSE") for name in names)
    assert wheel.stat().st_size <= 100 * 1024 * 1024


def test_the_installed_command_line_works_from_anywhere(installed, tmp_path):
    located = run_in(installed, tmp_path, "python", "-c", "import art_asr_ext; print(art_asr_ext.__file__)")
    assert located.returncode == 0 and str(installed) in located.stdout, located.stdout + located.stderr

    helped = run_in(installed, tmp_path, "art-asr-benchmark", "--help")
    assert helped.returncode == 0 and "--preset" in helped.stdout, helped.stderr

    planned = run_in(installed, tmp_path, "python", "-m", "art_asr_ext.benchmark", "--preset", "quick", "--dry-run")
    assert planned.returncode == 0 and "pgd" in planned.stdout.lower(), planned.stderr[-3000:]

    # The whole quick grid (125 cells) on one utterance: about 4 minutes on 2 idle cores.
    out = tmp_path / "quick"
    ran = run_in(
        installed,
        tmp_path,
        "art-asr-benchmark",
        "--preset",
        "quick",
        "--max-utterances",
        "1",
        "--out",
        str(out),
        "--no-progress",
        "--no-plot",
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    assert (out / "table1.csv").read_text().startswith("System,Clean,")
