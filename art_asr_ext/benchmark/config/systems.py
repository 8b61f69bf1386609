"""
A system's section: its estimator, its defence chain, its share of the attacks, its training notes and its Ray
resources.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple

from art_asr_ext.benchmark.config.attacks import eot_variants, own_attack_keys, system_attacks
from art_asr_ext.benchmark.config.fields import (
    config_key,
    fail,
    file_path,
    has_default,
    integer,
    list_of,
    join,
    mapping,
    number,
    parse_fields,
    section_keys,
    string,
)
from art_asr_ext.benchmark.language_model import DECODING_KEYS as LANGUAGE_MODEL_TYPES
from art_asr_ext.benchmark.registry import ATTACKS, DEFENCES
from art_asr_ext.benchmark.config.schema import (
    ESTIMATOR_TYPES,
    AttackConfig,
    DefenceConfig,
    EstimatorConfig,
    RandomInitModel,
    Resources,
    SystemConfig,
)

#: Keys the runner sets on every estimator, which `options` may not give.
_RUNNER_OPTIONS = ("preprocessing_defences", "device_type", "model", "checkpoint", "model_dir")
#: Where each estimator type's weights come from: the combinations of keys it accepts.
_MODEL_SOURCES = {
    "deepspeech2": (("checkpoint",), ("random_init",)),
    "whisper": (("checkpoint",),),
    "espnet": (("model_dir",), ("asr_train_config", "asr_model_file")),
}
_POCKETSPHINX_FILES = ("acoustic_model", "dictionary", "language_model")
_ESTIMATOR_KEYS = ("checkpoint", "model_dir", "asr_train_config", "asr_model_file", "random_init", "options")
_ESTIMATOR_KEYS += _POCKETSPHINX_FILES


def parse_defence(value: Any, path: str, base_dir: Path) -> DefenceConfig:
    """
    :param value: One defence of a system's chain.
    :param path: Its key path.
    :param base_dir: Directory relative paths are resolved against.
    :return: The defence, its settings read from its registry entry's dataclass.
    """
    if isinstance(value, Mapping) and value.get("type") in ("rs_aug", "rs-aug"):
        fail(
            join(path, "type"),
            "RS-aug is how a checkpoint was trained (Gaussian noise with sigma ~ U(0, 0.3)), not a defence applied at "
            "inference; point the estimator at a checkpoint trained with it and record it under the system's "
            "`training: {rs_aug: [0.0, 0.3]}`",
            value.get("type"),
        )
    known = tuple(dict.fromkeys(key for spec in DEFENCES.values() for key in section_keys(spec.settings)))
    kind = string(mapping(value, path, required=("type",), optional=known)["type"], join(path, "type"))
    if kind not in DEFENCES:
        fail(join(path, "type"), f"must be {' or '.join(repr(key) for key in DEFENCES)}", kind)
    spec = DEFENCES[kind]
    required = ("type",) + _required(spec.settings)
    section = mapping(
        value, path, required=required, optional=[k for k in section_keys(spec.settings) if k not in required]
    )
    settings = parse_fields(
        spec.settings, {key: item for key, item in section.items() if key != "type"}, path, base_dir
    )
    for name, setting in settings.items():
        if isinstance(setting, tuple):  # an axis: its first value is Table I's, the others strength variants
            settings[name] = setting[0]
    if spec.check is not None:
        spec.check(settings, path)
    return DefenceConfig(type=kind, settings=settings)


def _required(keys: type) -> Tuple[str, ...]:
    """The keys of a section's dataclass that have no default."""
    return tuple(config_key(f) for f in dataclasses.fields(keys) if not has_default(f))


