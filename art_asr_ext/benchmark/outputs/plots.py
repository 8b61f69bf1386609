"""
The figures of Table I: the heatmap (table1_heatmap.png) with its two colour scales, shared with report.html, and WER
against the max-norm (wer_vs_eps.png), drawn with matplotlib's Agg backend when it is installed.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from art_asr_ext.benchmark.outputs.tables import TableLayout, table_values
from art_asr_ext.benchmark.registry import ATTACKS
from art_asr_ext.utils.io import atomic_write

logger = logging.getLogger(__name__)

#: WER (%) at the dark end of the heatmap's colour scale; higher values get its colour too.
WER_SCALE_MAX = 100.0
#: Anchors of the heatmap's sequential colour scale (ColorBrewer YlOrRd), light for a low WER.
_SCALE = ((255, 255, 204), (254, 217, 118), (253, 141, 60), (227, 26, 28), (128, 0, 38))
#: Anchors of the target-WER columns' scale (ColorBrewer RdPu, reversed), dark for a low WER: there a low WER is the
#: attacker's success, so dark means "the attack worked" in both scales, and another hue keeps a reader from reading
#: a target WER on the ground-truth scale. Classes 8, 6, 5, 3 and 1 of the 9: the middle stays dark enough for white
#: text, and 100 % stays pink enough not to pass for an empty cell (#f4f4f4).
_TARGET_SCALE = ((73, 0, 106), (174, 1, 126), (221, 52, 151), (250, 159, 181), (253, 224, 221))


def wer_scale(target: bool = False) -> Tuple[Tuple[int, int, int], ...]:
    """
    :param target: The scale of a target-WER column (:attr:`TableLayout.target_columns`) instead of a ground-truth one.
    :return: RGB anchors of the heatmap's colour scale, evenly spaced from 0 to :data:`WER_SCALE_MAX`.
    """
    return _TARGET_SCALE if target else _SCALE


def wer_colour(value: float, target: bool = False) -> Tuple[str, str]:
    """
    :param value: WER in percent.
    :param target: The WER is against the attacker's target phrase: dark for a low WER (the attack succeeded).
    :return: CSS background and text colours of a heatmap cell with that WER.
    """
    scale = wer_scale(target)
    position = min(max(value / WER_SCALE_MAX, 0.0), 1.0) * (len(scale) - 1)
    low = min(int(position), len(scale) - 2)
    fraction = position - low
    rgb = [round(a + (b - a) * fraction) for a, b in zip(scale[low], scale[low + 1])]
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})", "#fff" if luminance < 140 else "#000"


#: Most rows (lines of one colour) in one panel of wer_vs_eps.png: a larger family is split over several panels.
MAX_LINES_PER_PANEL = 8
#: Line style and marker of each attack in wer_vs_eps.png.
ATTACK_STYLES = {"fgsm": ("-", "o"), "fgsm_u": (":", "^"), "pgd": ("--", "s")}


@dataclasses.dataclass(frozen=True)
class LineSpec:
    """One line of wer_vs_eps.png: a table row under one attack, in one panel."""

    panel: str
    row: str
    attack: str
    colour: str
    linestyle: str


def panel_rows(layout: TableLayout, families: Optional[Mapping[str, str]] = None) -> List[Tuple[str, List[str]]]:
    """
    :param layout: Rows and columns.
    :param families: The family (panel name) of each row label, e.g. the model; rows without one share a panel.
    :return: `(panel title, row labels)` in table order, at most :data:`MAX_LINES_PER_PANEL` rows a panel (a larger
             family is split evenly: "DeepSpeech2 (1/2)").
    """
    groups: Dict[str, List[str]] = {}
    for label, _ in layout.rows:
        groups.setdefault((families or {}).get(label, "Systems"), []).append(label)
    panels = []
    for family, labels in groups.items():
        count = math.ceil(len(labels) / MAX_LINES_PER_PANEL)
        size = math.ceil(len(labels) / count)
        for index in range(count):
            title = family if count == 1 else f"{family} ({index + 1}/{count})"
            panels.append((title, labels[index * size : (index + 1) * size]))
    return panels


def _save_figure(figure, path) -> None:
    import matplotlib.pyplot as plt

    # Atomic, like every output: a full disk must not leave a truncated PNG behind.
    try:
        atomic_write(Path(path), lambda file: figure.savefig(file, format="png", dpi=110), binary=True)
    finally:
        plt.close(figure)


def _pyplot():
    """matplotlib's pyplot on the Agg backend, or None (with a warning) without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'art-asr-ext[benchmark]'): no figures")
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_wer_vs_eps(
    layout: TableLayout, rows: Iterable[Mapping[str, Any]], path, families: Optional[Mapping[str, str]] = None
) -> List[LineSpec]:
    """
    Plot WER against the max-norm as small multiples: one panel per family of rows (see :func:`panel_rows`), one
    colour per row within a panel, FGSM solid with circles, FGSM-U dotted with triangles and PGD dashed with squares
    (matplotlib's Agg backend).

    :param layout: Rows and columns.
    :param rows: Utterance rows of every finished cell.
    :param path: PNG file to write.
    :param families: The family (panel) of each row label.
    :return: The lines drawn (empty when there was nothing to plot: nothing is written then, nor without
             matplotlib, which is in the `benchmark` extra).
    """
    values = dict(zip([label for label, _ in layout.rows], table_values(layout, rows)))
    columns = layout.attack_columns()
    # (attack, [(max-norm, index of its value column)]): the Clean column comes first.
    attacks = [
        (attack, [(eps, 1 + i) for i, (_, a, eps) in enumerate(columns) if a == attack]) for attack in ATTACK_STYLES
    ]

    def points(label: str, indexed: Sequence[Tuple[float, int]]) -> List[Tuple[float, float]]:
        line = values[label]
        return [(eps, line[index]) for eps, index in indexed if line[index] is not None]

    panels = [
        (title, [label for label in labels if any(points(label, indexed) for _, indexed in attacks)])
        for title, labels in panel_rows(layout, families)
    ]
    panels = [(title, labels) for title, labels in panels if labels]
    if not panels:
        return []
    plt = _pyplot()
    if plt is None:
        return []
    from matplotlib.lines import Line2D

    columns = min(3, len(panels))
    lines_of_panels = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(
        lines_of_panels, columns, figsize=(5.2 * columns, 4.6 * lines_of_panels), squeeze=False, sharey=True
    )
    colours = plt.get_cmap("tab10").colors
    specs: List[LineSpec] = []
    for axis, (title, labels) in zip(axes.flat, panels):
        for index, label in enumerate(labels):
            colour = colours[index % len(colours)]
            for attack, indexed in attacks:
                found = points(label, indexed)
                if not found:
                    continue
                style, marker = ATTACK_STYLES[attack]
                axis.plot(*zip(*found), linestyle=style, marker=marker, color=colour, label=f"{label} {attack}")
                specs.append(LineSpec(title, label, attack, matplotlib_colour(colour), style))
        axis.set_xscale("log")
        axis.set_title(title, fontsize="medium")
        axis.set_xlabel("max-norm (L\u221e)")
        axis.grid(True, which="both", alpha=0.3)
        handles = [Line2D([], [], color=colours[i % len(colours)], lw=3) for i in range(len(labels))]
        axis.legend(handles, labels, fontsize="x-small", loc="best")
    for axis in axes[:, 0]:
        axis.set_ylabel("WER (%)")
    for axis in list(axes.flat)[len(panels) :]:
        axis.set_visible(False)
    drawn = [attack for attack, indexed in attacks if indexed]
    styles = [Line2D([], [], color="#444", linestyle=ATTACK_STYLES[a][0], marker=ATTACK_STYLES[a][1]) for a in drawn]
    figure.legend(styles, [ATTACKS[a].title for a in drawn], loc="upper center", ncol=len(drawn), fontsize="small")
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (4.6 * lines_of_panels)))
    _save_figure(figure, path)
    return specs


