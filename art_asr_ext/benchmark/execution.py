"""
Compute one cell, the one home of how a cell runs wherever it runs (in the runner's process or on a Ray worker): the
threads and determinism settings, the system's models (one system at a time, :class:`SystemCache`), the cell's own
seed, ART's attack built from the registry, the attack in length-sorted batches, the transcription, and the score
of each utterance.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import contextlib
import traceback
import ctypes
import dataclasses
import functools
import gc
import logging
import operator
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from art_asr_ext.benchmark.config.schema import BenchmarkConfig
from art_asr_ext.benchmark.grid import CLEAN, PERCEPTUAL_COLUMNS, QUERY_COLUMN, VOTE_COLUMNS, Cell
from art_asr_ext.benchmark.registry import ATTACKS
from art_asr_ext.benchmark.systems import build_system, check_alphabet, reseed_defences, set_eot_samples
from art_asr_ext.data import Utterance
from art_asr_ext.metrics import perceptual_scores, perturbation_size, word_errors
from art_asr_ext.utils.audio import length_sorted_batches, to_object_array

logger = logging.getLogger("art_asr_ext.benchmark")


def cell_seed(seed: int, cell: Cell) -> int:
    """
    :param seed: The run's seed.
    :param cell: A cell.
    :return: The cell's own seed (torch, numpy, the defences' noise and the attack are seeded from it).
    """
    return zlib.crc32(f"{seed}|{cell.key}".encode("utf-8")) & 0x7FFFFFFF


@contextlib.contextmanager
def torch_settings(threads: Optional[int], device: str) -> Iterator[None]:
    """
    The torch settings every cell runs under, restored afterwards: `threads` intra-op threads (None: torch's), and on
    a GPU deterministic cuDNN algorithms (CTC loss backward on CUDA stays nondeterministic).

    :param threads: torch intra-op threads.
    :param device: `cpu` or `gpu`.
    """
    previous_threads = torch.get_num_threads()
    previous_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if threads is not None:
        torch.set_num_threads(threads)
    if device == "gpu":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous_cudnn


def release_memory() -> None:
    """
    Give freed memory back to the system: collect reference cycles (ART's attacks and estimators hold some), empty
    CUDA's cache, and ask glibc to return the free pages of its heap (without `malloc_trim`, a process keeps the peak
    of every system it has held, however much of it is free).
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        pass


class SystemCache:
    """
    Keeps the estimator of the last system used (one at a time, so large models never share the device or the
    memory): a system's models are freed before the next system's are built. The serial executor holds one; so does
    each Ray worker (see :mod:`art_asr_ext.benchmark.executors.ray`).

    :param config: The benchmark.
    :param texts: Every transcript and target of the run (each system's alphabet is checked against them).
    :param build: Builds a system's estimator from `(system, device, seed)`.
    """

    def __init__(self, config: BenchmarkConfig, texts: Sequence[str], build: Callable[..., Any] = build_system) -> None:
        self.config = config
        self.texts = texts
        self.build = build
        self.label: Optional[str] = None
        self.estimator = None
        self.error: Optional[BaseException] = None

    def get(self, label: str):
        """
        :param label: A system's label.
        :return: Its estimator, built on first use (the previous system's is freed first).
        :raises RuntimeError: If building it failed (every cell of the system then fails with the same error).
        """
        if label != self.label:
            self.release()
            self.label = label
            system = self.config.system(label)
            try:
                logger.info("Building system %s", label)
                estimator = self.build(system, self.config.device, self.config.seed)
                check_alphabet(estimator, self.texts, label)
                self.estimator = estimator
            except Exception as error:  # recorded in every cell of the system; the run goes on
                self.error = error
        if self.error is not None:
            raise RuntimeError(f"Building system {label!r} failed: {self.error}") from self.error
        return self.estimator

    def release(self) -> None:
        """Free the system held (its models and whatever its last cell left behind)."""
        self.estimator, self.error, self.label = None, None, None
        release_memory()


@dataclasses.dataclass
class CellOutput:
    """What a finished cell gives: one row per utterance, and its adversarial examples."""

    rows: List[Dict[str, Any]]
    adversarial: Dict[str, np.ndarray]
    seconds: float
    #: What the recognizer received after its defences, for the utterances asked for (none without defences).
    defended: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def perceptual_columns(cell: Cell, utterance: Utterance, adversarial: np.ndarray) -> Dict[str, Any]:
    """
    :param cell: The cell.
    :param utterance: The clean utterance.
    :param adversarial: Its adversarial waveform.
    :return: Wide-band PESQ and STOI of `adversarial` against the clean waveform (None on clean cells), and a note
             naming each metric that could not score the utterance, and why.
    """
    if cell.attack == CLEAN or not ATTACKS[cell.attack].perturbs:
        return {"pesq": None, "stoi": None, "perceptual_note": ""}
    scores = perceptual_scores(utterance.waveform, adversarial, utterance.sample_rate)
    reasons = (("pesq", scores.pesq_reason), ("stoi", scores.stoi_reason))
    return {
        "pesq": scores.pesq,
        "stoi": scores.stoi,
        "perceptual_note": "; ".join(f"{name}: {reason}" for name, reason in reasons if reason),
    }


def utterance_row(
    cell: Cell,
    utterance: Utterance,
    target: str,
    adversarial: np.ndarray,
    hypothesis: Union[str, Sequence[str]],
    seconds: float,
    perceptual: Optional[Mapping[str, Any]] = None,
    vote: Optional[Any] = None,
    queries: Optional[int] = None,
) -> Dict[str, Any]:
    """
    :param cell: The cell.
    :param utterance: The clean utterance.
    :param target: Its target phrase.
    :param adversarial: The waveform the system transcribed.
    :param hypothesis: The transcript; or, for an example heard in several places (test rooms), one transcript per
                       place: the errors are summed over them and the column joins them with " | ".
    :param seconds: Wall-clock seconds spent on this utterance (its batch's time over the batch size).
    :param perceptual: Its :func:`perceptual_columns`, when already known (a transfer cell's source measured them on
                       the same waveform); computed otherwise.
    :param vote: The stability of its vote, for a system that votes over noisy draws (a `VoteStability`).
    :param queries: The transcriptions a black-box attack asked for on this utterance.
    :return: One row of utterances.csv.
    """
    heard = [hypothesis] if isinstance(hypothesis, str) else [str(text) for text in hypothesis]
    ground_truth = functools.reduce(operator.add, (word_errors(utterance.transcript, text) for text in heard))
    toward_target = functools.reduce(operator.add, (word_errors(target, text) for text in heard))
    linf, snr = perturbation_size(utterance.waveform, adversarial)
    if perceptual is None or any(column not in perceptual for column in PERCEPTUAL_COLUMNS):
        perceptual = perceptual_columns(cell, utterance, adversarial)
    return {
        "row": cell.row,
        "system": cell.system,
        "source": cell.source,
        "attack": cell.attack,
        "eps": cell.eps,
        "targeted": cell.targeted,
        "strength": cell.strength,
        "utterance_id": utterance.utterance_id,
        "reference": utterance.transcript,
        "target": target,
        "hypothesis": " | ".join(heard),
        "gt_errors": ground_truth.errors,
        "gt_words": ground_truth.reference_words,
        "tgt_errors": toward_target.errors,
        "tgt_words": toward_target.reference_words,
        "linf": linf,
        "snr_db": snr,
        **{column: perceptual[column] for column in PERCEPTUAL_COLUMNS},
        **dict(zip(VOTE_COLUMNS, (None, None) if vote is None else (vote.agreement, vote.draw_wer))),
        QUERY_COLUMN: queries,
        "seconds": seconds,
    }


def run_cell(
    cell: Cell,
    estimator,
    utterances: Sequence[Utterance],
    targets: Mapping[str, str],
    batch_size: int,
    source_adversarial: Optional[Mapping[str, np.ndarray]] = None,
    on_batch: Optional[Callable[[int], None]] = None,
    source_rows: Optional[Sequence[Mapping[str, Any]]] = None,
    keep_defended: int = 0,
    seed: int = 0,
    cache_dir: Optional[Path] = None,
) -> CellOutput:
    """
    Run a cell over all utterances. Batches group utterances of similar length (longest first) with the estimator's
    own padding limit; each batch is attacked by ART, then transcribed by the (defended) estimator.

    :param cell: The cell.
    :param estimator: The system's ART speech recognizer.
    :param utterances: The benchmark's utterances.
    :param targets: Target phrase of each utterance id.
    :param batch_size: Most utterances per batch.
    :param source_adversarial: For a transfer cell, the source cell's adversarial waveform of each utterance id.
    :param on_batch: Called with the number of utterances of each finished batch (progress bars).
    :param source_rows: For a transfer cell, the source cell's utterance rows: their perceptual measures are those of
                        the same waveforms, so they are copied instead of measured again.
    :param keep_defended: Keep what the recognizer received after its defences for the first this many utterances
                          (the report's defended input; recorded during `predict`, see
                          `PyTorchSpeechRecognizer.recording_defended_inputs`).
    :param seed: The cell's seed, handed to the attack.
    :param cache_dir: The run's folder for what an attack generates once (the rooms of an over-the-air attack).
    :return: The rows and adversarial examples.
    :raises ValueError: If a transfer cell lacks the adversarial example of an utterance.
    """
    waveforms = [u.waveform for u in utterances]
    if cell.is_transfer:
        if source_adversarial is None:
            raise ValueError(f"Transfer cell {cell.key!r} needs the adversarial examples of {cell.source_key!r}.")
        for u in utterances:
            if u.utterance_id not in source_adversarial or len(source_adversarial[u.utterance_id]) != len(u.waveform):
                raise ValueError(
                    f"The saved adversarial examples of {cell.source_key!r} lack utterance {u.utterance_id} at "
                    f"{len(u.waveform)} samples; rerun that cell."
                )
    labels = [targets[u.utterance_id] if cell.targeted else u.transcript for u in utterances]
    attack, spec = None, ATTACKS.get(cell.attack)
    if cell.attack != CLEAN and not cell.is_transfer:
        extra = {"cache_dir": cache_dir} if spec.cached else {}
        attack = spec.build(cell, estimator, batch_size, max(len(w) for w in waveforms), seed, **extra)
    heard_elsewhere = spec is not None and spec.transcribe is not None and not cell.is_transfer
    max_padding = float(estimator.max_padding)
    adversarial: List[Optional[np.ndarray]] = [None] * len(utterances)
    hypotheses: List[Union[str, List[str]]] = [""] * len(utterances)
    votes: List[Any] = [None] * len(utterances)
    queries: List[Optional[int]] = [None] * len(utterances)
    seconds = np.zeros(len(utterances))
    defended: Dict[str, np.ndarray] = {}
    start_cell = time.perf_counter()
    for index in length_sorted_batches([len(w) for w in waveforms], batch_size, max_padding):
        start = time.perf_counter()
        if cell.is_transfer:
            x_adv = to_object_array([source_adversarial[utterances[i].utterance_id] for i in index])
        else:
            x_adv = to_object_array([waveforms[i] for i in index])
            if attack is not None:
                x_adv = attack.generate(x_adv, np.array([labels[i] for i in index]))
                if spec.black_box:
                    for row, i in enumerate(index):
                        queries[i] = int(attack.queries[row])
        wanted = [i for i in index if i < keep_defended]
        if heard_elsewhere:
            transcripts = spec.transcribe(attack, x_adv, len(index))
        elif wanted:
            with estimator.recording_defended_inputs() as received:
                transcripts = estimator.predict(x_adv, batch_size=len(index))
            for row, i in enumerate(index):
                if i in wanted:
                    found = _received(received, x_adv[row])
                    if found is not None:
                        defended[utterances[i].utterance_id] = found
        else:
            transcripts = estimator.predict(x_adv, batch_size=len(index))
        elapsed = time.perf_counter() - start
        stability = estimator.last_vote_stability
        for row, i in enumerate(index):
            adversarial[i] = np.asarray(x_adv[row], dtype=np.float32)
            hypotheses[i] = transcripts[row] if heard_elsewhere else str(transcripts[row])
            votes[i] = None if stability is None or heard_elsewhere else stability[row]
            seconds[i] = elapsed / len(index)
        if on_batch is not None:
            on_batch(len(index))
    known = {row["utterance_id"]: row for row in source_rows or ()}
    rows = [
        utterance_row(
            cell,
            u,
            targets[u.utterance_id],
            adversarial[i],
            hypotheses[i],
            float(seconds[i]),
            known.get(u.utterance_id),
            votes[i],
            queries[i],
        )
        for i, u in enumerate(utterances)
    ]
    return CellOutput(
        rows=rows,
        adversarial={u.utterance_id: adversarial[i] for i, u in enumerate(utterances)},
        seconds=time.perf_counter() - start_cell,
        defended=defended,
    )


def _received(pairs: Sequence[Tuple[np.ndarray, np.ndarray]], given: np.ndarray) -> Optional[np.ndarray]:
    """The defended input recorded for the waveform `given` (matched by its samples), or None."""
    for before, after in pairs:
        if len(before) == len(given) and np.array_equal(before, np.asarray(given, dtype=before.dtype)):
            return np.asarray(after, dtype=np.float32)
    return None


def compute_cell(
    config: BenchmarkConfig,
    cell: Cell,
    estimator,
    utterances: Sequence[Utterance],
    targets: Mapping[str, str],
    source_adversarial: Optional[Mapping[str, np.ndarray]] = None,
    source_rows: Optional[Sequence[Mapping[str, Any]]] = None,
    on_batch: Optional[Callable[[int], None]] = None,
    cache_dir: Optional[Path] = None,
) -> CellOutput:
    """
    Run one cell from its own seed: torch, numpy and the defences' noise are reset to :func:`cell_seed` first, and
    the attack gets it, so a cell gives the same result whatever ran before it in the same process, serially or on a
    Ray worker.

    :param config: The benchmark.
    :param cell: The cell.
    :param estimator: Its system's estimator.
    :param utterances: The benchmark's utterances.
    :param targets: Their targets.
    :param source_adversarial: For a transfer cell, its source cell's adversarial examples.
    :param source_rows: For a transfer cell, its source cell's utterance rows.
    :param on_batch: Called with the number of utterances of each finished batch.
    :param cache_dir: The run's folder for what an attack generates once (rooms).
    :return: The cell's rows and adversarial examples.
    """
    seed = cell_seed(config.seed, cell)
    torch.manual_seed(seed)
    np.random.seed(seed)
    reseed_defences(estimator, seed)
    set_eot_samples(estimator, config.system(cell.system), cell)
    return run_cell(
        cell,
        estimator,
        utterances,
        targets,
        config.system(cell.source).batch_size,
        source_adversarial,
        on_batch=on_batch,
        source_rows=source_rows,
        keep_defended=config.report.utterances,
        seed=seed,
        cache_dir=cache_dir,
    )


@dataclasses.dataclass
class RunContext:
    """What every executor needs to run a run's cells, the same for all of them."""

    config: BenchmarkConfig
    utterances: Sequence[Utterance]
    targets: Mapping[str, str]
    #: The run's results (a transfer cell's source examples are read from it, in this process only).
    store: Any
    #: A transfer cell's source record and None, or None and the error the cell fails with.
    source_of: Callable[[Cell], Tuple[Optional[Mapping[str, Any]], Optional[str]]]
    #: torch intra-op threads of every cell (None: torch's in this process; on Ray, the system's `num_cpus`).
    threads: Optional[int] = None
    #: Show progress bars.
    progress: bool = False
    #: Builds the cache of systems an executor keeps (injectable, e.g. to measure memory).
    system_cache: Callable[..., SystemCache] = SystemCache
    #: The Ray cluster of the Ray executor: `auto`, `local` or `HOST:PORT`.
    ray_address: str = "auto"
    #: The run's folder for what an attack generates once and keeps with the run (the rooms of over-the-air attacks).
    cache_dir: Optional[Path] = None

    @property
    def texts(self) -> List[str]:
        """Every transcript and target (each system's alphabet is checked against them)."""
        return [u.transcript for u in self.utterances] + [self.targets[u.utterance_id] for u in self.utterances]

    def source_inputs(self, cell: Cell) -> Tuple[Optional[str], Optional[Mapping[str, np.ndarray]], Optional[List]]:
        """
        :param cell: A cell.
        :return: For a transfer cell, `(error, adversarial examples, utterance rows)` of its source: the error it
                 fails with if the source did not finish, else None and the source's examples and rows. For any
                 other cell, three Nones.
        """
        if not cell.is_transfer:
            return None, None, None
        source, error = self.source_of(cell)
        if error is not None:
            return error, None, None
        adversarial = self.store.load_adversarial(cell.source_key, [u.utterance_id for u in self.utterances])
        return None, adversarial, list(source["rows"])


def failure(error: BaseException) -> Tuple[str, str]:
    """
    :param error: Why a cell failed.
    :return: `(message, traceback)` as a failure record keeps them.
    """
    return f"{type(error).__name__}: {error}", traceback.format_exc()
