"""
What the serial runner's memory bound costs in wall time, and saves in memory.

Runs the same benchmark twice, each in a fresh process and output directory, with the command line of
``art-asr-benchmark``: as the runner does (one system at a time, freed before the next is built; HiFi-GAN's residual
blocks recomputed in a white-box gradient), then as it did before issue 16 (every system kept loaded once built,
the vocoder's activations kept), after an untimed process has imported torch, ART, ESPnet and Whisper (so neither
run reads them from a cold disk cache). It checks that both write the same ``table1.csv``, and prints each run's
wall time and peak resident memory, their ratios (bounded / all kept), and the seconds of each system's cells. The
default is the main job (``--preset quick``, about 13 minutes per run on 2 cores).

Usage: ``python benchmarks/memory_bound.py [--preset quick | --config FILE] [--max-utterances N]``

| Paper link: https://arxiv.org/abs/2103.17122
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(ROOT))


_WARM_UP = "import torch, art, espnet2.asr.espnet_model, whisper, art_asr_ext.benchmark.runner"


def _as_before_issue_16():
    """
    The serial runner as it was before its memory bound: the system cache frees nothing (every system built stays
    until the run ends), and a white-box gradient through HiFi-GAN keeps its residual blocks' activations instead of
    recomputing them.

    :return: The system cache that keeps every system, for the run's options.
    """
    from art_asr_ext.benchmark.execution import SystemCache
    from art_asr_ext.models import vocoder

    vocoder._is_espnet_hifigan = lambda generator: False  # the plain generator forward, activations kept

    class KeepEverySystem(SystemCache):
        def __init__(self, config, texts) -> None:
            super().__init__(config, texts)
            self.kept: Dict[str, tuple] = {}

        def get(self, label: str):
            if label not in self.kept:
                self.label = self.estimator = self.error = None  # forgotten here, not freed: `kept` holds it
                try:
                    self.kept[label] = (super().get(label), None)
                except RuntimeError as error:
                    self.kept[label] = (None, error)
            estimator, error = self.kept[label]
            if error is not None:
                raise error
            return estimator

        def release(self) -> None:
            pass

    return KeepEverySystem


def _child(mode: str, args: argparse.Namespace, report: Path) -> int:
    from art_asr_ext.benchmark import RunOptions, load_config, run_benchmark
    from art_asr_ext.benchmark.presets import preset_path

    options = RunOptions(progress=False)
    if mode == "before":
        options.system_cache = _as_before_issue_16()
    config = load_config(args.config or preset_path(args.preset), max_utterances=args.max_utterances)
    start = time.perf_counter()
    status = 1 if run_benchmark(config, args.out, options).failed else 0
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    report.write_text(json.dumps({"status": status, "seconds": seconds, "peak_rss_gb": peak_kib * 1024 / 1e9}))
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", help="a config shipped with the package (default quick)")
    parser.add_argument("--config", help="a config file instead of --preset")
    parser.add_argument("--max-utterances", type=int, default=None, help="override data.max_utterances")
    parser.add_argument("--child", choices=("bounded", "before"), help=argparse.SUPPRESS)
    parser.add_argument("--child-report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    arguments = ["--config", args.config] if args.config else ["--preset", args.preset]
    if args.max_utterances is not None:
        arguments += ["--max-utterances", str(args.max_utterances)]
    if args.child:
        sys.exit(_child(args.child, args, args.child_report))

    # The first process to import torch, ART and ESPnet reads them from disk; the runs must not differ by that.
    subprocess.run([sys.executable, "-c", _WARM_UP], cwd=ROOT, capture_output=True, check=True)
    runs, cell_seconds = {}, {}
    with tempfile.TemporaryDirectory(prefix="memory_bound_") as scratch:
        for mode in ("bounded", "before"):
            out, report = Path(scratch) / mode, Path(scratch) / f"{mode}.json"
            command = [sys.executable, __file__, *sys.argv[1:], "--child", mode, "--child-report", str(report)]
            finished = subprocess.run(command + ["--out", str(out)], capture_output=True, text=True)
            if finished.returncode != 0 or not report.is_file():
                sys.exit(f"the {mode} run failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")
            runs[mode] = json.loads(report.read_text())
            cell_seconds[mode] = _seconds_by_system(out)
        same = (Path(scratch) / "bounded" / "table1.csv").read_bytes() == (
            Path(scratch) / "before" / "table1.csv"
        ).read_bytes()
    bounded, kept = runs["bounded"], runs["before"]
    print(f"{' '.join(arguments)}: the serial runner with its memory bound vs as before it")
    print(f"bounded:              {bounded['seconds']:8.1f} s, peak RSS {bounded['peak_rss_gb']:.2f} GB")
    print(f"before the bound:     {kept['seconds']:8.1f} s, peak RSS {kept['peak_rss_gb']:.2f} GB")
    print(f"wall-time ratio:      {bounded['seconds'] / kept['seconds']:8.3f} (bounded / before)")
    print(f"peak-RSS ratio:       {bounded['peak_rss_gb'] / kept['peak_rss_gb']:8.3f}")
    print(f"same table1.csv:      {same}")
    print("where the wall time went (s):     bounded    before")
    for label in sorted(set(cell_seconds["bounded"]) | set(cell_seconds["before"])):
        print(
            f"  {label[:30]:30s} {cell_seconds['bounded'].get(label, 0):9.1f} {cell_seconds['before'].get(label, 0):9.1f}"
        )
    outside = {mode: runs[mode]["seconds"] - sum(cell_seconds[mode].values()) for mode in runs}
    print(f"  {'outside cells (builds, media)':30s} {outside['bounded']:9.1f} {outside['before']:9.1f}")


def _seconds_by_system(out: Path) -> Dict[str, float]:
    """The seconds of a run's finished cells (as its `results.jsonl` records them), summed by system."""
    from art_asr_ext.benchmark.store import ResultStore

    totals: Dict[str, float] = {}
    for record in ResultStore(out, create=False).latest().values():
        if record.get("status") == "ok":
            totals[record["system"]] = totals.get(record["system"], 0.0) + record["seconds"]
    return totals


if __name__ == "__main__":
    main()