def matplotlib_colour(colour: Any) -> str:
    """
    :param colour: A matplotlib colour.
    :return: It as `#rrggbb`.
    """
    from matplotlib.colors import to_hex

    return to_hex(colour)


#: Height (inches) of the strip under the heatmap that holds its two colour bars.
_LEGEND_HEIGHT = 0.72


def _scale_legend(figure, axis, target_columns: Sequence[str]) -> None:
    """
    Grow the laid-out heatmap figure by a strip at the bottom with a colour bar of each scale, ground-truth on the
    left and target WER on the right.
    """
    # Added after the table's tight layout, at fixed inches: the table keeps the place it has without the legend,
    # and a table of one row neither squeezes the bars nor is squeezed by them.
    width, height = figure.get_size_inches()
    total = height + _LEGEND_HEIGHT
    position = axis.get_position()
    figure.set_size_inches(width, total)
    axis.set_position(
        (position.x0, (position.y0 * height + _LEGEND_HEIGHT) / total, position.width, position.height * height / total)
    )
    bottom, bar = 0.5 / total, 0.12 / total
    names = ", ".join(target_columns)
    labels = (
        "ground-truth WER (%), the other columns:\ndark = the attack hurt",
        f"target WER (%), {names}:\ndark = the attacker succeeded",
    )
    for left, target, label in ((0.05, False, labels[0]), (0.54, True, labels[1])):
        _colour_bar(figure, figure.add_axes((left, bottom, 0.41, bar)), target, label)


