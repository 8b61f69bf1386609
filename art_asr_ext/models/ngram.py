"""
Word n-gram language models: interpolated Kneser-Ney estimation, written in the ARPA back-off format that KenLM (and
so flashlight's CTC decoder) reads.

Counting and smoothing follow Chen & Goodman's interpolated Kneser-Ney with one absolute discount per order: the
highest order uses counts, the lower orders continuation counts (the number of distinct words seen before an n-gram),
and the unigrams are interpolated with a base distribution over the vocabulary: uniform, or a background unigram
model's (general English word frequencies, say). The vocabulary may hold words the text never uses; they get their
share of the base distribution only, so a decoder can still spell them out where the acoustics insist.

| Paper link: https://dash.harvard.edu/handle/1/25104739
"""

import functools
import gzip
import io
import math
import os
from collections import Counter, defaultdict
from typing import Dict, Iterable, List, Mapping, Tuple, Union

SENTENCE_START = "<s>"
SENTENCE_END = "</s>"
UNKNOWN = "<unk>"
#: The ARPA tokens that are not words of the vocabulary.
SPECIAL_TOKENS = (SENTENCE_START, SENTENCE_END, UNKNOWN)
#: log10 of the probability of predicting the sentence start, by ARPA convention "never".
_NEVER = -99.0

NGram = Tuple[str, ...]


