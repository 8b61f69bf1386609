"""
Run a benchmark's cells on the workers of a Ray cluster (``--executor ray``), keeping the serial runner's guarantees.

- **One writer.** The driver (the ``art-asr-benchmark`` process) is the only writer of the output directory: each
  worker returns its cell's rows and adversarial examples, and the driver appends the record as the cell arrives, in
  the order cells finish. Resume, fingerprints and failure records are those of the serial runner.
- **Transfer cells: the driver ships the examples.** A transfer cell is queued once its source cell is recorded;
  the driver reads the source's adversarial examples from its own output directory and passes them with the cell.
  Workers never read or write ``--out``, so it need not be on a file system the cluster shares.
- **A dead worker is a failed cell.** Cells are not retried by Ray (``max_task_retries=0``): a worker killed
  mid-cell (out of memory, a node lost, ``kill -9``) turns its cell into a failure record, which the next run
  retries, and the driver starts a new worker in its place.
- **Models load once per worker and system.** The workers are Ray actors (:class:`CellWorker`), as many as the
  cluster fits. Each keeps one system's models at a time, as the serial runner does, and the driver hands a free
  worker the next cell of the system it holds (:class:`CellQueue`), so two workers share a system only to keep both
  busy at the end. Each worker also encodes its cells' report media; the driver writes them.
- **Same seed, same table.** A worker computes its cell with
  :func:`~art_asr_ext.benchmark.execution.compute_cell` (the cell's own seed) and the torch thread count of the run
  (``--threads``, else the system's ``resources.num_cpus``), exactly as the serial executor.
- **No network.** Ray's usage statistics are switched off (``RAY_USAGE_STATS_ENABLED=0``) before Ray is imported,
  and a Ray instance started here has no dashboard and binds 127.0.0.1.

Each worker asks Ray for the largest ``resources`` of the systems it may run (config key; ``num_gpus: 1`` per cell
on ``device: gpu``, ``num_cpus: 1`` otherwise), and holds them until the run ends. Every node needs this package
and its models at the config's paths; the evaluation data is needed only on the driver (it ships the utterances).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import logging
import os
import re
import socket
import traceback
from typing import TYPE_CHECKING, Any, Callable, Collection, Dict, List, Mapping, Optional, Sequence, Tuple

from art_asr_ext.benchmark.grid import Cell, cell_passes

if TYPE_CHECKING:  # the CLI checks --ray-address with this module before torch and ART are imported
    from art_asr_ext.benchmark.execution import CellOutput, RunContext

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


class CellWorker:
    """
    One slot of the cluster, run as a Ray actor: it keeps one system's models at a time (a
    :class:`~art_asr_ext.benchmark.execution.SystemCache`, as the serial executor does), so a system's models load once
    per worker while the driver hands that worker the system's cells, and it encodes each cell's report media.
    """

    def __init__(self, shared: Tuple[Any, ...]) -> None:
        """
        :param shared: `(config, utterances, targets, texts, cache_dir)`, put in the object store once per run.
        """
        from art_asr_ext.benchmark.execution import SystemCache

        self.config, self.utterances, self.targets, texts, self.cache_dir = shared
        logging.getLogger("art").setLevel(logging.WARNING)  # ART logs every batch at INFO
        self.systems = SystemCache(self.config, texts)
        #: Media files this worker has returned: the driver wrote them, so they are named, not sent, again.
        self.sent_media: set = set()

    def run_cell(
        self,
        cell: "Cell",
        source_error: Optional[str],
        source_adversarial: Optional[Mapping[str, Any]],
        source_rows: Optional[Sequence[Mapping[str, Any]]],
        threads: int,
    ) -> Tuple[str, Any, Any, Optional[Dict[str, Any]]]:
        """
        :param cell: The cell.
        :param source_error: For a transfer cell whose source did not finish: the error it fails with.
        :param source_adversarial: For a transfer cell, its source's adversarial examples (shipped by the driver).
        :param source_rows: For a transfer cell, its source's utterance rows.
        :param threads: torch intra-op threads.
        :return: `("ok", CellOutput, None, media)` or `("failed", message, traceback, None)`, as the serial runner
                 records them; `media` (None without a report) is what the driver's `record_cell` takes.
        """
        from art_asr_ext.benchmark.execution import compute_cell, failure, torch_settings

        with torch_settings(threads, self.config.device):
            try:
                # The system first, as the serial executor does: a system that cannot be built names that error.
                estimator = self.systems.get(cell.system)
                if source_error is not None:
                    raise RuntimeError(source_error)
                output = compute_cell(
                    self.config,
                    cell,
                    estimator,
                    self.utterances,
                    self.targets,
                    source_adversarial,
                    source_rows,
                    cache_dir=self.cache_dir,
                )
            except Exception as error:  # recorded by the driver; the worker goes on with the next cell
                return ("failed", *failure(error), None)
            return "ok", output, None, self._media(cell, estimator, output)

    def _media(self, cell: "Cell", estimator, output: "CellOutput") -> Optional[Dict[str, Any]]:
        """The cell's report media, encoded here where the system's defences are (the driver only writes them)."""
        from art_asr_ext.benchmark.report_media import MediaFiles, encode_cell_media

        if not self.config.report.utterances:
            return None
        media = MediaFiles(skip=self.sent_media.__contains__)
        try:
            entries = encode_cell_media(
                media, cell, estimator, self.utterances, output.adversarial, self.config.report, output.defended
            )
        except Exception as error:  # a missing codec must not lose the cell's result (the driver logs it)
            return {"error": f"{type(error).__name__}: {error}"}
        self.sent_media.update(media.encoded)
        return {"entries": entries, "files": media.encoded}


# --------------------------------------------------------------------------------------------------------------------
# The driver side
# --------------------------------------------------------------------------------------------------------------------


def slot_count(cluster: Mapping[str, float], num_cpus: float, num_gpus: float, cells: int) -> int:
    """
    :param cluster: The cluster's resources (`ray.cluster_resources()`).
    :param num_cpus: What one worker takes: the most CPUs any system's cell asks for.
    :param num_gpus: The most GPUs any system's cell asks for.
    :param cells: The number of cells to run.
    :return: How many workers run at once: as many as the cluster fits, at most one per cell.
    :raises ExecutorError: If the cluster cannot fit one (its resources and the ask are named).
    """
    fits = [cluster.get("CPU", 0.0) / num_cpus] if num_cpus > 0 else []
    fits += [cluster.get("GPU", 0.0) / num_gpus] if num_gpus > 0 else []
    slots = int(min(fits) + 1e-9) if fits else cells
    if slots < 1:
        raise ExecutorError(
            f"The Ray cluster has {cluster.get('CPU', 0.0):g} CPUs and {cluster.get('GPU', 0.0):g} GPUs; a cell asks "
            f"for {num_cpus:g} CPUs and {num_gpus:g} GPUs (the config's `resources`)"
        )
    return max(1, min(slots, cells))


class CellQueue:
    """
    Which cell a free worker runs next. Cells wait in one queue per system: transfer sources first, then the
    costliest (forward and backward passes per utterance), so the short ones fill the end of the run. A worker takes
    the next cell of the system it holds; a worker without one takes the system with the most passes left that no
    other worker holds, else a share of a held system that has more than one cell left (a second model load, to
    keep every worker busy).

    :param cost: A cell's estimated cost.
    """

    def __init__(self, cost: Callable[["Cell"], float]) -> None:
        self.cost = cost
        self.queues: Dict[str, List["Cell"]] = {}
        self.sources: set = set()

    def add(self, cell: "Cell") -> None:
        """Queue a cell that can run now."""
        queue = self.queues.setdefault(cell.system, [])
        queue.append(cell)
        queue.sort(key=lambda c: (c.key not in self.sources, -self.cost(c)))

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.queues.values())

    def waiting_systems(self) -> List[str]:
        """The systems with cells queued, in the order they were first queued."""
        return [system for system, queue in self.queues.items() if queue]

    def take(
        self, held: Optional[str], held_elsewhere: Sequence[Optional[str]], systems: Collection[str]
    ) -> Optional["Cell"]:
        """
        :param held: The system the worker holds (None: none yet).
        :param held_elsewhere: The systems the other workers hold.
        :param systems: The systems the worker may run (those of its resources).
        :return: Its next cell, or None for now.
        """
        if held in systems and self.queues.get(held):
            return self.queues[held].pop(0)
        left = {
            system: sum(map(self.cost, queue)) for system, queue in self.queues.items() if queue and system in systems
        }
        free = [system for system in left if system not in held_elsewhere]
        if free:
            return self.queues[max(free, key=left.get)].pop(0)
        shared = [system for system in left if len(self.queues[system]) > 1]
        if shared:
            return self.queues[max(shared, key=left.get)].pop()
        return None


def run_cells(cells: Sequence[Cell], context: "RunContext", recorder: Callable[..., None]) -> None:
    """
    Run `cells` on Ray workers; `recorder` is called in this process for each as it finishes (or fails).

    :param cells: The cells to run.
    :param context: The run; its `ray_address` names the cluster (see :func:`connect`), and its `threads` the torch
                    threads per cell (default: the system's `resources.num_cpus`, at least 1).
    :param recorder: Writes a finished cell: `(cell, output, None, media=...)` or `(cell, None, (message, trace))`.
    :raises ExecutorError: If no Ray cluster answers at the address, or it cannot fit one worker.
    """
    ray = import_ray()
    if not cells:
        return
    config, utterances = context.config, context.utterances
    connected_here = connect(context.ray_address)
    systems = {cell.system: config.system(cell.system) for cell in cells}
    worker_class = ray.remote(max_restarts=0, max_task_retries=0)(CellWorker)
    workers: List[Any] = []
    in_flight: Dict[Any, Tuple[int, "Cell"]] = {}
    try:
        shared = ray.put((config, list(utterances), dict(context.targets), context.texts, context.cache_dir))

        def passes(cell: "Cell") -> float:
            counts = cell_passes(cell, systems[cell.system].eot_samples)
            return 3.0 * counts["forward_backward"] + counts["forward"]  # a backward pass costs about two forwards

        queue = CellQueue(passes)
        keys = {cell.key for cell in cells}
        queue.sources = {cell.source_key for cell in cells if cell.is_transfer and cell.source_key in keys}
        # Transfer cells whose source runs now wait for it; the others can go at once.
        waiting: List["Cell"] = [cell for cell in cells if cell.is_transfer and cell.source_key in keys]
        for cell in cells:
            if not (cell.is_transfer and cell.source_key in keys):
                queue.add(cell)

        def submit(slot: int, cell: "Cell") -> None:
            try:
                source_error, source_adversarial, source_rows = context.source_inputs(cell)
            except Exception as error:  # as in the serial executor: the cell fails, the run goes on
                recorder(cell, None, (f"{type(error).__name__}: {error}", traceback.format_exc()))
                return
            threads = context.threads
            cell_threads = threads if threads is not None else max(1, int(systems[cell.system].resources.num_cpus))
            held[slot] = cell.system
            reference = workers[slot].run_cell.remote(cell, source_error, source_adversarial, source_rows, cell_threads)
            in_flight[reference] = (slot, cell)

        # One pool of workers per resource shape at a time (most configs have one): workers of one shape pack the
        # cluster as its systems' `resources` ask, and a pool goes before the next shape's is started.
        while len(queue):
            shape = systems[queue.waiting_systems()[0]].resources
            pool = {label for label, system in systems.items() if system.resources == shape}
            pool_cells = sum(cell.system in pool for cell in cells)
            slots = slot_count(ray.cluster_resources(), shape.num_cpus, shape.num_gpus, pool_cells)

            def new_worker():
                return worker_class.options(num_cpus=shape.num_cpus, num_gpus=shape.num_gpus).remote(shared)

            workers, held = [new_worker() for _ in range(slots)], [None] * slots

            def dispatch() -> None:
                for slot in range(slots):
                    if slot not in {busy for busy, _ in in_flight.values()}:
                        cell = queue.take(held[slot], [h for other, h in enumerate(held) if other != slot], pool)
                        if cell is not None:
                            submit(slot, cell)

            dispatch()
            while in_flight:
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for reference in done:
                    slot, cell = in_flight.pop(reference)
                    media = None
                    try:
                        status, value, trace, media = ray.get(reference)
                    except ray.exceptions.RayActorError as error:  # the worker or its node died: the next run retries
                        status, value, trace = "failed", f"{type(error).__name__}: {error}".strip(), ""
                        workers[slot], held[slot] = new_worker(), None
                    except ray.exceptions.RayError as error:
                        status, value, trace = "failed", f"{type(error).__name__}: {error}".strip(), ""
                    if status == "ok":
                        recorder(cell, value, None, media=media)
                    else:
                        recorder(cell, None, (value, trace))
                    for follower in [c for c in waiting if c.source_key == cell.key]:
                        waiting.remove(follower)
                        queue.add(follower)
                dispatch()
            for worker in workers:
                ray.kill(worker)
            workers = []
    finally:
        # The run ends, or the driver stops (an error, Ctrl-C): the workers go, with the cells they run, their models
        # and their share of the cluster.
        for worker in workers:
            ray.kill(worker)
        if connected_here:
            ray.shutdown()
