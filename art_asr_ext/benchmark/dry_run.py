"""
The dry run: the grid of cells, what is already done in an output directory, and the cost still to run.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from pathlib import Path
from typing import Dict, Optional

from art_asr_ext.benchmark.attacks import Cell, build_grid
from art_asr_ext.benchmark.config import BenchmarkConfig, SystemConfig, missing_files
from art_asr_ext.benchmark.evaluation_data import load_utterances, sample_targets
from art_asr_ext.benchmark.runner import cell_fingerprint
from art_asr_ext.benchmark.store import ResultStore


def cell_passes(cell: Cell, eot_samples: int = 1) -> Dict[str, int]:
    """
    Model passes a cell costs per utterance.

    :param cell: The cell.
    :param eot_samples: Gradient draws per step (the largest `eot_samples` of the defences).
    :return: `{"forward_backward": n, "forward": m}`.
    """
    if cell.is_transfer or cell.attack == "clean":
        return {"forward_backward": 0, "forward": 1}
    if cell.attack == "fgsm":
        steps = 1
    elif cell.attack == "pgd":
        steps = int(cell.params["max_iter"])
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
    :return: Seconds of audio the run attacks (read from the files' headers), or None if the data is missing.
    """
    import soundfile

    root = config.data.librispeech
    if not root.is_dir():
        return None
    ids = []
    for transcript in sorted(root.glob("*/*/*.trans.txt")):
        for line in transcript.read_text(encoding="utf-8").splitlines():
            if line.strip():
                ids.append((line.split(" ", 1)[0], transcript.parent))
    ids = sorted(ids)[: config.data.max_utterances]
    total = 0.0
    for uid, folder in ids:
        info = soundfile.info(str(folder / f"{uid}.flac"))
        seconds = info.frames / info.samplerate
        total += min(seconds, config.data.crop_seconds) if config.data.crop_seconds else seconds
    return total


def dry_run_report(config: BenchmarkConfig, out_dir: Optional[Path] = None) -> str:
    """
    :param config: The benchmark.
    :param out_dir: The output directory (cells already finished there are marked); None: every cell is pending.
    :return: The grid, each cell's status and cost, and the total cost in passes x audio seconds.
    """
    grid = build_grid(config)
    latest = {} if out_dir is None else ResultStore(out_dir, create=False).latest()
    fingerprints: Optional[Dict[str, str]] = None
    if latest and not missing_files(config):
        utterances = load_utterances(config.data)
        targets = sample_targets(utterances, config.targets, config.seed)
        fingerprints = {cell.key: cell_fingerprint(config, cell, utterances, targets) for cell in grid}
    seconds = audio_seconds(config)
    lines = [
        f"Benchmark {config.name!r}: {len(config.systems)} systems, {len(config.transfer)} transfer rows, "
        f"{len(grid)} cells, seed {config.seed}, device {config.device}",
        f"Data: {config.data.librispeech} (first {config.data.max_utterances or 'all'} utterances"
        + (f", {seconds:.1f} s of audio)" if seconds is not None else ", not found here)"),
        "",
        f"{'cell':70s} {'status':8s} {'fwd+bwd':>8s} {'fwd':>4s}",
    ]
    total_backward = total_forward = 0
    for cell in grid:
        record = latest.get(cell.key, {})
        if fingerprints is not None and record.get("fingerprint") != fingerprints[cell.key]:
            record = {}
        status = {"ok": "done", "failed": "failed"}.get(record.get("status"), "pending")
        passes = cell_passes(cell, _eot(config.system(cell.source)))
        if status != "done":
            total_backward += passes["forward_backward"]
            total_forward += passes["forward"]
        lines.append(f"{cell.key:70s} {status:8s} {passes['forward_backward']:8d} {passes['forward']:4d}")
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
