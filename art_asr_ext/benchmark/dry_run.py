"""
The dry run: the grid of cells, what is already done in an output directory, and the cost still to run.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import heapq
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from art_asr_ext.benchmark.config.fields import ConfigError, default_of
from art_asr_ext.benchmark.config.load import missing_files
from art_asr_ext.benchmark.config.schema import BenchmarkConfig
from art_asr_ext.benchmark.evaluation_data import load_evaluation_data, sample_targets
from art_asr_ext.benchmark.fingerprint import fingerprint_change, fingerprint_digest, fingerprint_parts, record_applies
from art_asr_ext.benchmark.grid import Cell, build_grid, cell_passes
from art_asr_ext.benchmark.registry import ATTACKS, DEFENCES
from art_asr_ext.benchmark.store import ResultStore
from art_asr_ext.data import Utterance
from art_asr_ext.utils.audio import length_sorted_batches, to_object_array


@dataclasses.dataclass
class SystemTiming:
    """One system timed on one batch here: the batch's padded size, and its model passes in seconds."""

    label: str
    #: Seconds to build the system (load its models).
    build: float
    #: Padded samples of the timed batch (utterances x the longest, or x the estimator's fixed input length).
    padded_samples: int
    #: The estimator's batching limit (`max_padding`) and, for one that pads every clip to a fixed input (Whisper's
    #: 30 s), that input's samples.
    max_padding: float
    fixed_samples: Optional[int]
    #: Seconds of one forward+backward pass (`loss_gradient`) of the batch; None for a black-box recognizer.
    forward_backward: Optional[float]
    #: Seconds of one forward pass with decoding (`predict`) of the batch.
    forward: float


def padded_samples(lengths: Sequence[int], fixed_samples: Optional[int] = None) -> int:
    """
    :param lengths: Samples of each utterance of a batch.
    :param fixed_samples: The estimator's fixed input length, if it pads every clip to one (Whisper: 30 s).
    :return: What the batch costs a model: its utterances times the longest (or times the fixed length).
    """
    return len(lengths) * int(fixed_samples if fixed_samples is not None else max(lengths))


def time_system(config: BenchmarkConfig, label: str, utterances: Sequence[Utterance], repeats: int = 1) -> SystemTiming:
    """
    Time one batch of a system on this machine: its longest batch of the run, after one untimed forward pass (the
    first call pays for lazy initialisation).

    :param config: The benchmark.
    :param label: The system's label.
    :param utterances: The run's utterances.
    :param repeats: Timed passes of each kind (the fastest counts).
    :return: The timing.
    """
    import torch

    from art_asr_ext.benchmark.execution import release_memory
    from art_asr_ext.benchmark.systems import build_system

    system = config.system(label)
    start = time.perf_counter()
    estimator = build_system(system, config.device, config.seed)
    build = time.perf_counter() - start
    lengths = [len(u.waveform) for u in utterances]
    max_padding = float(estimator.max_padding)
    batch = length_sorted_batches(lengths, system.batch_size, max_padding)[0]
    x = to_object_array([utterances[i].waveform for i in batch])
    y = np.array([utterances[i].transcript for i in batch])
    torch.manual_seed(config.seed)
    estimator.predict(x, batch_size=len(batch))

    def fastest(function) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            function()
            times.append(time.perf_counter() - start)
        return min(times)

    forward = fastest(lambda: estimator.predict(x, batch_size=len(batch)))
    backward = None
    if not system.estimator.black_box:
        backward = fastest(lambda: estimator.loss_gradient(x, y, batch_size=len(batch)))
    fixed = estimator.fixed_input_samples
    estimator = None
    release_memory()
    padded = padded_samples([lengths[i] for i in batch], fixed)
    return SystemTiming(label, build, padded, max_padding, fixed, backward, forward)


