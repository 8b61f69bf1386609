"""
Connectionist temporal classification (CTC) helpers shared by the CTC models.

| Paper link: https://www.cs.toronto.edu/~graves/icml_2006.pdf
"""

import functools
import os
import tempfile
from typing import List, Sequence, Tuple, Union

import torch

from art_asr_ext.models.ngram import UNKNOWN, arpa_vocabulary


def ctc_frames_needed(tokens: Sequence[int]) -> int:
    """
    Fewest CTC frames that can emit `tokens`: one per token plus a blank between repeated tokens.

    :param tokens: Token ids of one target.
    :return: The number of frames; a shorter utterance cannot produce the target (its CTC loss is infinite).
    """
    return len(tokens) + sum(1 for a, b in zip(tokens[:-1], tokens[1:]) if a == b)


class CTCLexiconBeamDecoder:
    """
    Beam search over a CTC model's character outputs, spelling only words of a word n-gram language model's
    vocabulary and scoring them with it (shallow fusion): flashlight's lexicon decoder, through torchaudio.

    A hypothesis scores `ln P_ctc + alpha * log10 P_lm + beta * words` (flashlight adds KenLM's log10 scores as they
    are), the DeepSpeech2 paper's decoding objective (its eq. 12); `alpha` and `beta` are tuned on held-out data.

    | Paper link: https://arxiv.org/abs/1512.02595
    """

    def __init__(
        self,
        labels: Sequence[str],
        lm_path: Union[str, os.PathLike],
        alpha: float,
        beta: float,
        beam_width: int,
        blank: str = "_",
        space: str = " ",
        nbest: int = 1,
    ) -> None:
        """
        :param labels: The model's output labels, in output order; they hold `blank` and `space`.
        :param lm_path: ARPA language model over words written in `labels` (plain or gzipped).
        :param alpha: Weight of the language model's log10 probability.
        :param beta: Score added per word (against too short hypotheses).
        :param beam_width: Hypotheses kept at each frame.
        :param blank: The CTC blank label.
        :param space: The label that separates words.
        :param nbest: Hypotheses `nbest` returns per utterance.
        """
        from torchaudio.models.decoder import ctc_decoder  # needs the flashlight-text package

        for name, label in (("blank", blank), ("space", space)):
            if label not in labels:
                raise ValueError(f"labels must hold the {name} label {label!r}. Found: {list(labels)}")
        if not os.path.isfile(lm_path):
            raise ValueError(f"lm_path must be an ARPA file. Found: {str(lm_path)!r}")
        # flashlight's token names may not be whitespace: the word separator is written "|"
        self._separator = "|"
        tokens = [self._separator if label == space else label for label in labels]
        spellable = set(labels) - {blank, space}
        with tempfile.TemporaryDirectory() as directory:
            lexicon = os.path.join(directory, "lexicon.txt")
            with open(lexicon, "w", encoding="utf-8") as out:
                for word in arpa_vocabulary(lm_path):
                    if set(word) <= spellable:
                        out.write(f"{word}\t{' '.join(word)} {self._separator}\n")
            self._decoder = ctc_decoder(
                lexicon=lexicon,
                tokens=tokens,
                lm=str(lm_path),
                beam_size=beam_width,
                lm_weight=alpha,
                word_score=beta,
                unk_word=UNKNOWN,
                sil_token=self._separator,
                blank_token=blank,
                nbest=nbest,
            )

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[str]:
        """
        :param log_probs: Per-frame label log probabilities, `(batch, frames, labels)`.
        :param lengths: Real frames of each utterance, `(batch,)`.
        :return: The best transcript of each utterance, words separated by single spaces.
        """
        return [hypotheses[0] if hypotheses else "" for hypotheses in self.nbest(log_probs, lengths)]

    def nbest(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> List[List[str]]:
        """
        :param log_probs: Per-frame label log probabilities, `(batch, frames, labels)`.
        :param lengths: Real frames of each utterance, `(batch,)`.
        :return: The best transcripts of each utterance (at most `nbest`), best first.
        """
        # flashlight reads contiguous float32 on the CPU
        emissions = log_probs.detach().float().cpu().contiguous()
        hypotheses = self._decoder(emissions, lengths.detach().cpu().to(torch.int32))
        return [[" ".join(hypothesis.words) for hypothesis in utterance] for utterance in hypotheses]


def lexicon_beam_decoder(labels: Sequence[str], lm_path: Union[str, os.PathLike], **settings) -> CTCLexiconBeamDecoder:
    """
    `CTCLexiconBeamDecoder(labels, lm_path, **settings)`, built once: loading the language model takes seconds, and a
    benchmark builds an estimator per system. One is kept in memory; a rewritten `lm_path` is loaded again.
    """
    path = os.fspath(lm_path)
    return _cached_decoder(tuple(labels), path, os.stat(path).st_mtime_ns, tuple(sorted(settings.items())))


@functools.lru_cache(maxsize=1)
def _cached_decoder(labels: Tuple[str, ...], lm_path: str, lm_mtime_ns: int, settings: tuple) -> CTCLexiconBeamDecoder:
    return CTCLexiconBeamDecoder(labels, lm_path, **dict(settings))
