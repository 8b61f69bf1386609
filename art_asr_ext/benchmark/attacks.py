"""
The grid of cells, and ART's attacks built for a cell.

A cell is one (table row, attack, max-norm) over all utterances: `clean`, the random-`noise` baseline, `fgsm` and
`pgd` at each max-norm,
`pgd_snr` at each SNR budget (its `eps` holds the budget in dB), `imperceptible`, and for a transfer row the source
system's adversarial examples of one of its cells evaluated on the target system.

Cells on the attack-strength axis (a list of PGD `max_iter`, or of a defence's `eot_samples`) repeat a Table I cell
with a stronger attack; their `strength` names what changed (`max_iter=50`, `eot_samples=16`). They fill
strength.csv, not Table I, and are not transferred.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from typing import Any, Dict, List, Mapping

import numpy as np
from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent

from art_asr_ext.attacks.evasion import (
    RaggedImperceptibleASRPyTorch,
    RandomRestartProjectedGradientDescent,
    SNRProjectedGradientDescent,
    UniformNoiseBaseline,
)

from art_asr_ext.benchmark.config import BenchmarkConfig, SystemConfig

#: Order of the attacks in the table and in utterances.csv.
ATTACK_ORDER = ("clean", "noise", "fgsm", "pgd", "pgd_snr", "imperceptible")


@dataclasses.dataclass(frozen=True)
class Cell:
    """One cell of the grid."""

    #: Label of the table row the cell fills.
    row: str
    #: Label of the system whose transcripts are scored.
    system: str
    #: Label of the system the attack was computed on (`system` except for transfer rows).
    source: str
    attack: str
    #: Max-norm (0 for clean; the imperceptible attack's `eps`; the SNR budget in dB for `pgd_snr`).
    eps: float
    targeted: bool
    #: Attack settings (PGD iterations and step, imperceptible settings); part of the cell's fingerprint.
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Empty for a Table I cell; on the attack-strength axis, what is stronger (`max_iter=50`, `eot_samples=16`).
    strength: str = ""

    @property
    def key(self) -> str:
        """Unique name of the cell in a run."""
        return f"{self.row} | {self.attack} | {self.eps!r}" + (f" | {self.strength}" if self.strength else "")

    @property
    def is_transfer(self) -> bool:
        """Whether the cell evaluates another system's adversarial examples."""
        return self.source != self.system

    @property
    def source_key(self) -> str:
        """Key of the cell whose adversarial examples a transfer cell evaluates (its own key otherwise)."""
        return f"{self.source} | {self.attack} | {self.eps!r}" + (f" | {self.strength}" if self.strength else "")


def system_cells(config: BenchmarkConfig, system: SystemConfig) -> List[Cell]:
    """
    :param config: The benchmark.
    :param system: One of its systems.
    :return: The system's own cells, in table order.
    """
    attacks = config.attacks
    label = system.label
    cells = [Cell(label, label, label, "clean", 0.0, False)]
    cells += [Cell(label, label, label, "noise", eps, False) for eps in system.noise_eps]
    cells += [Cell(label, label, label, "fgsm", eps, attacks.fgsm_targeted) for eps in system.fgsm_eps]
    pgd = {"max_iter": attacks.pgd_max_iter, "step_ratio": attacks.pgd_step_ratio}
    if attacks.pgd_num_random_init:  # absent at 0, so that the fingerprints of earlier runs still match
        pgd["num_random_init"] = attacks.pgd_num_random_init
    cells += [Cell(label, label, label, "pgd", eps, attacks.pgd_targeted, pgd) for eps in system.pgd_eps]
    pgd_snr = {"max_iter": attacks.pgd_snr_max_iter, "step_ratio": attacks.pgd_snr_step_ratio}
    cells += [Cell(label, label, label, "pgd_snr", snr, attacks.pgd_snr_targeted, pgd_snr) for snr in system.pgd_snr_db]
    if system.imperceptible is not None:
        settings = dict(sorted(system.imperceptible.items()))
        eps = float(settings.get("eps", 0.05))  # ART's default
        cells.append(Cell(label, label, label, "imperceptible", eps, True, settings))
    return cells + strength_cells(config, system, cells)


