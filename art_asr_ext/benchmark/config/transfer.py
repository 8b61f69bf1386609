"""
The `transfer` section: rows whose cells evaluate one system's adversarial examples on another system, given as
pairs, as matrices of sources and targets, or `all`.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from art_asr_ext.benchmark.config.fields import fail, join, list_of, mapping, string
from art_asr_ext.benchmark.config.schema import SystemConfig, TransferConfig
from art_asr_ext.benchmark.registry import ATTACKS


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
    label = string(label, path)
    if label not in labels:
        fail(path, f"names no system; the systems are {labels}", label)
    estimator = systems[labels.index(label)].estimator
    if source and estimator.black_box:
        fail(
            path,
            f"is a black-box {estimator.type} system: no attack can be computed on it, so it can only be a target",
            label,
        )
    return label


def _transfer_attacks(spec: Mapping[str, Any], path: str) -> Tuple[str, ...]:
    return tuple(
        string(item, join(join(path, "attacks"), i), tuple(ATTACKS))
        for i, item in enumerate(
            list_of(
                spec.get("attacks", [key for key, attack in ATTACKS.items() if attack.transferable]),
                join(path, "attacks"),
            )
        )
    )


def _transfer(value: Any, path: str, systems: Sequence[SystemConfig]) -> TransferConfig:
    spec = mapping(value, path, required=("source", "target"), optional=("label", "attacks"))
    source = _transfer_system(spec["source"], join(path, "source"), systems, source=True)
    target = _transfer_system(spec["target"], join(path, "target"), systems, source=False)
    if source == target:
        fail(join(path, "target"), "must differ from source (that is the system's own row)", target)
    label = transfer_label(source, target) if spec.get("label") is None else string(spec["label"], join(path, "label"))
    return TransferConfig(source=source, target=target, label=label, attacks=_transfer_attacks(spec, path))


def _transfer_matrix(value: Any, path: str, systems: Sequence[SystemConfig]) -> List[TransferConfig]:
    """`{sources: [...] | all, targets: [...] | all, attacks: [...]}`: every source onto every other target."""
    spec = mapping(value, path, required=("sources", "targets"), optional=("attacks",))
    chosen: Dict[str, List[str]] = {}
    for key, source in (("sources", True), ("targets", False)):
        if spec[key] == "all":
            chosen[key] = [s.label for s in systems if not (source and s.estimator.black_box)]
        else:
            given = list_of(spec[key], join(path, key))
            chosen[key] = [
                _transfer_system(item, join(join(path, key), i), systems, source) for i, item in enumerate(given)
            ]
    attacks = _transfer_attacks(spec, path)
    return [
        TransferConfig(source=source, target=target, label=transfer_label(source, target), attacks=attacks)
        for source in dict.fromkeys(chosen["sources"])
        for target in dict.fromkeys(chosen["targets"])
        if source != target
    ]


def parse_transfer(value: Any, systems: Sequence[SystemConfig]) -> Tuple[TransferConfig, ...]:
    """
    The `transfer` section: `all` (every system that can be attacked onto every other system), one matrix
    `{sources, targets}`, or a list of matrices and of pairs `{source, target}`. A pair a matrix repeats is run once;
    a matrix row whose study label (`Transfer attack: (1) + attack from (8)`) another row has is labelled by the
    systems' full labels instead.
    """
    if value is None:
        return ()
    if value == "all":
        entries: List[Tuple[str, Any]] = [("transfer", {"sources": "all", "targets": "all"})]
    elif isinstance(value, Mapping):
        entries = [("transfer", value)]
    elif isinstance(value, list):
        entries = [(join("transfer", i), item) for i, item in enumerate(value)]
    else:
        fail("transfer", "must be `all`, a mapping {sources, targets} or a list of {source, target} pairs", value)
    rows: List[TransferConfig] = []
    generated: List[TransferConfig] = []
    labels = {system.label for system in systems}
    for path, item in entries:
        if isinstance(item, Mapping) and ("sources" in item or "targets" in item):
            generated += _transfer_matrix(item, path, systems)
            continue
        row = _transfer(item, path, systems)
        if row.label in labels:
            fail(join(path, "label"), "repeats the label of another table row", row.label)
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
