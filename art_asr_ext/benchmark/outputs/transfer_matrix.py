"""
The transfer matrix: how an attack computed on one system (the source) does on another (the target), for every
source x target pair of the run's transfer rows, with each source's white-box cells on the diagonal.

Written as ``transfer_matrix.csv`` (one line per source, target, attack and max-norm) and ``transfer_matrix.png``
(a heatmap per attack column: ground-truth WER, and target WER for the imperceptible attack).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import csv
import io
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from art_asr_ext.benchmark.config.schema import BenchmarkConfig
from art_asr_ext.benchmark.grid import CLEAN, Cell, group_rows
from art_asr_ext.benchmark.outputs.scores import wer_percent
from art_asr_ext.benchmark.registry import ATTACKS, attack_order, format_eps
from art_asr_ext.utils.io import atomic_write

logger = logging.getLogger(__name__)

#: Columns of transfer_matrix.csv.
MATRIX_COLUMNS = (
    "source",
    "target",
    "attack",
    "eps",
    "targeted",
    "white_box",
    "utterances",
    "gt_wer",
    "tgt_wer",
)


def matrix_axes(config: BenchmarkConfig) -> Tuple[List[str], List[str]]:
    """
    :param config: The benchmark.
    :return: The sources (systems attacks transfer from) and the targets (systems they are evaluated on, the sources
             among them for the diagonal), in the config's system order.
    """
    sources = {row.source for row in config.transfer}
    targets = {row.target for row in config.transfer} | sources
    order = [system.label for system in config.systems]
    return [label for label in order if label in sources], [label for label in order if label in targets]


def matrix_rows(
    config: BenchmarkConfig, grid: Sequence[Cell], rows: Iterable[Mapping[str, Any]]
) -> List[Dict[str, Any]]:
    """
    :param config: The benchmark.
    :param grid: Its cells.
    :param rows: Utterance rows of every finished cell.
    :return: One entry per source, target, attack and max-norm of the transfer rows, and per white-box cell of each
             source (the diagonal); a cell without a result yet has empty WERs and 0 utterances.
    """
    groups = group_rows(rows)
    # (source, target) -> the table row holding its cells and the attacks transferred; the diagonal is the source's
    # own row, with every attack any of its transfer rows takes.
    pairs: Dict[Tuple[str, str], Tuple[str, set]] = {}
    for row in config.transfer:
        label, attacks = pairs.get((row.source, row.source), (row.source, set()))
        pairs[(row.source, row.source)] = (label, attacks | set(row.attacks))
        pairs[(row.source, row.target)] = (row.label, set(row.attacks))
    sources, targets = matrix_axes(config)
    entries: List[Dict[str, Any]] = []
    for source in sources:
        cells = [
            (cell.attack, cell.eps, cell.targeted)
            for cell in grid
            if cell.row == source and not cell.is_transfer and not cell.strength and cell.attack != CLEAN
        ]
        for target in targets:
            if (source, target) not in pairs:
                continue
            row_label, transferred = pairs[(source, target)]
            for attack, eps, targeted in cells:
                if attack not in transferred:
                    continue
                group = groups.get((row_label, attack, float(eps)), [])
                entries.append(
                    {
                        "source": source,
                        "target": target,
                        "attack": attack,
                        "eps": eps,
                        "targeted": targeted,
                        "white_box": source == target,
                        "utterances": len(group),
                        "gt_wer": wer_percent(group),
                        "tgt_wer": wer_percent(group, target=True),
                    }
                )
    return entries


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def matrix_csv(entries: Sequence[Mapping[str, Any]]) -> str:
    """
    :param entries: From :func:`matrix_rows`.
    :return: transfer_matrix.csv: WERs in percent with one decimal, max-norms as in the table's header.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MATRIX_COLUMNS)
    for entry in entries:
        line = []
        for column in MATRIX_COLUMNS:
            value = entry[column]
            if column == "eps":
                line.append(format_eps(float(value)))
            elif column in ("gt_wer", "tgt_wer"):
                line.append("" if value is None else f"{value:.1f}")  # one decimal, as in table1.csv
            else:
                line.append(_value(value))
        writer.writerow(line)
    return buffer.getvalue()


