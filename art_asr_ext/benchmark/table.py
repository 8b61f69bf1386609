"""
The study's Table I from per-utterance rows: corpus-level WER in percent per table row and column, as CSV,
Markdown and a plot of WER against the max-norm.

Columns: `Clean`, `FGSM <eps>`, `PGD <eps>` and `PGD SNR <snr> dB` (ground-truth WER), `Imperceptible GT`
(ground-truth WER) and `Imperceptible TGT` (WER against the target phrase). A transfer row's `Clean` is the target
system's clean WER.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import csv
import dataclasses
import io
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from art_asr_ext.metrics import corpus_wer
from art_asr_ext.utils.io import atomic_write
from art_asr_ext.benchmark.attacks import ATTACK_ORDER
from art_asr_ext.benchmark.cells import UTTERANCE_COLUMNS

logger = logging.getLogger(__name__)


#: The imperceptible attack's two columns: `(header, scored against the attacker's target phrase)`. The one home of
#: which columns hold a target WER, where a low value means the attacker succeeded (see
#: :attr:`TableLayout.target_columns`); every other column is a ground-truth WER.
IMPERCEPTIBLE_COLUMNS = (("Imperceptible GT", False), ("Imperceptible TGT", True))


@dataclasses.dataclass(frozen=True)
class TableLayout:
    """Rows and columns of the table."""

    #: `(row label, label of the system whose clean WER fills the row's Clean column)`, in table order.
    rows: Tuple[Tuple[str, str], ...]
    fgsm_eps: Tuple[float, ...]
    pgd_eps: Tuple[float, ...]
    imperceptible: bool = True
    #: SNR budgets (dB) of the `pgd_snr` columns.
    pgd_snr_db: Tuple[float, ...] = ()
    #: Max-norms of the random-noise baseline's columns.
    noise_eps: Tuple[float, ...] = ()

    def attack_columns(self) -> List[Tuple[str, str, float]]:
        """`(header, attack, eps)` of the noise-baseline, FGSM, PGD and SNR-budget PGD columns, in table order."""
        columns = [(f"Noise {format_eps(eps)}", "noise", float(eps)) for eps in self.noise_eps]
        columns += [(f"FGSM {format_eps(eps)}", "fgsm", float(eps)) for eps in self.fgsm_eps]
        columns += [(f"PGD {format_eps(eps)}", "pgd", float(eps)) for eps in self.pgd_eps]
        columns += [(f"PGD SNR {format_eps(snr)} dB", "pgd_snr", float(snr)) for snr in self.pgd_snr_db]
        return columns

    @property
    def columns(self) -> List[str]:
        """Header of table1.csv."""
        columns = ["System", "Clean"] + [header for header, _, _ in self.attack_columns()]
        if self.imperceptible:
            columns += [header for header, _ in IMPERCEPTIBLE_COLUMNS]
        return columns

    @property
    def target_columns(self) -> Tuple[str, ...]:
        """Headers of the columns that hold WER against the attacker's target phrase (low: the attack succeeded)."""
        return tuple(header for header, target in IMPERCEPTIBLE_COLUMNS if target) if self.imperceptible else ()


def format_eps(eps: float) -> str:
    """
    :param eps: A max-norm.
    :return: Its shortest decimal form, as in the header (`0.0001`, `0.2`).
    """
    text = f"{eps:.10f}".rstrip("0").rstrip(".")
    return text if float(text) == eps else repr(eps)


def wer_percent(rows: Sequence[Mapping[str, Any]], target: bool = False) -> Optional[float]:
    """
    :param rows: Utterance rows of one cell.
    :param target: Score against the target phrase instead of the reference.
    :return: Corpus-level WER in percent, or None without rows or reference words.
    """
    prefix = "tgt" if target else "gt"
    words = [int(row[f"{prefix}_words"]) for row in rows]
    if not rows or sum(words) == 0:
        return None
    return 100.0 * corpus_wer([int(row[f"{prefix}_errors"]) for row in rows], words)


def _group(rows: Iterable[Mapping[str, Any]]) -> Dict[Tuple[str, str, float], List[Mapping[str, Any]]]:
    groups: Dict[Tuple[str, str, float], List[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["row"], row["attack"], float(row["eps"])), []).append(row)
    return groups


def table_values(layout: TableLayout, rows: Iterable[Mapping[str, Any]]) -> List[List[Optional[float]]]:
    """
    :param layout: Rows and columns.
    :param rows: Utterance rows of every finished cell.
    :return: WER in percent per table row and column (None where the cell has no result), without the label column.
    """
    groups = _group(rows)
    # One imperceptible cell per row, at that row's own eps.
    imperceptible_rows: Dict[str, List[Mapping[str, Any]]] = {}
    for (row_label, attack, _), group in groups.items():
        if attack == "imperceptible":
            imperceptible_rows.setdefault(row_label, []).extend(group)
    values = []
    for row_label, clean_system in layout.rows:
        line = [wer_percent(groups.get((clean_system, "clean", 0.0), []))]
        line += [wer_percent(groups.get((row_label, attack, eps), [])) for _, attack, eps in layout.attack_columns()]
        if layout.imperceptible:
            imperceptible = imperceptible_rows.get(row_label, [])
            line += [wer_percent(imperceptible, target=target) for _, target in IMPERCEPTIBLE_COLUMNS]
        values.append(line)
    return values


