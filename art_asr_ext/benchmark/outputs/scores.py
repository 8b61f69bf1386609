"""
Scores of utterance rows: corpus-level WER of a cell, against the reference or the attacker's target phrase.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from art_asr_ext.benchmark.grid import group_rows
from art_asr_ext.metrics.wer import corpus_wer


def wer_percent(rows: Sequence[Mapping[str, Any]], target: bool = False) -> Optional[float]:
    """
    :param rows: Utterance rows of one cell.
    :param target: Score against the target phrase instead of the reference.
    :return: Corpus-level WER in percent, or None without rows or reference words.
    """
    prefix = "tgt" if target else "gt"
    words = [int(row[f"{prefix}_words"]) for row in rows]
    if not rows or sum(words) == 0:
        return None
    return 100.0 * corpus_wer([int(row[f"{prefix}_errors"]) for row in rows], words)


def cell_wers(
    rows: Iterable[Mapping[str, Any]],
) -> Dict[Tuple[str, str, float], Tuple[Optional[float], Optional[float]]]:
    """
    :param rows: Utterance rows.
    :return: `(row, attack, eps)` -> (ground-truth WER, target WER) in percent, of the Table I cells.
    """
    groups = group_rows(row for row in rows if not row.get("strength"))
    return {key: (wer_percent(group), wer_percent(group, target=True)) for key, group in groups.items()}