def _panels(entries: Sequence[Mapping[str, Any]]) -> List[Tuple[str, str, float, str]]:
    """(title, attack, eps, WER column) per heatmap, in the table's column order."""
    seen: Dict[Tuple[str, float], None] = {}
    for entry in entries:
        seen.setdefault((entry["attack"], float(entry["eps"])), None)
    order = attack_order()
    panels = []
    for attack, eps in sorted(seen, key=lambda item: (order.index(item[0]), item[1])):
        spec = ATTACKS[attack]
        if spec.budget is None:
            for _, target in spec.columns:
                column, scored = ("tgt_wer", "target") if target else ("gt_wer", "ground-truth")
                panels.append((f"{spec.title}, {scored} WER", attack, eps, column))
        else:
            panels.append((f"{spec.column(eps)}, ground-truth WER", attack, eps, "gt_wer"))
    return panels


def plot_transfer_matrix(config: BenchmarkConfig, entries: Sequence[Mapping[str, Any]], path) -> bool:
    """
    Heatmaps of the transfer matrix, one per attack column (matplotlib's Agg backend): sources are rows, targets
    columns, each cell labelled with its WER; the diagonal (white-box) is outlined, pairs not run are blank. The
    target-WER panel runs its scale the other way, so that the attacker's success is bright in every panel.

    :param config: The benchmark.
    :param entries: From :func:`matrix_rows`.
    :param path: PNG file to write.
    :return: Whether a figure was written (not without entries, nor without matplotlib).
    """
    if not entries:
        return False
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'art-asr-ext[benchmark]'): no transfer_matrix.png")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sources, targets = matrix_axes(config)
    panels = _panels(entries)
    columns = min(3, len(panels))
    rows_of_panels = (len(panels) + columns - 1) // columns
    width = max(4.0, 1.0 + 0.9 * len(targets))
    height = max(2.5, 1.2 + 0.5 * len(sources))
    figure, axes = plt.subplots(
        rows_of_panels, columns, figsize=(width * columns, height * rows_of_panels), squeeze=False
    )
    for axis in axes.flat[len(panels) :]:
        axis.set_visible(False)
    lookup = {(e["source"], e["target"], e["attack"], float(e["eps"])): e for e in entries}
    for axis, (title, attack, eps, column) in zip(axes.flat, panels):
        grid = np.full((len(sources), len(targets)), np.nan)
        for i, source in enumerate(sources):
            for j, target in enumerate(targets):
                entry: Optional[Mapping[str, Any]] = lookup.get((source, target, attack, float(eps)))
                if entry is not None and entry[column] is not None:
                    grid[i, j] = entry[column]
        # The attacker's success is bright in every panel: a high ground-truth WER, or a low target WER.
        target_wer = column == "tgt_wer"
        vmax = max(100.0, float(np.nanmax(grid, initial=0.0)))
        image = axis.imshow(grid, cmap="viridis_r" if target_wer else "viridis", vmin=0.0, vmax=vmax)
        for i in range(len(sources)):
            for j in range(len(targets)):
                if not np.isnan(grid[i, j]):
                    bright = grid[i, j] < 40 if target_wer else grid[i, j] > 60
                    colour = "black" if bright else "white"
                    axis.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", color=colour, fontsize=9)
                if sources[i] == targets[j] and not np.isnan(grid[i, j]):
                    axis.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.5))
        axis.set_xticks(range(len(targets)), [_short(t) for t in targets], rotation=35, ha="right", fontsize=8)
        axis.set_yticks(range(len(sources)), [_short(s) for s in sources], fontsize=8)
        axis.set_xlabel("target (evaluated on)")
        axis.set_ylabel("source (attacked)")
        axis.set_title(title, fontsize=10)
        label = "target WER (%), low: the attacker succeeded" if target_wer else "WER (%)"
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label=label)
    figure.suptitle("Transfer matrix (red outline: white-box, the source attacked directly)", fontsize=11)
    figure.tight_layout()
    # Atomic, like every output: a full disk must not leave a truncated PNG behind.
    try:
        atomic_write(Path(path), lambda file: figure.savefig(file, format="png", dpi=110), binary=True)
    finally:
        plt.close(figure)
    return True


def _short(label: str, width: int = 28) -> str:
    return label if len(label) <= width else label[: width - 1] + "\u2026"