def parse_estimator(value: Any, path: str, base_dir: Path) -> EstimatorConfig:
    """
    :param value: A system's `estimator` section.
    :param path: Its key path.
    :param base_dir: Directory relative paths are resolved against.
    :return: The estimator.
    """
    spec = mapping(value, path, required=("type",), optional=_ESTIMATOR_KEYS)
    kind = string(spec["type"], join(path, "type"), ESTIMATOR_TYPES)
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        fail(join(path, "options"), "must be a mapping of the estimator's keyword arguments", options)
    options = dict(options)
    for key in options:
        if key in _RUNNER_OPTIONS:
            fail(join(path, f"options.{key}"), "is set by the runner; use the system's own keys instead")
    if kind == "pocketsphinx":
        return _pocketsphinx_estimator(spec, path, base_dir, options)
    sources = ("checkpoint", "model_dir", "asr_train_config", "asr_model_file", "random_init")
    given = [key for key in sources if spec.get(key) is not None]
    for key in _POCKETSPHINX_FILES:
        if spec.get(key) is not None and not (kind in LANGUAGE_MODEL_TYPES and key == "language_model"):
            fail(join(path, key), "is a pocketsphinx, deepspeech2 or espnet estimator's key", spec[key])
    allowed = _MODEL_SOURCES[kind]
    if tuple(given) not in [tuple(choice) for choice in allowed]:
        choices = " or ".join("+".join(choice) for choice in allowed)
        fail(path, f"a {kind} estimator needs exactly {choices}", sorted(given))
    config: Dict[str, Any] = {"type": kind, "options": options}
    if "random_init" in given:
        config["random_init"] = parse_fields(RandomInitModel, spec["random_init"], join(path, "random_init"))
    for key in ("model_dir", "asr_train_config", "asr_model_file"):
        if key in given:
            config[key] = file_path(spec[key], join(path, key), base_dir)
    if spec.get("language_model") is not None:  # a word language model (art_asr_ext.benchmark.language_model)
        for key in ("decoder_type", "lm_path"):
            if key in options:
                fail(join(path, f"options.{key}"), "is set by the system's language_model key", options[key])
        config["language_model"] = file_path(spec["language_model"], join(path, "language_model"), base_dir)
    if "checkpoint" in given:
        if kind == "whisper" and spec["checkpoint"] == "bundled":
            config["bundled"] = True
        else:
            config["checkpoint"] = file_path(spec["checkpoint"], join(path, "checkpoint"), base_dir)
    return EstimatorConfig(**config)


def _pocketsphinx_estimator(spec: Mapping[str, Any], path: str, base_dir: Path, options: Dict[str, Any]):
    for key in ("checkpoint", "model_dir", "asr_train_config", "asr_model_file", "random_init"):
        if spec.get(key) is not None:
            fail(
                join(path, key),
                "is not a pocketsphinx key; give acoustic_model, dictionary and language_model, or none of them for "
                "the wheel's US English model",
                spec[key],
            )
    files = {key: file_path(spec[key], join(path, key), base_dir) for key in _POCKETSPHINX_FILES if spec.get(key)}
    return EstimatorConfig(type="pocketsphinx", options=options, **files)


def estimator_file_keys() -> tuple:
    """The estimator keys that name a file or directory (checked before a run), directories first."""
    return ("checkpoint", "model_dir", "asr_train_config", "asr_model_file") + _POCKETSPHINX_FILES


def _training(value: Any, path: str) -> Dict[str, Any]:
    training = mapping(value, path, optional=("rs_aug", "label_smoothing", "notes"))
    parsed: Dict[str, Any] = {}
    if training.get("rs_aug") not in (None, False):
        pair = list_of(training["rs_aug"], join(path, "rs_aug"))
        if len(pair) != 2:
            fail(join(path, "rs_aug"), "must be false or the [low, high] range of sigma", training["rs_aug"])
        low, high = (number(v, join(path, f"rs_aug[{i}]"), minimum=0.0) for i, v in enumerate(pair))
        if high < low:
            fail(join(path, "rs_aug"), "must satisfy low <= high", training["rs_aug"])
        parsed["rs_aug"] = [low, high]
    else:
        parsed["rs_aug"] = False
    if training.get("label_smoothing") is not None:
        parsed["label_smoothing"] = number(training["label_smoothing"], join(path, "label_smoothing"), minimum=0.0)
    if training.get("notes") is not None:
        parsed["notes"] = string(training["notes"], join(path, "notes"))
    return parsed


