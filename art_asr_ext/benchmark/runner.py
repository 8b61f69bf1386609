"""
Run a benchmark: every cell of the grid not yet finished in the output directory, then the tables.

Outputs (in the output directory):

- ``results.jsonl``: one record per finished or failed cell (the source of truth; appended and fsync'ed per cell).
- ``utterances.csv``: one row per table row x attack x max-norm x utterance (see :data:`UTTERANCE_COLUMNS`); the
  ``seconds`` column is wall-clock time and the only field that differs between two runs of the same config.
- ``table1.csv``, ``table1.md``: the study's Table I; ``table1_heatmap.png``: the same as a heatmap;
  ``wer_vs_eps.png``: WER against the max-norm, one panel per model family (FGSM solid, PGD dashed).
- ``report.html`` and ``report/``: the results to read and hear, opened from disk (see
  :mod:`art_asr_ext.benchmark.report`); its audio and spectrograms are written per cell as it finishes.
- ``perceptual.csv``: per attacked cell, mean and 10th/90th percentiles of SNR, wide-band PESQ and STOI (also per
  utterance in ``utterances.csv``); ``table1.md`` adds the median SNR of each cell.
- ``strength.csv``, ``strength.png``: with a list of PGD ``max_iter`` or of a defence's ``eot_samples``, WER against
  the attack's strength (see :mod:`art_asr_ext.benchmark.strength`).
- ``checks.json``: the evaluation's sanity checks (see :mod:`art_asr_ext.benchmark.checks`), also listed in
  ``table1.md``.
- ``transfer_matrix.csv``, ``transfer_matrix.png``: with transfer rows, every source x target pair and attack, the
  white-box cells on the diagonal (see :mod:`art_asr_ext.benchmark.transfer_matrix`).
- ``failures.csv``: cells that failed, with their error; a rerun retries them.
- ``adversarial/*.npz``: adversarial examples of the cells that transfer rows reuse.
- ``run.json`` (config, versions, seeds, device, skipped bad utterances, wall time) and ``run.log``.
- ``.lock``: the pid of the run that holds the directory (see :class:`~art_asr_ext.benchmark.store.OutputLock`).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from art_asr_ext.benchmark.config.load import missing_files
from art_asr_ext.benchmark.config.schema import BenchmarkConfig
from art_asr_ext.benchmark.evaluation_data import load_evaluation_data, sample_targets
from art_asr_ext.benchmark.execution import RunContext, SystemCache
from art_asr_ext.benchmark.executors import EXECUTORS
from art_asr_ext.benchmark.fingerprint import fingerprint_change, fingerprint_digest, fingerprint_parts, record_applies
from art_asr_ext.benchmark.grid import Cell, build_grid
from art_asr_ext.benchmark.outputs.files import finished_rows, table_caption
from art_asr_ext.benchmark.outputs.report import write_report
from art_asr_ext.benchmark.outputs.tables import table_layout
from art_asr_ext.benchmark.progress import progress_bar
from art_asr_ext.benchmark.recorder import CellRecorder
from art_asr_ext.benchmark.registry import with_resolved_defences
from art_asr_ext.benchmark.systems import check_device
from art_asr_ext.benchmark.provenance import RunLogHandler, record_report, write_run_json
from art_asr_ext.benchmark.store import OutputLock, ResultStore, output_errors
from art_asr_ext.benchmark.config.fields import ConfigError
from art_asr_ext.data import BadUtterance, Utterance
from art_asr_ext.utils.environment import device_description

logger = logging.getLogger("art_asr_ext.benchmark")


@dataclasses.dataclass
class RunSummary:
    """What one invocation did."""

    computed: List[str]
    skipped: List[str]
    failed: Dict[str, str]
    pending: List[str]
    wall_time: float
    out_dir: Path


@dataclasses.dataclass
class RunOptions:
    """How a run goes, besides its config: none of these changes a result."""

    #: Compute at most this many cells, then stop (the rest stay pending for the next run).
    max_cells: Optional[int] = None
    #: Show progress bars.
    progress: bool = True
    #: torch intra-op threads (default: torch's; on Ray, each system's `resources.num_cpus`).
    threads: Optional[int] = None
    #: Draw the figures.
    plot: bool = True
    #: `serial` (this process) or `ray` (the workers of a Ray cluster).
    executor: str = "serial"
    #: With `executor="ray"`: `auto`, `local` or `HOST:PORT` (see :mod:`art_asr_ext.benchmark.executors.ray`).
    ray_address: str = "auto"
    #: Builds the cache of systems the serial executor keeps (injectable, e.g. to measure memory).
    system_cache: Callable[..., SystemCache] = SystemCache

    def check(self) -> None:
        """
        :raises ValueError: For an unknown executor or a malformed Ray address.
        :raises ImportError: For `executor="ray"` without Ray installed.
        """
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {list(EXECUTORS)}. Found: {self.executor!r}")
        if self.executor == "ray":
            from art_asr_ext.benchmark.executors.ray import check_ray_address, import_ray

            check_ray_address(self.ray_address)
            import_ray()


def serial_order(config: BenchmarkConfig, cells: Sequence[Cell]) -> List[Cell]:
    """
    The serial runner's order, which builds each system as few times as it can: one system's models are loaded at a
    time and freed before the next system's, so its cells go together. A system's own cells come first, in config
    order, each followed by the transfer cells onto it whose source system comes before it (their examples are then
    already made). The transfer cells left, whose sources come later, go last, grouped by target; each of those
    targets is built a second time. Every cell starts from its own seed, so the order does not change a result.

    :param config: The benchmark.
    :param cells: The cells to run.
    :return: `cells`, in that order (a stable sort: grid order within each system).
    """
    order = {system.label: i for i, system in enumerate(config.systems)}

    def after_its_source(cell: Cell) -> bool:
        return not cell.is_transfer or order[cell.source] < order[cell.system]

    return sorted(cells, key=lambda c: (not after_its_source(c), order[c.system], c.is_transfer))


def run_benchmark(
    config: BenchmarkConfig, out_dir: Path, options: Optional[RunOptions] = None, **option_values: Any
) -> RunSummary:
    """
    Run every cell not yet finished in `out_dir` (failed cells are retried), then write the tables.

    The cells run in this process (`executor="serial"`), or on the workers of a Ray cluster (`executor="ray"`, see
    :mod:`art_asr_ext.benchmark.executors.ray`). Either way this process is the only writer of `out_dir`: it appends
    each cell's record as the cell finishes, and a transfer cell gets its source's adversarial examples from here
    (the driver ships them; workers never read or write `out_dir`, so it need not be on a shared file system).

    Every utterance is read and checked before the first cell (see :func:`load_evaluation_data`), and the run holds
    `out_dir`'s lock throughout (see :class:`OutputLock`).

    :param config: The benchmark.
    :param out_dir: Output directory; reusing it resumes the run.
    :param options: How the run goes (:class:`RunOptions`); or give its fields as keyword arguments.
    :return: What was computed, skipped, failed and left pending.
    :raises ConfigError: If a file the run needs is missing or still a placeholder, or for `device: gpu` without a
                         CUDA device on the serial executor.
    :raises BadDataError: If some utterances are bad (all are named) and the config does not skip them.
    :raises OutputError: If another run holds `out_dir`, or it cannot be written (full, read-only).
    :raises ValueError: For an unknown executor or a malformed Ray address.
    :raises ImportError: For `executor="ray"` without Ray installed.
    """
    options = dataclasses.replace(options or RunOptions(), **option_values)
    out_dir = Path(out_dir)
    options.check()
    if options.executor == "serial":  # a Ray cluster's workers check their own device as they build a system
        check_device(config.device)
    problems = missing_files(config)
    if problems:
        raise ConfigError("Cannot run; fix these paths in the config:\n  - " + "\n  - ".join(problems))
    utterances, skipped_utterances = load_evaluation_data(config.data)
    with output_errors(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        with OutputLock(out_dir) as lock:
            return _run_locked(config, out_dir, lock, utterances, skipped_utterances, options)


def _run_locked(
    config: BenchmarkConfig,
    out_dir: Path,
    lock: OutputLock,
    utterances: Sequence[Utterance],
    skipped_utterances: Sequence[BadUtterance],
    options: RunOptions,
) -> RunSummary:
    start_time = time.perf_counter()
    handler = RunLogHandler(out_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    if lock.taken_over:
        logger.warning(lock.taken_over)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary = RunSummary([], [], {}, [], 0.0, out_dir)
    skipped_list = [dataclasses.asdict(bad) for bad in skipped_utterances]
    try:
        store = ResultStore(out_dir)  # repairs a torn last line (logged in run.log)
        targets = sample_targets(utterances, config.targets, config.seed)
        grid = build_grid(config)
        parts = fingerprint_parts(config, grid, utterances, targets)
        fingerprints = {key: fingerprint_digest(cell_parts) for key, cell_parts in parts.items()}
        logger.info(
            "Run %s: %d utterances, %d cells, output %s", config.name, len(utterances), len(grid), out_dir.resolve()
        )
        for bad in skipped_utterances:
            logger.warning("Skipping bad utterance %s", bad)
        write_run_json(
            config,
            out_dir,
            {"started": started, "status": "running", "argv": sys.argv, "skipped_utterances": skipped_list},
        )
        pending_bar = progress_bar(total=0, desc="cells", unit="cell", disable=True)
        recorder = CellRecorder(
            config, store, grid, fingerprints, parts, utterances, summary, skipped_utterances, pending_bar
        )
        pending = [cell for cell in grid if not recorder.finished(cell)]
        summary.skipped = [cell.key for cell in grid if recorder.finished(cell)]
        if summary.skipped:
            logger.info("Skipping %d finished cells.", len(summary.skipped))
        for cell in pending:
            record = recorder.latest.get(cell.key)
            if record is not None and not record_applies(record, fingerprints[cell.key]):
                logger.info(
                    "Recomputing %s: %s", cell.key, fingerprint_change(record.get("fingerprint_parts"), parts[cell.key])
                )
        pending = serial_order(config, pending)
        if options.max_cells is not None:
            summary.pending = [cell.key for cell in pending[options.max_cells :]]
            pending = pending[: options.max_cells]
        recorder.bar = progress_bar(total=len(pending), desc="cells", unit="cell", disable=not options.progress)
        context = RunContext(
            # Every cell runs the defences' settings as they resolve here (`precision: auto`), as the fingerprints hold
            # them, whichever machine of a Ray cluster runs it; the outputs describe the config as it was given.
            with_resolved_defences(config),
            utterances,
            targets,
            store,
            recorder.source_of,
            threads=options.threads,
            progress=options.progress,
            system_cache=options.system_cache,
            ray_address=options.ray_address,
            cache_dir=out_dir / "rooms",
        )
        if options.executor == "ray":
            from art_asr_ext.benchmark.executors import ray as executor
        else:
            from art_asr_ext.benchmark.executors import serial as executor
        executor.run_cells(pending, context, recorder)
        recorder.bar.close()
        recorder.write_outputs(plot=options.plot)
        summary.wall_time = time.perf_counter() - start_time
        write_run_json(
            config,
            out_dir,
            {
                "started": started,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "status": "finished" if not summary.pending else "stopped (max_cells)",
                "argv": sys.argv,
                "device": device_description(config.device),
                "torch_threads": options.threads if options.executor == "ray" else _serial_threads(options),
                "executor": options.executor if options.executor == "serial" else f"ray ({options.ray_address})",
                "utterances": [u.utterance_id for u in utterances],
                "skipped_utterances": skipped_list,
                "targets": targets,
                "cells": {
                    "total": len(grid),
                    "computed": len(summary.computed),
                    "skipped": len(summary.skipped),
                    "failed": len(summary.failed),
                    "pending": len(summary.pending),
                },
                "wall_time_s": round(summary.wall_time, 3),
                "report_media_s": round(recorder.media_seconds, 3),
            },
        )
        report_start = time.perf_counter()
        records = recorder.records()
        written = write_report(
            out_dir,
            f"Table I: {config.name}",
            table_caption(config, finished_rows(records), skipped_utterances),
            table_layout(config),
            grid,
            records,
        )
        record_report(out_dir, written, recorder.media_seconds, time.perf_counter() - report_start, summary.wall_time)
        logger.info(
            "Done in %.1f s: %d computed, %d skipped, %d failed, %d pending.",
            summary.wall_time,
            len(summary.computed),
            len(summary.skipped),
            len(summary.failed),
            len(summary.pending),
        )
        return summary
    finally:
        logger.removeHandler(handler)
        handler.close()


def _serial_threads(options: RunOptions) -> int:
    """The torch threads the serial executor's cells ran with."""
    import torch

    return options.threads if options.threads is not None else torch.get_num_threads()
