"""
Randomized smoothing with a vote (Olivier & Raj, EMNLP 2021): a speech recognizer that decodes N noisy draws of each
utterance and combines their transcripts by majority or by NIST SCTK's ROVER, in the spirit of ART's
randomized-smoothing estimators for classifiers (`RandomizedSmoothingMixin`: `predict` aggregates noisy copies).

The wrapped recognizer gets Gaussian noise as the first defence of its chain
(:class:`~art_asr_ext.defences.preprocessor.GaussianSmoothingPyTorch`), so every path through it is noisy:
`predict` decodes `draws` noisy copies of each utterance in one batched call and votes, and `loss_gradient`,
`compute_loss` and `compute_loss_and_decoded_output` are the recognizer's own, averaging the gradient over
`eot_samples` noise draws (expectation over transformation). ART's FGSM, PGD and imperceptible attack therefore run
against it unchanged; the imperceptible attack's own success check decodes one draw, not the vote.

| Paper link: https://arxiv.org/abs/2112.03000
| Paper link (the study it extends): https://arxiv.org/abs/2103.17122
"""

from typing import Dict, List, Optional

import numpy as np

from art_asr_ext.estimators.speech_recognition.transcript_vote import VOTES, VoteStability, find_rover, vote
from art_asr_ext.utils.audio import check_waveforms, to_object_array


class VotingSmoothingMixin:
    """
    Mixed into a speech recognizer's class by :func:`voting_smoothing`: `predict` votes over noisy draws.

    | Paper link: https://arxiv.org/abs/2112.03000
    """

    voting_params = ["draws", "vote", "rover"]

    draws: int = 8
    vote: str = "majority"
    rover: Optional[str] = None
    #: The stability of each utterance's vote in the last `predict` (None before the first).
    last_vote_stability: Optional[List[VoteStability]] = None

    def predict(self, x: np.ndarray, batch_size: int = 16, **kwargs) -> np.ndarray:
        """
        Transcribe each utterance by a vote over `draws` noisy draws (the noise is the chain's first defence, drawn
        afresh for every copy). Each utterance's stability is left in :attr:`last_vote_stability`.

        :param x: Waveforms, as for the wrapped recognizer.
        :param batch_size: Utterances per forward pass (of the copies: `draws` per utterance).
        :return: The voted transcripts.
        """
        waveforms = check_waveforms(x)
        copies = to_object_array([waveform for waveform in waveforms for _ in range(self.draws)])
        transcripts = super().predict(copies, batch_size=batch_size, **kwargs)  # type: ignore[misc]
        draws = [[str(t) for t in transcripts[i * self.draws : (i + 1) * self.draws]] for i in range(len(waveforms))]
        voted = vote(draws, self.vote, self.rover)
        self.last_vote_stability = [VoteStability.of(d, v) for d, v in zip(draws, voted)]
        return np.array(voted)

    def set_params(self, **kwargs) -> None:
        """Set the vote's parameters (`draws`, `vote`, `rover`) or the recognizer's."""
        own = {key: kwargs.pop(key) for key in list(kwargs) if key in self.voting_params}
        for key, value in own.items():
            setattr(self, key, value)
        if own:
            self._check_vote_params()
        if kwargs:
            super().set_params(**kwargs)  # type: ignore[misc]

    def _check_vote_params(self) -> None:
        if isinstance(self.draws, bool) or not isinstance(self.draws, (int, np.integer)) or self.draws < 1:
            raise ValueError(f"draws must be an integer >= 1. Found: {self.draws!r}")
        if self.vote not in VOTES:
            raise ValueError(f"vote must be one of {', '.join(VOTES)}. Found: {self.vote!r}")
        if self.vote == "rover" and self.draws > 1:
            self.rover = find_rover(self.rover)


#: The voting class made for each recognizer class, so that every wrapped recognizer of a class shares one.
_VOTING_CLASSES: Dict[type, type] = {}


def voting_smoothing(
    estimator,
    sigma: float,
    draws: int = 8,
    vote: str = "majority",
    eot_samples: int = 1,
    seed: Optional[int] = None,
    rover: Optional[str] = None,
):
    """
    Wrap a speech recognizer in randomized smoothing with a vote. The recognizer given is left as it was; the one
    returned shares its model, is still an instance of its class (so ART's attacks accept it), and has the noise as
    the first defence of its chain.

    :param estimator: One of this package's PyTorch speech recognizers.
    :param sigma: Standard deviation of the Gaussian noise (robust_speech: 0.02; the study's smoothing: 0.01).
    :param draws: Noisy draws decoded per utterance and voted over (robust_speech: 8; smoothingASR: 16).
    :param vote: `majority` (the most frequent transcript) or `rover` (NIST SCTK's ROVER, word by word).
    :param eot_samples: Noise draws an attacker's gradient averages over (expectation over transformation).
    :param seed: Seed of the noise; None seeds it from the operating system.
    :param rover: The path of SCTK's rover binary; None: found on PATH or in Debian's `/usr/lib/sctk/bin`.
    :return: The voting recognizer.
    :raises ValueError: For a bad parameter, naming it (from the noise defence for `sigma` and `eot_samples`).
    :raises FileNotFoundError: For `rover` without SCTK's rover binary.
    """
    from art_asr_ext.defences.preprocessor import GaussianSmoothingPyTorch
    from art_asr_ext.estimators.speech_recognition.pytorch_speech_recognizer import PyTorchSpeechRecognizer

    base = type(estimator)
    if isinstance(estimator, VotingSmoothingMixin):
        raise ValueError(f"The estimator already votes ({base.__name__}); wrap the recognizer itself.")
    if not isinstance(estimator, PyTorchSpeechRecognizer):
        # PocketSphinx applies no defences: its draws would all be the clean input.
        raise ValueError(f"estimator must be one of this package's PyTorch speech recognizers. Found: {base.__name__}")
    noise = GaussianSmoothingPyTorch(sigma=sigma, eot_samples=eot_samples, seed=seed)
    voting_class = _VOTING_CLASSES.setdefault(
        base, type(f"VotingSmoothing{base.__name__}", (VotingSmoothingMixin, base), {"__module__": __name__})
    )
    wrapped = estimator.with_first_defence(noise)
    wrapped.__class__ = voting_class
    wrapped.draws, wrapped.vote, wrapped.rover = draws, vote, rover
    wrapped._check_vote_params()
    return wrapped
