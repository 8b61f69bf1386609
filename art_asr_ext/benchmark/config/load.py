"""
Read and validate a benchmark configuration: a YAML file read with ``yaml.safe_load`` into the frozen dataclasses of
:mod:`~art_asr_ext.benchmark.config.schema`.

Every error names the key path of the bad value (``systems[2].defences[0].sigma``) and the value found. Relative
paths are resolved against the directory of the config file. The format is documented in ``benchmarks/README.md``.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

from art_asr_ext.benchmark.config.attacks import any_attack, parse_attacks
from art_asr_ext.benchmark.config.fields import (
    section_keys,
    ConfigError,
    boolean,
    fail,
    integer,
    list_of,
    join,
    mapping,
    parse_fields,
    string,
)
from art_asr_ext.benchmark.config.schema import (
    PLACEHOLDER,
    RunSettings,
    BenchmarkConfig,
    DataConfig,
    ReportConfig,
    TargetConfig,
)
from art_asr_ext.benchmark.config.systems import estimator_file_keys, parse_resources, parse_system
from art_asr_ext.benchmark.config.transfer import parse_transfer
from art_asr_ext.benchmark.registry import DEFENCES

#: The sections besides the required ones and the run's settings.
_SECTIONS = ("transfer", "report", "resources")


def _data(value: Any, base_dir: Path, max_utterances: Optional[int]) -> DataConfig:
    fields = parse_fields(DataConfig, value, "data", base_dir, exclude=("sample_rate",))
    if max_utterances is not None:
        fields["max_utterances"] = integer(max_utterances, "--max-utterances", minimum=1)
    return DataConfig(**fields)


def parse_config(
    raw: Any, base_dir: Path, path: Optional[Path] = None, max_utterances: Optional[int] = None
) -> BenchmarkConfig:
    """
    Validate a configuration already read from YAML.

    :param raw: The YAML document.
    :param base_dir: Directory that relative paths are resolved against (the config file's).
    :param path: The config file, for run.json.
    :param max_utterances: Overrides `data.max_utterances` (the `--max-utterances` option).
    :return: The configuration.
    :raises ConfigError: For any invalid value, naming its key path.
    """
    top = mapping(
        raw, "", required=("data", "targets", "systems", "attacks"), optional=section_keys(RunSettings) + _SECTIONS
    )
    settings = RunSettings(
        **parse_fields(RunSettings, {k: v for k, v in top.items() if k in section_keys(RunSettings)}, "")
    )
    batch_size, device = settings.batch_size, settings.device
    resources = parse_resources(top.get("resources") or {}, "resources", device)
    attacks = parse_attacks(top["attacks"])
    systems = tuple(
        parse_system(item, join("systems", i), base_dir, attacks, batch_size, device, resources)
        for i, item in enumerate(list_of(top["systems"], "systems"))
    )
    seen: Dict[str, int] = {}
    for i, system in enumerate(systems):
        if system.label in seen:
            fail(f"systems[{i}].label", f"repeats the label of systems[{seen[system.label]}]", system.label)
        seen[system.label] = i
    transfer = parse_transfer(top.get("transfer"), systems)
    if transfer and not any_attack(attacks, systems):
        fail("transfer", "needs at least one attack to transfer")
    return BenchmarkConfig(
        seed=settings.seed,
        device=device,
        batch_size=batch_size,
        data=_data(top["data"], base_dir, max_utterances),
        targets=TargetConfig(**parse_fields(TargetConfig, top["targets"], "targets", base_dir)),
        attacks=attacks,
        systems=systems,
        transfer=transfer,
        save_adversarial=boolean(top.get("save_adversarial", False), "save_adversarial"),
        name=(
            string(top["name"], "name")
            if top.get("name") is not None
            else (path.stem if path is not None else "benchmark")
        ),
        path=path,
        raw=raw,
        report=ReportConfig(**parse_fields(ReportConfig, {} if top.get("report") is None else top["report"], "report")),
    )


def load_config(path: os.PathLike, max_utterances: Optional[int] = None) -> BenchmarkConfig:
    """
    Read and validate a benchmark configuration file.

    :param path: The YAML file.
    :param max_utterances: Overrides `data.max_utterances`.
    :return: The configuration.
    :raises FileNotFoundError: If the file does not exist.
    :raises ConfigError: For invalid YAML or an invalid value (the key path is named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file not found: {os.fspath(path)!r}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"{os.fspath(path)} is not a UTF-8 text file (a YAML config): {error}") from error
    except yaml.YAMLError as error:
        raise ConfigError(f"{os.fspath(path)} is not valid YAML: {error}") from error
    return parse_config(raw, path.resolve().parent, path=path.resolve(), max_utterances=max_utterances)


def missing_files(config: BenchmarkConfig) -> List[str]:
    """
    Paths a run needs that do not exist or are placeholders still to be filled in (the dry run does not need them).

    :param config: The configuration.
    :return: One message per problem, naming the key path.
    """
    problems = []

    def check(path: Optional[Path], key: str, directory: bool = False) -> None:
        if path is None:
            return
        if PLACEHOLDER in str(path):
            problems.append(f"{key}: placeholder {str(path)!r}; fill in the path of your file")
        elif not (path.is_dir() if directory else path.exists()):
            problems.append(f"{key}: not found: {path}")

    check(config.data.librispeech, "data.librispeech", directory=True)
    check(config.targets.pool, "targets.pool")
    for i, system in enumerate(config.systems):
        for key in estimator_file_keys():
            directory = key in ("model_dir", "acoustic_model")
            check(getattr(system.estimator, key), f"systems[{i}].estimator.{key}", directory=directory)
        for j, defence in enumerate(system.defences):
            for name in DEFENCES[defence.type].files:
                check(defence.settings[name], f"systems[{i}].defences[{j}].{name}")
    return problems
