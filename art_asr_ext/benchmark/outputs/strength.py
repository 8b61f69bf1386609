"""
The attack-strength axis: WER of the same attack and budget as the attack grows stronger, more PGD iterations (a list
`attacks.pgd.max_iter`) or more EOT draws through a randomised defence (a list `eot_samples`). A defence that only
holds against a weak attack shows it here: its WER keeps rising with the attacker's effort (Carlini et al., "On
Evaluating Adversarial Robustness", section 5; Athalye et al. on EOT).

``strength.csv`` has one line per cell of a (row, attack, budget) that has strength cells, its Table I cell first;
``strength.png`` plots WER against iterations, and against EOT draws, one panel per table row.

| Paper link: https://arxiv.org/abs/1902.06705
"""

import csv
import io
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from art_asr_ext.benchmark.config.schema import BenchmarkConfig
from art_asr_ext.benchmark.grid import group_of
from art_asr_ext.benchmark.outputs.scores import wer_percent
from art_asr_ext.benchmark.registry import ATTACKS, attack_order
from art_asr_ext.utils.io import atomic_write

logger = logging.getLogger(__name__)

#: Columns of strength.csv.
STRENGTH_COLUMNS = (
    "row",
    "system",
    "attack",
    "eps",
    "targeted",
    "strength",
    "max_iter",
    "num_random_init",
    "eot_samples",
    "utterances",
    "gt_wer",
    "tgt_wer",
)


def cell_strength(config: BenchmarkConfig, system: str, attack: str, strength: str) -> Dict[str, int]:
    """
    :param config: The benchmark.
    :param system: Label of the attacked system.
    :param attack: An attack's key.
    :param strength: The cell's strength (empty for a Table I cell).
    :return: The cell's `max_iter` (1 for a one-step attack), `num_random_init` and `eot_samples` (the most draws of
             its defences).
    """
    share = config.system(system).attacks.get(attack)
    settings = dict(share.settings if share is not None else config.attacks.settings(attack))  # the system's own
    settings["eot_samples"] = config.system(system).eot_samples
    name, _, value = strength.partition("=")
    if name:
        settings[name] = int(value)
    return {
        "max_iter": int(settings.get("max_iter", 1)),
        "num_random_init": int(settings.get("num_random_init", 0)),
        "eot_samples": int(settings["eot_samples"]),
    }


def strength_groups(
    rows: Iterable[Mapping[str, Any]],
) -> Dict[Tuple[str, str, float], Dict[str, List[Mapping[str, Any]]]]:
    """
    :param rows: Utterance rows of every finished cell.
    :return: (row, attack, eps) -> strength -> utterance rows, for every (row, attack, eps) that has a strength cell;
             its Table I cell is under the empty strength.
    """
    groups: Dict[Tuple[str, str, float], Dict[str, List[Mapping[str, Any]]]] = {}
    for row in rows:
        if row["attack"] in ATTACKS:
            groups.setdefault(group_of(row), {}).setdefault(str(row.get("strength") or ""), []).append(row)
    return {key: cells for key, cells in groups.items() if any(strength for strength in cells)}


