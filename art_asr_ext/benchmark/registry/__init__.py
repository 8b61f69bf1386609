"""
The registries of the benchmark: its attacks (:mod:`~.attacks`, and :mod:`~.beyond_the_lab` for the over-the-air
and black-box ones) and its defences (:mod:`~.defences`). An entry is
the one place an attack or a defence type is described; the config, the grid, the tables, the dry run and the
report read them from here.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from art_asr_ext.benchmark.registry.attacks import (
    ATTACKS,
    CLEAN,
    IMPERCEPTIBLE_FROM_RUN,
    AttackSpec,
    ImperceptibleSettings,
    attack_order,
    format_eps,
    register_attack,
)
from art_asr_ext.benchmark.registry import beyond_the_lab  # noqa: F401  (registers its attacks after the study's)
from art_asr_ext.benchmark.registry.defences import DEFENCES, DefenceSpec, register_defence, with_resolved_defences

__all__ = [
    "ATTACKS",
    "CLEAN",
    "DEFENCES",
    "IMPERCEPTIBLE_FROM_RUN",
    "AttackSpec",
    "DefenceSpec",
    "ImperceptibleSettings",
    "attack_order",
    "format_eps",
    "register_attack",
    "register_defence",
    "with_resolved_defences",
]
