"""
The benchmark runner: from one YAML config to the study's Table I (``table1.csv``) and per-utterance results,
resumable and fault-tolerant. ``benchmarks/run.py`` is its command line.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from benchmarks.runner.config import BenchmarkConfig, ConfigError, load_config, parse_config
from benchmarks.runner.dry_run import dry_run_report
from benchmarks.runner.runner import RunSummary, run_benchmark

__all__ = [
    "BenchmarkConfig",
    "ConfigError",
    "RunSummary",
    "dry_run_report",
    "load_config",
    "parse_config",
    "run_benchmark",
]
