"""
Crash-safe results of a run: one JSON line per finished (or failed) cell, appended and fsync'ed in one write, and
the adversarial examples of transfer-source cells as ``.npz`` files written atomically before their line.

A killed run loses at most the cell in flight: a partial last line (killed mid-write) is dropped when the file is
next opened, and an ``.npz`` without its line is simply rewritten when the cell is run again.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping

import numpy as np

from art_asr_ext.utils.io import atomic_write

logger = logging.getLogger(__name__)

RESULTS = "results.jsonl"


def slug(key: str) -> str:
    """
    :param key: A cell key.
    :return: A file name for it: readable characters and a short hash (keys differing only in punctuation stay apart).
    """
    readable = re.sub(r"[^A-Za-z0-9.]+", "_", key).strip("_")[:80]
    return f"{readable}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


class ResultStore:
    """The results of one output directory."""

    def __init__(self, out_dir: Path, create: bool = True) -> None:
        """
        :param out_dir: The run's output directory.
        :param create: Create the directory if needed (False to only read what is there).
        """
        self.out_dir = Path(out_dir)
        if create:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / RESULTS
        self.adversarial_dir = self.out_dir / "adversarial"

    def _repair(self) -> None:
        """Drop a partial last line left by a run killed mid-write."""
        if not self.path.exists() or not self.out_dir.is_dir():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            logger.warning("Dropping a partial last line of %s (a run was killed while writing it).", self.path)
            with open(self.path, "r+b") as file:
                file.truncate(len(keep))
                file.flush()
                os.fsync(file.fileno())

    def records(self) -> List[Dict[str, Any]]:
        """
        :return: Every complete record in file order (later records of a cell supersede earlier ones).
        """
        self._repair()
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("Skipping unreadable line %d of %s.", number, self.path)
        return records

    def latest(self) -> Dict[str, Dict[str, Any]]:
        """
        :return: The latest record of each cell key.
        """
        return {record["key"]: record for record in self.records() if "key" in record}

    def append(self, record: Mapping[str, Any]) -> None:
        """
        Append one record in a single write, then flush and fsync it.

        :param record: JSON-serialisable record with a `key`.
        """
        self._repair()
        line = json.dumps(record, sort_keys=True, allow_nan=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())

    def adversarial_path(self, key: str) -> Path:
        """
        :param key: A cell key.
        :return: Where that cell's adversarial examples are kept.
        """
        return self.adversarial_dir / f"{slug(key)}.npz"

    def save_adversarial(self, key: str, waveforms: Mapping[str, np.ndarray]) -> None:
        """
        :param key: A cell key.
        :param waveforms: Adversarial waveform of each utterance id.
        """
        self.adversarial_dir.mkdir(exist_ok=True)
        path = self.adversarial_path(key)
        arrays = {uid: np.asarray(w, dtype=np.float32) for uid, w in waveforms.items()}
        atomic_write(path, lambda file: np.savez(file, **arrays), binary=True)

    def load_adversarial(self, key: str, utterance_ids: Iterable[str]) -> Dict[str, np.ndarray]:
        """
        :param key: A cell key.
        :param utterance_ids: The utterances wanted.
        :return: Their adversarial waveforms (utterances the file lacks are left out).
        :raises FileNotFoundError: If the cell's examples were never saved.
        """
        path = self.adversarial_path(key)
        if not path.is_file():
            raise FileNotFoundError(f"No saved adversarial examples for {key!r} ({path}).")
        with np.load(path) as data:
            return {uid: data[uid] for uid in utterance_ids if uid in data.files}
