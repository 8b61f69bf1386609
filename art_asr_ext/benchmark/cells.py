"""
Run one cell: attack every utterance in length-sorted batches, transcribe, and score each utterance.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from art_asr_ext.data import Utterance
from art_asr_ext.utils.audio import length_sorted_batches, to_object_array
from art_asr_ext.metrics import perceptual_scores, perturbation_size, word_errors
from art_asr_ext.benchmark.attacks import Cell, make_attack

#: Columns of utterances.csv, in order.
UTTERANCE_COLUMNS = (
    "row",
    "system",
    "source",
    "attack",
    "eps",
    "targeted",
    "strength",
    "utterance_id",
    "reference",
    "target",
    "hypothesis",
    "gt_errors",
    "gt_words",
    "tgt_errors",
    "tgt_words",
    "linf",
    "snr_db",
    "pesq",
    "stoi",
    "perceptual_note",
    "seconds",
)
#: The perceptual columns, measured on x_adv against x (empty on clean cells and where a metric cannot score).
PERCEPTUAL_COLUMNS = ("pesq", "stoi", "perceptual_note")


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
    if cell.attack == "clean":
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
    hypothesis: str,
    seconds: float,
    perceptual: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """
    :param cell: The cell.
    :param utterance: The clean utterance.
    :param target: Its target phrase.
    :param adversarial: The waveform the system transcribed.
    :param hypothesis: The transcript.
    :param seconds: Wall-clock seconds spent on this utterance (its batch's time over the batch size).
    :param perceptual: Its :func:`perceptual_columns`, when already known (a transfer cell's source measured them on
                       the same waveform); computed otherwise.
    :return: One row of utterances.csv.
    """
    ground_truth = word_errors(utterance.transcript, hypothesis)
    toward_target = word_errors(target, hypothesis)
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
        "hypothesis": hypothesis,
        "gt_errors": ground_truth.errors,
        "gt_words": ground_truth.reference_words,
        "tgt_errors": toward_target.errors,
        "tgt_words": toward_target.reference_words,
        "linf": linf,
        "snr_db": snr,
        **{column: perceptual[column] for column in PERCEPTUAL_COLUMNS},
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
    attack = None
    if cell.attack != "clean" and not cell.is_transfer:
        attack = make_attack(cell, estimator, batch_size, max(len(w) for w in waveforms))
    max_padding = float(getattr(estimator, "max_padding", 0.25))
    adversarial: List[Optional[np.ndarray]] = [None] * len(utterances)
    hypotheses: List[str] = [""] * len(utterances)
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
        wanted = [i for i in index if i < keep_defended]
        if wanted and hasattr(estimator, "recording_defended_inputs"):
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
        for row, i in enumerate(index):
            adversarial[i] = np.asarray(x_adv[row], dtype=np.float32)
            hypotheses[i] = str(transcripts[row])
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
