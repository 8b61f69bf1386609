"""
Randomized smoothing for speech: additive Gaussian noise on the waveform, as an ART PyTorch preprocessor.

Żelasko et al. add N(0, σ²) noise with σ = 0.01 at inference, and train with σ drawn per utterance uniformly from
[0, 0.3] (the models are then robust to the inference noise). The noise is additive, so the defence's Jacobian is the
identity: the exact gradient an attacker gets is the incoming gradient, and the adaptive attacker is the one that
averages the model's gradient over several noise draws (expectation over transformation, `eot_samples`).

| Paper link: https://arxiv.org/abs/2103.17122
"""

from numbers import Real
from typing import Any, Optional, Tuple, Union

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_asr_ext.defences.preprocessor.device_following import FollowsEstimatorDevice

from art_asr_ext.utils.audio import check_gradient_layout, split_numpy_batch
from art_asr_ext.utils.audio_torch import check_waveform_tensor

Sigma = Union[float, Tuple[float, float]]


class GaussianSmoothingPyTorch(FollowsEstimatorDevice, PreprocessorPyTorch):
    """
    Add Gaussian noise to each waveform; with a `(low, high)` sigma, draw σ per utterance uniformly (training
    augmentation). Seeded noise: two instances with the same seed produce the same sequence of outputs.

    Gradient: exact. :meth:`estimate_forward` returns `x` because `d(x + n)/dx` is the identity, and it leaves the
    noise sequence untouched. An estimator averages the model's gradient over :attr:`eot_samples` calls of
    :meth:`forward` (each draws fresh noise).

    | Paper link: https://arxiv.org/abs/2103.17122
    """

    params = ["sigma", "eot_samples", "seed", "_apply_fit", "_apply_predict"]

    def __init__(
        self,
        *,
        sigma: Sigma = 0.01,
        eot_samples: int = 1,
        seed: Optional[int] = None,
        apply_fit: bool = False,
        apply_predict: bool = True,
        device_type: Optional[str] = None,
    ) -> None:
        """
        :param sigma: Standard deviation of the noise (the study's inference setting: 0.01), or a pair `(low, high)`
                      from which each utterance draws its σ uniformly (the study's training augmentation: (0.0, 0.3)).
        :param eot_samples: Number of noise draws an estimator averages the model's gradient over (1: no EOT).
        :param seed: Seed of the noise generator; `None` seeds it from the operating system.
        :param apply_fit: True if applied during fitting/training.
        :param apply_predict: True if applied during predicting.
        :param device_type: Device on which the noise is drawn, `gpu` or `cpu`; None (default) follows the estimator the
                            defence is attached to (see :mod:`~art_asr_ext.defences.preprocessor.device_following`).
        """
        super().__init__(
            device_type=self.resolve_device_type(device_type),
            is_fitted=True,
            apply_fit=apply_fit,
            apply_predict=apply_predict,
        )
        self.sigma = sigma
        self.eot_samples = eot_samples
        self.seed = seed
        self._check_params()
        self._generator = self._new_generator()

    @classmethod
    def training_augmentation(
        cls,
        sigma_range: Tuple[float, float] = (0.0, 0.3),
        seed: Optional[int] = None,
        device_type: Optional[str] = None,
    ) -> "GaussianSmoothingPyTorch":
        """
        The study's training setting: σ drawn per utterance from `sigma_range`, applied when fitting only.

        :param sigma_range: `(low, high)` bounds of σ.
        :param seed: Seed of the noise generator.
        :param device_type: Device on which the noise is drawn; None follows the estimator.
        :return: The preprocessor, with `apply_fit=True` and `apply_predict=False`.
        """
        return cls(sigma=sigma_range, seed=seed, apply_fit=True, apply_predict=False, device_type=device_type)

    @property
    def is_augmentation(self) -> bool:
        """Whether σ is drawn per utterance from a range."""
        return isinstance(self.sigma, tuple)

    def _draw_sigmas(self, rows: int, dtype: torch.dtype) -> torch.Tensor:
        if not self.is_augmentation:
            return torch.full((rows,), float(self.sigma), dtype=dtype, device=self.device)
        low, high = self.sigma
        uniform = torch.rand(rows, generator=self._generator, device=self.device, dtype=dtype)
        return low + (high - low) * uniform

    #: The noise is additive, so :meth:`forward`'s own gradient is the exact one: estimators need one pass.
    forward_is_differentiable = True

    def forward(self, x: torch.Tensor, y: Any = None) -> Tuple[torch.Tensor, Any]:
        """
        Add noise (one draw per call; a fresh σ per row in augmentation mode).

        :param x: One waveform `(samples,)` or equal-length waveforms `(batch, samples)`, float.
        :param y: Labels; returned unchanged.
        :return: `x + σ n` with `n ~ N(0, 1)`, same shape, dtype and device as `x`, and `y`.
        """
        check_waveform_tensor(x)
        rows = 1 if x.ndim == 1 else x.shape[0]
        sigmas = self._draw_sigmas(rows, x.dtype)
        noise = torch.randn(x.shape, generator=self._generator, device=self.device, dtype=x.dtype)
        noise = noise * (sigmas[0] if x.ndim == 1 else sigmas[:, None])
        return x + noise.to(x.device), y

    def estimate_forward(self, x: torch.Tensor, y: Any = None) -> torch.Tensor:
        """
        Differentiable stand-in for :meth:`forward` with the same gradient: the noise is additive, so the Jacobian
        is the identity and this is exact, not an approximation. Draws no noise.

        :param x: One waveform `(samples,)` or equal-length waveforms `(batch, samples)`.
        :param y: Labels (unused).
        :return: `x`.
        """
        check_waveform_tensor(x)
        return x

    def __call__(self, x: np.ndarray, y: Any = None) -> Tuple[np.ndarray, Any]:
        """
        Add noise to a numpy batch, utterance by utterance.

        :param x: Numpy object array of 1-D float waveforms, or a 2-D float array `(batch, samples)`.
        :param y: Labels (e.g. transcripts); returned unchanged.
        :return: Noisy waveforms in the layout and dtype of `x`, and `y`.
        """
        waveforms, pack = split_numpy_batch(x)
        outputs = []
        with torch.no_grad():
            for waveform in waveforms:
                noisy, _ = self.forward(torch.from_numpy(np.ascontiguousarray(waveform)).to(self.device))
                outputs.append(noisy.cpu().numpy())
        return pack(outputs), y

    def estimate_gradient(self, x: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """
        Exact gradient of the defence: the identity, so `grad` itself.

        :param x: Inputs, numpy object array or 2-D float array.
        :param grad: Gradient with respect to the defence's output, same layout as `x`.
        :return: `grad`, unchanged.
        """
        check_gradient_layout(x, grad)
        return grad

    def set_params(self, **kwargs) -> None:
        """
        Set parameters (see :attr:`params`); a new `seed` restarts the noise sequence.
        """
        super().set_params(**kwargs)
        if "seed" in kwargs:
            self._generator = self._new_generator()

    def _check_params(self) -> None:
        sigma = self.sigma
        if isinstance(sigma, (tuple, list)):
            if len(sigma) != 2 or not all(
                isinstance(s, Real) and not isinstance(s, bool) and np.isfinite(s) for s in sigma
            ):
                raise ValueError(f"sigma as a range must be (low, high), two finite numbers. Found: {sigma!r}")
            low, high = float(sigma[0]), float(sigma[1])
            if low < 0 or high < low:
                raise ValueError(f"sigma range must satisfy 0 <= low <= high. Found: {sigma!r}")
            self.sigma = (low, high)
        else:
            if isinstance(sigma, bool) or not isinstance(sigma, Real) or not np.isfinite(sigma):
                raise ValueError(f"sigma must be a finite number or a (low, high) pair. Found: {sigma!r}")
            if sigma < 0:
                raise ValueError(f"sigma must be >= 0. Found: {sigma}")
            self.sigma = float(sigma)
        if isinstance(self.eot_samples, bool) or not isinstance(self.eot_samples, (int, np.integer)):
            raise ValueError(f"eot_samples must be an integer >= 1. Found: {self.eot_samples!r}")
        if self.eot_samples < 1:
            raise ValueError(f"eot_samples must be >= 1. Found: {self.eot_samples}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer))):
            raise ValueError(f"seed must be an integer or None. Found: {self.seed!r}")
