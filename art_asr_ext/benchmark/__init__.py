"""
The benchmark runner: from one YAML config to the study's Table I (``table1.csv``) and per-utterance results,
resumable and fault-tolerant. ``art-asr-benchmark`` (:mod:`art_asr_ext.benchmark.cli`) is its command line; the
presets, embedded models and evaluation set ship with it (:mod:`art_asr_ext.benchmark.presets`), and
:mod:`art_asr_ext.benchmark.training` trains the embedded models.

The names below are imported on first use: the runner needs ART and torch, a command's ``--help`` does not.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from art_asr_ext.utils.lazy import lazy_exports

_EXPORTS = {
    "BenchmarkConfig": "art_asr_ext.benchmark.config",
    "ConfigError": "art_asr_ext.benchmark.config",
    "load_config": "art_asr_ext.benchmark.config",
    "parse_config": "art_asr_ext.benchmark.config",
    "dry_run_report": "art_asr_ext.benchmark.dry_run",
    "RunOptions": "art_asr_ext.benchmark.runner",
    "RunSummary": "art_asr_ext.benchmark.runner",
    "run_benchmark": "art_asr_ext.benchmark.runner",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
