"""
The ART speech recognizer contract, implemented once in torch for every model in this package.

ART's attacks talk to a speech recognizer through numpy object arrays (``predict``, ``loss_gradient``) and, for
ImperceptibleASRPyTorch, through a padded torch batch (``compute_loss_and_decoded_output``). This base class turns
both into padded torch batches with real lengths, applies the preprocessing defences in torch with the gradient each
defence declares, and leaves a concrete recognizer three hooks: a per-utterance loss, a decoder and a check of the
target alphabet.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import abc
import contextlib
import copy
import logging
import os
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from art.estimators.pytorch import PyTorchEstimator
from art.estimators.speech_recognition.speech_recognizer import PytorchSpeechRecognizerMixin, SpeechRecognizerMixin

from art_asr_ext.estimators.speech_recognition.recognizer_hooks import RecognizerHooks
from art_asr_ext.utils.audio import check_waveforms, length_sorted_batches, to_object_array
from art_asr_ext.utils.audio_torch import pad_waveforms

logger = logging.getLogger(__name__)


def _same_value(new: Any, current: Any) -> bool:
    """Whether a constructor-only parameter is given its current value again (paths compare as paths)."""
    if isinstance(new, (str, os.PathLike)) and isinstance(current, (str, os.PathLike)):
        return os.path.abspath(os.fspath(new)) == os.path.abspath(os.fspath(current))
    return new == current


class PyTorchSpeechRecognizer(
    RecognizerHooks, PytorchSpeechRecognizerMixin, SpeechRecognizerMixin, PyTorchEstimator, abc.ABC
):
    """
    Shared implementation of ART's speech recognizer interface for waveform-input torch models.

    Preprocessing defences run in torch on each utterance (a 1-D tensor). Their values come from ``forward``; the
    gradient an attacker gets comes from ``estimate_forward`` (identity for BPDA defences, the true forward for
    white-box ones). A defence with an integer ``eot_samples`` attribute > 1 makes ``loss_gradient`` average the
    gradient over that many draws of the defence (expectation over transformation).

    | Paper link: https://arxiv.org/abs/2103.17122
    """

    estimator_params = PyTorchEstimator.estimator_params + ["optimizer"]
    #: Where :meth:`recording_defended_inputs` collects `(input, defended input)` pairs (None: not recording).
    _defended_record: Optional[List[Tuple[np.ndarray, np.ndarray]]] = None

    def __init__(
        self,
        model: torch.nn.Module,
        clip_values: Optional[Tuple[float, float]] = (-1.0, 1.0),
        optimizer: Optional[torch.optim.Optimizer] = None,
        preprocessing_defences: Union[PreprocessorPyTorch, List[PreprocessorPyTorch], None] = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = None,
        device_type: str = "cpu",
    ) -> None:
        """
        :param model: The torch model; it is moved to the estimator's device and put in evaluation mode.
        :param clip_values: `(min, max)` of the waveform samples; ART's attacks clip to it.
        :param optimizer: Optimizer used by `fit`.
        :param preprocessing_defences: ART `PreprocessorPyTorch` defence(s), applied in torch on every path.
        :param postprocessing_defences: Not supported for speech; must be None.
        :param preprocessing: `(subtrahend, divisor)` or an ART preprocessor applied after the defences.
        :param device_type: `cpu` or `gpu`.
        """
        super().__init__(
            model=model,
            clip_values=clip_values,
            channels_first=None,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=preprocessing,
            device_type=device_type,
        )
        self._optimizer = optimizer
        self._model.to(self._device)
        self._model.eval()
        self._check_params()

    #: Parameters only the constructor can honour (they choose the weights or where they live): `set_params`
    #: refuses to change them rather than record a value nothing acts on.
    constructor_only_params = ("model", "checkpoint", "device_type")

    def set_params(self, **kwargs) -> None:
        """
        Set estimator parameters (see ART's `BaseEstimator.set_params`).

        :raises ValueError: For a new value of a parameter in `constructor_only_params` (build a new estimator).
        """
        for key in self.constructor_only_params:
            if key not in kwargs or key not in self.estimator_params:
                continue
            current = self._model if key == "model" else getattr(self, key, None)
            same = kwargs[key] is current if key == "model" else _same_value(kwargs[key], current)
            if not same:
                raise ValueError(
                    f"{key} cannot be changed by set_params: the constructor loads the model from it. Build a new "
                    f"{type(self).__name__}({key}=...) instead. Found: {kwargs[key]!r} (current: {current!r})"
                )
        super().set_params(**kwargs)

    def with_first_defence(self, defence: PreprocessorPyTorch) -> "PyTorchSpeechRecognizer":
        """
        A copy of this recognizer that applies `defence` before its own chain, sharing its model (a channel the input
        passes through first, e.g. the noise of a vote or a room an attacker plays its example in). This recognizer
        is left as it was.

        :param defence: The preprocessor to put first.
        :return: The copy.
        """
        own = self.preprocessing_defences
        own = [own] if isinstance(own, PreprocessorPyTorch) else list(own or [])
        chained = copy.copy(self)
        chained.preprocessing_operations = []  # a list of its own: ART rebuilds it in place
        chained.set_params(preprocessing_defences=[defence, *own])
        return chained

    @contextlib.contextmanager
    def _input_gradient_only(self):
        """
        Freeze the weights while a graph for an input gradient is built: attacks only need the gradient w.r.t. the
        input, and frozen weights spare backward the weights' gradients, which cost as much as the input gradient in
        the fused RNN and convolution kernels. The flags are restored afterwards, so the module handed over is never
        changed (another estimator built on it can still `fit` it).
        """
        flags = [(parameter, parameter.requires_grad) for parameter in self._model.parameters()]
        for parameter, _ in flags:
            parameter.requires_grad_(False)
        try:
            yield
        finally:
            for parameter, flag in flags:
                parameter.requires_grad_(flag)

    def _check_params(self) -> None:
        super()._check_params()
        if self._device_type not in ("cpu", "gpu"):
            raise ValueError(f"device_type must be 'cpu' or 'gpu'. Found: {self._device_type!r}")
        if self.postprocessing_defences:
            raise ValueError("postprocessing_defences are not supported for speech recognizers; pass None.")
        if self.clip_values is not None and not float(self.clip_values[0]) < float(self.clip_values[1]):
            raise ValueError(f"clip_values must be (min, max) with min < max. Found: {self.clip_values}")
        for operation in self.preprocessing_operations:
            if not isinstance(operation, PreprocessorPyTorch):
                raise ValueError(
                    f"{type(operation).__name__} is not a PreprocessorPyTorch; speech recognizers apply defences in "
                    f"torch so that gradients reach the waveform."
                )
            self._check_defence_device(operation)
            rate = getattr(operation, "sample_rate", None)
            if rate is not None and int(rate) != int(self.sample_rate):
                raise ValueError(
                    f"{type(operation).__name__} expects {rate} Hz audio but the model takes {self.sample_rate} Hz; "
                    f"construct the defence with sample_rate={self.sample_rate}."
                )

    def _check_defence_device(self, operation: PreprocessorPyTorch) -> None:
        """
        Move a defence that follows its estimator to this estimator's device; refuse one pinned elsewhere (every
        utterance would otherwise cross devices twice, and its noise would depend on whether a GPU is present).
        """
        if not hasattr(self, "_device"):
            return
        follow = getattr(operation, "follow_device", None)
        if follow is not None:
            follow(self._device)
            return
        device = getattr(operation, "device", None)
        if device is not None and torch.device(device).type != self._device.type:
            raise ValueError(
                f"{type(operation).__name__} runs on {device} but the estimator on {self._device}; build the defence "
                f"with device_type={self._device_type!r}."
            )

    # ----------------------------------------------------------------------------------------------------------------
    # Hooks for concrete recognizers
    # ----------------------------------------------------------------------------------------------------------------

    @abc.abstractmethod
    def _check_targets(self, y: Any, n_expected: Optional[int]) -> List[str]:
        """Validate transcripts against what the model can emit; return them as strings."""
        raise NotImplementedError

    @abc.abstractmethod
    def _utterance_losses(self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]) -> torch.Tensor:
        """
        :param waveforms: Padded batch `(batch, samples)` in the model's dtype.
        :param lengths: Real lengths `(batch,)`.
        :param targets: One transcript per utterance.
        :return: The model's training loss of each utterance, `(batch,)`, differentiable w.r.t. `waveforms`.
        """
        raise NotImplementedError

    @abc.abstractmethod
    def _transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> List[str]:
        """Decode a padded batch into transcripts (no gradient needed)."""
        raise NotImplementedError

    def _training_losses(self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]) -> torch.Tensor:
        """
        Per-utterance losses of one training batch. Defaults to the exact `_utterance_losses`; a recognizer whose
        exactness under padding costs speed (encoding utterance by utterance) may batch here instead, because
        training needs the model's objective, not per-utterance exactness.
        """
        return self._utterance_losses(waveforms, lengths, targets)

    def _losses_and_transcripts(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]
    ) -> Tuple[torch.Tensor, List[str]]:
        """Loss and decode of one batch; recognizers that can share one forward pass override this."""
        losses = self._utterance_losses(waveforms, lengths, targets)
        with torch.no_grad():
            transcripts = self._transcribe(waveforms.detach(), lengths)
        return losses, transcripts

    # ----------------------------------------------------------------------------------------------------------------
    # Batching and defences
    # ----------------------------------------------------------------------------------------------------------------

    @property
    def _model_dtype(self) -> torch.dtype:
        return next(self._model.parameters()).dtype

    def _active_defences(self, fit: bool) -> List[PreprocessorPyTorch]:
        return [op for op in self.preprocessing_operations if (op.apply_fit if fit else op.apply_predict)]

    def _eot_samples(self, fit: bool = False) -> int:
        draws = [
            int(getattr(op, "eot_samples", 1)) for op in self._active_defences(fit) if getattr(op, "is_random", True)
        ]
        return max(draws + [1])

    def _apply_defences(self, utterances: Sequence[torch.Tensor], fit: bool) -> List[torch.Tensor]:
        """
        Run the active defences on each 1-D utterance. Values come from `forward`; the gradient from
        `estimate_forward` where a defence overrides it, unless the defence declares `forward_is_differentiable`
        (then one pass through `forward` gives both).
        """
        defences = self._active_defences(fit)
        if not defences:
            return list(utterances)
        processed = []
        for utterance in utterances:
            given = utterance
            for defence in defences:
                exact = getattr(
                    defence,
                    "forward_is_differentiable",
                    type(defence).estimate_forward is PreprocessorPyTorch.estimate_forward,
                )
                if exact or not torch.is_grad_enabled():
                    utterance, _ = defence.forward(utterance)
                    continue
                with torch.no_grad():
                    output, _ = defence.forward(utterance)
                estimate = defence.estimate_forward(utterance)
                # `estimate - estimate.detach()` is exactly zero, so the value is forward's to the last bit
                utterance = output + (estimate - estimate.detach())
            if self._defended_record is not None and not torch.is_grad_enabled():
                self._defended_record.append((given.detach().cpu().numpy(), utterance.detach().cpu().numpy()))
            processed.append(utterance)
        return processed

    @contextlib.contextmanager
    def recording_defended_inputs(self) -> Iterator[List[Tuple[np.ndarray, np.ndarray]]]:
        """
        Record what the model receives. Within the block, every utterance that passes through the defences without
        a gradient (as in `predict`; an attack's gradient passes are not recorded) is appended to the yielded list as
        `(input, defended input)`, 1-D numpy arrays in the model's dtype. Nothing is recorded without defences.

        :return: The list the pairs are appended to.
        """
        record: List[Tuple[np.ndarray, np.ndarray]] = []
        previous, self._defended_record = self._defended_record, record
        try:
            yield record
        finally:
            self._defended_record = previous

    def _batch_from_numpy(
        self, waveforms: Sequence[np.ndarray], requires_grad: bool = False
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        tensors = [torch.as_tensor(w, dtype=self._model_dtype, device=self._device) for w in waveforms]
        padded, lengths = pad_waveforms(tensors)
        return padded.requires_grad_(requires_grad), lengths

    def _defended_batch(
        self, padded: torch.Tensor, lengths: torch.Tensor, fit: bool
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Apply the defences to a padded batch, returning a new padded batch and lengths."""
        if not self._active_defences(fit):
            return padded, lengths
        utterances = [padded[i, : int(lengths[i])] for i in range(padded.shape[0])]
        return pad_waveforms([u.to(self._model_dtype) for u in self._apply_defences(utterances, fit)])

    # ----------------------------------------------------------------------------------------------------------------
    # ART interface
    # ----------------------------------------------------------------------------------------------------------------

    def predict(self, x: np.ndarray, batch_size: int = 16, **kwargs) -> np.ndarray:
        """
        Transcribe speech.

        :param x: Numpy object array of 1-D float waveforms in [-1, 1] at `sample_rate`, or a 2-D float array.
        :param batch_size: Utterances per forward pass (batches are formed from similar lengths).
        :return: Numpy array of transcripts, one per utterance.
        """
        waveforms = check_waveforms(x)
        self._model.eval()
        transcripts: List[str] = [""] * len(waveforms)
        with torch.no_grad():
            for index in length_sorted_batches([len(w) for w in waveforms], batch_size, self.max_padding):
                padded, lengths = self._batch_from_numpy([waveforms[i] for i in index])
                padded, lengths = self._defended_batch(padded, lengths, fit=False)
                for i, text in zip(index, self._transcribe(padded, lengths)):
                    transcripts[i] = text
        return np.array(transcripts)

    def compute_loss(self, x: np.ndarray, y: np.ndarray, batch_size: int = 16, **kwargs) -> np.ndarray:
        """
        The model's training loss of each utterance toward its transcript (defences applied as in `predict`).

        :param x: Waveforms, as for `predict`.
        :param y: Transcripts, one per utterance.
        :param batch_size: Utterances per forward pass.
        :return: Float array of per-utterance losses.
        """
        waveforms = check_waveforms(x)
        targets = self._check_targets(y, len(waveforms))
        self._model.eval()
        losses = np.zeros(len(waveforms))
        with torch.no_grad():
            for index in length_sorted_batches([len(w) for w in waveforms], batch_size, self.max_padding):
                padded, lengths = self._batch_from_numpy([waveforms[i] for i in index])
                padded, lengths = self._defended_batch(padded, lengths, fit=False)
                losses[index] = self._utterance_losses(padded, lengths, [targets[i] for i in index]).cpu().numpy()
        return losses

    def loss_gradient(self, x: np.ndarray, y: np.ndarray, batch_size: int = 16, **kwargs) -> np.ndarray:
        """
        Gradient of each utterance's loss toward its transcript with respect to its waveform.

        Utterances are batched by length; padding never changes an utterance's loss or gradient. Only the input
        gradient is computed (the weights' gradients, which an attack never uses, are skipped).

        :param x: Waveforms, as for `predict`.
        :param y: Transcripts (targets of a targeted attack, or ground truth), one per utterance.
        :param batch_size: Utterances per forward/backward pass.
        :return: Numpy object array of gradients, each of the same shape and dtype as its utterance (a 2-D array
                 if `x` is 2-D).
        """
        waveforms = check_waveforms(x)
        targets = self._check_targets(y, len(waveforms))
        self._model.eval()
        draws = self._eot_samples()
        gradients: List[Optional[np.ndarray]] = [None] * len(waveforms)
        for index in length_sorted_batches([len(w) for w in waveforms], batch_size, self.max_padding):
            padded, lengths = self._batch_from_numpy([waveforms[i] for i in index], requires_grad=True)
            batch_targets = [targets[i] for i in index]
            total = torch.zeros_like(padded)
            for _ in range(draws):
                with self._input_gradient_only():
                    defended, defended_lengths = self._defended_batch(padded, lengths, fit=False)
                    loss = self._utterance_losses(defended, defended_lengths, batch_targets).sum()
                    (gradient,) = torch.autograd.grad(loss, padded)
                total += gradient
            total = (total / draws).cpu().numpy()
            for row, i in enumerate(index):
                gradients[i] = total[row, : len(waveforms[i])].astype(waveforms[i].dtype, copy=False)
        if isinstance(x, np.ndarray) and x.dtype != object:
            return np.stack(gradients)
        return to_object_array(gradients)

    def compute_loss_and_decoded_output(
        self, masked_adv_input: torch.Tensor, original_output: np.ndarray, **kwargs
    ) -> Tuple[torch.Tensor, np.ndarray]:
        """
        Loss (summed over the batch) and transcripts of a padded torch batch; used by ImperceptibleASRPyTorch.

        :param masked_adv_input: Padded waveforms `(batch, samples)`, zero beyond each real length.
        :param original_output: Transcripts the loss is computed toward, one per utterance.
        :param real_lengths: Real lengths in samples (numpy or torch); all full length if omitted.
        :return: The summed loss (differentiable w.r.t. `masked_adv_input`) and the decoded transcripts.
        """
        if not isinstance(masked_adv_input, torch.Tensor) or masked_adv_input.ndim != 2:
            raise ValueError("masked_adv_input must be a 2-D torch tensor (batch, samples).")
        real_lengths = kwargs.get("real_lengths")
        if real_lengths is None:
            lengths = torch.full((masked_adv_input.shape[0],), masked_adv_input.shape[1], dtype=torch.long)
        elif isinstance(real_lengths, torch.Tensor):
            lengths = real_lengths.to("cpu", torch.long).reshape(-1)
        else:
            lengths = torch.as_tensor(np.asarray(real_lengths), dtype=torch.long).reshape(-1)
        if (
            lengths.shape[0] != masked_adv_input.shape[0]
            or int(lengths.max()) > masked_adv_input.shape[1]
            or int(lengths.min()) < 1
        ):
            raise ValueError(
                f"real_lengths must give one length in [1, {masked_adv_input.shape[1]}] per utterance. "
                f"Found: {lengths.tolist()}"
            )
        targets = self._check_targets(original_output, masked_adv_input.shape[0])
        padded = masked_adv_input.to(device=self._device, dtype=self._model_dtype)
        lengths = lengths.to(self._device)
        loss = padded.new_zeros(())
        transcripts: List[str] = [""] * len(targets)
        for index in length_sorted_batches(lengths.tolist(), len(targets), self.max_padding):
            rows = torch.as_tensor(index, device=self._device)
            batch_lengths = lengths[rows]
            # The caller differentiates the loss w.r.t. its input only (ART's imperceptible attack).
            with self._input_gradient_only():
                batch, batch_lengths = self._defended_batch(
                    padded[rows, : int(batch_lengths.max())], batch_lengths, fit=False
                )
                losses, batch_transcripts = self._losses_and_transcripts(
                    batch, batch_lengths, [targets[i] for i in index]
                )
            loss = loss + losses.sum()
            for i, text in zip(index, batch_transcripts):
                transcripts[i] = text
        return loss, np.array(transcripts)

    def fit(self, x: np.ndarray, y: np.ndarray, batch_size: int = 16, nb_epochs: int = 10, **kwargs) -> None:
        """
        Train the model on waveforms and transcripts with the estimator's optimizer. Defences with `apply_fit`
        (e.g. randomized-smoothing augmentation) are applied to every training batch.

        :param x: Waveforms, as for `predict`.
        :param y: Transcripts, one per utterance.
        :param batch_size: Utterances per step (batches group similar lengths and are visited in random order).
        :param nb_epochs: Passes over the data.
        :param seed: Seed of the batch order (default 0).
        :param max_grad_norm: Clip the gradient's global L2 norm to this value before each step (default: no clipping).
        :param step_callback: Called after every optimizer step with the batch's mean training loss (a float), e.g.
                              to log a learning curve.
        """
        if self._optimizer is None:
            raise ValueError("fit needs an optimizer; pass optimizer=torch.optim.Adam(model.parameters()) or similar.")
        waveforms = check_waveforms(x)
        targets = self._check_targets(y, len(waveforms))
        rng = np.random.default_rng(kwargs.get("seed", 0))
        max_grad_norm = kwargs.get("max_grad_norm")
        step_callback = kwargs.get("step_callback")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive. Found: {max_grad_norm}")
        batches = length_sorted_batches([len(w) for w in waveforms], batch_size, self.max_padding)
        self._model.train()
        # Train what is trainable in the module (a part the caller froze stays frozen).
        trainable = [parameter for parameter in self._model.parameters() if parameter.requires_grad]
        try:
            for _ in range(nb_epochs):
                for batch_index in rng.permutation(len(batches)):
                    index = batches[batch_index]
                    padded, lengths = self._batch_from_numpy([waveforms[i] for i in index])
                    padded, lengths = self._defended_batch(padded, lengths, fit=True)
                    self._optimizer.zero_grad()
                    loss = self._training_losses(padded, lengths, [targets[i] for i in index]).mean()
                    loss.backward()
                    if max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(trainable, max_grad_norm)
                    self._optimizer.step()
                    if step_callback is not None:
                        step_callback(float(loss.detach()))
        finally:
            self._model.eval()

    def to_training_mode(self) -> None:
        """Put the model in training mode (ImperceptibleASRPyTorch then freezes batch norm itself)."""
        self._model.train()

    def get_activations(
        self, x: np.ndarray, layer: Union[int, str], batch_size: int, framework: bool = False
    ) -> np.ndarray:
        raise NotImplementedError("get_activations is not supported for speech recognizers.")

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """Waveforms have a variable length: `(None,)`."""
        return (None,)  # type: ignore

    @property
    def optimizer(self) -> Optional[torch.optim.Optimizer]:
        """The optimizer used by `fit`."""
        return self._optimizer

    @property
    def device(self) -> torch.device:
        """The torch device the model runs on."""
        return self._device
