"""
The grid of cells. A cell is one (table row, attack, budget) over all utterances: `clean`, every attack of the
registry (:mod:`art_asr_ext.benchmark.registry`) at each budget a system takes (its `eps` holds the max-norm, or the
SNR budget in dB), and for a transfer row the source system's adversarial examples of one of its cells evaluated on
the target system.

Cells on the attack-strength axis (a list of PGD `max_iter`, or of a defence's `eot_samples`) repeat a Table I cell
with a stronger attack; their `strength` names what changed (`max_iter=50`, `eot_samples=16`). They fill
strength.csv, not Table I, and are not transferred.

Neither torch nor ART is imported here: the outputs build on this module.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from typing import Any, Dict, Iterable, List, Mapping, Set, Tuple

from art_asr_ext.benchmark.config.schema import BenchmarkConfig, SystemConfig
from art_asr_ext.benchmark.registry import ATTACKS, CLEAN

#: Columns of utterances.csv, in order.
UTTERANCE_COLUMNS = (
    "row",
    "system",
    "source",
    "attack",
    "eps",
    "targeted",
    "strength",
    "utterance_id",
    "reference",
    "target",
    "hypothesis",
    "gt_errors",
    "gt_words",
    "tgt_errors",
    "tgt_words",
    "linf",
    "snr_db",
    "pesq",
    "stoi",
    "perceptual_note",
    "vote_agreement",
    "vote_draw_wer",
    "queries",
    "seconds",
)
#: The perceptual columns, measured on x_adv against x (empty on clean cells and where a metric cannot score).
PERCEPTUAL_COLUMNS = ("pesq", "stoi", "perceptual_note")
#: The stability of a voting system's transcript (empty for a system that does not vote): the share of its noisy
#: draws that agree with the vote, and the draws' mean WER against the vote.
VOTE_COLUMNS = ("vote_agreement", "vote_draw_wer")
#: Of a black-box attack's cell: the transcriptions it asked for per utterance (empty for any other cell).
QUERY_COLUMN = "queries"


def cell_key(row: str, attack: str, eps: float, strength: str = "") -> str:
    """
    :param row: A table row's label.
    :param attack: An attack's key, or `clean`.
    :param eps: The cell's budget.
    :param strength: What is stronger on the attack-strength axis (empty for a Table I cell).
    :return: The unique name of the cell in a run: `(1) DeepSpeech 2 | pgd | 0.01`.
    """
    return f"{row} | {attack} | {float(eps)!r}" + (f" | {strength}" if strength else "")


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
    #: Budget: the max-norm, the SNR budget in dB, the imperceptible attack's `eps`; 0 for clean.
    eps: float
    targeted: bool
    #: Attack settings (PGD iterations and step, imperceptible settings); part of the cell's fingerprint.
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Empty for a Table I cell; on the attack-strength axis, what is stronger (`max_iter=50`, `eot_samples=16`).
    strength: str = ""

    @property
    def key(self) -> str:
        """Unique name of the cell in a run."""
        return cell_key(self.row, self.attack, self.eps, self.strength)

    @property
    def is_transfer(self) -> bool:
        """Whether the cell evaluates another system's adversarial examples."""
        return self.source != self.system

    @property
    def source_key(self) -> str:
        """Key of the cell whose adversarial examples a transfer cell evaluates (its own key otherwise)."""
        return cell_key(self.source, self.attack, self.eps, self.strength)

    @property
    def group(self) -> Tuple[str, str, float]:
        """`(row, attack, eps)`: the cell and its attack-strength copies."""
        return self.row, self.attack, float(self.eps)


def group_of(row: Mapping[str, Any]) -> Tuple[str, str, float]:
    """
    :param row: An utterance row (of utterances.csv) or a record.
    :return: Its cell's `(row, attack, eps)`.
    """
    return row["row"], row["attack"], float(row["eps"])


def group_rows(rows: Iterable[Mapping[str, Any]]) -> Dict[Tuple[str, str, float], List[Mapping[str, Any]]]:
    """
    :param rows: Utterance rows.
    :return: The rows of each `(row, attack, eps)`, in the order first met.
    """
    groups: Dict[Tuple[str, str, float], List[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(group_of(row), []).append(row)
    return groups


def system_cells(config: BenchmarkConfig, system: SystemConfig) -> List[Cell]:
    """
    :param config: The benchmark.
    :param system: One of its systems.
    :return: The system's own cells, in table order.
    """
    label = system.label
    cells = [Cell(label, label, label, CLEAN, 0.0, False)]
    for key, share in system.attacks.items():
        spec = ATTACKS[key]
        params = spec.params(share.settings)
        targeted = spec.is_targeted(share.settings)
        cells += [Cell(label, label, label, key, budget, targeted, params) for budget in share.budgets]
    return cells + strength_cells(config, system, cells)


def strength_cells(config: BenchmarkConfig, system: SystemConfig, table_cells: List[Cell]) -> List[Cell]:
    """
    :param config: The benchmark.
    :param system: One of its systems.
    :param table_cells: Its Table I cells.
    :return: Its cells on the attack-strength axis: each cell of an attack with a list setting (`max_iter`) at every
             other value of the list, then each cell of an attack on the EOT axis at every other `eot_samples` of its
             defences' lists.
    """
    cells = []
    for key, section in config.attacks.sections.items():
        for name, values in section.strength.items():
            for value in values:
                cells += [
                    dataclasses.replace(cell, params={**cell.params, name: value}, strength=f"{name}={value}")
                    for cell in table_cells
                    if cell.attack == key
                ]
    for variant in system.eot_variants:
        draws = max(variant.values())
        for cell in table_cells:
            if cell.attack in ATTACKS and ATTACKS[cell.attack].eot_axis:
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


def transfer_sources(config: BenchmarkConfig, grid: List[Cell]) -> Set[str]:
    """
    :param config: The benchmark.
    :param grid: Its cells.
    :return: Keys of the cells whose adversarial examples must be kept (transfer sources, or all with
             `save_adversarial`).
    """
    if config.save_adversarial:
        return {cell.key for cell in grid if cell.attack != CLEAN and not cell.is_transfer}
    return {cell.source_key for cell in grid if cell.is_transfer}


def cell_passes(cell: Cell, eot_samples: int = 1) -> Dict[str, int]:
    """
    Model passes a cell costs per utterance.

    :param cell: The cell.
    :param eot_samples: Gradient draws per step (the most `eot_samples` of the source system's defences); a cell on
                        the attack-strength axis brings its own.
    :return: `{"forward_backward": n, "forward": m}`.
    """
    if cell.is_transfer or cell.attack == CLEAN:
        return {"forward_backward": 0, "forward": 1}
    return ATTACKS[cell.attack].passes(cell.params, eot_samples)
