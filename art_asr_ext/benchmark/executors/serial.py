"""
The serial executor: every cell in the runner's own process, one system's models at a time.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from typing import Callable, Sequence

from art_asr_ext.benchmark.execution import RunContext, compute_cell, failure, torch_settings
from art_asr_ext.benchmark.grid import Cell
from art_asr_ext.benchmark.progress import progress_bar


def run_cells(cells: Sequence[Cell], context: RunContext, recorder: Callable[..., None]) -> None:
    """
    Run `cells` here, in order; `recorder` writes each as it finishes (or fails: a failing cell is recorded and the
    run goes on).

    :param cells: The cells to run.
    :param context: The run.
    :param recorder: Writes a finished cell: `(cell, output, failure, estimator)`.
    """
    config = context.config
    systems = context.system_cache(config, context.texts)
    with torch_settings(context.threads, config.device):
        for cell in cells:
            output, failed, estimator = None, None, None
            try:
                estimator = systems.get(cell.system)
                error, source_adversarial, source_rows = context.source_inputs(cell)
                if error is not None:
                    raise RuntimeError(error)
                with progress_bar(
                    total=len(context.utterances), desc="  utterances", leave=False, disable=not context.progress
                ) as inner:
                    output = compute_cell(
                        config,
                        cell,
                        estimator,
                        context.utterances,
                        context.targets,
                        source_adversarial,
                        source_rows,
                        on_batch=inner.update,
                        cache_dir=context.cache_dir,
                    )
            except Exception as error:  # a failing cell is recorded and the run goes on
                failed = failure(error)
            recorder(cell, output, failed, estimator)
            output = None  # its arrays go before the next cell starts
        systems.release()
