"""
This module implements the random-noise baseline of an evaluation: uniform noise in [-eps, eps] added to each
sample, the weakest perturbation of a given L-infinity norm that an attack has to beat (Carlini et al., "On
Evaluating Adversarial Robustness", section 5.2).

| Paper link: https://arxiv.org/abs/1902.06705
"""

from typing import Optional

import numpy as np
from art.attacks.attack import EvasionAttack
from art.estimators.estimator import BaseEstimator

from art_asr_ext.utils.audio import check_waveforms, to_object_array


class UniformNoiseBaseline(EvasionAttack):
    """
    Adds independent uniform noise in [-eps, eps] to every sample of every waveform, then clips to the estimator's
    `clip_values`: no gradient, no labels. An attack of the same max-norm that does no better than this is not
    attacking the model (or the model's gradients are masked).

    | Paper link: https://arxiv.org/abs/1902.06705
    """

    attack_params = EvasionAttack.attack_params + ["eps", "seed"]
    _estimator_requirements = (BaseEstimator,)

    def __init__(self, estimator, eps: float = 0.01, seed: int = 0) -> None:
        """
        :param estimator: Any ART estimator (only its `clip_values` are used).
        :param eps: Max-norm of the noise.
        :param seed: Seed of the noise: the same seed and the same sequence of inputs give the same outputs, and each
                     call draws fresh noise.
        """
        super().__init__(estimator=estimator)
        self.eps = eps
        self.seed = seed
        self._check_params()
        self._rng = np.random.default_rng(seed)

    def _check_params(self) -> None:
        if isinstance(self.eps, bool) or not isinstance(self.eps, (int, float)) or not self.eps > 0:
            raise ValueError(f"eps must be a positive number. Found: {self.eps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer. Found: {self.seed!r}")

    def generate(self, x: np.ndarray, y: Optional[np.ndarray] = None, **kwargs) -> np.ndarray:
        """
        :param x: Waveforms: an object array of 1-D float arrays, or a 2-D float array.
        :param y: Ignored (the noise aims at nothing).
        :return: The noisy waveforms, in the layout (and dtype) of `x`.
        """
        waveforms = check_waveforms(x)
        rng = self._rng
        low, high = self.estimator.clip_values if self.estimator.clip_values is not None else (-np.inf, np.inf)
        noisy = [
            np.clip(w.astype(np.float64) + rng.uniform(-self.eps, self.eps, size=w.shape), low, high).astype(w.dtype)
            for w in waveforms
        ]
        if isinstance(x, np.ndarray) and x.dtype != object:
            return np.stack(noisy).astype(x.dtype)
        return to_object_array(noisy)
