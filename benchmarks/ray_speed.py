"""
How much faster the Ray executor runs a benchmark's cells with 2 workers than the serial runner.

Runs the same config twice into fresh output directories, each with one torch thread per worker: serially
(``executor="serial"``), then as Ray tasks on a local Ray instance with ``--workers`` CPUs (started before the clock
starts, as a cluster would be; its workers start, import torch and ART and load their models within the timed run),
checks that both give the same ``table1.csv``, and prints both wall times and their ratio (Ray / serial; the
acceptance bar of issue 16 is <= 0.65 with 2 workers on 2 cores).

Usage: ``python benchmarks/ray_speed.py [--preset ci_tiny | --config FILE] [--max-utterances N] [--workers 2]``

| Paper link: https://arxiv.org/abs/2103.17122
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from art_asr_ext.benchmark import load_config, run_benchmark  # noqa: E402
from art_asr_ext.benchmark.presets import preset_path  # noqa: E402
from art_asr_ext.benchmark.ray_executor import import_ray  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="ci_tiny", help="a config shipped with the package (default ci_tiny)")
    parser.add_argument("--config", help="a config file instead of --preset")
    parser.add_argument("--max-utterances", type=int, default=None, help="override data.max_utterances")
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray instance (default 2)")
    args = parser.parse_args()
    config = load_config(args.config or preset_path(args.preset), max_utterances=args.max_utterances)
    # Ray's workers inherit this process's environment: the checkout this script runs from must win there too.
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    with tempfile.TemporaryDirectory(prefix="ray_speed_") as scratch:
        start = time.perf_counter()
        serial = run_benchmark(config, Path(scratch) / "serial", progress=False, threads=1, plot=False)
        serial_seconds = time.perf_counter() - start

        ray = import_ray()
        ray.init(num_cpus=args.workers, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
        try:
            start = time.perf_counter()
            on_ray = run_benchmark(config, Path(scratch) / "ray", progress=False, threads=1, plot=False, executor="ray")
            ray_seconds = time.perf_counter() - start
        finally:
            ray.shutdown()
        same = (Path(scratch) / "serial" / "table1.csv").read_bytes() == (
            Path(scratch) / "ray" / "table1.csv"
        ).read_bytes()
    cells = len(serial.computed) + len(serial.failed)
    print(f"{config.name}: {cells} cells, one torch thread per worker")
    print(f"serial:            {serial_seconds:8.1f} s")
    print(f"ray, {args.workers} workers:    {ray_seconds:8.1f} s ({len(on_ray.failed)} failed cells)")
    print(f"ratio ray/serial:  {ray_seconds / serial_seconds:8.3f}")
    print(f"same table1.csv:   {same}")


if __name__ == "__main__":
    main()
