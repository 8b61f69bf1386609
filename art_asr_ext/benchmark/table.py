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
            columns += ["Imperceptible GT", "Imperceptible TGT"]
        return columns


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
            line += [wer_percent(imperceptible), wer_percent(imperceptible, target=True)]
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


def plot_wer_vs_eps(layout: TableLayout, rows: Iterable[Mapping[str, Any]], path) -> bool:
    """
    Plot WER against the max-norm, one line per table row, FGSM and PGD side by side (matplotlib's Agg backend).

    :param layout: Rows and columns.
    :param rows: Utterance rows of every finished cell.
    :param path: PNG file to write.
    :return: Whether there was anything to plot (nothing is written otherwise, nor without matplotlib, which is in
             the `benchmark` extra).
    """
    try:
        import matplotlib
    except ImportError:
        logger.warning("matplotlib is not installed (pip install 'art-asr-ext[benchmark]'): no wer_vs_eps.png")
        return False
    values = table_values(layout, rows)
    offset = 1 + len(layout.noise_eps)  # past the Clean and noise-baseline columns
    panels = [("FGSM", layout.fgsm_eps, offset), ("PGD", layout.pgd_eps, offset + len(layout.fgsm_eps))]
    panels = [panel for panel in panels if panel[1]]
    if not panels or all(all(v is None for v in line[1:]) for line in values):
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for axis, (name, eps_list, offset) in zip(axes[0], panels):
        for (row_label, _), line in zip(layout.rows, values):
            points = [(eps, line[offset + i]) for i, eps in enumerate(eps_list) if line[offset + i] is not None]
            if points:
                axis.plot(*zip(*points), marker="o", label=row_label)
        axis.set_xscale("log")
        axis.set_xlabel("max-norm (L\u221e) of the perturbation")
        axis.set_ylabel("WER (%)")
        axis.set_title(name)
        axis.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize="small")
    figure.tight_layout(rect=(0, 0.08 + 0.03 * ((len(labels) + 1) // 2), 1, 1))
    # Atomic, like every output: a full disk must not leave a truncated PNG behind.
    try:
        atomic_write(Path(path), lambda file: figure.savefig(file, format="png", dpi=120), binary=True)
    finally:
        plt.close(figure)
    return True
