"""
Run a benchmark config and write the study's Table I: the ``art-asr-benchmark`` command, also
``python -m art_asr_ext.benchmark``.

Usage::

    art-asr-benchmark --preset quick --out runs/quick                  # a preset shipped with the package
    art-asr-benchmark --config my_table.yaml --out runs/mine           # your own config
    art-asr-benchmark --preset paper_table1 --out runs/paper --dry-run
    art-asr-benchmark report --out runs/quick                            # report.html of a run, again

Rerunning the same command resumes: finished cells are skipped, failed cells retried. See ``benchmarks/README.md``.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

from art_asr_ext.benchmark.executors import EXECUTORS
from art_asr_ext.benchmark.presets import preset_path, presets


class _WithoutESPnetInfo(logging.Filter):
    """
    Drops the INFO records that ESPnet sends to the root logger: building a model logs each weight it initialises
    (about 70 lines per Transformer, two thirds of the main job's console). Its warnings still pass.
    """

    def __init__(self) -> None:
        super().__init__()
        import importlib.util

        specs = [importlib.util.find_spec(name) for name in ("espnet", "espnet2")]  # finds, without importing
        self.folders = tuple(  # with a trailing separator: espnet/, not espnet_model_zoo/
            os.path.join(folder, "") for spec in specs if spec is not None for folder in spec.submodule_search_locations
        )

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or not record.pathname.startswith(self.folders)


def _count(minimum: int):
    """An argparse type: an integer >= `minimum` (a bad one is a usage error naming the value, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer. Found: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}. Found: {value}")
        return value

    return parse


def _ray_address(text: str) -> str:
    """An argparse type: a `--ray-address` (`auto`, `local` or HOST:PORT)."""
    from art_asr_ext.benchmark.executors.ray import check_ray_address

    try:
        return check_ray_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """
    :param argv: Command-line arguments (default: `sys.argv[1:]`).
    :return: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        prog="art-asr-benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="benchmark YAML config file")
    source.add_argument("--preset", help=f"a config shipped with the package: {', '.join(presets())}")
    parser.add_argument("--out", help="output directory (reuse it to resume); optional with --dry-run")
    parser.add_argument("--max-utterances", type=int, default=None, help="override data.max_utterances")
    parser.add_argument("--dry-run", action="store_true", help="print the grid and its estimated cost, run nothing")
    parser.add_argument("--max-cells", type=_count(0), default=None, help="compute at most N cells, then stop")
    parser.add_argument("--threads", type=_count(1), default=None, help="torch intra-op threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-plot", action="store_true", help="do not draw wer_vs_eps.png and table1_heatmap.png")
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default="serial",
        help="run the cells in this process (default) or as tasks on a Ray cluster (see docs/scaling.md)",
    )
    parser.add_argument(
        "--ray-address",
        type=_ray_address,
        default="auto",
        help="with --executor ray: auto (the cluster `ray start` runs here, default), local (a Ray started for this "
        "run) or HOST:PORT of a cluster's head",
    )
    parser.add_argument(
        "--estimate",
        action="store_true",
        help="with --dry-run: time one batch of each system here and print each pending cell's cost in seconds and "
        "the projected wall time on --workers workers",
    )
    parser.add_argument(
        "--workers",
        type=_count(1),
        action="append",
        default=None,
        help="with --estimate: project the wall time on N workers (repeatable; default 1, 2 and 8)",
    )
    args = parser.parse_args(argv)
    if args.out is None and not args.dry_run:
        parser.error("--out is required (except with --dry-run)")
    if args.estimate and not args.dry_run:
        parser.error("--estimate goes with --dry-run")
    if args.workers and not args.estimate:
        parser.error("--workers goes with --dry-run --estimate")
    if args.executor == "ray" and not args.dry_run:
        try:
            from art_asr_ext.benchmark.executors.ray import import_ray

            import_ray()
        except ImportError as error:
            parser.error(str(error))
    return args


def parse_report_args(argv: List[str]) -> argparse.Namespace:
    """
    :param argv: The arguments after `report`.
    :return: The parsed arguments of the `report` command.
    """
    parser = argparse.ArgumentParser(
        prog="art-asr-benchmark report",
        description="Write report.html (and the figures) of a run from its output directory; nothing is computed.",
    )
    parser.add_argument("--out", required=True, help="the output directory of a run")
    parser.add_argument("--no-plot", action="store_true", help="do not redraw wer_vs_eps.png and table1_heatmap.png")
    return parser.parse_args(argv)


def report_main(argv: List[str]) -> int:
    """
    :param argv: The arguments after `report`.
    :return: Exit status: 0, or 2 when the directory holds no run, another run holds it, or its config is invalid.
    """
    args = parse_report_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from art_asr_ext.benchmark.config import ConfigError
    from art_asr_ext.benchmark.outputs.files import report_finished_run
    from art_asr_ext.benchmark.store import OutputError

    try:
        written = report_finished_run(Path(args.out), plot=not args.no_plot)
    except (ConfigError, OutputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Report in {Path(args.out) / 'report.html'} ({written['files']} files, {written['bytes'] / 1e6:.1f} MB)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """
    :param argv: Command-line arguments (default: `sys.argv[1:]`); `report --out DIR` writes the report of a run.
    :return: Exit status: 0 when every cell finished, 1 when some failed, 2 for a bad config, bad data (every bad
             utterance named), or an output directory that another run holds or that cannot be written.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["report"]:
        return report_main(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("art").setLevel(logging.WARNING)  # ART logs every batch at INFO
    espnet_filter = _WithoutESPnetInfo()
    logging.getLogger().addFilter(espnet_filter)
    try:
        return _run(args)
    finally:  # main() also runs in-process (tests, a notebook): the root logger is left as it was found
        logging.getLogger().removeFilter(espnet_filter)


def _run(args: argparse.Namespace) -> int:
    """
    :param args: The parsed, valid arguments of :func:`main`.
    :return: Its exit status.
    """
    # The runner imports ART, torch and the estimators: only once the arguments are known to be good.
    from art_asr_ext.benchmark.config import ConfigError, load_config
    from art_asr_ext.benchmark.dry_run import dry_run_report
    from art_asr_ext.benchmark.evaluation_data import BadDataError
    from art_asr_ext.benchmark.executors.ray import ExecutorError
    from art_asr_ext.benchmark.runner import RunOptions, run_benchmark
    from art_asr_ext.benchmark.store import OutputError

    try:
        config_file = preset_path(args.preset) if args.preset else args.config
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        config = load_config(config_file, max_utterances=args.max_utterances)
        if args.dry_run:
            out = None if args.out is None else Path(args.out)
            workers = tuple(args.workers or (1, 2, 8))
            print(dry_run_report(config, out, estimate=args.estimate, workers=workers, threads=args.threads), end="")
            return 0
        options = RunOptions(
            max_cells=args.max_cells,
            progress=not args.no_progress,
            threads=args.threads,
            plot=not args.no_plot,
            executor=args.executor,
            ray_address=args.ray_address,
        )
        summary = run_benchmark(config, Path(args.out), options)
    except (ConfigError, BadDataError, OutputError, ExecutorError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print((Path(args.out) / "table1.md").read_text(encoding="utf-8"), end="")
    print(f"Results in {args.out} ({summary.wall_time:.1f} s)")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
