"""
The attacks beyond the white-box lab (not in the study): over the air, through simulated rooms (Qin et al.), and
black-box attacks with query budgets that only call `predict` (Kenansville, a genetic attack). Each is opt-in: a
system runs it only where it names it. Registered after the study's attacks, so their columns come after.

| Paper link: https://arxiv.org/abs/1903.10346
| Paper link: https://arxiv.org/abs/1910.05262
"""

import dataclasses
from typing import TYPE_CHECKING, Any, Dict, Mapping

from art_asr_ext.benchmark.config.fields import setting
from art_asr_ext.benchmark.registry.attacks import AttackSpec, ImperceptibleSettings, PGDSettings, register_attack

if TYPE_CHECKING:
    from art_asr_ext.benchmark.grid import Cell


@dataclasses.dataclass(frozen=True)
class RoomSettings:
    """The rooms of an over-the-air attack (Qin et al.'s shoe boxes: 3-5 x 4-6 x 2-4 m, absorption 0.2)."""

    train_rooms: int = setting(100, minimum=1, doc="training rooms the attacker's EOT draws from (Qin et al.: 1000)")
    test_rooms: int = setting(4, minimum=1, doc="unseen test rooms each example is played in and transcribed")
    room_seed: int = setting(0, minimum=0, doc="seed of the rooms (training and test rooms are disjoint draws)")


#: PGD's own defaults (the study's 7 iterations of step eps / 5, targeted), which over-the-air PGD shares.
_PGD = {field.name: field.default for field in dataclasses.fields(PGDSettings)}


@dataclasses.dataclass(frozen=True)
class OverTheAirPGDSettings(RoomSettings):
    """PGD under the L-infinity norm through simulated rooms, evaluated in unseen rooms."""

    eps: float = setting(0.01, positive=True, doc="max-norm")
    max_iter: int = setting(_PGD["max_iter"], minimum=1, doc="iterations")
    step_ratio: float = setting(_PGD["step_ratio"], positive=True, doc="step as a fraction of the max-norm")
    targeted: bool = setting(_PGD["targeted"], doc="toward the target phrase")
    eot_samples: int = setting(1, minimum=1, doc="training rooms averaged per gradient step (Qin et al.: 1)")


def _rooms(cell: "Cell", cache_dir):
    from art_asr_ext.preprocessing.audio import RoomSet

    params = cell.params
    return RoomSet.cached(cache_dir, int(params["room_seed"]), int(params["train_rooms"]), int(params["test_rooms"]))


def _build_over_the_air(room_eot: bool):
    def build(cell: "Cell", estimator, batch_size: int, max_length: int, seed: int, cache_dir=None):
        import numpy as np
        from art.attacks.evasion import ProjectedGradientDescent

        from art_asr_ext.attacks.evasion import OverTheAirAttack

        rooms = _rooms(cell, cache_dir)

        def pgd(target):
            return ProjectedGradientDescent(
                target,
                norm=np.inf,
                eps=cell.eps,
                eps_step=cell.eps * float(cell.params["step_ratio"]),
                max_iter=int(cell.params["max_iter"]),
                targeted=cell.targeted,
                num_random_init=0,
                batch_size=batch_size,
                verbose=False,
            )

        return OverTheAirAttack(
            estimator,
            pgd,
            rooms.train_responses,
            rooms.test_responses,
            room_eot=room_eot,
            eot_samples=int(cell.params["eot_samples"]),
            seed=seed,
        )

    return build


def _in_rooms_passes(params: Mapping[str, Any], eot_samples: int) -> Dict[str, int]:
    steps = int(params["max_iter"]) * int(params.get("eot_samples", 1)) * eot_samples
    return {"forward_backward": steps, "forward": int(params["test_rooms"])}


def _transcribe_in_rooms(attack, x_adv, batch_size: int):
    return attack.transcribe(x_adv, batch_size=batch_size)


_ROOM_ATTACK = dict(
    build=None,
    passes=_in_rooms_passes,
    budget=None,
    stronger_with_budget=None,
    eot_axis=False,
    columns=(("GT", False), ("TGT", True)),
    opt_in=True,
    transferable=False,
    transcribe=_transcribe_in_rooms,
    cached=True,
)


@dataclasses.dataclass(frozen=True)
class CleanInRoomsSettings(RoomSettings):
    """The clean speech played in the test rooms, unattacked: what the rooms alone do to a system, the baseline an
    over-the-air attack's ground-truth WER is read against."""

    eps: float = setting(0.0, minimum=0.0, maximum=0.0, doc="no perturbation: always 0")


def _build_clean_in_rooms(cell: "Cell", estimator, batch_size: int, max_length: int, seed: int, cache_dir=None):
    from art_asr_ext.attacks.evasion import OverTheAirAttack

    rooms = _rooms(cell, cache_dir)
    return OverTheAirAttack(estimator, None, rooms.train_responses, rooms.test_responses, room_eot=False, seed=seed)


def _clean_in_rooms_passes(params: Mapping[str, Any], eot_samples: int) -> Dict[str, int]:
    return {"forward_backward": 0, "forward": int(params["test_rooms"])}