def _colour_bar(figure, axis, target: bool, label: str) -> None:
    """A horizontal colour bar of one of the heatmap's scales (see :func:`wer_scale`) in `axis`."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    # Evenly spaced anchors, interpolated linearly in RGB: the same colours as wer_colour gives the cells.
    anchors = [tuple(part / 255 for part in rgb) for rgb in wer_scale(target)]
    colour_map = LinearSegmentedColormap.from_list("target_wer" if target else "wer", anchors)
    bar = figure.colorbar(
        ScalarMappable(norm=Normalize(0.0, WER_SCALE_MAX), cmap=colour_map), cax=axis, orientation="horizontal"
    )
    ticks = list(range(0, int(WER_SCALE_MAX) + 1, 20))
    bar.set_ticks(ticks, labels=[f"{tick}+" if tick == WER_SCALE_MAX else str(tick) for tick in ticks], fontsize=7)
    bar.set_label(label, fontsize=7)


def _failed(layout: TableLayout, row: int, column: int, failed: Mapping[str, str]) -> bool:
    """Whether the cell behind a table row and value column failed (any of its row's cells, for a per-row attack)."""
    key = layout.cell_key(row, column)
    if key is not None:
        return key in failed
    attack = layout.row_columns()[column - 1 - len(layout.attack_columns())][1]
    return any(key.startswith(f"{layout.rows[row][0]} | {attack} |") for key in failed)


def plot_table_heatmap(
    layout: TableLayout, rows: Iterable[Mapping[str, Any]], failed: Mapping[str, str], path, title: str = ""
) -> bool:
    """
    Draw Table I as a heatmap for papers and slides: WER in each cell, coloured on one scale (0 to 100 % and above),
    hatched where a cell failed, blank where it has no result. A target-WER column (:attr:`TableLayout.target_columns`)
    has a scale of its own, dark at 0 % (the attacker's phrase recognised), and a colour bar of each scale below the
    table says which is which.

    :param layout: Rows and columns.
    :param rows: Utterance rows of every finished cell.
    :param failed: Error message of each failed cell key.
    :param path: PNG file to write.
    :param title: A line above the table.
    :return: Whether it was written (not without results, nor without matplotlib).
    """
    values = table_values(layout, rows)
    if all(value is None for line in values for value in line):
        return False
    plt = _pyplot()
    if plt is None:
        return False
    headers = layout.columns[1:]
    target = [header in layout.target_columns for header in headers]
    figure_width = 2.6 + 0.95 * len(headers)
    figure, axis = plt.subplots(figsize=(figure_width, 0.9 + 0.34 * len(values)))
    for i, line in enumerate(values):
        for j, value in enumerate(line):
            if value is None:
                hatch = "///" if _failed(layout, i, j, failed) else None
                axis.add_patch(plt.Rectangle((j, i), 1, 1, facecolor="#f4f4f4", edgecolor="#fff", hatch=hatch))
                continue
            background, colour = wer_colour(value, target=target[j])
            rgb = [int(part) / 255 for part in background[4:-1].split(",")]
            axis.add_patch(plt.Rectangle((j, i), 1, 1, facecolor=rgb, edgecolor="#fff"))
            axis.text(j + 0.5, i + 0.5, f"{value:.1f}", ha="center", va="center", fontsize=8, color=colour)
    axis.set_xlim(0, len(headers))
    axis.set_ylim(len(values), 0)
    axis.set_xticks([j + 0.5 for j in range(len(headers))], headers, rotation=35, ha="right", fontsize=8)
    axis.set_yticks([i + 0.5 for i in range(len(values))], [label for label, _ in layout.rows], fontsize=8)
    axis.tick_params(length=0)
    for spine in axis.spines.values():
        spine.set_visible(False)
    axis.set_title(f"{title}\nWER (%), colour scale 0 to {WER_SCALE_MAX:.0f}+", fontsize=9)
    figure.tight_layout()
    if any(target):
        _scale_legend(figure, axis, layout.target_columns)
    _save_figure(figure, path)
    return True
