"""
This module implements PGD with a budget stated as a signal-to-noise ratio: an L2 ball per utterance, of radius
`|x_i| * 10^(-SNR / 20)`, so that every adversarial example is at least `snr_db` dB above its perturbation. This is
how the Whisper robustness literature states budgets (Olivier & Raj, 2023: 35 and 40 dB).

| Paper link: https://arxiv.org/abs/2210.17316
"""

from typing import List, Optional

import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.estimator import BaseEstimator, LossGradientsMixin

from art_asr_ext.utils.audio import check_waveforms, to_object_array

#: ART's guard against a zero gradient norm in its L2 step (`FastGradientMethod._compute_perturbation`).
_TOL = 1e-7
#: The projection aims this fraction inside the ball, so float32 rounding of the result cannot leave it.
_SAFETY = 1.0 - 1e-6


class SNRProjectedGradientDescent(EvasionAttack):
    """
    Projected gradient descent under the L2 norm with one budget per utterance, set by an SNR in dB:
    `eps_i = |x_i|_2 * 10^(-snr_db / 20)` and the step `step_ratio * eps_i`, so that every output satisfies
    `10 log10(|x|^2 / |x_adv - x|^2) >= snr_db`.

    Each iteration is ART's L2 PGD step: the loss gradient of the batch (`loss_gradient`, batched over waveforms of
    different lengths), normalised per utterance, a step against it (targeted) or along it, clipping to the
    estimator's `clip_values`, and the projection of `x_adv - x` onto the utterance's L2 ball. It is written out here
    because ART 1.20's `ProjectedGradientDescent` cannot do this on ragged audio: on a numpy object array it projects
    each sample of a waveform onto the ball on its own (an L-infinity clip at `eps_i`, not an L2 projection), and it
    applies a budget array per utterance only when one internal batch holds the whole input. A silent utterance
    (zero energy) admits no perturbation at any SNR and is returned unchanged.

    | Paper link: https://arxiv.org/abs/2210.17316
    """

    attack_params = EvasionAttack.attack_params + [
        "snr_db",
        "step_ratio",
        "max_iter",
        "targeted",
        "batch_size",
        "verbose",
    ]
    _estimator_requirements = (BaseEstimator, LossGradientsMixin)

    def __init__(
        self,
        estimator,
        snr_db: float = 35.0,
        step_ratio: float = 0.1,
        max_iter: int = 50,
        targeted: bool = False,
        batch_size: int = 32,
        verbose: bool = False,
    ) -> None:
        """
        :param estimator: An ART estimator with loss gradients (e.g. a speech recognizer of this package).
        :param snr_db: The budget: the least SNR in dB of every adversarial example against its perturbation.
        :param step_ratio: Step size as a fraction of each utterance's budget `eps_i`.
        :param max_iter: PGD iterations.
        :param targeted: Whether `y` holds target phrases (minimise their loss) or references (maximise it).
        :param batch_size: Utterances per gradient batch.
        :param verbose: Log each batch's progress.
        """
        super().__init__(estimator=estimator)
        self.snr_db = snr_db
        self.step_ratio = step_ratio
        self.max_iter = max_iter
        self._targeted = targeted
        self.batch_size = batch_size
        self.verbose = verbose
        self._check_params()

    def _check_params(self) -> None:
        if isinstance(self.snr_db, bool) or not isinstance(self.snr_db, (int, float)) or not np.isfinite(self.snr_db):
            raise ValueError(f"snr_db must be a finite number of dB. Found: {self.snr_db!r}")
        if isinstance(self.step_ratio, bool) or not isinstance(self.step_ratio, (int, float)) or self.step_ratio <= 0:
            raise ValueError(f"step_ratio must be a positive number. Found: {self.step_ratio!r}")
        for name in ("max_iter", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Found: {value!r}")
        if not isinstance(self.targeted, bool):
            raise ValueError(f"targeted must be true or false. Found: {self.targeted!r}")

    def budgets(self, x: np.ndarray) -> np.ndarray:
        """
        :param x: Waveforms: an object array of 1-D float arrays, or a 2-D float array.
        :return: The L2 budget of each waveform, `|x_i|_2 * 10^(-snr_db / 20)`.
        """
        scale = 10.0 ** (-float(self.snr_db) / 20.0)
        return np.array([np.linalg.norm(w.astype(np.float64)) * scale for w in check_waveforms(x)])

    def generate(self, x: np.ndarray, y: Optional[np.ndarray] = None, **kwargs) -> np.ndarray:
        """
        :param x: Waveforms: an object array of 1-D float arrays in the estimator's clip range, or a 2-D float array.
        :param y: Target phrases (targeted) or references (untargeted), one per utterance.
        :return: The adversarial waveforms, in the layout (and dtype) of `x`.
        """
        if y is None:
            raise ValueError("y is required: target phrases for a targeted attack, references otherwise.")
        waveforms = check_waveforms(x)
        labels = np.asarray(y)
        if len(labels) != len(waveforms):
            raise ValueError(f"y must hold one label per utterance: {len(waveforms)} waveforms, {len(labels)} labels.")
        budgets = self.budgets(x) * _SAFETY
        low, high = self.estimator.clip_values if self.estimator.clip_values is not None else (-np.inf, np.inf)
        direction = -1.0 if self.targeted else 1.0  # targeted: descend the target's loss; else ascend the reference's
        adversarial: List[np.ndarray] = list(waveforms)
        attacked = np.flatnonzero(budgets > 0)  # a silent utterance can take no perturbation
        for start in range(0, len(attacked), self.batch_size):
            index = attacked[start : start + self.batch_size]
            clean = [waveforms[i].astype(np.float64) for i in index]
            current = [w.copy() for w in clean]
            for _ in range(self.max_iter):
                batch = to_object_array([w.astype(waveforms[i].dtype) for w, i in zip(current, index)])
                gradients = self.estimator.loss_gradient(batch, labels[index], batch_size=len(index))
                for row, i in enumerate(index):
                    gradient = np.asarray(gradients[row], dtype=np.float64)
                    step = budgets[i] * float(self.step_ratio) * gradient / (np.linalg.norm(gradient) + _TOL)
                    moved = np.clip(current[row] + direction * step, low, high)
                    delta = moved - clean[row]
                    norm = np.linalg.norm(delta)
                    if norm > budgets[i]:
                        delta *= budgets[i] / norm
                    current[row] = clean[row] + delta  # inside the clip range: between x and a clipped point
            for row, i in enumerate(index):
                adversarial[i] = current[row].astype(waveforms[i].dtype)
        if isinstance(x, np.ndarray) and x.dtype != object:
            return np.stack(adversarial).astype(x.dtype)
        return to_object_array(adversarial)

    @property
    def targeted(self) -> bool:
        """Whether the attack aims at target phrases."""
        return self._targeted

    @targeted.setter
    def targeted(self, targeted: bool) -> None:
        self._targeted = targeted