register_attack(
    AttackSpec(
        **{
            **_ROOM_ATTACK,
            "build": _build_clean_in_rooms,
            "passes": _clean_in_rooms_passes,
            "columns": (("GT", False),),
        },
        key="room_clean",
        title="Clean in rooms",
        settings=CleanInRoomsSettings,
        perturbs=False,
    )
)
register_attack(
    AttackSpec(
        **{**_ROOM_ATTACK, "build": _build_over_the_air(True)},
        key="ota_pgd",
        title="Over-the-air PGD",
        settings=OverTheAirPGDSettings,
    )
)
register_attack(
    AttackSpec(
        **{**_ROOM_ATTACK, "build": _build_over_the_air(False)},
        key="room_pgd",
        title="PGD in rooms",
        settings=OverTheAirPGDSettings,
    )
)


@dataclasses.dataclass(frozen=True)
class OverTheAirImperceptibleSettings(RoomSettings, ImperceptibleSettings):
    """Qin et al.'s targeted imperceptible attack through simulated rooms (one training room per iteration), with
    every setting of the imperceptible attack at its default."""


def _build_over_the_air_imperceptible(
    cell: "Cell", estimator, batch_size: int, max_length: int, seed: int, cache_dir=None
):
    from art_asr_ext.attacks.evasion import OverTheAirAttack, RaggedImperceptibleASRPyTorch

    rooms = _rooms(cell, cache_dir)
    own = {k: v for k, v in cell.params.items() if k not in {f.name for f in dataclasses.fields(RoomSettings)}}

    def imperceptible(target):
        return RaggedImperceptibleASRPyTorch(target, batch_size=batch_size, global_max_length=int(max_length), **own)

    return OverTheAirAttack(estimator, imperceptible, rooms.train_responses, rooms.test_responses, seed=seed)


def _imperceptible_in_rooms_passes(params: Mapping[str, Any], eot_samples: int) -> Dict[str, int]:
    return {
        "forward_backward": int(params["max_iter_1"]) + int(params["max_iter_2"]),
        "forward": int(params["test_rooms"]),
    }


register_attack(
    AttackSpec(
        **{**_ROOM_ATTACK, "build": _build_over_the_air_imperceptible, "passes": _imperceptible_in_rooms_passes},
        key="ota_imperceptible",
        title="Over-the-air imperceptible",
        settings=OverTheAirImperceptibleSettings,
    )
)


@dataclasses.dataclass(frozen=True)
class KenansvilleSettings:
    """Kenansville (Abdullah et al.): remove the weakest STFT bins up to an SNR budget; untargeted, no gradient."""

    max_queries: int = setting(
        0, minimum=0, doc="0: the whole budget, no query (Armory's); else >= 2 transcriptions for the least removal"
    )
    n_fft: int = setting(512, minimum=16, doc="STFT size in samples (Hann window)")
    hop_length: int = setting(128, minimum=1, doc="STFT hop in samples")


def _build_kenansville(cell: "Cell", estimator, batch_size: int, max_length: int, seed: int):
    from art_asr_ext.attacks.evasion import KenansvilleAttack

    return KenansvilleAttack(
        estimator,
        snr_db=cell.eps,
        max_queries=int(cell.params["max_queries"]),
        n_fft=int(cell.params["n_fft"]),
        hop_length=int(cell.params["hop_length"]),
    )


def _queried_passes(params: Mapping[str, Any], eot_samples: int) -> Dict[str, int]:
    return {"forward_backward": 0, "forward": int(params["max_queries"]) + 1}


register_attack(
    AttackSpec(
        key="kenansville",
        title="Kenansville",
        settings=KenansvilleSettings,
        build=_build_kenansville,
        passes=_queried_passes,
        budget="snr_db",
        budget_kind="SNR",
        stronger_with_budget=False,
        eot_axis=False,
        black_box=True,
        opt_in=True,
        transferable=False,
    )
)


@dataclasses.dataclass(frozen=True)
class GeneticSettings:
    """A genetic attack (Alzantot et al., Taori et al.) with an L-infinity and a query budget; `predict` only."""

    max_queries: int = setting(1000, minimum=1, doc="transcriptions per utterance at most")
    population: int = setting(10, minimum=2, doc="candidates per generation")
    elite: int = setting(2, minimum=1, doc="best candidates kept unchanged (below the population)")
    mutation_rate: float = setting(0.005, positive=True, maximum=1.0, doc="probability a sample mutates")
    mutation_scale: float = setting(0.5, positive=True, doc="a mutation's size as a fraction of the max-norm")
    targeted: bool = setting(True, doc="toward the target phrase; false: away from the reference")
    untargeted_success: float = setting(0.5, positive=True, doc="character error rate that ends an untargeted run")
    temperature: float = setting(0.05, positive=True, doc="softmax temperature of parent selection")


def _build_genetic(cell: "Cell", estimator, batch_size: int, max_length: int, seed: int):
    from art_asr_ext.attacks.evasion import GeneticASRAttack

    return GeneticASRAttack(estimator, eps=cell.eps, targeted=cell.targeted, seed=seed, **dict(cell.params))


register_attack(
    AttackSpec(
        key="genetic",
        title="Genetic",
        settings=GeneticSettings,
        build=_build_genetic,
        passes=_queried_passes,
        eot_axis=False,
        black_box=True,
        opt_in=True,
        transferable=False,
    )
)
