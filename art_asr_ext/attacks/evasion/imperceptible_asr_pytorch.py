"""
ART's ImperceptibleASRPyTorch for batches of utterances of different lengths.

| Paper link: https://arxiv.org/abs/1903.10346
"""

from typing import Optional

import numpy as np
import torch
from art.attacks.evasion import ImperceptibleASRPyTorch

from art_asr_ext.utils.audio import to_object_array


class _NumpyComparableLoss(torch.Tensor):
    """
    The second stage's per-utterance loss, comparable with the 0-d numpy arrays ART stores as the best loss so far.

    ART 1.20.1 keeps ``best_loss_2nd_stage[i] = loss[i].detach().cpu().numpy()`` and then compares ``loss[i] <
    best_loss_2nd_stage[i]``; torch >= 2.6 refuses `Tensor < numpy.ndarray`, so the attack crashes as soon as an
    utterance reaches its target twice in the second stage. Only the comparisons change; every other operation
    (and the gradient) is the plain tensor's.
    """

    def _compare(self, other, operator):
        if isinstance(other, np.ndarray):
            other = torch.as_tensor(other, dtype=self.dtype, device=self.device)
        return getattr(torch.Tensor, operator)(self.as_subclass(torch.Tensor), other)

    def __lt__(self, other):
        return self._compare(other, "__lt__")

    def __le__(self, other):
        return self._compare(other, "__le__")

    def __gt__(self, other):
        return self._compare(other, "__gt__")

    def __ge__(self, other):
        return self._compare(other, "__ge__")


class RaggedImperceptibleASRPyTorch(ImperceptibleASRPyTorch):
    """
    ART's ImperceptibleASRPyTorch, accepting a batch of utterances of different lengths under numpy 2.

    ART 1.20.1 stacks the batch with ``np.array([...])``, which numpy >= 1.24 refuses for ragged rows; this override of
    :meth:`generate` only builds object arrays instead and otherwise runs ART's own algorithm unchanged. It also lets
    the second stage compare its losses with the best ones ART stores as numpy arrays, which torch >= 2.6 refuses
    (ART then crashes once an utterance reaches its target twice). Finally, it clips the adversarial examples to the
    estimator's `clip_values`: ART bounds the perturbation by `eps` but never x + delta, so on a clip peaking near
    full scale its output leaves [-1, 1] and the recognizer refuses it.

    | Paper link: https://arxiv.org/abs/1903.10346
    """

    def generate(self, x: np.ndarray, y: Optional[np.ndarray] = None, **kwargs) -> np.ndarray:
        """
        :param x: Object array of 1-D waveforms (or a 2-D array).
        :param y: Target transcripts, one per utterance.
        :return: Object array of adversarial waveforms, each the length and dtype of its input.
        """
        if y is None:
            raise ValueError("The imperceptible attack is targeted: give the target transcripts y.")
        if len(x) == 0 or (isinstance(x, np.ndarray) and x.dtype != object):
            return self._clip(super().generate(x, y, **kwargs))
        lengths = {len(x_i) for x_i in x}
        if len(lengths) == 1:
            stacked = np.stack([np.asarray(x_i) for x_i in x])
            return to_object_array(list(self._clip(super().generate(stacked, y, **kwargs))))
        # The same steps as ImperceptibleASRPyTorch.generate, with object arrays.
        adversarial = to_object_array([np.asarray(x_i).astype(np.float64) for x_i in x])
        self.estimator.to_training_mode()
        self.estimator.set_batchnorm(train=False)
        for start in range(0, len(x), self.batch_size):
            stop = min(start + self.batch_size, len(x))
            self.global_optimal_delta.data = torch.zeros(self.batch_size, self.global_max_length).type(torch.float64)
            optimizer_1 = self._optimizer_arg_1 or torch.optim.Adam
            optimizer_2 = self._optimizer_arg_2 or torch.optim.Adam
            self.optimizer_1 = optimizer_1(params=[self.global_optimal_delta], lr=self.learning_rate_1)
            self.optimizer_2 = optimizer_2(params=[self.global_optimal_delta], lr=self.learning_rate_2)
            batch = self._generate_batch(adversarial[start:stop], np.asarray(y)[start:stop])
            for i in range(stop - start):
                adversarial[start + i] = batch[i, : len(adversarial[start + i])]
        self.estimator.set_batchnorm(train=True)
        return to_object_array([self._clip(adversarial[i]).astype(np.asarray(x[i]).dtype) for i in range(len(x))])

    def _clip(self, adversarial: np.ndarray) -> np.ndarray:
        """The adversarial examples (a numeric array) within the estimator's `clip_values`, if it has them."""
        if self.estimator.clip_values is None or len(adversarial) == 0:
            return adversarial
        low, high = self.estimator.clip_values
        return np.clip(adversarial, low, high).astype(adversarial.dtype, copy=False)

    def _forward_2nd_stage(self, *args, **kwargs) -> torch.Tensor:
        return super()._forward_2nd_stage(*args, **kwargs).as_subclass(_NumpyComparableLoss)
