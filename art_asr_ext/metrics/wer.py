"""
Word error rate, per utterance and corpus-level, with jiwer.

The study reports corpus-level WER: the word errors (substitutions + deletions + insertions) summed over all
utterances, divided by the reference words summed over all utterances. Insertions make it unbounded: a targeted
attack that makes the model emit a long phrase over a short utterance gives a WER above 100 %.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from typing import List, Sequence, Tuple

import jiwer
import numpy as np


@dataclasses.dataclass(frozen=True)
class WordErrors:
    """Alignment counts of one hypothesis against one reference."""

    substitutions: int
    deletions: int
    insertions: int
    hits: int

    @property
    def errors(self) -> int:
        """Substitutions + deletions + insertions."""
        return self.substitutions + self.deletions + self.insertions

    @property
    def reference_words(self) -> int:
        """Words in the reference: substitutions + deletions + hits."""
        return self.substitutions + self.deletions + self.hits

    def __add__(self, other: "WordErrors") -> "WordErrors":
        """The counts of two alignments together (one utterance heard twice, or two utterances)."""
        return WordErrors(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """
    Align a hypothesis with its reference at the word level (words are separated by whitespace; no other
    normalisation, so both must follow one convention, e.g. LibriSpeech's upper case without punctuation).

    :param reference: Reference transcript (may be empty).
    :param hypothesis: Recognised transcript (may be empty).
    :return: The alignment counts.
    :raises ValueError: If either argument is not a string.
    """
    for name, text in (("reference", reference), ("hypothesis", hypothesis)):
        if not isinstance(text, (str, np.str_)):
            raise ValueError(f"{name} must be a string. Found: {type(text).__name__} {text!r}")
    output = jiwer.process_words(str(reference), str(hypothesis))
    return WordErrors(output.substitutions, output.deletions, output.insertions, output.hits)


def word_alignment(reference: str, hypothesis: str) -> List[Tuple[str, List[str], List[str]]]:
    """
    The word-level alignment behind :func:`word_errors`, for showing where a hypothesis differs.

    :param reference: Reference transcript (may be empty).
    :param hypothesis: Recognised transcript (may be empty).
    :return: `(operation, reference words, hypothesis words)` spans in order; operation is `equal`, `substitute`,
             `delete` (reference words missing from the hypothesis) or `insert` (hypothesis words not in the
             reference).
    """
    reference_words, hypothesis_words = str(reference).split(), str(hypothesis).split()
    if not reference_words or not hypothesis_words:  # nothing to align: all deleted, or all inserted
        spans = [("delete", reference_words, [])] if reference_words else []
        return spans + ([("insert", [], hypothesis_words)] if hypothesis_words else [])
    output = jiwer.process_words(" ".join(reference_words), " ".join(hypothesis_words))
    return [
        (
            chunk.type,
            reference_words[chunk.ref_start_idx : chunk.ref_end_idx],
            hypothesis_words[chunk.hyp_start_idx : chunk.hyp_end_idx],
        )
        for chunk in output.alignments[0]
    ]


def utterance_word_errors(references: Sequence[str], hypotheses: Sequence[str]) -> List[WordErrors]:
    """
    :param references: One reference per utterance.
    :param hypotheses: One hypothesis per utterance.
    :return: The alignment counts of each utterance.
    :raises ValueError: If the sequences differ in length.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"Got {len(references)} references for {len(hypotheses)} hypotheses; they must pair up.")
    return [word_errors(reference, hypothesis) for reference, hypothesis in zip(references, hypotheses)]


def corpus_wer(errors: Sequence[int], reference_words: Sequence[int]) -> float:
    """
    Corpus-level word error rate: total errors over total reference words (a fraction; can exceed 1).

    :param errors: Word errors of each utterance.
    :param reference_words: Reference words of each utterance.
    :return: `sum(errors) / sum(reference_words)`.
    :raises ValueError: If the sequences differ in length, hold negative counts, or the references hold no words.
    """
    errors = np.asarray(errors, dtype=np.int64).reshape(-1)
    reference_words = np.asarray(reference_words, dtype=np.int64).reshape(-1)
    if errors.shape != reference_words.shape:
        raise ValueError(f"Got {errors.size} error counts for {reference_words.size} reference word counts.")
    if np.any(errors < 0) or np.any(reference_words < 0):
        raise ValueError("Word counts must be >= 0.")
    total = int(reference_words.sum())
    if total == 0:
        raise ValueError("The references hold no words; the WER is undefined.")
    return int(errors.sum()) / total


def transcripts_wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """
    Corpus-level word error rate of transcripts against their references (a fraction; can exceed 1).

    :param references: One reference per utterance.
    :param hypotheses: One hypothesis per utterance.
    :return: Total word errors over total reference words.
    """
    errors = utterance_word_errors(references, hypotheses)
    return corpus_wer([e.errors for e in errors], [e.reference_words for e in errors])