def calibrate(
    config: BenchmarkConfig, labels: Sequence[str], utterances: Sequence[Utterance], threads: Optional[int] = None
) -> Dict[str, SystemTiming]:
    """
    :param config: The benchmark.
    :param labels: The systems to time.
    :param utterances: The run's utterances.
    :param threads: torch intra-op threads (default: torch's), as the run would use.
    :return: The :func:`time_system` of each label.
    """
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return {label: time_system(config, label, utterances) for label in labels}
    finally:
        torch.set_num_threads(previous)


def decode_passes(config: BenchmarkConfig, label: str) -> int:
    """
    :param config: The benchmark.
    :param label: A system's label.
    :return: Model forward passes of one of its decodings (a vote's draws; 1 without a vote).
    """
    return math.prod(DEFENCES[d.type].decode_passes(d.settings) for d in config.system(label).defences)


def cell_seconds(
    cell: Cell, passes: Mapping[str, int], timing: SystemTiming, utterances: Sequence[Utterance], batch_size: int
) -> float:
    """
    :param cell: The cell.
    :param passes: Its :func:`cell_passes`.
    :param timing: Its system's timing (the target system's, for a transfer cell).
    :param utterances: The run's utterances.
    :param batch_size: The cell's batch size.
    :return: Estimated seconds: each pass of each of the run's batches costs the timed batch's seconds scaled by
             its padded samples (compute grows with the padded input; a smaller batch pays the same per sample).
    """
    lengths = [len(u.waveform) for u in utterances]
    batches = length_sorted_batches(lengths, batch_size, timing.max_padding)
    padded = sum(padded_samples([lengths[i] for i in batch], timing.fixed_samples) for batch in batches)
    scale = padded / max(timing.padded_samples, 1)
    seconds = passes["forward"] * timing.forward * scale
    if passes["forward_backward"]:
        seconds += passes["forward_backward"] * (timing.forward_backward or 0.0) * scale
    return seconds


def projected_wall_time(
    cell_costs: Mapping[str, float], cell_systems: Mapping[str, str], builds: Mapping[str, float], workers: int
) -> float:
    """
    :param cell_costs: Estimated seconds of each pending cell.
    :param cell_systems: The system of each cell.
    :param builds: Seconds to build each system.
    :param workers: Workers running cells at once.
    :return: The makespan of a longest-first list schedule of the cells on `workers` workers, each cell paying its
             system's build once per worker that runs it (transfer cells' wait for their sources is left out).
    """
    heap = [(0.0, worker, frozenset()) for worker in range(workers)]
    for key in sorted(cell_costs, key=lambda k: -cell_costs[k]):
        free_at, worker, loaded = heapq.heappop(heap)
        system = cell_systems[key]
        cost = cell_costs[key] + (0.0 if system in loaded else builds.get(system, 0.0))
        heapq.heappush(heap, (free_at + cost, worker, loaded | {system}))
    return max(free_at for free_at, _, _ in heap)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def attack_settings_lines(config: BenchmarkConfig) -> List[str]:
    """
    :param config: The benchmark.
    :return: Each system's effective settings of each attack it is attacked with, where they differ from the
             attack's defaults (the registry's; ART's for the imperceptible attack), one line per system and attack.
    """
    lines = ["Attack settings per system (where they differ from the attack's defaults):"]
    for system in config.systems:
        for key, share in system.attacks.items():
            spec = ATTACKS[key]
            defaults = {f.name: default_of(f) for f in dataclasses.fields(spec.settings)}
            changed = {name: value for name, value in share.settings.items() if defaults.get(name) != value}
            if changed:
                text = ", ".join(f"{name} {value!r}" for name, value in changed.items())
                lines.append(f"  {system.label}: {key}: {text}")
    return lines


def defence_lines(config: BenchmarkConfig) -> List[str]:
    """
    :param config: The benchmark.
    :return: Each defended system's chain, in order, each defence with how the attacker differentiates it.
    """
    lines = ["Defences and how the attacks differentiate them:"]
    for system in config.systems:
        if system.defences:
            chain = " -> ".join(f"{d.type} ({DEFENCES[d.type].gradient(d.settings)})" for d in system.defences)
            lines.append(f"  {system.label}: {chain}")
    return lines if len(lines) > 1 else []


