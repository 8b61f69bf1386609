"""
The Kenansville attack (Abdullah et al., "Hear 'No Evil', See 'Kenansville'", IEEE S&P 2021): a signal-processing
attack that needs no gradient. It removes the lowest-energy components of the short-time spectrum, which a listener
hardly misses and a recognizer may, up to a budget stated as an SNR. It only ever calls the recognizer's `predict`.

Two ways to spend the budget:

- `max_queries = 0` (Armory's `KenansvilleDFT`): remove as much as the SNR budget allows, with no query;
- `max_queries > 0` (the paper's search): the least removal within the budget that changes the transcript, found by
  a binary search of at most `max_queries` transcriptions per utterance; if the whole budget does not change it, the
  whole budget is returned.

| Paper link: https://arxiv.org/abs/1910.05262
"""

from typing import List, Optional

import numpy as np
import torch
from art.attacks.attack import EvasionAttack
from art.estimators.estimator import BaseEstimator

from art_asr_ext.metrics import perturbation_size
from art_asr_ext.utils.audio import check_waveforms, to_object_array


class KenansvilleAttack(EvasionAttack):
    """
    Untargeted black-box attack: zero the weakest STFT bins of each utterance while its SNR stays at or above
    `snr_db`. The number of `predict` calls spent on each utterance of the last `generate` is in :attr:`queries`.

    | Paper link: https://arxiv.org/abs/1910.05262
    """

    attack_params = EvasionAttack.attack_params + ["snr_db", "max_queries", "n_fft", "hop_length"]
    _estimator_requirements = (BaseEstimator,)

    def __init__(
        self, estimator, snr_db: float = 30.0, max_queries: int = 0, n_fft: int = 512, hop_length: int = 128
    ) -> None:
        """
        :param estimator: A speech recognizer; only its `predict` is called.
        :param snr_db: The budget: every output keeps at least this SNR in dB against its input.
        :param max_queries: Transcriptions per utterance for the search (0: the whole budget, no query; else >= 2).
        :param n_fft: STFT size (Hann window), in samples.
        :param hop_length: STFT hop, in samples.
        """
        super().__init__(estimator=estimator)
        self.snr_db = snr_db
        self.max_queries = max_queries
        self.n_fft = n_fft
        self.hop_length = hop_length
        self._check_params()
        #: `predict` calls per utterance of the last `generate`.
        self.queries: List[int] = []

    def _check_params(self) -> None:
        if isinstance(self.snr_db, bool) or not isinstance(self.snr_db, (int, float)) or not np.isfinite(self.snr_db):
            raise ValueError(f"snr_db must be a finite number of dB. Found: {self.snr_db!r}")
        if isinstance(self.max_queries, bool) or not isinstance(self.max_queries, (int, np.integer)):
            raise ValueError(f"max_queries must be an integer >= 0. Found: {self.max_queries!r}")
        if self.max_queries < 0 or self.max_queries == 1:
            raise ValueError(
                f"max_queries must be 0 (no search) or >= 2 (the search transcribes the input and the whole budget "
                f"first). Found: {self.max_queries}"
            )
        for name in ("n_fft", "hop_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Found: {value!r}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length must be at most n_fft {self.n_fft}. Found: {self.hop_length}")

    def _remover(self, waveform: np.ndarray):
        """`remove(k)`: the waveform without its k weakest STFT bins, and the number of bins."""
        signal = torch.from_numpy(waveform.astype(np.float64))
        window = torch.hann_window(self.n_fft, dtype=torch.float64)
        spectrum = torch.stft(signal, self.n_fft, self.hop_length, window=window, return_complex=True)
        order = torch.argsort(spectrum.abs().flatten(), stable=True)

        def remove(count: int) -> np.ndarray:
            kept = spectrum.flatten().clone()
            kept[order[:count]] = 0
            restored = torch.istft(
                kept.reshape(spectrum.shape), self.n_fft, self.hop_length, window=window, length=len(waveform)
            )
            return restored.numpy().astype(waveform.dtype)

        return remove, int(order.numel())

    def _largest_within_budget(self, waveform: np.ndarray, remove, bins: int) -> int:
        """The most bins that can go with the SNR still >= the budget (SNR falls as bins go: binary search)."""
        low, high = 0, bins  # remove(low) meets the budget; the answer is in [low, high]
        while low < high:
            middle = (low + high + 1) // 2
            if perturbation_size(waveform, remove(middle))[1] >= self.snr_db:
                low = middle
            else:
                high = middle - 1
        return low

    def generate(self, x: np.ndarray, y: Optional[np.ndarray] = None, **kwargs) -> np.ndarray:
        """
        :param x: Waveforms: an object array of 1-D float arrays, or a 2-D float array.
        :param y: Ignored (untargeted: the search compares with the recognizer's own transcript of `x`).
        :return: The attacked waveforms, in the layout of `x`.
        """
        waveforms = check_waveforms(x)
        removers = [self._remover(w) for w in waveforms]
        limits = [self._largest_within_budget(w, *r) for w, r in zip(waveforms, removers)]
        adversarial = [remove(limit) for (remove, _), limit in zip(removers, limits)]
        self.queries = [0] * len(waveforms)
        if self.max_queries > 0:
            adversarial = self._search(waveforms, removers, limits, adversarial)
        if isinstance(x, np.ndarray) and x.dtype != object:
            return np.stack(adversarial).astype(x.dtype)
        return to_object_array(adversarial)

    def _search(self, waveforms, removers, limits, adversarial):
        """The paper's search: the least removal that changes the transcript, batched over utterances per query."""
        original = self._transcribe(waveforms, range(len(waveforms)))
        full = self._transcribe(adversarial, range(len(waveforms)))
        # (low, high]: removing `high` bins changes the transcript, removing `low` does not
        bounds = {i: (0, limits[i]) for i in range(len(waveforms)) if full[i] != original[i] and limits[i] > 0}
        while bounds:
            searching = [
                i for i, (low, high) in bounds.items() if high - low > 1 and self.queries[i] < self.max_queries
            ]
            if not searching:
                break
            middles = {i: (bounds[i][0] + bounds[i][1]) // 2 for i in searching}
            candidates = {i: removers[i][0](middles[i]) for i in searching}
            transcripts = self._transcribe([candidates[i] for i in searching], searching)
            for i, text in zip(searching, transcripts):
                low, high = bounds[i]
                if text != original[i]:
                    bounds[i], adversarial[i] = (low, middles[i]), candidates[i]
                else:
                    bounds[i] = (middles[i], high)
        return adversarial

    def _transcribe(self, waveforms, indices) -> List[str]:
        """One `predict` call; one query for each utterance transcribed."""
        indices = list(indices)
        for i in indices:
            self.queries[i] += 1
        return [str(t) for t in self.estimator.predict(to_object_array(list(waveforms)), batch_size=len(indices))]