def kneser_ney_arpa(
    sentences: Iterable[str],
    order: int = 3,
    discount: float = 0.75,
    vocabulary: Union[Iterable[str], Mapping[str, float]] = (),
) -> str:
    """
    Estimate an interpolated Kneser-Ney word n-gram model.

    :param sentences: Training text, one sentence per item, words separated by whitespace (no sentence markers).
    :param order: The highest n-gram order, at least 1.
    :param discount: Absolute discount subtracted from every seen n-gram's count, in (0, 1).
    :param vocabulary: Words to add to the text's own. As a list, the unigrams' base distribution is uniform over
                       all words and `<unk>`; as a mapping of words to positive weights (a background model's
                       probabilities), it is proportional to them, and the text's words it lacks and `<unk>` weigh
                       as its least weighted word.
    :return: The model in ARPA format.
    """
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be an integer >= 1. Found: {order!r}")
    if not 0.0 < discount < 1.0:
        raise ValueError(f"discount must lie in (0, 1). Found: {discount!r}")
    counts: List[Counter] = [Counter() for _ in range(order + 1)]
    for sentence in sentences:
        words = [SENTENCE_START, *sentence.split(), SENTENCE_END]
        for n in range(1, order + 1):
            counts[n].update(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not counts[1]:
        raise ValueError("sentences must hold at least one sentence.")
    for special in SPECIAL_TOKENS:
        if special in vocabulary:
            raise ValueError(f"vocabulary must hold words, not ARPA's special tokens. Found: {special!r}")
    if isinstance(vocabulary, Mapping):
        bad = next((w for w, weight in vocabulary.items() if not (isinstance(weight, float) and weight > 0)), None)
        if bad is not None:
            raise ValueError(f"vocabulary weights must be positive floats. Found: {bad!r}: {vocabulary[bad]!r}")
    # The counts each order's estimate uses: counts at the top, continuation counts below (an n-gram that starts a
    # sentence has no word before it, so it keeps its count).
    used = [Counter() for _ in range(order + 1)]
    used[order] = counts[order]
    for n in range(order - 1, 0, -1):
        used[n] = Counter(ngram[1:] for ngram in counts[n + 1])
        used[n].update({ngram: count for ngram, count in counts[n].items() if ngram[0] == SENTENCE_START})
    probabilities: List[Dict[NGram, float]] = [{} for _ in range(order + 1)]
    backoffs: List[Dict[NGram, float]] = [{} for _ in range(order + 1)]
    _estimate_unigrams(used[1], discount, vocabulary, probabilities[1])
    for n in range(2, order + 1):
        context_totals: Dict[NGram, int] = defaultdict(int)
        context_types: Dict[NGram, int] = defaultdict(int)
        for ngram, count in used[n].items():
            context_totals[ngram[:-1]] += count
            context_types[ngram[:-1]] += 1
        for context, total in context_totals.items():
            # the discounted mass, handed to the next lower order: exactly ARPA's back-off weight of the context
            backoffs[n - 1][context] = discount * context_types[context] / total
        for ngram, count in used[n].items():
            context = ngram[:-1]
            lower = _probability(probabilities, backoffs, ngram[1:])
            probabilities[n][ngram] = (count - discount) / context_totals[context] + backoffs[n - 1][context] * lower
    return _arpa_text(probabilities, backoffs)


def _estimate_unigrams(
    continuation: Counter,
    discount: float,
    vocabulary: Union[Iterable[str], Mapping[str, float]],
    probabilities: Dict[NGram, float],
) -> None:
    seen = [ngram for ngram in continuation if ngram != (SENTENCE_START,)]
    total = sum(continuation[ngram] for ngram in seen)
    weights = dict(vocabulary) if isinstance(vocabulary, Mapping) else dict.fromkeys(vocabulary, 1.0)
    floor = min(weights.values(), default=1.0)
    for word in [ngram[0] for ngram in seen] + [UNKNOWN]:
        weights.setdefault(word, floor)
    # the mass the discounts took, spread by the base distribution
    scale = discount * len(seen) / total / math.fsum(weights.values())
    for ngram in seen:
        probabilities[ngram] = (continuation[ngram] - discount) / total
    for word, weight in weights.items():
        probabilities[(word,)] = probabilities.get((word,), 0.0) + scale * weight


def _probability(probabilities: List[Dict[NGram, float]], backoffs: List[Dict[NGram, float]], ngram: NGram) -> float:
    """P(last word | the words before it), backing off as ARPA does."""
    if ngram in probabilities[len(ngram)]:
        return probabilities[len(ngram)][ngram]
    if len(ngram) == 1:
        return probabilities[1][(UNKNOWN,)]
    return backoffs[len(ngram) - 1].get(ngram[:-1], 1.0) * _probability(probabilities, backoffs, ngram[1:])


def _arpa_text(probabilities: List[Dict[NGram, float]], backoffs: List[Dict[NGram, float]]) -> str:
    order = len(probabilities) - 1
    out = io.StringIO()
    out.write("\\data\\\n")
    sizes = [len(probabilities[1]) + 1] + [len(probabilities[n]) for n in range(2, order + 1)]  # +1: <s>
    for n, size in enumerate(sizes, start=1):
        out.write(f"ngram {n}={size}\n")
    for n in range(1, order + 1):
        out.write(f"\n\\{n}-grams:\n")
        entries = sorted(probabilities[n].items())
        if n == 1:
            entries = [((SENTENCE_START,), None)] + entries
        for ngram, probability in entries:
            log_probability = _NEVER if probability is None else math.log10(probability)
            line = f"{log_probability:.6f}\t{' '.join(ngram)}"
            if n < order and ngram in backoffs[n]:
                line += f"\t{math.log10(backoffs[n][ngram]):.6f}"
            out.write(line + "\n")
    out.write("\n\\end\\\n")
    return out.getvalue()


def arpa_vocabulary(path: Union[str, os.PathLike]) -> List[str]:
    """
    The words of an ARPA model (plain or gzipped), without its special tokens.

    :param path: The ARPA file.
    :return: Its unigrams, in file order.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    words, in_unigrams = [], False
    with opener(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line.startswith("\\"):
                if in_unigrams:
                    break
                in_unigrams = line == "\\1-grams:"
                continue
            if in_unigrams and line:
                word = line.split("\t")[1] if "\t" in line else line.split()[1]
                if word not in SPECIAL_TOKENS:
                    words.append(word)
    if not words:
        raise ValueError(f"{path} holds no unigrams: not an ARPA language model.")
    return words


class SentenceScorer:
    """
    Log probabilities of whole sentences under an ARPA model, read by KenLM (through flashlight-text), sentence end
    included; a word outside the vocabulary is scored as `<unk>`.
    """

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        """
        :param path: The ARPA file (plain or gzipped).
        """
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        self._dictionary = Dictionary()
        for word in [*arpa_vocabulary(path), UNKNOWN]:
            self._dictionary.add_entry(word)
        self._unknown = self._dictionary.get_index(UNKNOWN)
        self._model = KenLM(os.fspath(path), self._dictionary)

    def __call__(self, sentence: str) -> float:
        """
        :param sentence: Words separated by whitespace.
        :return: log10 P(sentence, then the sentence end | sentence start).
        """
        state, total = self._model.start(False), 0.0
        for word in sentence.split():
            index = self._dictionary.get_index(word) if self._dictionary.contains(word) else self._unknown
            state, score = self._model.score(state, index)
            total += score
        return total + self._model.finish(state)[1]


def sentence_scorer(path: Union[str, os.PathLike]) -> SentenceScorer:
    """The `SentenceScorer` of an ARPA file, loaded once (one in memory; a rewritten file is loaded again)."""
    return _cached_scorer(os.fspath(path), os.stat(path).st_mtime_ns)


@functools.lru_cache(maxsize=1)
def _cached_scorer(path: str, mtime_ns: int) -> SentenceScorer:
    return SentenceScorer(path)
