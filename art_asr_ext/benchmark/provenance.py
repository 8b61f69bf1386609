"""
The run's provenance files: ``run.json`` (config, versions, code digest, CPU, seeds, each invocation) and ``run.log``.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import json
import logging
import sys
from pathlib import Path
from typing import Any, List, Mapping

from art_asr_ext.benchmark.config.schema import BenchmarkConfig
from art_asr_ext.benchmark.outputs.report import REPORT
from art_asr_ext.utils.environment import cpu_description, source_digest, versions
from art_asr_ext.utils.io import atomic_write_text

logger = logging.getLogger("art_asr_ext.benchmark")


def write_run_json(config: BenchmarkConfig, out_dir: Path, extra: Mapping[str, Any]) -> None:
    path = out_dir / "run.json"
    history: List[Any] = []
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
            history = previous.get("history", []) + [previous.get("invocation", {})]
        except (json.JSONDecodeError, AttributeError):
            history = []
    content = {
        "config_path": None if config.path is None else str(config.path),
        "config": config.raw,
        "seed": config.seed,
        "cell_seeds": "crc32('<seed>|<cell key>'): torch, numpy and each defence (seed + index) are reset per cell",
        "device": config.device,
        "versions": versions(),
        "source_digest": source_digest(),
        "cpu": cpu_description(),
        "invocation": dict(extra),
        "history": history[-20:],
    }
    atomic_write_text(path, json.dumps(content, indent=2, sort_keys=True, default=str) + "\n")


def record_report(out_dir: Path, written: Mapping[str, Any], media_s: float, write_s: float, wall_s: float) -> None:
    """Log what the report cost and weighs, and keep it in run.json's invocation (its last write)."""
    path = out_dir / "run.json"
    content = json.loads(path.read_text(encoding="utf-8"))
    share = 100.0 * (media_s + write_s) / wall_s if wall_s > 0 else 0.0
    content["invocation"]["report"] = {
        "path": REPORT,
        "files": written["files"],
        "bytes": written["bytes"],
        "media_s": round(media_s, 3),
        "write_s": round(write_s, 3),
        "share_of_wall_time_percent": round(share, 2),
    }
    atomic_write_text(path, json.dumps(content, indent=2, sort_keys=True, default=str) + "\n")
    logger.info(
        "Report %s: %d files, %.1f MB; its media took %.1f s over the run and the page %.2f s (%.1f %% of the wall "
        "time).",
        out_dir / REPORT,
        written["files"],
        written["bytes"] / 1e6,
        media_s,
        write_s,
        share,
    )


class RunLogHandler(logging.FileHandler):
    """run.log; a full or read-only disk ends the run with one clear error, not a logging traceback per line."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not getattr(self, "_failed", False):
            self._failed = True
            print(f"warning: cannot write {self.baseFilename}: {sys.exc_info()[1]}", file=sys.stderr)
