"""
The benchmark configuration: a YAML file read with ``yaml.safe_load`` and validated into frozen dataclasses.

- :mod:`~art_asr_ext.benchmark.config.schema`: one dataclass per section; defaults, bounds and choices in each
  field's metadata.
- :mod:`~art_asr_ext.benchmark.config.fields`: the value parsers and the one generic section parser.
- :mod:`~art_asr_ext.benchmark.config.attacks`: the `attacks` section, read from the attack registry.
- :mod:`~art_asr_ext.benchmark.config.systems` and :mod:`~art_asr_ext.benchmark.config.transfer`: the table's rows.
- :mod:`~art_asr_ext.benchmark.config.load`: :func:`load_config` and :func:`parse_config`.

Every error names the key path of the bad value (``systems[2].defences[0].sigma``) and the value found. The names
below are imported on first use, so that the registry can build on :mod:`~.fields` without importing the parsers.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from art_asr_ext.utils.lazy import lazy_exports

_SCHEMA = "art_asr_ext.benchmark.config.schema"
_EXPORTS = {
    **{
        name: _SCHEMA
        for name in (
            "AttackConfig",
            "AttackSection",
            "BenchmarkConfig",
            "DataConfig",
            "DefenceConfig",
            "EstimatorConfig",
            "ReportConfig",
            "Resources",
            "SystemAttack",
            "SystemConfig",
            "TargetConfig",
            "TransferConfig",
            "ESTIMATOR_TYPES",
            "PLACEHOLDER",
        )
    },
    "ConfigError": "art_asr_ext.benchmark.config.fields",
    "MAX_SEED": "art_asr_ext.benchmark.config.fields",
    "load_config": "art_asr_ext.benchmark.config.load",
    "parse_config": "art_asr_ext.benchmark.config.load",
    "missing_files": "art_asr_ext.benchmark.config.load",
    "transfer_label": "art_asr_ext.benchmark.config.transfer",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
