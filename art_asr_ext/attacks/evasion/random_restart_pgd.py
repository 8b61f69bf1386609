"""
This module implements L-infinity PGD with random restarts for speech recognizers: each restart starts at a uniform
random point of the max-norm ball around the utterance, and the restart whose transcript is worst for the model (most
word errors against the reference, or fewest against the target) is kept per utterance. Restarts are the first item
of the attack-strength checklist of Carlini et al. ("On Evaluating Adversarial Robustness").

| Paper link: https://arxiv.org/abs/1706.06083
"""

from typing import List, Optional

import numpy as np
from art.attacks.evasion.projected_gradient_descent.projected_gradient_descent_numpy import (
    ProjectedGradientDescentNumpy,
)

from art_asr_ext.metrics import word_errors
from art_asr_ext.utils.audio import check_waveforms, to_object_array


class RandomRestartProjectedGradientDescent(ProjectedGradientDescentNumpy):
    """
    ART's L-infinity PGD (Madry et al., 2018) with `num_random_init` random starts on a speech recognizer, keeping
    the worst case per utterance.

    ART 1.20's `ProjectedGradientDescent` refuses `num_random_init > 0` for any estimator but a classifier, because its
    rule for keeping a restart (the predicted class changed) has no meaning for transcripts, and its random start
    (`random_sphere`) needs one fixed input shape, which ragged audio does not have. This class keeps ART's iteration
    (`_compute`: the batched loss gradient, the signed step, clipping to `clip_values` and the projection onto the
    ball around the clean input) and adds both: a start drawn per waveform with numpy's global generator (seed it for
    a repeatable attack), and a per-utterance choice by word errors of the estimator's own transcript. Ties keep the
    earlier restart. With `num_random_init=0` it is ART's PGD from the clean input.

    | Paper link: https://arxiv.org/abs/1706.06083
    """

    def __init__(
        self,
        estimator,
        eps: float = 0.01,
        eps_step: float = 0.002,
        max_iter: int = 7,
        targeted: bool = True,
        num_random_init: int = 1,
        batch_size: int = 32,
        verbose: bool = False,
    ) -> None:
        """
        :param estimator: An ART speech recognizer with loss gradients.
        :param eps: The L-infinity budget.
        :param eps_step: The step of each iteration.
        :param max_iter: Iterations per restart.
        :param targeted: Whether `y` holds target phrases (keep the restart closest to them) or references (keep the
                         one farthest from them).
        :param num_random_init: Random restarts (0: one run from the clean input, as ART's PGD).
        :param batch_size: Utterances per gradient batch.
        :param verbose: Show ART's progress bars.
        """
        super().__init__(
            estimator=estimator,
            norm=np.inf,
            eps=eps,
            eps_step=eps_step,
            max_iter=max_iter,
            targeted=targeted,
            num_random_init=num_random_init,
            batch_size=batch_size,
            verbose=verbose,
        )

    def _random_start(self, waveforms: List[np.ndarray]) -> np.ndarray:
        low, high = self.estimator.clip_values if self.estimator.clip_values is not None else (-np.inf, np.inf)
        starts = []
        for waveform in waveforms:
            noise = np.random.uniform(-self.eps, self.eps, size=waveform.shape)
            starts.append(np.clip(waveform + noise, low, high).astype(waveform.dtype))
        return to_object_array(starts)

    def _run(self, start: np.ndarray, clean: np.ndarray, labels: np.ndarray) -> np.ndarray:
        adversarial = start
        for self._i_max_iter in range(self.max_iter):
            adversarial = self._compute(adversarial, clean, labels, None, self.eps, self.eps_step, self._project, False)
        return adversarial

    def generate(self, x: np.ndarray, y: Optional[np.ndarray] = None, **kwargs) -> np.ndarray:
        """
        :param x: Waveforms: an object array of 1-D float arrays in the estimator's clip range.
        :param y: Target phrases (targeted) or references (untargeted), one per utterance.
        :return: The adversarial waveforms (an object array), the worst restart of each utterance.
        """
        if y is None:
            raise ValueError("y is required: target phrases for a targeted attack, references otherwise.")
        waveforms = check_waveforms(x)
        labels = np.asarray(y)
        if len(labels) != len(waveforms):
            raise ValueError(f"y must hold one label per utterance: {len(waveforms)} waveforms, {len(labels)} labels.")
        clean = to_object_array(waveforms)
        if self.num_random_init == 0:
            return self._run(clean.copy(), clean, labels)
        best: Optional[np.ndarray] = None
        best_errors = np.zeros(len(waveforms))
        for _ in range(self.num_random_init):
            candidate = self._run(self._random_start(waveforms), clean, labels)
            transcripts = self.estimator.predict(candidate, batch_size=self.batch_size)
            errors = np.array([word_errors(str(label), str(text)).errors for label, text in zip(labels, transcripts)])
            # Worse for the model: fewer errors toward the target, or more against the reference.
            score = -errors if self.targeted else errors
            if best is None:
                best, best_errors = candidate.copy(), score
                continue
            better = np.flatnonzero(score > best_errors)
            for i in better:
                best[i] = candidate[i]
            best_errors = np.maximum(best_errors, score)
        return best

    def _check_params(self) -> None:
        super()._check_params()
        if self.norm not in (np.inf, "inf"):
            raise ValueError(f"Only the L-infinity norm is supported. Found: norm={self.norm!r}")