def strength_entries(config: BenchmarkConfig, rows: Iterable[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """
    :param config: The benchmark.
    :param rows: Utterance rows of every finished cell.
    :return: One entry per line of strength.csv, in table order, weakest attack first within a (row, attack, eps).
    """
    order = {label: i for i, label in enumerate(config.row_labels)}
    entries = []
    groups = strength_groups(rows)
    for (row_label, attack, eps), cells in sorted(
        groups.items(),
        key=lambda item: (order.get(item[0][0], len(order)), attack_order().index(item[0][1]), item[0][2]),
    ):
        first = next(iter(cells.values()))[0]
        lines = []
        for strength, group in cells.items():
            settings = cell_strength(config, first["system"], attack, strength)
            lines.append(
                {
                    "row": row_label,
                    "system": first["system"],
                    "attack": attack,
                    "eps": eps,
                    "targeted": first["targeted"],
                    "strength": strength,
                    **settings,
                    "utterances": len(group),
                    "gt_wer": wer_percent(group),
                    "tgt_wer": wer_percent(group, target=True),
                }
            )
        entries += sorted(lines, key=lambda e: (e["eot_samples"], e["max_iter"], e["strength"]))
    return entries


def strength_csv(config: BenchmarkConfig, rows: Iterable[Mapping[str, Any]]) -> str:
    """
    :param config: The benchmark.
    :param rows: Utterance rows of every finished cell.
    :return: strength.csv (WER in percent with one decimal).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(STRENGTH_COLUMNS)
    for entry in strength_entries(config, rows):
        line = dict(entry, **{k: "" if entry[k] is None else f"{entry[k]:.1f}" for k in ("gt_wer", "tgt_wer")})
        writer.writerow([line[column] for column in STRENGTH_COLUMNS])
    return buffer.getvalue()


def _axis_lines(entries: Sequence[Mapping[str, Any]], axis: str) -> Dict[str, Dict[str, List[Tuple[int, float]]]]:
    """row -> line label -> (strength value, WER) points, for cells that vary along `axis` only."""
    other = "eot_samples" if axis == "max_iter" else "max_iter"
    panels: Dict[str, Dict[str, List[Tuple[int, float]]]] = {}
    by_cell: Dict[Tuple[str, str, float], List[Mapping[str, Any]]] = {}
    for entry in entries:
        by_cell.setdefault((entry["row"], entry["attack"], entry["eps"]), []).append(entry)
    for (row, attack, eps), group in by_cell.items():
        table = [e for e in group if not e["strength"]]
        if not table:
            continue
        along = [e for e in group if e[other] == table[0][other] and e["gt_wer"] is not None]
        if len({e[axis] for e in along}) < 2:
            continue
        name = ATTACKS[attack].column(eps)
        panels.setdefault(row, {})[name] = sorted((int(e[axis]), float(e["gt_wer"])) for e in along)
    return panels


def plot_strength(config: BenchmarkConfig, rows: Iterable[Mapping[str, Any]], path) -> bool:
    """
    Plot ground-truth WER against PGD iterations, and against EOT draws, one panel per table row and axis, one line
    per attack and budget (matplotlib's Agg backend).

    :param config: The benchmark.
    :param rows: Utterance rows of every finished cell.
    :param path: PNG file to write.
    :return: Whether anything was plotted (nothing is written otherwise, nor without matplotlib).
    """
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'art-asr-ext[benchmark]'): no strength.png")
        return False
    entries = strength_entries(config, rows)
    panels: List[Tuple[str, str, Dict[str, List[Tuple[int, float]]]]] = []
    for axis, label in (("max_iter", "PGD iterations"), ("eot_samples", "EOT draws per gradient")):
        for row, lines in _axis_lines(entries, axis).items():
            panels.append((row, label, lines))
    if not panels:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(panels))
    count = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(count, columns, figsize=(5 * columns, 3.8 * count), squeeze=False)
    colours = plt.get_cmap("tab10").colors
    styles = ("-", "--", ":", "-.")
    for axis, (row, label, lines) in zip(axes.flat, panels):
        for index, (name, points) in enumerate(sorted(lines.items())):
            axis.plot(
                *zip(*points),
                marker="o",
                color=colours[index % len(colours)],
                linestyle=styles[(index // len(colours)) % len(styles)],
                label=name,
            )
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("ground-truth WER (%)")
        axis.set_title(row, fontsize="medium")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    figure.tight_layout()
    try:
        atomic_write(Path(path), lambda file: figure.savefig(file, format="png", dpi=110), binary=True)
    finally:
        plt.close(figure)
    return True


def strength_wers(rows: Iterable[Mapping[str, Any]]) -> Dict[Tuple[str, str, float, str], Optional[float]]:
    """
    :param rows: Utterance rows of every finished cell.
    :return: (row, attack, eps, strength) -> ground-truth WER in percent, for the cells of :func:`strength_groups`.
    """
    return {
        (row, attack, eps, strength): wer_percent(group)
        for (row, attack, eps), cells in strength_groups(rows).items()
        for strength, group in cells.items()
    }
