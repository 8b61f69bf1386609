"""
How much faster the Ray executor runs a benchmark's cells with 2 workers than the serial runner.

Runs the same config twice, each in a fresh process and output directory, with one torch thread per worker:
serially (``executor="serial"``), then on the workers of a local Ray instance with ``--workers`` CPUs (started
before the clock starts, as a cluster would be; its workers start, import torch and ART and load their models within
the timed run). It checks that both give the same ``table1.csv``, and prints both wall times and their ratio (Ray /
serial; the acceptance bar of issue 16 is <= 0.65 with 2 workers on 2 cores).

Usage: ``python benchmarks/ray_speed.py [--preset ci_tiny | --config FILE] [--max-utterances N] [--crop-seconds S]
[--workers 2] [--keep DIR]``

``--preset quick`` is the main job (169 cells, about 22 minutes serially on 2 cores); ``ci_tiny`` is a smoke test
of about half a minute, in which each worker's start (a Ray worker process, importing
torch and ART, then a first cell's imports and model build: about 10 s on 2 cores) is a large share;
``--max-utterances 3 --crop-seconds 0`` gives the same cells the work of a real run's (the three whole utterances of
``../shared/data``, 28 s of audio).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from art_asr_ext.benchmark import run_benchmark  # noqa: E402
from art_asr_ext.benchmark.config import ConfigError, parse_config  # noqa: E402
from art_asr_ext.benchmark.presets import preset_path  # noqa: E402
from art_asr_ext.benchmark.executors.ray import import_ray  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ci_tiny", help="a config shipped with the package (default ci_tiny)")
    parser.add_argument("--config", help="a config file instead of --preset")
    parser.add_argument("--max-utterances", type=int, default=None, help="override data.max_utterances")
    parser.add_argument(
        "--crop-seconds", type=float, default=None, help="override data.crop_seconds (0: whole utterances)"
    )
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray instance (default 2)")
    parser.add_argument("--keep", type=Path, help="keep the two runs' output directories here (serial/, ray/)")
    parser.add_argument("--child", choices=("serial", "ray"), help=argparse.SUPPRESS)
    parser.add_argument("--child-report", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = Path(args.config or preset_path(args.preset)).resolve()
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if args.crop_seconds == 0:
        raw.setdefault("data", {}).pop("crop_seconds", None)
    elif args.crop_seconds is not None:
        raw.setdefault("data", {})["crop_seconds"] = args.crop_seconds
    try:
        config = parse_config(raw, path.parent, path=path, max_utterances=args.max_utterances)
    except ConfigError as error:
        sys.exit(f"{path}: {error}")
    if args.child:
        sys.exit(_child(args.child, config, args.out, args.workers, args.child_report))

    # Ray's workers inherit the environment: the checkout this script runs from must win there too.
    root = str(Path(__file__).resolve().parents[1])
    paths = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
    runs = {}
    with tempfile.TemporaryDirectory(prefix="ray_speed_") as temporary:
        scratch = args.keep or temporary
        if args.keep is not None and any(args.keep.glob("*")):
            sys.exit(f"--keep must name a new or empty directory. Found: {args.keep}")
        for executor in ("serial", "ray"):
            report = Path(scratch) / f"{executor}.json"
            command = [sys.executable, __file__, *sys.argv[1:], "--child", executor, "--child-report", str(report)]
            command += ["--out", str(Path(scratch) / executor)]
            finished = subprocess.run(command, env=environment, capture_output=True, text=True)
            if finished.returncode not in (0, 1) or not report.is_file():
                sys.exit(f"the {executor} run failed (exit {finished.returncode}):\n{finished.stderr[-3000:]}")
            runs[executor] = json.loads(report.read_text())
        tables = [(Path(scratch) / executor / "table1.csv").read_text().splitlines() for executor in ("serial", "ray")]
        same = tables[0] == tables[1]
        for serial_line, ray_line in zip(*tables):
            if serial_line != ray_line:  # what a difference is, for whoever has to find its cause
                print(f"serial: {serial_line}\nray:    {ray_line}")
    serial, on_ray = runs["serial"], runs["ray"]
    crop = f", cropped to {config.data.crop_seconds:g} s" if config.data.crop_seconds else ""
    utterances = f"at most {config.data.max_utterances} utterances" if config.data.max_utterances else "all utterances"
    print(f"{config.name}: {serial['cells']} cells, {utterances}{crop}, one torch thread per worker")
    print(f"serial:            {serial['seconds']:8.1f} s")
    print(f"ray, {args.workers} workers:    {on_ray['seconds']:8.1f} s ({on_ray['failed']} failed cells)")
    print(f"ratio ray/serial:  {on_ray['seconds'] / serial['seconds']:8.3f}")
    print(f"same table1.csv:   {same}")


def _child(executor: str, config, out: Path, workers: int, report: Path) -> int:
    """One timed run in this fresh process; its seconds, cells and failures go to `report` as JSON."""
    if executor == "ray":
        ray = import_ray()
        ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
        # A cluster is up before a job comes: let the instance's own processes (and the idle workers it starts
        # ahead) finish starting before the clock does.
        ray.get(ray.remote(lambda: None).remote())
        time.sleep(5)
    start = time.perf_counter()
    summary = run_benchmark(config, out, progress=False, threads=1, plot=False, executor=executor)
    seconds = time.perf_counter() - start
    cells = len(summary.computed) + len(summary.failed)
    report.write_text(json.dumps({"seconds": seconds, "cells": cells, "failed": len(summary.failed)}))
    return 1 if summary.failed else 0


if __name__ == "__main__":
    main()
