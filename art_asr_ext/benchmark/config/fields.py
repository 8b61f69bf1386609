"""
The primitives of the benchmark configuration: the error type, key paths, value parsers, and the field metadata from
which one generic parser reads a section's dataclass (its defaults, bounds, choices and how a key is spelled).

Every error names the key path of the bad value (``systems[2].defences[0].sigma``) and the value found.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import math
import os
import typing
from pathlib import Path
from typing import Any, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

#: Largest seed a config may give (32 bits, as numpy's legacy seeding takes; torch's generators take 64).
MAX_SEED = 2**32 - 1


class ConfigError(ValueError):
    """A benchmark configuration that cannot be run; the message names the key path."""


_MISSING = object()


def fail(path: str, message: str, value: Any = _MISSING) -> NoReturn:
    """
    :param path: Key path of the bad value.
    :param message: What is wrong.
    :param value: The value found (left out of the message when not given).
    :raises ConfigError: Always.
    """
    found = "" if value is _MISSING else f" Found: {value!r}"
    raise ConfigError(f"{path}: {message}.{found}")


def join(path: str, key: Any) -> str:
    """
    :param path: A key path.
    :param key: A key of a mapping, or an index of a list.
    :return: The path of that key: `systems[2]`, `data.librispeech`.
    """
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def mapping(value: Any, path: str, required: Sequence[str] = (), optional: Sequence[str] = ()) -> Dict[str, Any]:
    """
    :return: `value` as a dict, after checking that it is a mapping with every required key and no unknown key.
    """
    if not isinstance(value, Mapping):
        fail(path or "config", "must be a mapping (key: value)", value)
    unknown = sorted(str(key) for key in value if key not in required and key not in optional)
    if unknown:
        fail(join(path, unknown[0]), f"unknown key; expected one of {sorted([*required, *optional])}")
    for key in required:
        if key not in value:
            fail(join(path, key), "is required")
    return dict(value)


def number(value: Any, path: str, minimum: Optional[float] = None, positive: bool = False) -> float:
    """A finite number (PyYAML reads `1e-4`, without a dot, as a string: any string `float()` reads is accepted)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            fail(path, "must be a number", value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(path, "must be a finite number", value)
    if positive and value <= 0:
        fail(path, "must be > 0", value)
    if minimum is not None and value < minimum:
        fail(path, f"must be >= {minimum}", value)
    return float(value)


def integer(value: Any, path: str, minimum: Optional[int] = None, maximum: Optional[int] = None) -> int:
    """An integer within the bounds given."""
    if isinstance(value, bool) or not isinstance(value, int):
        fail(path, "must be an integer", value)
    if minimum is not None and value < minimum:
        fail(path, f"must be >= {minimum}", value)
    if maximum is not None and value > maximum:
        fail(path, f"must be <= {maximum}", value)
    return int(value)


def string(value: Any, path: str, choices: Optional[Sequence[str]] = None) -> str:
    """A non-empty string, one of `choices` if given."""
    if not isinstance(value, str) or not value.strip():
        fail(path, "must be a non-empty string", value)
    if choices is not None and value not in choices:
        fail(path, f"must be one of {list(choices)}", value)
    return value


def boolean(value: Any, path: str) -> bool:
    """`true` or `false`."""
    if not isinstance(value, bool):
        fail(path, "must be true or false", value)
    return value


def file_path(value: Any, path: str, base_dir: Path) -> Path:
    """A path, `~` expanded and relative to `base_dir` (the config file's directory)."""
    text = string(value, path)
    candidate = Path(os.path.expanduser(text))
    return Path(os.path.normpath(candidate if candidate.is_absolute() else base_dir / candidate))


def list_of(value: Any, path: str, allow_empty: bool = False) -> List[Any]:
    """A list (not empty unless allowed)."""
    if not isinstance(value, list):
        fail(path, "must be a list", value)
    if not value and not allow_empty:
        fail(path, "must not be empty", value)
    return value


def distinct_integers(value: Any, path: str, name: str) -> Tuple[int, ...]:
    """An integer >= 1 or a list of distinct ones (an attack-strength axis: the first fills Table I)."""
    if not isinstance(value, list):
        return (integer(value, path, minimum=1),)
    values = tuple(integer(v, join(path, i), minimum=1) for i, v in enumerate(list_of(value, path)))
    if len(set(values)) != len(values):
        fail(path, f"must not repeat a number of {name}", list(value))
    return values


# --------------------------------------------------------------------------------------------------------------------
# Field metadata and the generic section parser
# --------------------------------------------------------------------------------------------------------------------


def setting(
    default: Any = dataclasses.MISSING,
    *,
    doc: str = "",
    minimum: Optional[float] = None,
    maximum: Optional[float] = None,
    positive: bool = False,
    choices: Optional[Sequence[str]] = None,
    key: Optional[str] = None,
    axis: Optional[str] = None,
) -> Any:
    """
    A field of a config section's dataclass: its default and what :func:`parse_fields` checks.

    :param default: The default (the one place it is written); without one the key is required.
    :param doc: What the key means (the key reference of ``benchmarks/README.md`` is checked against it).
    :param minimum: Lowest value of a number.
    :param maximum: Highest value of a number.
    :param positive: A number must be > 0.
    :param choices: The values a string may take.
    :param key: How the key is spelled in a config, where it differs from the field's name.
    :param axis: For an integer that may also be given as a list of distinct values (an attack-strength axis): what
                 they count, for the error message (`iterations`). The field then holds the tuple.
    :return: A dataclass field.
    """
    metadata = dict(doc=doc, minimum=minimum, maximum=maximum, positive=positive, choices=choices, key=key, axis=axis)
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def config_key(field: dataclasses.Field) -> str:
    """The key of a field in a config (its `key` metadata, else its name)."""
    return field.metadata.get("key") or field.name


def section_keys(config_class: type, exclude: Sequence[str] = ()) -> Tuple[str, ...]:
    """The keys of a section: the config keys of its dataclass's fields, less `exclude`."""
    return tuple(config_key(f) for f in dataclasses.fields(config_class) if config_key(f) not in exclude)


def has_default(field: dataclasses.Field) -> bool:
    """Whether a field has a default (else its key is required)."""
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


def default_of(field: dataclasses.Field) -> Any:
    """A field's default."""
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else field.default


def parse_value(field: dataclasses.Field, value: Any, path: str, base_dir: Optional[Path] = None) -> Any:
    """
    :param field: A field declared with :func:`setting`.
    :param value: Its value in a config.
    :param path: Its key path.
    :param base_dir: Directory relative paths are resolved against.
    :return: The value checked against the field's type and metadata.
    """
    meta = field.metadata
    kind = field.type if isinstance(field.type, type) else _resolve(field.type)
    optional = type(None) in typing.get_args(kind)
    if optional:
        if value is None:
            return None
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if meta.get("axis"):
        return distinct_integers(value, path, meta["axis"])
    if dataclasses.is_dataclass(kind):  # a nested section
        return parse_fields(kind, value, path, base_dir)
    if kind is bool:
        return boolean(value, path)
    if kind is int:
        parsed = integer(value, path, minimum=meta.get("minimum"), maximum=meta.get("maximum"))
        if meta.get("choices") is not None and parsed not in meta["choices"]:
            fail(path, f"must be one of {list(meta['choices'])}", value)
        return parsed
    if kind is float:
        return number(value, path, minimum=meta.get("minimum"), positive=meta.get("positive", False))
    if kind is str:
        return string(value, path, meta.get("choices"))
    if kind is Path:
        return file_path(value, path, base_dir if base_dir is not None else Path.cwd())
    raise TypeError(f"No parser for field {field.name} of type {field.type!r}")


def _resolve(annotation: Any) -> Any:
    if isinstance(annotation, str):  # `from __future__ import annotations` is not used here; kept for safety
        return eval(annotation, vars(typing), {"Path": Path})  # noqa: S307 (annotations of this package only)
    return annotation


def parse_fields(
    config_class: type,
    value: Any,
    path: str,
    base_dir: Optional[Path] = None,
    exclude: Sequence[str] = (),
    defaults: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """
    The one generic section parser: a mapping checked against a dataclass's fields, every key parsed by its
    metadata, a missing key filled with its default (or with `defaults`, e.g. a system's share of a top-level
    section), a key without a default required.

    :param config_class: The section's dataclass.
    :param value: The section in a config.
    :param path: Its key path.
    :param base_dir: Directory relative paths are resolved against.
    :param exclude: Fields parsed elsewhere (neither keys here nor in the result).
    :param defaults: Values that replace the fields' own defaults.
    :return: Field name -> parsed value.
    """
    fields = [f for f in dataclasses.fields(config_class) if f.name not in exclude]
    defaults = defaults or {}
    required = [config_key(f) for f in fields if not has_default(f) and f.name not in defaults]
    spec = mapping(
        value, path, required=required, optional=[config_key(f) for f in fields if config_key(f) not in required]
    )
    parsed = {}
    for field in fields:
        key = config_key(field)
        if key in spec:
            parsed[field.name] = parse_value(field, spec[key], join(path, key), base_dir)
        elif field.name in defaults:
            parsed[field.name] = defaults[field.name]
        else:
            parsed[field.name] = default_of(field)
    return parsed
