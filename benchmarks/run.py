"""
Run a benchmark config and write the study's Table I.

Usage::

    python benchmarks/run.py --config benchmarks/configs/ci_tiny.yaml --out runs/ci_tiny
    python benchmarks/run.py --config benchmarks/configs/paper_table1.yaml --out runs/paper --dry-run

Rerunning the same command resumes: finished cells are skipped, failed cells retried. See ``benchmarks/README.md``.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.runner.config import ConfigError, load_config  # noqa: E402
from benchmarks.runner.dry_run import dry_run_report  # noqa: E402
from benchmarks.runner.runner import run_benchmark  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """
    :param argv: Command-line arguments (default: `sys.argv[1:]`).
    :return: The parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="benchmark YAML config")
    parser.add_argument("--out", required=True, help="output directory (reuse it to resume)")
    parser.add_argument("--max-utterances", type=int, default=None, help="override data.max_utterances")
    parser.add_argument("--dry-run", action="store_true", help="print the grid and its estimated cost, run nothing")
    parser.add_argument("--max-cells", type=int, default=None, help="compute at most N cells, then stop")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-plot", action="store_true", help="do not draw wer_vs_eps.png")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """
    :param argv: Command-line arguments (default: `sys.argv[1:]`).
    :return: Exit status: 0 when every cell finished, 1 when some failed, 2 for a bad config.
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("art").setLevel(logging.WARNING)  # ART logs every batch at INFO
    try:
        config = load_config(args.config, max_utterances=args.max_utterances)
        if args.dry_run:
            print(dry_run_report(config, Path(args.out)), end="")
            return 0
        summary = run_benchmark(
            config,
            Path(args.out),
            max_cells=args.max_cells,
            progress=not args.no_progress,
            threads=args.threads,
            plot=not args.no_plot,
        )
    except (ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((Path(args.out) / "table1.md").read_text(encoding="utf-8"), end="")
    print(f"Results in {args.out} ({summary.wall_time:.1f} s)")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
