"""
Helpers for the benchmark runner tests: a small config on tiny random DeepSpeech2 models and the real clips in
../shared/data.
"""

import copy
import csv
import io
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("ART_ASR_EXT_DATA", REPO.parent / "shared" / "data"))

# 2 utterances cropped to 1 s; (1) has the imperceptible attack, (2) adds randomized smoothing and is the source of
# the transfer row: 4 + 3 + 2 = 9 cells.
MINI = {
    "name": "mini",
    "seed": 3,
    "device": "cpu",
    "batch_size": 2,
    "data": {"librispeech": "LibriSpeech/test-clean", "max_utterances": 2, "crop_seconds": 1.0},
    "targets": {"pool": "text/librispeech_transcripts.tsv", "match": "words"},
    "attacks": {"fgsm": {"eps": [0.01]}, "pgd": {"eps": [0.01], "max_iter": 2}},
    "systems": [
        {
            "label": "(1) Tiny",
            "estimator": {"type": "deepspeech2", "random_init": {"hidden_size": 8, "seed": 1}},
            "imperceptible": {"max_iter_1": 1, "max_iter_2": 1},
        },
        {
            "label": "(2) Tiny + RS",
            "estimator": {"type": "deepspeech2", "random_init": {"hidden_size": 8, "seed": 1}},
            "defences": [{"type": "rs", "sigma": 0.01}],
        },
    ],
    "transfer": [{"source": "(2) Tiny + RS", "target": "(1) Tiny"}],
}
MINI_CELLS = 9


def mini_config_dict():
    """A fresh copy of the small config, with data paths relative to the shared data folder."""
    if not (DATA / "LibriSpeech" / "test-clean").is_dir():
        pytest.fail(f"Real test data missing: {DATA} (set ART_ASR_EXT_DATA to the shared data folder).")
    return copy.deepcopy(MINI)


def write_config(directory: Path, config: dict) -> Path:
    """Write a config YAML whose relative paths point into the shared data folder."""
    config = copy.deepcopy(config)
    config["data"]["librispeech"] = str(DATA / config["data"]["librispeech"])
    config["targets"]["pool"] = str(DATA / config["targets"]["pool"])
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def read_csv(path: Path, drop=()):
    """Rows of a CSV as dicts, without the `drop` columns."""
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    return [{k: v for k, v in row.items() if k not in drop} for row in rows]