def strength_cells(config: BenchmarkConfig, system: SystemConfig, table_cells: List[Cell]) -> List[Cell]:
    """
    :param config: The benchmark.
    :param system: One of its systems.
    :param table_cells: Its Table I cells.
    :return: Its cells on the attack-strength axis: each PGD cell at every other `max_iter` of the list, then each
             FGSM, PGD and SNR-budget PGD cell at every other `eot_samples` of its defences' lists.
    """
    cells = []
    for max_iter in config.attacks.strength_pgd_max_iter:
        cells += [
            dataclasses.replace(cell, params={**cell.params, "max_iter": max_iter}, strength=f"max_iter={max_iter}")
            for cell in table_cells
            if cell.attack == "pgd"
        ]
    for variant in system.eot_variants:
        draws = max(variant.values())
        for cell in table_cells:
            if cell.attack in ("fgsm", "pgd", "pgd_snr"):
                params = {**cell.params, "eot_samples": {str(index): value for index, value in variant.items()}}
                cells.append(dataclasses.replace(cell, params=params, strength=f"eot_samples={draws}"))
    return cells


def build_grid(config: BenchmarkConfig) -> List[Cell]:
    """
    :param config: The benchmark.
    :return: Every cell: each system's own cells in config order, then the transfer rows' cells.
    """
    cells: List[Cell] = []
    own: Dict[str, List[Cell]] = {}
    for system in config.systems:
        own[system.label] = system_cells(config, system)
        cells += own[system.label]
    for transfer in config.transfer:
        for source_cell in own[transfer.source]:
            if source_cell.attack in transfer.attacks and not source_cell.strength:
                cells.append(dataclasses.replace(source_cell, row=transfer.label, system=transfer.target))
    return cells


def transfer_sources(config: BenchmarkConfig, grid: List[Cell]) -> set:
    """
    :param config: The benchmark.
    :param grid: Its cells.
    :return: Keys of the cells whose adversarial examples must be kept (transfer sources, or all with
             `save_adversarial`).
    """
    if config.save_adversarial:
        return {cell.key for cell in grid if cell.attack != "clean" and not cell.is_transfer}
    return {cell.source_key for cell in grid if cell.is_transfer}


def make_attack(cell: Cell, estimator, batch_size: int, max_length: int):
    """
    ART's attack for a cell (not for clean or transfer cells).

    :param cell: The cell.
    :param estimator: The ART speech recognizer attacked.
    :param batch_size: Utterances per batch.
    :param max_length: Longest utterance in samples (the imperceptible attack allocates its perturbation for it).
    :return: The attack.
    """
    if cell.attack == "noise":
        # Seeded from numpy's global state, which the runner resets to the cell's seed: the same noise every run.
        return UniformNoiseBaseline(estimator, eps=cell.eps, seed=int(np.random.randint(2**31 - 1)))
    if cell.attack == "fgsm":
        return FastGradientMethod(
            estimator,
            norm=np.inf,
            eps=cell.eps,
            eps_step=cell.eps,
            targeted=cell.targeted,
            num_random_init=0,
            batch_size=batch_size,
        )
    if cell.attack == "pgd" and cell.params.get("num_random_init", 0):
        return RandomRestartProjectedGradientDescent(
            estimator,
            eps=cell.eps,
            eps_step=cell.eps * float(cell.params["step_ratio"]),
            max_iter=int(cell.params["max_iter"]),
            targeted=cell.targeted,
            num_random_init=int(cell.params["num_random_init"]),
            batch_size=batch_size,
        )
    if cell.attack == "pgd":
        return ProjectedGradientDescent(
            estimator,
            norm=np.inf,
            eps=cell.eps,
            eps_step=cell.eps * float(cell.params["step_ratio"]),
            max_iter=int(cell.params["max_iter"]),
            targeted=cell.targeted,
            num_random_init=0,
            batch_size=batch_size,
            verbose=False,
        )
    if cell.attack == "pgd_snr":
        return SNRProjectedGradientDescent(
            estimator,
            snr_db=cell.eps,
            step_ratio=float(cell.params["step_ratio"]),
            max_iter=int(cell.params["max_iter"]),
            targeted=cell.targeted,
            batch_size=batch_size,
        )
    if cell.attack == "imperceptible":
        return RaggedImperceptibleASRPyTorch(
            estimator, batch_size=batch_size, global_max_length=int(max_length), **dict(cell.params)
        )
    raise ValueError(f"No attack to build for a {cell.attack!r} cell.")
