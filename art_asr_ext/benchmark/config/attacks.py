"""
The `attacks` section and a system's share of it, read from the attack registry
(:mod:`art_asr_ext.benchmark.registry`): each attack's section holds its budget list (`eps`, `snr_db`) and the
fields of its settings dataclass; an attack without a budget (the imperceptible attack) takes the settings ART's
class declares, and a system may override them.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from typing import Any, Dict, Mapping, Sequence, Tuple

from art_asr_ext.benchmark.config.fields import (
    distinct_integers,
    fail,
    list_of,
    join,
    mapping,
    number,
    parse_fields,
    section_keys,
)
from art_asr_ext.benchmark.config.schema import AttackConfig, AttackSection, SystemAttack
from art_asr_ext.benchmark.registry.beyond_the_lab import RoomSettings
from art_asr_ext.benchmark.registry import ATTACKS, AttackSpec


def budget_list(spec: AttackSpec, value: Any, path: str) -> Tuple[float, ...]:
    """
    :param spec: The attack.
    :param value: Its list of budgets.
    :param path: The list's key path.
    :return: The budgets: distinct max-norms > 0, or distinct SNRs in dB between -60 and 120.
    """
    snr = spec.budget_kind == "SNR"
    values = tuple(number(v, join(path, i), positive=not snr) for i, v in enumerate(list_of(value, path)))
    if snr:
        for i, budget in enumerate(values):
            if not -60.0 <= budget <= 120.0:
                fail(join(path, i), "must be an SNR in dB between -60 and 120", budget)
    if len(set(values)) != len(values):
        fail(path, f"must not repeat {'an SNR' if snr else 'a max-norm'}", list(value))
    return values


def _section(spec: AttackSpec, value: Any, path: str) -> AttackSection:
    if spec.budget is None:
        return AttackSection(budgets=(), settings=parse_fields(spec.settings, value, path))
    section = mapping(value, path, required=(spec.budget,), optional=section_keys(spec.settings))
    budgets = budget_list(spec, section.pop(spec.budget), join(path, spec.budget))
    parsed = parse_fields(spec.settings, section, path)
    settings, strength = {}, {}
    for name, setting in parsed.items():
        if name in spec.strength_axes():  # an axis: the first value fills Table I, the others strength.csv
            values = setting if isinstance(setting, tuple) else (setting,)
            settings[name] = values[0]
            if values[1:]:
                strength[name] = values[1:]
        else:
            settings[name] = setting
    return AttackSection(budgets=budgets, settings=settings, strength=strength)


def parse_attacks(value: Any) -> AttackConfig:
    """
    :param value: The `attacks` section.
    :return: Each attack given, in the registry's order.
    """
    attacks = mapping(value, "attacks", optional=tuple(ATTACKS))
    return AttackConfig(
        sections={
            key: _section(spec, attacks[key], join("attacks", key)) for key, spec in ATTACKS.items() if key in attacks
        }
    )


def _share(spec: AttackSpec, item: Any, path: str, grid: Tuple[float, ...]) -> Tuple[float, ...]:
    """A system's share of an attack's budgets: all of them (`true` or left out), none (`false`) or a sub-list."""
    if item is True:
        return grid
    if item is False:
        return ()
    values_path = join(path, spec.budget)
    values = budget_list(spec, mapping(item, path, required=(spec.budget,))[spec.budget], values_path)
    for index, budget in enumerate(values):
        if budget not in grid:
            fail(join(values_path, index), f"must be one of attacks.{spec.key}.{spec.budget} {list(grid)}", budget)
    return tuple(budget for budget in grid if budget in values)  # in the table's column order


def _override(spec: AttackSpec, value: Any, path: str, settings: Mapping[str, Any]) -> Dict[str, Any]:
    """A system's override of an attack's settings, over the section's; an axis setting takes one value here."""
    parsed = parse_fields(spec.settings, value, path, defaults=settings)
    for name in spec.strength_axes():
        if isinstance(parsed[name], tuple):
            if len(parsed[name]) > 1:
                fail(join(path, name), "takes one value in a system (lists are the attacks section's strength axis)")
            parsed[name] = parsed[name][0]
    return parsed


