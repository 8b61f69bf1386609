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
import math
from collections import Counter
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from art_asr_ext.benchmark.config.schema import BenchmarkConfig
from art_asr_ext.benchmark.grid import UTTERANCE_COLUMNS, cell_key, group_of, group_rows
from art_asr_ext.benchmark.outputs.scores import wer_percent
from art_asr_ext.benchmark.registry import ATTACKS, CLEAN, attack_order


@dataclasses.dataclass(frozen=True)
class TableLayout:
    """Rows and columns of the table."""

    #: `(row label, label of the system whose clean WER fills the row's Clean column)`, in table order.
    rows: Tuple[Tuple[str, str], ...]
    #: The attacks with columns, by key in the registry's order: their budgets (one column each), or for an attack
    #: without a budget (one cell per row) an empty tuple: its columns (`Imperceptible GT`, `... TGT`) are shown.
    attacks: Mapping[str, Tuple[float, ...]] = dataclasses.field(default_factory=dict)

    def attack_columns(self) -> List[Tuple[str, str, float]]:
        """`(header, attack, budget)` of the columns of attacks with a budget, in table order."""
        return [
            (ATTACKS[attack].column(budget), attack, float(budget))
            for attack, budgets in self.attacks.items()
            if ATTACKS[attack].budget is not None
            for budget in budgets
        ]

    def row_columns(self) -> List[Tuple[str, str, bool]]:
        """`(header, attack, scored against the target phrase)` of the attacks with one cell per row, in order."""
        return [
            (f"{ATTACKS[attack].title} {suffix}", attack, target)
            for attack in self.attacks
            if ATTACKS[attack].budget is None
            for suffix, target in ATTACKS[attack].columns
        ]

    @property
    def columns(self) -> List[str]:
        """Header of table1.csv."""
        headers = [header for header, _, _ in self.attack_columns()] + [header for header, _, _ in self.row_columns()]
        return ["System", "Clean"] + headers

    @property
    def target_columns(self) -> Tuple[str, ...]:
        """Headers of the columns that hold WER against the attacker's target phrase (low: the attack succeeded)."""
        return tuple(header for header, _, target in self.row_columns() if target)

    def cell_key(self, row: int, column: int) -> Optional[str]:
        """
        :param row: Index of a table row.
        :param column: Index of a value column (0 is Clean).
        :return: The key of the cell behind it; None for a column of an attack with one cell per row.
        """
        label, clean_system = self.rows[row]
        if column == 0:
            return cell_key(clean_system, CLEAN, 0.0)
        attack_columns = self.attack_columns()
        if column - 1 < len(attack_columns):
            _, attack, eps = attack_columns[column - 1]
            return cell_key(label, attack, eps)
        return None


def table_layout(config: BenchmarkConfig) -> TableLayout:
    """
    :param config: The benchmark.
    :return: The table's rows (systems, then transfer rows) and columns: every budget of every attack of the config,
             and the columns of an attack without a budget where any system takes it.
    """
    rows = [(system.label, system.label) for system in config.systems]
    rows += [(transfer.label, transfer.target) for transfer in config.transfer]
    attacks: Dict[str, Tuple[float, ...]] = {}
    for key, spec in ATTACKS.items():
        if spec.budget is not None and config.attacks.budgets(key):
            attacks[key] = config.attacks.budgets(key)
        elif spec.budget is None and any(key in system.attacks for system in config.systems):
            attacks[key] = ()
    return TableLayout(rows=tuple(rows), attacks=attacks)


def table_values(layout: TableLayout, rows: Iterable[Mapping[str, Any]]) -> List[List[Optional[float]]]:
    """
    :param layout: Rows and columns.
    :param rows: Utterance rows of every finished cell.
    :return: WER in percent per table row and column (None where the cell has no result), without the label column.
    """
    groups = group_rows(rows)
    # One cell per row of an attack without a budget, at that row's own eps.
    per_row: Dict[Tuple[str, str], List[Mapping[str, Any]]] = {}
    for (row_label, attack, _), group in groups.items():
        per_row.setdefault((row_label, attack), []).extend(group)
    values = []
    for row_label, clean_system in layout.rows:
        line = [wer_percent(groups.get((clean_system, CLEAN, 0.0), []))]
        line += [wer_percent(groups.get((row_label, attack, eps), [])) for _, attack, eps in layout.attack_columns()]
        line += [
            wer_percent(per_row.get((row_label, attack), []), target) for _, attack, target in layout.row_columns()
        ]
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
            attack_order().index(r["attack"]),
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
        if row["attack"] != "clean" and ATTACKS[row["attack"]].perturbs:
            cells.setdefault(group_of(row), []).append(row)
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


#: Columns of queries.csv: per black-box cell, the transcriptions its attack asked for per utterance.
QUERY_SUMMARY_COLUMNS = ("row", "system", "attack", "eps", "utterances", "queries_mean", "queries_max", "query_budget")


def queries_csv(config: BenchmarkConfig, rows: Iterable[Mapping[str, Any]], row_order: Sequence[str]) -> str:
    """
    :param config: The benchmark.
    :param rows: Utterance rows of every finished cell.
    :param row_order: Table row labels in order.
    :return: queries.csv: per cell of a black-box attack, the mean and largest number of model queries (transcriptions)
             per utterance, and the attack's budget (`max_queries`).
    """
    cells: Dict[Tuple[str, str, float], List[Mapping[str, Any]]] = {}
    for row in sort_rows(rows, row_order):
        if row.get("queries") is not None and not row.get("strength"):
            cells.setdefault(group_of(row), []).append(row)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(QUERY_SUMMARY_COLUMNS)
    for group in cells.values():
        first = group[0]
        counts = [int(row["queries"]) for row in group]
        budget = config.system(first["system"]).attacks[first["attack"]].settings["max_queries"]
        line = [first["row"], first["system"], first["attack"], first["eps"], len(group)]
        line += [float(np.mean(counts)), max(counts), int(budget)]
        writer.writerow([_csv_value(value) for value in line])
    return buffer.getvalue()


def median_snr_markdown(layout: TableLayout, rows: Iterable[Mapping[str, Any]]) -> str:
    """
    :param layout: Rows and columns of Table I.
    :param rows: Utterance rows of every finished cell.
    :return: A Markdown table beside Table I: the median SNR (dB) of each attacked cell, an em dash where none ran.
    """
    groups = group_rows(rows)
    perturbed = [(header, attack, eps) for header, attack, eps in layout.attack_columns() if ATTACKS[attack].perturbs]
    per_row = [attack for attack in layout.attacks if ATTACKS[attack].budget is None and ATTACKS[attack].perturbs]
    columns = [header for header, _, _ in perturbed] + [ATTACKS[attack].title for attack in per_row]
    lines = ["| System | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
    for row_label, _ in layout.rows:
        cells = [groups.get((row_label, attack, eps), []) for _, attack, eps in perturbed]
        for attack in per_row:
            cells.append(
                [r for (label, kind, _), group in groups.items() if (label, kind) == (row_label, attack) for r in group]
            )
        values = []
        for group in cells:
            snr = [float(row["snr_db"]) for row in group]
            values.append("\u2014" if not snr else f"{float(np.median(snr)):.1f}")
        lines.append("| " + " | ".join([row_label] + values) + " |")
    return "\n".join(lines) + "\n"
