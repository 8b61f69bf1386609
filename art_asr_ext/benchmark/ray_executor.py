"""
Run a benchmark's cells as tasks on a Ray cluster (``--executor ray``), keeping the serial runner's guarantees.

- **One writer.** The driver (the ``art-asr-benchmark`` process) is the only writer of the output directory: each
  task returns its cell's rows and adversarial examples, and the driver appends the record as the cell arrives, in
  the order cells finish. Resume, fingerprints and failure records are those of the serial runner.
- **Transfer cells: the driver ships the examples.** A transfer cell is submitted once its source cell is recorded;
  the driver reads the source's adversarial examples from its own output directory and passes them with the task.
  Workers never read or write ``--out``, so it need not be on a file system the cluster shares.
- **A dead worker is a failed cell.** Tasks are not retried by Ray (``max_retries=0``): a worker killed mid-cell
  (out of memory, a node lost, ``kill -9``) turns its cell into a failure record, which the next run retries.
- **Models load once per worker and system.** Each worker process keeps a :class:`SystemCache` (one system at a
  time, as the serial runner); cells are submitted grouped by system, so a worker loads a system once while that
  system has cells left.
- **Same seed, same table.** A task computes its cell with :func:`compute_cell` (the cell's own seed) and the torch
  thread count of the run (``--threads``, else the system's ``resources.num_cpus``), exactly as the serial runner.
- **No network.** Ray's usage statistics are switched off (``RAY_USAGE_STATS_ENABLED=0``) before Ray is imported,
  and a Ray instance started here has no dashboard and binds 127.0.0.1.

Each cell asks Ray for its system's ``resources`` (config key; ``num_gpus: 1`` per cell on ``device: gpu``,
``num_cpus: 1`` otherwise). Every node needs this package, its models at the config's paths, and the evaluation
data only on the driver (the driver ships the utterances too).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import logging
import os
import re
import socket
import traceback
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:  # the CLI checks --ray-address with this module before torch and ART are imported
    from art_asr_ext.benchmark.attacks import Cell
    from art_asr_ext.benchmark.cells import CellOutput

logger = logging.getLogger("art_asr_ext.benchmark")

#: The values of ``--ray-address`` besides ``HOST:PORT``.
RAY_ADDRESSES = ("auto", "local")
#: How to install Ray for this package.
RAY_INSTALL = "pip install 'art-asr-ext[ray]'"


class ExecutorError(RuntimeError):
    """The Ray executor cannot start: no cluster at the address given, or Ray cannot initialise."""


def check_ray_address(address: str) -> str:
    """
    :param address: A ``--ray-address``: `auto`, `local` or `HOST:PORT`.
    :return: The address.
    :raises ValueError: If it is none of these (the value is named).
    """
    if address in RAY_ADDRESSES:
        return address
    match = re.fullmatch(r"([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\]):([0-9]{1,5})", str(address))
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise ValueError(f"ray address must be 'auto', 'local' or HOST:PORT (port 1-65535). Found: {address!r}")
    return address


def import_ray():
    """
    :return: The `ray` module, imported with its usage statistics switched off.
    :raises ImportError: If Ray is not installed (the message says how to install it).
    """
    # Read by `ray.init` and `ray start`: without it Ray reports usage to its makers over the network.
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from error
    return ray


def connect(address: str) -> bool:
    """
    Connect this process to a Ray cluster, or start a private one.

    :param address: `auto`, `local` or `HOST:PORT` (see :func:`check_ray_address`).
    :return: Whether this call connected (False: Ray was already initialised by the caller, who keeps it).
    :raises ExecutorError: If no cluster answers at `address`.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    options: Dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address not in RAY_ADDRESSES:
        _check_head_answers(address)
    if address == "local":
        options.update(include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as error:
        hint = " (start one with `ray start --head`, or use --ray-address local)" if address == "auto" else ""
        raise ExecutorError(f"Cannot connect to a Ray cluster at {address!r}{hint}: {error}") from error
    return True


def _check_head_answers(address: str, timeout: float = 10.0) -> None:
    """
    :param address: `HOST:PORT` of a cluster's head.
    :raises ExecutorError: If nothing accepts a connection there (`ray.init` would retry for minutes).
    """
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise ExecutorError(
            f"Cannot connect to a Ray cluster at {address!r}: nothing answers there ({error}); start its head with "
            f"`ray start --head --port {port}`, or use --ray-address local"
        ) from None


# --------------------------------------------------------------------------------------------------------------------
# The worker side
# --------------------------------------------------------------------------------------------------------------------

#: Per worker process: the run its system cache belongs to, and the cache (one system's models at a time).
_WORKER_STATE: Dict[str, Any] = {"run": None, "systems": None}


def _worker_systems(run_key: str, config, texts: Sequence[str]):
    """The worker's :class:`SystemCache` for this run (a new run, on a long-lived cluster, frees the old one's)."""
    from art_asr_ext.benchmark.runner import SystemCache

    if _WORKER_STATE["run"] != run_key:
        if _WORKER_STATE["systems"] is not None:
            _WORKER_STATE["systems"].release()
        _WORKER_STATE.update(run=run_key, systems=SystemCache(config, texts))
    return _WORKER_STATE["systems"]


def run_cell_task(
    shared: Tuple[Any, ...],
    cell: "Cell",
    source_error: Optional[str],
    source_adversarial: Optional[Mapping[str, Any]],
    source_rows: Optional[Sequence[Mapping[str, Any]]],
    threads: int,
) -> Tuple[str, Any, Any]:
    """
    One cell on a Ray worker (the body of the remote task).

    :param shared: `(run key, config, utterances, targets, texts)`, put in the object store once per run.
    :param cell: The cell.
    :param source_error: For a transfer cell whose source did not finish: the error it fails with.
    :param source_adversarial: For a transfer cell, its source's adversarial examples (shipped by the driver).
    :param source_rows: For a transfer cell, its source's utterance rows.
    :param threads: torch intra-op threads.
    :return: `("ok", CellOutput, None)`, or `("failed", message, traceback)` as the serial runner records them.
    """
    import torch

    from art_asr_ext.benchmark.runner import compute_cell

    run_key, config, utterances, targets, texts = shared
    logging.getLogger("art").setLevel(logging.WARNING)  # ART logs every batch at INFO
    torch.set_num_threads(threads)
    if config.device == "gpu":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        # The system first, as the serial runner does: a system that cannot be built names that error.
        estimator = _worker_systems(run_key, config, texts).get(cell.system)
        if source_error is not None:
            raise RuntimeError(source_error)
        output = compute_cell(config, cell, estimator, utterances, targets, source_adversarial, source_rows)
    except Exception as error:  # recorded by the driver; the worker goes on with the next cell
        return "failed", f"{type(error).__name__}: {error}", traceback.format_exc()
    return "ok", output, None


# --------------------------------------------------------------------------------------------------------------------
# The driver side
# --------------------------------------------------------------------------------------------------------------------


def run_cells_on_ray(
    config,
    cells: Sequence["Cell"],
    utterances: Sequence[Any],
    targets: Mapping[str, str],
    texts: Sequence[str],
    source_of: Callable[["Cell"], Tuple[Optional[Mapping[str, Any]], Optional[str]]],
    store,
    record_cell: Callable[["Cell", Optional["CellOutput"], Optional[Sequence[str]]], None],
    address: str = "auto",
    threads: Optional[int] = None,
) -> None:
    """
    Run `cells` as Ray tasks; `record_cell` is called in this process for each as it finishes (or fails).

    :param config: The benchmark.
    :param cells: The cells to run, grouped by system (transfer cells after their sources).
    :param utterances: The benchmark's utterances.
    :param targets: Their targets.
    :param texts: Every transcript and target (each system's alphabet is checked against them).
    :param source_of: A transfer cell's source record and None, or None and the error the cell fails with.
    :param store: The run's :class:`~art_asr_ext.benchmark.store.ResultStore` (the source examples are read here).
    :param record_cell: Writes a finished cell: `(cell, output, None)` or `(cell, None, (message, traceback))`.
    :param address: See :func:`connect`.
    :param threads: torch threads per task (default: the system's `resources.num_cpus`, at least 1).
    :raises ExecutorError: If no Ray cluster answers at `address`.
    """
    from art_asr_ext.benchmark.runner import _digest

    ray = import_ray()
    connected_here = connect(address)
    task = ray.remote(max_retries=0)(run_cell_task)
    in_flight: Dict[Any, "Cell"] = {}
    try:
        run_key = _digest({"config": config.raw, "path": config.path, "texts": list(texts)})
        shared = ray.put((run_key, config, list(utterances), dict(targets), list(texts)))
        keys = {cell.key for cell in cells}
        # Transfer cells whose source runs now wait for it; the others go at once, in system order.
        waiting: List["Cell"] = [cell for cell in cells if cell.is_transfer and cell.source_key in keys]
        ready: List["Cell"] = [cell for cell in cells if not (cell.is_transfer and cell.source_key in keys)]

        def submit(cell: "Cell") -> None:
            source_error = source_adversarial = source_rows = None
            try:
                if cell.is_transfer:
                    source, source_error = source_of(cell)
                    if source is not None:
                        ids = [u.utterance_id for u in utterances]
                        source_adversarial = store.load_adversarial(cell.source_key, ids)
                        source_rows = source["rows"]
            except Exception as error:  # as in the serial runner: the cell fails, the run goes on
                record_cell(cell, None, (f"{type(error).__name__}: {error}", traceback.format_exc()))
                return
            resources = config.system(cell.system).resources
            cell_threads = threads if threads is not None else max(1, int(resources.num_cpus))
            options = {"num_cpus": resources.num_cpus, "num_gpus": resources.num_gpus}
            if resources.num_gpus:
                options["max_calls"] = 0  # Ray's default for GPU tasks is a new process (a model load) per task
            reference = task.options(**options).remote(
                shared, cell, source_error, source_adversarial, source_rows, cell_threads
            )
            in_flight[reference] = cell

        for cell in ready:
            submit(cell)
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for reference in done:
                cell = in_flight.pop(reference)
                try:
                    status, value, trace = ray.get(reference)
                except ray.exceptions.RayError as error:  # the worker or its node died: the next run retries
                    status, value, trace = "failed", f"{type(error).__name__}: {error}".strip(), ""
                if status == "ok":
                    record_cell(cell, value, None)
                else:
                    record_cell(cell, None, (value, trace))
                for follower in [c for c in waiting if c.source_key == cell.key]:
                    waiting.remove(follower)
                    submit(follower)
    finally:
        for reference in in_flight:  # the driver stops (an error, Ctrl-C): its cells stop too
            ray.cancel(reference, force=True)
        if connected_here:
            ray.shutdown()
