"""
Write a run's result files from its current records: utterances.csv, Table I (csv, md, figures), perceptual.csv,
queries.csv (black-box attacks' model queries), strength.csv, checks.json, failures.csv and the transfer matrix; and report.html of a finished run from its output
directory alone (``art-asr-benchmark report``).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from art_asr_ext.benchmark.config.load import parse_config
from art_asr_ext.benchmark.config.schema import BenchmarkConfig
from art_asr_ext.benchmark.fingerprint import current_records
from art_asr_ext.benchmark.grid import Cell, build_grid
from art_asr_ext.benchmark.outputs.checks import checks_json, checks_markdown, evaluation_checks
from art_asr_ext.benchmark.outputs.plots import plot_table_heatmap, plot_wer_vs_eps
from art_asr_ext.benchmark.outputs.strength import plot_strength, strength_csv
from art_asr_ext.benchmark.outputs.tables import (
    perceptual_csv,
    queries_csv,
    table_csv,
    table_layout,
    table_markdown,
    utterances_csv,
)
from art_asr_ext.benchmark.outputs.report import write_report
from art_asr_ext.benchmark.outputs.transfer_matrix import matrix_csv, matrix_rows, plot_transfer_matrix
from art_asr_ext.benchmark.store import OutputError, OutputLock, ResultStore, output_errors
from art_asr_ext.utils.io import atomic_write_text

#: Panel of each estimator type in wer_vs_eps.png.
FAMILY_NAMES = {
    "deepspeech2": "DeepSpeech2",
    "espnet": "ESPnet Transformer",
    "whisper": "Whisper",
    "pocketsphinx": "PocketSphinx",
}


def row_families(config: BenchmarkConfig) -> Dict[str, str]:
    """
    :param config: The benchmark.
    :return: The family of each table row, its panel in wer_vs_eps.png: the model type, or transfer attacks.
    """
    families = {system.label: FAMILY_NAMES[system.estimator.type] for system in config.systems}
    families.update({transfer.label: "Transfer attacks" for transfer in config.transfer})
    return families


def finished_rows(records: Mapping[str, Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """
    :param records: The current record of each cell.
    :return: The utterance rows of the finished ones.
    """
    return [row for record in records.values() if record.get("status") == "ok" for row in record["rows"]]


def table_caption(config: BenchmarkConfig, rows: Sequence[Mapping[str, Any]], skipped: Sequence[Any] = ()) -> str:
    """
    :param config: The benchmark.
    :param rows: Utterance rows of every finished cell.
    :param skipped: The utterances left out as bad data.
    :return: The caption of Table I.
    """
    used = f"{config.data.max_utterances or 'all'} utterances of {config.data.librispeech.name}"
    if skipped:  # the count actually in the table, then the bad ones left out
        used = f"{len({row['utterance_id'] for row in rows}) or 'no'} utterances of {config.data.librispeech.name}"
        used += f" ({len(skipped)} more skipped as bad data, listed below)"
    return f"Table I: {config.name}, {used}, seed {config.seed}."


def plot_table(
    config: BenchmarkConfig, rows: Sequence[Mapping[str, Any]], failed: Mapping[str, str], out: Path, caption: str
) -> None:
    """wer_vs_eps.png (small multiples) and table1_heatmap.png."""
    layout = table_layout(config)
    plot_wer_vs_eps(layout, rows, out / "wer_vs_eps.png", families=row_families(config))
    plot_table_heatmap(layout, rows, failed, out / "table1_heatmap.png", title=caption)


def write_outputs(
    config: BenchmarkConfig,
    grid: Sequence[Cell],
    records: Mapping[str, Mapping[str, Any]],
    out: Path,
    plot: bool,
    skipped_utterances: Sequence[Any] = (),
) -> Dict[str, str]:
    """
    :param config: The benchmark.
    :param grid: Its cells.
    :param records: The current record of each cell (see :func:`~art_asr_ext.benchmark.fingerprint.current_records`).
    :param out: The output directory.
    :param plot: Draw the figures too.
    :param skipped_utterances: The utterances left out as bad data.
    :return: The error of each failed cell key.
    """
    layout = table_layout(config)
    rows = finished_rows(records)
    failed = {key: record.get("error", "") for key, record in records.items() if record.get("status") != "ok"}
    row_order = [label for label, _ in layout.rows]
    atomic_write_text(out / "utterances.csv", utterances_csv(rows, row_order))
    if any(row.get("strength") for row in rows):
        atomic_write_text(out / "strength.csv", strength_csv(config, rows))
        if plot:
            plot_strength(config, rows, out / "strength.png")
    checks = evaluation_checks(config, rows)
    rows = [row for row in rows if not row.get("strength")]  # Table I and its companions: the Table I cells
    atomic_write_text(out / "table1.csv", table_csv(layout, rows))
    atomic_write_text(out / "perceptual.csv", perceptual_csv(rows, row_order))
    if any(row.get("queries") is not None for row in rows):
        atomic_write_text(out / "queries.csv", queries_csv(config, rows, row_order))
    caption = table_caption(config, rows, skipped_utterances)
    table = table_markdown(layout, rows, failed, caption, skipped=[str(bad) for bad in skipped_utterances])
    atomic_write_text(out / "checks.json", json.dumps(checks_json(checks), indent=2) + "\n")
    atomic_write_text(out / "table1.md", table + "\n" + checks_markdown(checks))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["key", "error"])
    writer.writerows(sorted(failed.items()))
    atomic_write_text(out / "failures.csv", buffer.getvalue())
    if config.transfer:
        entries = matrix_rows(config, grid, rows)
        atomic_write_text(out / "transfer_matrix.csv", matrix_csv(entries))
    if plot:
        plot_table(config, rows, failed, out, caption)
        if config.transfer:
            plot_transfer_matrix(config, entries, out / "transfer_matrix.png")
    return failed


def report_finished_run(out_dir: Path, plot: bool = True) -> Dict[str, Any]:
    """
    Write report.html (and, with `plot`, the figures) of a run's output directory from its results.jsonl and
    run.json: the latest record of each cell, and the media saved when each cell ran. Nothing is computed, and
    neither torch nor ART is imported.

    :param out_dir: The output directory of a run.
    :param plot: Redraw table1_heatmap.png and wer_vs_eps.png too.
    :return: The report's number of files and size in bytes.
    :raises OutputError: If `out_dir` holds no run (no results.jsonl or no run.json), or a run holds it now.
    :raises ConfigError: If run.json's config is no longer valid.
    """
    out_dir = Path(out_dir)
    for name in ("results.jsonl", "run.json"):
        if not (out_dir / name).is_file():
            what = "is not a directory" if not out_dir.is_dir() else f"holds no run's results (no {name})"
            raise OutputError(f"{out_dir} {what}; give the --out directory of a run of art-asr-benchmark.")
    try:
        run = json.loads((out_dir / "run.json").read_text(encoding="utf-8"))
        raw, config_path = run["config"], run.get("config_path")
    except (ValueError, KeyError, TypeError) as error:
        raise OutputError(f"{out_dir / 'run.json'} is not a run.json of art-asr-benchmark: {error}") from error
    base_dir = Path(config_path).parent if config_path else out_dir
    config = parse_config(raw, base_dir, path=None if config_path is None else Path(config_path))
    grid = build_grid(config)
    with output_errors(out_dir), OutputLock(out_dir):
        records = current_records(ResultStore(out_dir, create=False).latest(), grid, None)
        rows = finished_rows(records)
        caption = table_caption(config, rows)
        if plot:
            failed = {key: record.get("error", "") for key, record in records.items() if record.get("status") != "ok"}
            plot_table(config, rows, failed, out_dir, caption)
        return write_report(out_dir, f"Table I: {config.name}", caption, table_layout(config), grid, records)