def _format(value: Optional[float]) -> str:
    return "" if value is None else f"{value:.1f}"


def table_csv(layout: TableLayout, rows: Iterable[Mapping[str, Any]]) -> str:
    """
    :param layout: Rows and columns.
    :param rows: Utterance rows of every finished cell.
    :return: table1.csv: WER in percent with one decimal, empty where a cell has no result.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(layout.columns)
    for (row_label, _), line in zip(layout.rows, table_values(layout, rows)):
        writer.writerow([row_label] + [_format(value) for value in line])
    return buffer.getvalue()


def table_markdown(
    layout: TableLayout,
    rows: Iterable[Mapping[str, Any]],
    failed: Mapping[str, str],
    caption: str,
    skipped: Sequence[str] = (),
) -> str:
    """
    :param layout: Rows and columns.
    :param rows: Utterance rows of every finished cell.
    :param failed: Error message of each failed cell key (listed under the table).
    :param caption: A line above the table.
    :param skipped: The utterances left out as bad data, each with its file and reason (listed under the table).
    :return: table1.md (cells without a result show an em dash).
    """
    lines = [caption, "", "| " + " | ".join(layout.columns) + " |", "|" + "---|" * len(layout.columns)]
    for (row_label, _), line in zip(layout.rows, table_values(layout, rows)):
        cells = [row_label] + ["\u2014" if value is None else f"{value:.1f}" for value in line]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "WER in percent, corpus-level (total word errors / total reference words; can exceed 100)."]
    rows = list(rows)
    if any(row["attack"] != "clean" for row in rows):
        lines += [
            "",
            "Median SNR in dB of each attacked cell's perturbations, 10 log10(|x|^2 / |x_adv - x|^2) (perceptual.csv "
            "gives the mean and 10th/90th percentiles of SNR, wide-band PESQ and STOI):",
            "",
            median_snr_markdown(layout, rows).rstrip("\n"),
        ]
    if failed:
        lines += ["", "Failed cells (see failures.csv):", ""]
        lines += [f"- `{key}`: {message.splitlines()[0] if message else ''}" for key, message in sorted(failed.items())]
    if skipped:
        lines += ["", f"Skipped utterances (bad data, `data.on_bad_utterance: skip`): {len(skipped)}", ""]
        lines += [f"- {line}" for line in skipped]
    return "\n".join(lines) + "\n"


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    return str(value)


def sort_rows(rows: Iterable[Mapping[str, Any]], row_order: Sequence[str]) -> List[Mapping[str, Any]]:
    """
    :param rows: Utterance rows.
    :param row_order: Table row labels in order.
    :return: Rows sorted by table row, attack, max-norm, attack strength and utterance id.
    """
    position = {label: i for i, label in enumerate(row_order)}
    return sorted(
        rows,
        key=lambda r: (
            position.get(r["row"], len(position)),
            r["row"],
            ATTACK_ORDER.index(r["attack"]),
            float(r["eps"]),
            str(r.get("strength") or ""),
            r["utterance_id"],
        ),
    )


def utterances_csv(rows: Iterable[Mapping[str, Any]], row_order: Sequence[str]) -> str:
    """
    :param rows: Utterance rows of every finished cell.
    :param row_order: Table row labels in order.
    :return: utterances.csv, rows in a fixed order (floats written to round-trip exactly).
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(UTTERANCE_COLUMNS)
    for row in sort_rows(rows, row_order):
        writer.writerow([_csv_value(row.get(column)) for column in UTTERANCE_COLUMNS])
    return buffer.getvalue()


#: Columns of perceptual.csv: per attacked cell, the mean and 10th/90th percentiles of each measure.
PERCEPTUAL_SUMMARY_COLUMNS = (
    ("row", "system", "source", "attack", "eps", "utterances")
    + tuple(f"{measure}_{stat}" for measure in ("snr_db", "pesq", "stoi") for stat in ("mean", "p10", "p90"))
    + ("pesq_scored", "stoi_scored", "unscored")
)


def _summary(values: Sequence[float]) -> List[Optional[float]]:
    if not values:
        return [None, None, None]
    array = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):  # an infinite SNR (a zero perturbation) keeps its infinite mean
        return [float(np.mean(array)), float(np.percentile(array, 10)), float(np.percentile(array, 90))]


