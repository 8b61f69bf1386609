"""
Where a run's cells are computed. Every executor has one signature, `run_cells(cells, context, recorder)`:

- `cells`: the cells to run, in the runner's order;
- `context`: a :class:`~art_asr_ext.benchmark.execution.RunContext`;
- `recorder`: called in the runner's process as each cell finishes, `(cell, output, failure, estimator=None,
  media=None)`; it is the only writer of the output directory.

:mod:`~.serial` runs them in this process; :mod:`~.ray` on the workers of a Ray cluster.

| Paper link: https://arxiv.org/abs/2103.17122
"""

#: The executors, by the name `--executor` takes.
EXECUTORS = ("serial", "ray")
