"""
What ships inside the package for the benchmark: the preset configs, the embedded models and the embedded evaluation
set, found through :mod:`importlib.resources` so that they work from a wheel as from a checkout.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from importlib import resources
from pathlib import Path
from typing import Dict

_ROOT = Path(str(resources.files("art_asr_ext.benchmark")))

#: The preset configs (`quick`, `whisper_real`, `paper_table1`, `ci_tiny`); their relative paths are relative to them.
PRESETS_DIR = _ROOT / "configs"
#: The embedded models, one directory each with its model card.
MODELS_DIR = _ROOT / "models"
#: The word language model the embedded DeepSpeech2 models decode with (`benchmarks/build_language_model.py`).
LANGUAGE_MODEL_DIR = MODELS_DIR / "word_3gram_lm"
#: The embedded evaluation set (LibriSpeech layout) and the target-phrase pool.
EMBEDDED_SET = _ROOT / "data" / "LibriSpeech" / "test-synth"
TARGET_PHRASES = _ROOT / "data" / "target_phrases.txt"
EVAL_SENTENCES = _ROOT / "data" / "eval_sentences.txt"


def presets() -> Dict[str, Path]:
    """:return: Each preset's name and config file."""
    return {path.stem: path for path in sorted(PRESETS_DIR.glob("*.yaml"))}


def preset_path(name: str) -> Path:
    """
    :param name: A preset's name, e.g. `quick`.
    :return: Its config file.
    :raises ValueError: Naming the presets there are, for an unknown name.
    """
    known = presets()
    if name not in known:
        raise ValueError(f"Unknown preset {name!r}. Presets: {', '.join(known)}")
    return known[name]