def system_attacks(spec: Mapping[str, Any], path: str, attacks: AttackConfig) -> Dict[str, SystemAttack]:
    """
    A system's share of the attacks: `systems[i].attacks` picks budgets (`{pgd: {eps: [...]}, fgsm: false}`; an
    attack left out runs all of its budgets, except an opt-in attack (`AttackSpec.opt_in`: the black-box and
    over-the-air attacks), which runs only where a system names it, e.g. `{kenansville: true}`); `systems[i].attack_overrides` overrides any setting of an attack the
    config runs (`{imperceptible: {eps: 0.75, learning_rate_2: 1.0e-7}}`); and `systems[i].<key>` of an attack
    without a budget (`imperceptible`) overrides its settings too, or skips it with `false`.

    :param spec: The system's section.
    :param path: Its key path.
    :param attacks: The `attacks` section.
    :return: Each attack the system is attacked with, by key, in the table's order, with its effective settings.
    """
    budgeted = [key for key, attack in ATTACKS.items() if attack.budget is not None]
    chosen = mapping(spec.get("attacks") or {}, join(path, "attacks"), optional=budgeted)
    overrides_path = join(path, "attack_overrides")
    given = spec.get("attack_overrides")
    overrides = {} if given is None else mapping(given, overrides_path, optional=tuple(ATTACKS))
    for key in overrides:
        if key not in attacks.sections:
            fail(join(overrides_path, key), f"overrides an attack the config does not run (no attacks.{key})")
    shares: Dict[str, SystemAttack] = {}
    for key, attack in ATTACKS.items():
        section = attacks.sections.get(key)
        override_path = join(overrides_path, key)
        if attack.budget is None:
            own = spec.get(key, False if attack.opt_in else True)
            if own is False or (section is None and own in (True, None)):
                continue
            settings = dict(section.settings) if section is not None else {}
            if own not in (True, None):
                if key in overrides:
                    fail(override_path, f"overrides what {join(path, key)} sets; give the settings in one place")
                settings = parse_fields(attack.settings, own, join(path, key), defaults=settings)
            if key in overrides:
                settings = _override(attack, overrides[key], override_path, settings)
            shares[key] = SystemAttack(budgets=(float(settings["eps"]),), settings=settings)
            continue
        share = chosen.get(key, not attack.opt_in)
        if section is None and share is not False and key in chosen:
            fail(join(join(path, "attacks"), key), f"names an attack the config does not run (no attacks.{key})")
        budgets = _share(attack, share, join(join(path, "attacks"), key), attacks.budgets(key)) if section else ()
        if budgets:
            settings = dict(section.settings)
            if key in overrides:
                settings = _override(attack, overrides[key], override_path, settings)
            shares[key] = SystemAttack(budgets=budgets, settings=settings)
    _check_rooms_agree(shares, path)
    return shares


#: The settings that pick a run's rooms (their test rooms are the draws after the training rooms).
_ROOM_SETTINGS = tuple(field.name for field in dataclasses.fields(RoomSettings))


def _check_rooms_agree(shares: Mapping[str, SystemAttack], path: str) -> None:
    """The clean speech in rooms is the baseline of a system's over-the-air attacks only when heard in their rooms."""
    rooms = {
        key: {name: share.settings[name] for name in _ROOM_SETTINGS}
        for key, share in shares.items()
        if all(name in share.settings for name in _ROOM_SETTINGS)
    }
    for key in [key for key in rooms if not ATTACKS[key].perturbs]:
        for other, theirs in rooms.items():
            if theirs != rooms[key]:
                fail(
                    join(path, key),
                    f"is heard in other rooms than {other} ({theirs}): give both the same train_rooms, test_rooms and "
                    f"room_seed (the test rooms are the draws after the training rooms)",
                    rooms[key],
                )


def own_attack_keys() -> Tuple[str, ...]:
    """The keys of a system that override an attack without a budget (`imperceptible`)."""
    return tuple(key for key, attack in ATTACKS.items() if attack.budget is None)


def eot_variants(defences: Sequence[Any], path: str) -> Tuple[Mapping[int, int], ...]:
    """
    The attack-strength variants of a defence chain whose `eot_samples` are lists: variant j gives defence i its
    list's value j + 1 (the first value is the Table I cells'). Every list of the chain must be as long.
    """
    extras = {
        index: distinct_integers(defence["eot_samples"], join(join(path, index), "eot_samples"), "EOT draws")[1:]
        for index, defence in enumerate(defences)
        if isinstance(defence, Mapping) and isinstance(defence.get("eot_samples"), list)
    }
    extras = {index: values for index, values in extras.items() if values}
    if len({len(values) for values in extras.values()}) > 1:
        lengths = {join(join(path, index), "eot_samples"): len(values) + 1 for index, values in extras.items()}
        fail(path, "every eot_samples list of one defence chain must be as long (one value per strength step)", lengths)
    steps = max((len(values) for values in extras.values()), default=0)
    return tuple({index: values[step] for index, values in sorted(extras.items())} for step in range(steps))


def any_attack(attacks: AttackConfig, systems: Sequence[Any]) -> bool:
    """Whether the config attacks anything (a transfer row needs an attack to transfer)."""
    return any(section.budgets for section in attacks.sections.values()) or any(
        key in system.attacks for system in systems for key in own_attack_keys()
    )
