"""
The grid of cells, and ART's attacks built for a cell.

A cell is one (table row, attack, max-norm) over all utterances: `clean`, `fgsm` and `pgd` at each max-norm,
`imperceptible`, and for a transfer row the source system's adversarial examples of one of its cells evaluated on
the target system.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
from art.attacks.evasion import FastGradientMethod, ImperceptibleASRPyTorch, ProjectedGradientDescent

from benchmarks.runner.config import BenchmarkConfig, SystemConfig

#: Order of the attacks in the table and in utterances.csv.
ATTACK_ORDER = ("clean", "fgsm", "pgd", "imperceptible")


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
    #: Max-norm (0 for clean; the imperceptible attack's `eps`).
    eps: float
    targeted: bool
    #: Attack settings (PGD iterations and step, imperceptible settings); part of the cell's fingerprint.
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique name of the cell in a run."""
        return f"{self.row} | {self.attack} | {self.eps!r}"

    @property
    def is_transfer(self) -> bool:
        """Whether the cell evaluates another system's adversarial examples."""
        return self.source != self.system

    @property
    def source_key(self) -> str:
        """Key of the cell whose adversarial examples a transfer cell evaluates (its own key otherwise)."""
        return f"{self.source} | {self.attack} | {self.eps!r}"


def system_cells(config: BenchmarkConfig, system: SystemConfig) -> List[Cell]:
    """
    :param config: The benchmark.
    :param system: One of its systems.
    :return: The system's own cells, in table order.
    """
    attacks = config.attacks
    label = system.label
    cells = [Cell(label, label, label, "clean", 0.0, False)]
    cells += [Cell(label, label, label, "fgsm", eps, attacks.fgsm_targeted) for eps in attacks.fgsm_eps]
    pgd = {"max_iter": attacks.pgd_max_iter, "step_ratio": attacks.pgd_step_ratio}
    cells += [Cell(label, label, label, "pgd", eps, attacks.pgd_targeted, pgd) for eps in attacks.pgd_eps]
    if system.imperceptible is not None:
        settings = dict(sorted(system.imperceptible.items()))
        eps = float(settings.get("eps", 0.05))  # ART's default
        cells.append(Cell(label, label, label, "imperceptible", eps, True, settings))
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
            if source_cell.attack in transfer.attacks:
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


class RaggedImperceptibleASRPyTorch(ImperceptibleASRPyTorch):
    """
    ART's ImperceptibleASRPyTorch, accepting a batch of utterances of different lengths under numpy 2.

    ART 1.20.1 stacks the batch with ``np.array([...])``, which numpy >= 1.24 refuses for ragged rows; this override of
    :meth:`generate` only builds object arrays instead and otherwise runs ART's own algorithm unchanged.

    | Paper link: https://arxiv.org/abs/1903.10346
    """

    def generate(self, x: np.ndarray, y: Optional[np.ndarray] = None, **kwargs) -> np.ndarray:
        """
        :param x: Object array of 1-D waveforms (or a 2-D array).
        :param y: Target transcripts, one per utterance.
        :return: Object array of adversarial waveforms, each the length and dtype of its input.
        """
        if y is None:
            raise ValueError("The imperceptible attack is targeted: give the target transcripts y.")
        if len(x) == 0 or (isinstance(x, np.ndarray) and x.dtype != object):
            return super().generate(x, y, **kwargs)
        lengths = {len(x_i) for x_i in x}
        if len(lengths) == 1:
            stacked = np.stack([np.asarray(x_i) for x_i in x])
            return _object_array(list(super().generate(stacked, y, **kwargs)))
        # The same steps as ImperceptibleASRPyTorch.generate, with object arrays.
        import torch

        adversarial = _object_array([np.asarray(x_i).astype(np.float64) for x_i in x])
        self.estimator.to_training_mode()
        self.estimator.set_batchnorm(train=False)
        for start in range(0, len(x), self.batch_size):
            stop = min(start + self.batch_size, len(x))
            self.global_optimal_delta.data = torch.zeros(self.batch_size, self.global_max_length).type(torch.float64)
            optimizer_1 = self._optimizer_arg_1 or torch.optim.Adam
            optimizer_2 = self._optimizer_arg_2 or torch.optim.Adam
            self.optimizer_1 = optimizer_1(params=[self.global_optimal_delta], lr=self.learning_rate_1)
            self.optimizer_2 = optimizer_2(params=[self.global_optimal_delta], lr=self.learning_rate_2)
            batch = self._generate_batch(adversarial[start:stop], np.asarray(y)[start:stop])
            for i in range(stop - start):
                adversarial[start + i] = batch[i, : len(adversarial[start + i])]
        self.estimator.set_batchnorm(train=True)
        return _object_array([adversarial[i].astype(np.asarray(x[i]).dtype) for i in range(len(x))])


def _object_array(items: List[np.ndarray]) -> np.ndarray:
    result = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        result[index] = item
    return result


def make_attack(cell: Cell, estimator, batch_size: int, max_length: int):
    """
    ART's attack for a cell (not for clean or transfer cells).

    :param cell: The cell.
    :param estimator: The ART speech recognizer attacked.
    :param batch_size: Utterances per batch.
    :param max_length: Longest utterance in samples (the imperceptible attack allocates its perturbation for it).
    :return: The attack.
    """
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
    if cell.attack == "imperceptible":
        return RaggedImperceptibleASRPyTorch(
            estimator, batch_size=batch_size, global_max_length=int(max_length), **dict(cell.params)
        )
    raise ValueError(f"No attack to build for a {cell.attack!r} cell.")
