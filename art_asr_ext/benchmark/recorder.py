"""
The one writer of a run's output directory: each finished cell's report media, adversarial examples and record, then
the tables, in the runner's process whatever executor computed the cell.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import logging
import time
from typing import Any, Dict, Mapping, Optional, Sequence

from art_asr_ext.benchmark.config.schema import BenchmarkConfig
from art_asr_ext.benchmark.execution import CellOutput
from art_asr_ext.benchmark.fingerprint import current_records, record_applies
from art_asr_ext.benchmark.grid import Cell, transfer_sources
from art_asr_ext.benchmark.outputs.files import write_outputs
from art_asr_ext.benchmark.report_media import save_cell_media, write_media_files
from art_asr_ext.benchmark.store import ResultStore
from art_asr_ext.data import BadUtterance, Utterance

logger = logging.getLogger("art_asr_ext.benchmark")


class CellRecorder:
    """
    Writes each finished cell, in the runner's process (the only writer of the output directory): its report media,
    its adversarial examples (if a transfer row reuses them), then its record, then the tables.

    :param config: The benchmark.
    :param store: The run's results.
    :param grid: Its cells.
    :param fingerprints: Each cell's fingerprint and fingerprint parts.
    :param utterances: The benchmark's utterances.
    :param summary: What the invocation did, updated per cell.
    :param skipped_utterances: The utterances left out as bad data.
    :param bar: The cells' progress bar.
    """

    def __init__(
        self,
        config: BenchmarkConfig,
        store: ResultStore,
        grid: Sequence[Cell],
        fingerprints: Mapping[str, str],
        parts: Mapping[str, Mapping[str, Any]],
        utterances: Sequence[Utterance],
        summary,
        skipped_utterances: Sequence[BadUtterance],
        bar,
    ) -> None:
        self.config, self.store, self.grid = config, store, grid
        self.fingerprints, self.parts = fingerprints, parts
        self.utterances, self.summary, self.skipped_utterances, self.bar = utterances, summary, skipped_utterances, bar
        self.latest = store.latest()
        self.keep = transfer_sources(config, list(grid))
        self.media_seconds = 0.0

    def finished(self, cell: Cell) -> bool:
        """Whether the cell's current result is recorded (and its examples kept, if a transfer row reuses them)."""
        if not record_applies(self.latest.get(cell.key), self.fingerprints[cell.key], finished=True):
            return False
        return cell.key not in self.keep or self.store.adversarial_path(cell.key).is_file()

    def source_of(self, cell: Cell):
        """A transfer cell's source record, or the error its cell fails with (the same on every executor)."""
        source = self.latest.get(cell.source_key)
        if source is not None and not record_applies(source, self.fingerprints[cell.source_key]):
            source = None
        if source is None or source["status"] != "ok":
            reason = "has not run" if source is None else f"failed: {source.get('error', '')}"
            return None, f"Source cell {cell.source_key!r} {reason}"
        return source, None

    def __call__(
        self,
        cell: Cell,
        output: Optional[CellOutput],
        failure: Optional[Sequence[str]],
        estimator=None,
        media: Optional[Mapping[str, Any]] = None,
    ) -> None:
        """
        Write a finished cell. The media are encoded here with `estimator` (which recomputes a defended input the
        cell did not record), or come encoded from a Ray worker: `media` holds their `entries` and `files`, or the
        `error` that kept the worker from encoding them.
        """
        record = {
            "key": cell.key,
            "fingerprint": self.fingerprints[cell.key],
            "fingerprint_parts": self.parts[cell.key],
            "row": cell.row,
            "system": cell.system,
            "source": cell.source,
            "attack": cell.attack,
            "eps": cell.eps,
            "strength": cell.strength,
        }
        if output is not None:
            record.update(status="ok", rows=output.rows, seconds=output.seconds)
            self.summary.computed.append(cell.key)
            logger.info("Finished %s in %.1f s", cell.key, output.seconds)
        else:
            message, trace = failure
            record.update(status="failed", error=message, traceback=trace)
            self.summary.failed[cell.key] = message
            logger.error("Cell %s failed: %s", cell.key, message)
        if output is not None and self.config.report.utterances:
            self._media(cell, output, record, estimator, media)
        # Writing is outside the cell's own errors: a full or read-only disk stops the run (OutputError), it does not
        # fail the cell. The examples and media go first, so a recorded cell always has its files.
        if output is not None and cell.key in self.keep:
            self.store.save_adversarial(cell.key, output.adversarial)
        self.store.append(record)
        self.latest[cell.key] = record
        self.write_outputs(plot=False)
        self.bar.update(1)

    def _media(self, cell: Cell, output: CellOutput, record: Dict[str, Any], estimator, media) -> None:
        """The report's audio and spectrograms, kept with the record so a resumed run still has them."""
        start = time.perf_counter()
        try:
            if media is None:
                record["report_media"] = save_cell_media(
                    self.store.out_dir,
                    cell,
                    estimator,
                    self.utterances,
                    output.adversarial,
                    self.config.report,
                    output.defended,
                )
            elif "error" in media:
                raise RuntimeError(media["error"])
            else:
                write_media_files(self.store.out_dir, media["files"])
                record["report_media"] = media["entries"]
        except OSError:
            raise
        except Exception as error:  # a missing codec must not lose the cell's result
            logger.warning("No report media for %s: %s: %s", cell.key, type(error).__name__, error)
        self.media_seconds += time.perf_counter() - start

    def records(self) -> Dict[str, Mapping[str, Any]]:
        """The record of each cell whose latest record still applies, in grid order."""
        return current_records(self.latest, self.grid, self.fingerprints)

    def write_outputs(self, plot: bool) -> Dict[str, str]:
        """Rewrite the tables (and, with `plot`, the figures) from the current records."""
        return write_outputs(self.config, self.grid, self.records(), self.store.out_dir, plot, self.skipped_utterances)
