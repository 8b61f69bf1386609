"""
The dry run: the grid of cells, what is already done in an output directory, and the cost still to run.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from pathlib import Path
from typing import Any, Dict, Optional

from art_asr_ext.benchmark.attacks import Cell, build_grid
from art_asr_ext.benchmark.config import BenchmarkConfig, SystemConfig, missing_files
from art_asr_ext.benchmark.evaluation_data import load_evaluation_data, sample_targets
from art_asr_ext.benchmark.runner import fingerprint_change, fingerprint_digest, fingerprint_parts
from art_asr_ext.benchmark.store import ResultStore


def cell_passes(cell: Cell, eot_samples: int = 1) -> Dict[str, int]:
    """
    Model passes a cell costs per utterance.

    :param cell: The cell.
    :param eot_samples: Gradient draws per step (the largest `eot_samples` of the defences); a cell on the
                        attack-strength axis brings its own.
    :return: `{"forward_backward": n, "forward": m}`.
    """
    if cell.is_transfer or cell.attack in ("clean", "noise"):
        return {"forward_backward": 0, "forward": 1}
    if cell.params.get("eot_samples"):
        eot_samples = max(int(draws) for draws in cell.params["eot_samples"].values())
    if cell.attack == "fgsm":
        steps = 1
    elif cell.attack in ("pgd", "pgd_snr"):
        steps = int(cell.params["max_iter"])
        restarts = int(cell.params.get("num_random_init", 0))
        if restarts:  # each restart is a full PGD run and a transcription to pick the worst case
            return {"forward_backward": steps * eot_samples * restarts, "forward": restarts + 1}
    else:
        # ART's default iterations when the config leaves them out.
        steps = int(cell.params.get("max_iter_1", 10)) + int(cell.params.get("max_iter_2", 4000))
        return {"forward_backward": steps, "forward": 1}
    return {"forward_backward": steps * eot_samples, "forward": 1}


def _eot(system: SystemConfig) -> int:
    return max([defence.eot_samples for defence in system.defences] + [1])


def audio_seconds(config: BenchmarkConfig) -> Optional[float]:
    """
    :param config: The benchmark.
    :return: Seconds of audio the run attacks (its good utterances, cropped as the run crops them), or None if the
             data is missing.
    :raises BadDataError: As the run would, for bad utterances the config does not skip.
    """
    if not config.data.librispeech.is_dir():
        return None
    utterances, _ = load_evaluation_data(config.data)
    return sum(len(u.waveform) / u.sample_rate for u in utterances)


def dry_run_report(config: BenchmarkConfig, out_dir: Optional[Path] = None) -> str:
    """
    :param config: The benchmark.
    :param out_dir: The output directory (cells already finished there are marked, and a pending cell whose result
                    is stale says why); None: every cell is pending. Nothing in it is changed.
    :return: The grid, each cell's status and cost, and the total cost in passes x audio seconds.
    :raises BadDataError: As the run would, for bad utterances the config does not skip.
    """
    grid = build_grid(config)
    latest = {} if out_dir is None else ResultStore(out_dir, create=False).latest()
    data = load_evaluation_data(config.data) if config.data.librispeech.is_dir() else None
    parts: Optional[Dict[str, Dict[str, Any]]] = None
    if latest and data is not None and not missing_files(config):
        targets = sample_targets(data[0], config.targets, config.seed)
        parts = fingerprint_parts(config, grid, data[0], targets)
    seconds = None if data is None else sum(len(u.waveform) / u.sample_rate for u in data[0])
    skipped = f"; {len(data[1])} skipped as bad data" if data is not None and data[1] else ""
    lines = [
        f"Benchmark {config.name!r}: {len(config.systems)} systems, {len(config.transfer)} transfer rows, "
        f"{len(grid)} cells, seed {config.seed}, device {config.device}",
        f"Data: {config.data.librispeech} (first {config.data.max_utterances or 'all'} utterances"
        + (f", {seconds:.1f} s of audio{skipped})" if seconds is not None else ", not found here)"),
        "",
        f"{'cell':70s} {'status':8s} {'fwd+bwd':>8s} {'fwd':>4s}",
    ]
    total_backward = total_forward = 0
    for cell in grid:
        record = latest.get(cell.key, {})
        why = ""
        if parts is not None and record and record.get("fingerprint") != fingerprint_digest(parts[cell.key]):
            why = f"  ({fingerprint_change(record.get('fingerprint_parts'), parts[cell.key])})"
            record = {}
        status = {"ok": "done", "failed": "failed"}.get(record.get("status"), "pending")
        passes = cell_passes(cell, _eot(config.system(cell.source)))
        if status != "done":
            total_backward += passes["forward_backward"]
            total_forward += passes["forward"]
        lines.append(f"{cell.key:70s} {status:8s} {passes['forward_backward']:8d} {passes['forward']:4d}{why}")
    lines.append("")
    lines.append(
        f"Still to run, per utterance: {total_backward} forward+backward and {total_forward} forward passes"
        + (
            f"; over {seconds:.1f} s of audio: {total_backward * seconds:.0f} forward+backward audio-seconds and "
            f"{total_forward * seconds:.0f} forward audio-seconds."
            if seconds is not None
            else "."
        )
    )
    return "\n".join(lines) + "\n"