def perceptual_csv(rows: Iterable[Mapping[str, Any]], row_order: Sequence[str]) -> str:
    """
    :param rows: Utterance rows of every finished cell.
    :param row_order: Table row labels in order.
    :return: perceptual.csv: per attacked cell, the mean and 10th/90th percentiles of SNR (dB), wide-band PESQ and
             STOI over its utterances, how many utterances each metric scored, and why the others were not scored.
    """
    cells: Dict[Tuple[str, str, float], List[Mapping[str, Any]]] = {}
    for row in sort_rows(rows, row_order):
        if row["attack"] != "clean":
            cells.setdefault((row["row"], row["attack"], float(row["eps"])), []).append(row)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PERCEPTUAL_SUMMARY_COLUMNS)
    for group in cells.values():
        first = group[0]
        measures = {
            name: [float(row[name]) for row in group if row.get(name) is not None]
            for name in ("snr_db", "pesq", "stoi")
        }
        reasons = Counter(
            note.strip() for row in group for note in str(row.get("perceptual_note") or "").split(";") if note.strip()
        )
        line: List[Any] = [first["row"], first["system"], first["source"], first["attack"], first["eps"], len(group)]
        for name in ("snr_db", "pesq", "stoi"):
            line += _summary(measures[name])
        line += [len(measures["pesq"]), len(measures["stoi"])]
        line.append("; ".join(f"{reason} ({count})" for reason, count in sorted(reasons.items())))
        writer.writerow([_csv_value(value) for value in line])
    return buffer.getvalue()


def median_snr_markdown(layout: TableLayout, rows: Iterable[Mapping[str, Any]]) -> str:
    """
    :param layout: Rows and columns of Table I.
    :param rows: Utterance rows of every finished cell.
    :return: A Markdown table beside Table I: the median SNR (dB) of each attacked cell, an em dash where none ran.
    """
    groups = _group(rows)
    columns = [header for header, _, _ in layout.attack_columns()]
    keys = [(attack, eps) for _, attack, eps in layout.attack_columns()]
    if layout.imperceptible:
        columns.append("Imperceptible")
    lines = ["| System | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for row_label, _ in layout.rows:
        cells = [groups.get((row_label, attack, eps), []) for attack, eps in keys]
        if layout.imperceptible:
            cells.append(
                [
                    r
                    for (label, attack, _), group in groups.items()
                    if label == row_label and attack == "imperceptible"
                    for r in group
                ]
            )
        values = []
        for group in cells:
            snr = [float(row["snr_db"]) for row in group]
            values.append("\u2014" if not snr else f"{float(np.median(snr)):.1f}")
        lines.append("| " + " | ".join([row_label] + values) + " |")
    return "\n".join(lines) + "\n"


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
ATTACK_STYLES = {"fgsm": ("-", "o"), "pgd": ("--", "s")}


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
    colour per row within a panel, FGSM solid with circles and PGD dashed with squares (matplotlib's Agg backend).

    :param layout: Rows and columns.
    :param rows: Utterance rows of every finished cell.
    :param path: PNG file to write.
    :param families: The family (panel) of each row label.
    :return: The lines drawn (empty when there was nothing to plot: nothing is written then, nor without
             matplotlib, which is in the `benchmark` extra).
    """
    values = dict(zip([label for label, _ in layout.rows], table_values(layout, rows)))
    offset = 1 + len(layout.noise_eps)  # past the Clean and noise-baseline columns
    attacks = [("fgsm", layout.fgsm_eps, offset), ("pgd", layout.pgd_eps, offset + len(layout.fgsm_eps))]

    def points(label: str, eps_list: Sequence[float], start: int) -> List[Tuple[float, float]]:
        line = values[label]
        return [(eps, line[start + i]) for i, eps in enumerate(eps_list) if line[start + i] is not None]

    panels = [
        (title, [label for label in labels if any(points(label, e, o) for _, e, o in attacks)])
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
            for attack, eps_list, start in attacks:
                found = points(label, eps_list, start)
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
    styles = [
        Line2D([], [], color="#444", linestyle=ATTACK_STYLES[a][0], marker=ATTACK_STYLES[a][1]) for a in ATTACK_STYLES
    ]
    figure.legend(styles, ["FGSM", "PGD"], loc="upper center", ncol=2, fontsize="small")
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


def _column_key(layout: TableLayout, row: int, column: int) -> Optional[str]:
    """The key of the cell behind a table row and (value) column: None for the imperceptible columns."""
    label, clean_system = layout.rows[row]
    if column == 0:
        return f"{clean_system} | clean | 0.0"
    attack_columns = layout.attack_columns()
    if column - 1 < len(attack_columns):
        _, attack, eps = attack_columns[column - 1]
        return f"{label} | {attack} | {eps!r}"
    return None


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
                hatch = (
                    "///"
                    if _column_key(layout, i, j) in failed
                    or (
                        j >= len(line) - 2
                        and layout.imperceptible
                        and any(key.startswith(f"{layout.rows[i][0]} | imperceptible |") for key in failed)
                    )
                    else None
                )
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