def parse_resources(value: Any, path: str, device: str, defaults: Resources = None) -> Resources:
    """A `resources` section: over `defaults` (the top-level section), or over one GPU per cell on `device: gpu`."""
    if defaults is None:
        defaults = Resources(num_gpus=1.0 if device == "gpu" else 0.0)
    resources = Resources(**parse_fields(Resources, value, path, defaults=vars(defaults)))
    if resources.num_gpus > 0 and device != "gpu":
        fail(join(path, "num_gpus"), "must be 0 with `device: cpu` (the cells run on the CPU)", resources.num_gpus)
    if resources.num_gpus > 1 and resources.num_gpus != int(resources.num_gpus):
        fail(join(path, "num_gpus"), "must be a whole number above 1 (Ray shares only single GPUs)", resources.num_gpus)
    return resources


def parse_system(
    value: Any, path: str, base_dir: Path, attacks: AttackConfig, batch_size: int, device: str, resources: Resources
) -> SystemConfig:
    """
    :param value: One system of `systems`.
    :param path: Its key path.
    :param base_dir: Directory relative paths are resolved against.
    :param attacks: The `attacks` section.
    :param batch_size: The top-level batch size (its default).
    :param device: `cpu` or `gpu`.
    :param resources: The top-level resources (its defaults).
    :return: The system.
    """
    spec = mapping(
        value,
        path,
        required=("label", "estimator"),
        optional=("defences", "attacks", "attack_overrides", "batch_size", "training", "resources") + own_attack_keys(),
    )
    label = string(spec["label"], join(path, "label"))
    defences = tuple(
        parse_defence(item, join(join(path, "defences"), i), base_dir)
        for i, item in enumerate(list_of(spec.get("defences") or [], join(path, "defences"), allow_empty=True))
    )
    for index, defence in enumerate(defences):
        if DEFENCES[defence.type].wrap is not None and index > 0:
            fail(
                join(join(join(path, "defences"), index), "type"),
                "wraps the recognizer (its noise comes before every other defence), so it must be the first defence",
                defence.type,
            )
    shares = system_attacks(spec, path, attacks)
    estimator = parse_estimator(spec["estimator"], join(path, "estimator"), base_dir)
    if estimator.black_box:
        # A recognizer without gradients gets its clean column, the black-box attacks it names (they only call
        # `predict`), and transfer rows evaluate attacks made on other systems on it.
        if defences:
            fail(join(path, "defences"), f"a {estimator.type} system is black-box and takes no defences here")
        black_box = [key for key, attack in ATTACKS.items() if attack.black_box]
        for key in ("attacks", "attack_overrides") + own_attack_keys():
            given = spec.get(key)
            if key in ("attacks", "attack_overrides") and isinstance(given, Mapping):
                given = {name: item for name, item in given.items() if name not in black_box and item is not False}
            if given not in (None, False, {}):
                fail(
                    join(path, key),
                    f"a {estimator.type} system is black-box: only a black-box attack ({', '.join(black_box)}) can "
                    f"be computed on it; it gets a clean column, and transfer rows (`transfer`, with it as a target) "
                    f"evaluate attacks made on other systems",
                    given,
                )
        shares = {key: share for key, share in shares.items() if ATTACKS[key].black_box}
    return SystemConfig(
        label=label,
        estimator=estimator,
        defences=defences,
        batch_size=integer(spec.get("batch_size", batch_size), join(path, "batch_size"), minimum=1),
        training=_training(spec.get("training") or {}, join(path, "training")),
        attacks=shares,
        eot_variants=eot_variants(spec.get("defences") or [], join(path, "defences")),
        resources=parse_resources(spec.get("resources") or {}, join(path, "resources"), device, resources),
    )