def dry_run_report(
    config: BenchmarkConfig,
    out_dir: Optional[Path] = None,
    estimate: bool = False,
    workers: Sequence[int] = (1, 2, 8),
    threads: Optional[int] = None,
) -> str:
    """
    :param config: The benchmark.
    :param out_dir: The output directory (cells already finished there are marked, and a pending cell whose result
                    is stale says why); None: every cell is pending. Nothing in it is changed.
    :param estimate: Also time one batch of each system with pending cells here (:func:`calibrate`), and give each
                     pending cell's estimated seconds and the projected wall time on each of `workers`.
    :param workers: Worker counts to project the wall time on.
    :param threads: torch threads of the timing (as the run's `--threads`).
    :return: The grid, each cell's status and cost, and the total cost in passes x audio seconds.
    :raises BadDataError: As the run would, for bad utterances the config does not skip.
    :raises ConfigError: With `estimate`, if the data or a model file is missing (nothing to time).
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
        f"{'cell':70s} {'status':8s} {'fwd+bwd':>8s} {'fwd':>4s}" + (f" {'seconds':>10s}" if estimate else ""),
    ]
    total_backward = total_forward = 0
    timings: Dict[str, SystemTiming] = {}
    if estimate:
        problems = missing_files(config) + (
            [] if data is not None else [f"data.librispeech: {config.data.librispeech}"]
        )
        if problems:
            raise ConfigError(
                "--estimate times each system here; fix these paths first:\n  - " + "\n  - ".join(problems)
            )
        pending_systems = [
            s.label
            for s in config.systems
            if any(c.system == s.label and latest.get(c.key, {}).get("status") != "ok" for c in grid)
        ]
        timings = calibrate(config, pending_systems, data[0], threads)
    costs: Dict[str, float] = {}
    for cell in grid:
        record = latest.get(cell.key, {})
        why = ""
        if parts is not None and record and not record_applies(record, fingerprint_digest(parts[cell.key])):
            why = f"  ({fingerprint_change(record.get('fingerprint_parts'), parts[cell.key])})"
            record = {}
        status = {"ok": "done", "failed": "failed"}.get(record.get("status"), "pending")
        passes = cell_passes(cell, config.system(cell.source).eot_samples)
        # Model passes, a vote's draws each decoded; the estimate times a whole decoding, so it takes `passes`.
        forward = passes["forward"] * decode_passes(config, cell.system)
        if status != "done":
            total_backward += passes["forward_backward"]
            total_forward += forward
        estimated = ""
        if estimate and status != "done":
            costs[cell.key] = cell_seconds(
                cell, passes, timings[cell.system], data[0], config.system(cell.source).batch_size
            )
            estimated = f" {costs[cell.key]:10.1f}"
        lines.append(f"{cell.key:70s} {status:8s} {passes['forward_backward']:8d} {forward:4d}{estimated}{why}")
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
    lines += ["", *attack_settings_lines(config), "", *defence_lines(config)]
    if estimate:
        import torch

        lines += [
            "",
            f"Calibration on this machine ({threads or torch.get_num_threads()} torch threads), one batch each:",
        ]
        for timing in timings.values():
            backward = "-" if timing.forward_backward is None else f"{timing.forward_backward:.3f} s"
            lines.append(
                f"  {timing.label}: build {timing.build:.1f} s; batch of {timing.padded_samples / 16000:.1f} padded "
                f"audio-seconds: forward+backward {backward}, forward {timing.forward:.3f} s"
            )
        systems = {cell.key: cell.system for cell in grid}
        builds = {label: timing.build for label, timing in timings.items()}
        lines.append(f"Estimated cost of the pending cells: {_duration(sum(costs.values()))} of one worker.")
        for count in workers:
            wall = projected_wall_time(costs, systems, builds, count) if costs else 0.0
            lines.append(f"Projected wall time on {count} worker{'s' if count > 1 else ''}: {_duration(wall)}")
    return "\n".join(lines) + "\n"
