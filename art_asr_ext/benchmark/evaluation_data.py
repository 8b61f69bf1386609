"""
The benchmark's utterances and their target phrases.

Utterances are the first N of a LibriSpeech-layout split in sorted utterance-id order, as the study takes them.
Targets are drawn from a phrase pool, normalised to the LibriSpeech convention (upper case letters, apostrophes and
single spaces), with a length close to each reference; the draw of an utterance depends only on the seed, the
utterance id, its reference and the pool, so shrinking the run (`--max-utterances`) keeps the targets of the rest.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import csv
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from art_asr_ext.data import BadUtterance, Utterance, check_librispeech
from art_asr_ext.utils.text import to_librispeech_text
from art_asr_ext.benchmark.config.schema import DataConfig, TargetConfig


def crop_utterance(utterance: Utterance, seconds: float) -> Utterance:
    """
    Keep the first `seconds` of an utterance and the same fraction of its reference words (at least one). This is a
    rough alignment for smoke tests on short clips, never for reported results.

    :param utterance: The utterance.
    :param seconds: Length to keep.
    :return: The cropped utterance (unchanged if it is already shorter).
    """
    samples = int(round(seconds * utterance.sample_rate))
    if len(utterance.waveform) <= samples:
        return utterance
    words = utterance.transcript.split()
    kept = max(1, int(round(len(words) * samples / len(utterance.waveform))))
    return Utterance(
        utterance.utterance_id, utterance.waveform[:samples], utterance.sample_rate, " ".join(words[:kept])
    )


class BadDataError(ValueError):
    """Utterances that fail the data checks (with `data.on_bad_utterance: error`); the message lists them all."""


def load_evaluation_data(config: DataConfig) -> Tuple[List[Utterance], List[BadUtterance]]:
    """
    Read and check the selected utterances (see :func:`check_librispeech`) before any of them is used.

    :param config: The data section.
    :return: The good utterances in sorted utterance-id order (cropped if the config says so), and the bad ones
             skipped (empty unless `on_bad_utterance` is `skip`).
    :raises BadDataError: If some utterance is bad and `on_bad_utterance` is `error`, or every one is bad.
    """
    utterances, bad = check_librispeech(config.librispeech, config.max_utterances, config.sample_rate)
    if bad and (config.on_bad_utterance == "error" or not utterances):
        advice = (
            "no good utterance is left"
            if config.on_bad_utterance == "skip"
            else "fix them, or set data.on_bad_utterance: skip to leave them out"
        )
        raise BadDataError(
            f"{len(bad)} of {len(bad) + len(utterances)} utterances in {config.librispeech} cannot be used "
            f"({advice}):\n  - " + "\n  - ".join(str(b) for b in bad)
        )
    if config.crop_seconds is not None:
        utterances = [crop_utterance(u, config.crop_seconds) for u in utterances]
    return utterances, bad


def load_utterances(config: DataConfig) -> List[Utterance]:
    """
    :param config: The data section.
    :return: The good utterances of :func:`load_evaluation_data` (the bad ones skipped, if the config says so).
    :raises BadDataError: As :func:`load_evaluation_data`.
    """
    return load_evaluation_data(config)[0]


def read_phrase_pool(path: Path) -> List[str]:
    """
    Read a target-phrase pool: a TSV with a header that has a `text` column (as the shared LJ Speech and LibriSpeech
    transcript files), or a plain text file with one phrase per line.

    :param path: The pool file.
    :return: Distinct normalised phrases in file order; phrases that cannot be normalised are dropped.
    :raises FileNotFoundError: If the file does not exist.
    :raises ValueError: If the file holds no usable phrase, or a TSV has no `text` column.
    """
    if not path.is_file():
        raise FileNotFoundError(f"Target-phrase pool not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix.lower() == ".tsv":
        rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
        if not rows or "text" not in rows[0]:
            raise ValueError(f"{path}: a TSV pool needs a header with a 'text' column. Found: {rows[:1]}")
        column = rows[0].index("text")
        texts = [row[column] for row in rows[1:] if len(row) > column]
    else:
        texts = lines
    phrases: Dict[str, None] = {}
    for text in texts:
        normalised = to_librispeech_text(text)
        if normalised:
            phrases.setdefault(normalised, None)
    if not phrases:
        raise ValueError(f"{path} holds no phrase that normalises to the LibriSpeech convention.")
    return list(phrases)


def phrase_length(text: str, match: str) -> int:
    """
    :param text: A phrase.
    :param match: `words` (number of words) or `chars` (number of characters).
    :return: Its length.
    """
    if match == "words":
        return len(text.split())
    if match == "chars":
        return len(text)
    raise ValueError(f"match must be 'words' or 'chars'. Found: {match!r}")


def sample_target(
    reference: str,
    utterance_id: str,
    pool: Sequence[str],
    seed: int,
    match: str,
    nearest: int,
    pool_lengths: Optional[np.ndarray] = None,
) -> str:
    """
    Draw the target phrase of one utterance: uniformly among the pool's phrases at least as close in length to the
    reference as the `nearest`-th closest one (the reference itself excluded).

    :param reference: The utterance's reference transcript.
    :param utterance_id: Its id (part of the seed, so each utterance draws independently of the others).
    :param pool: Normalised phrases.
    :param seed: The run's seed.
    :param match: `words` or `chars`.
    :param nearest: How many nearest lengths to draw among (1: only the closest length).
    :param pool_lengths: `phrase_length` of each pool phrase, if already computed.
    :return: The target phrase.
    :raises ValueError: If the pool holds no phrase other than the reference.
    """
    if pool_lengths is None:
        pool_lengths = np.array([phrase_length(p, match) for p in pool])
    keep = np.array([phrase != reference for phrase in pool], dtype=bool)
    if not keep.any():
        raise ValueError(f"The target pool holds no phrase other than the reference of {utterance_id}.")
    distances = np.abs(pool_lengths - phrase_length(reference, match)).astype(float)
    distances[~keep] = np.inf
    threshold = np.sort(distances)[min(nearest, int(keep.sum())) - 1]
    chosen = np.flatnonzero(distances <= threshold)
    rng = np.random.default_rng([seed, zlib.crc32(utterance_id.encode("utf-8"))])
    return pool[int(chosen[rng.integers(len(chosen))])]


def sample_targets(utterances: Sequence[Utterance], config: TargetConfig, seed: int) -> Dict[str, str]:
    """
    :param utterances: The benchmark's utterances.
    :param config: The targets section.
    :param seed: The run's seed.
    :return: Target phrase of each utterance id.
    """
    pool = read_phrase_pool(config.pool)
    lengths = np.array([phrase_length(p, config.match) for p in pool])
    return {
        u.utterance_id: sample_target(u.transcript, u.utterance_id, pool, seed, config.match, config.nearest, lengths)
        for u in utterances
    }
