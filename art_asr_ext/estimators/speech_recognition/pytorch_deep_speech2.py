"""
This module implements an ART speech recognizer for DeepSpeech2 that needs nothing beyond PyPI.

ART's own ``PyTorchDeepSpeech`` depends on the unmaintained ``deepspeech_pytorch`` package. This estimator runs the
same architecture (:class:`art_asr_ext.models.DeepSpeech2`) and loads deepspeech.pytorch's checkpoints directly.

| Paper link: https://arxiv.org/abs/1512.02595
"""

import os
from typing import Any, List, Optional, Tuple, Union

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_asr_ext.estimators.speech_recognition.pytorch_speech_recognizer import PyTorchSpeechRecognizer
from art_asr_ext.utils.audio import (
    check_transcripts,
    check_waveforms,
    length_sorted_batches,
)
from art_asr_ext.models.ctc import ctc_frames_needed, lexicon_beam_decoder
from art_asr_ext.models.deepspeech2 import DeepSpeech2
from art_asr_ext.models.deepspeech_checkpoint import load_deepspeech_checkpoint


class PyTorchDeepSpeech2(PyTorchSpeechRecognizer):
    """
    ART speech recognizer for DeepSpeech2 (CTC over characters).

    The loss is the CTC loss of each utterance toward its transcript (summed over the batch, as deepspeech.pytorch
    trains). Inputs are float waveforms in [-1, 1] at the model's sample rate (16 kHz for the published models).
    Transcripts come from greedy CTC decoding, or, with `decoder_type="beam"`, from a beam search that spells words of
    a word n-gram language model's vocabulary and adds the model's weighted score (ART's ``PyTorchDeepSpeech`` has the
    same parameters). Decoding changes only `predict`: the loss, and so every gradient attack, is the CTC loss.

    | Paper link: https://arxiv.org/abs/1512.02595
    """

    estimator_params = PyTorchSpeechRecognizer.estimator_params + [
        "checkpoint",
        "decoder_type",
        "lm_path",
        "alpha",
        "beta",
        "beam_width",
    ]
    #: The values of `decoder_type`.
    decoder_types = ("greedy", "beam")

    def __init__(
        self,
        model: Optional[DeepSpeech2] = None,
        checkpoint: Optional[Union[str, os.PathLike]] = None,
        allow_pickle: bool = False,
        clip_values: Optional[Tuple[float, float]] = (-1.0, 1.0),
        optimizer: Optional[torch.optim.Optimizer] = None,
        preprocessing_defences: Union[PreprocessorPyTorch, List[PreprocessorPyTorch], None] = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = None,
        device_type: str = "cpu",
        decoder_type: str = "greedy",
        lm_path: Optional[Union[str, os.PathLike]] = None,
        alpha: float = 0.0,
        beta: float = 0.0,
        beam_width: int = 10,
    ) -> None:
        """
        :param model: A :class:`DeepSpeech2` module; give either this or `checkpoint`.
        :param checkpoint: Path to a deepspeech.pytorch checkpoint (v3 Lightning `.ckpt` or v2 `.pth` package).
        :param allow_pickle: Let `torch.load` execute arbitrary pickled code from the checkpoint. Only for files you
                             trust and only when the safe loader refuses them.
        :param clip_values: `(min, max)` of the waveform samples.
        :param optimizer: Optimizer used by `fit`.
        :param preprocessing_defences: ART `PreprocessorPyTorch` defence(s).
        :param postprocessing_defences: Not supported; must be None.
        :param preprocessing: `(subtrahend, divisor)` or an ART preprocessor.
        :param device_type: `cpu` or `gpu`.
        :param decoder_type: `greedy` (best label per frame) or `beam` (beam search with the language model).
        :param lm_path: ARPA word language model (plain or gzipped) for `decoder_type="beam"`; its vocabulary is the
                        decoder's.
        :param alpha: Weight of the language model's log10 probability in the beam search.
        :param beta: Score added per word in the beam search.
        :param beam_width: Hypotheses the beam search keeps at each frame.
        """
        if (model is None) == (checkpoint is None):
            raise ValueError("Give exactly one of model (a DeepSpeech2 module) or checkpoint (a file path).")
        if checkpoint is not None:
            model = load_deepspeech_checkpoint(checkpoint, allow_pickle=allow_pickle)
        if not isinstance(model, DeepSpeech2):
            raise ValueError(f"model must be an art_asr_ext.models.DeepSpeech2. Found: {type(model).__name__}")
        self.checkpoint = checkpoint
        self.decoder_type = decoder_type
        self.lm_path = lm_path
        self.alpha = alpha
        self.beta = beta
        self.beam_width = beam_width
        super().__init__(
            model=model,
            clip_values=clip_values,
            optimizer=optimizer,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=preprocessing,
            device_type=device_type,
        )

    def _check_params(self) -> None:
        super()._check_params()
        if self.decoder_type not in self.decoder_types:
            raise ValueError(f"decoder_type must be one of {self.decoder_types}. Found: {self.decoder_type!r}")
        if self.decoder_type == "greedy":
            if self.lm_path is not None:
                raise ValueError(f"lm_path is used only by decoder_type 'beam'. Found: {self.lm_path!r}")
            return
        if self.lm_path is None or not os.path.isfile(self.lm_path):
            raise ValueError(f"decoder_type 'beam' needs lm_path, an ARPA language model file. Found: {self.lm_path!r}")
        if isinstance(self.beam_width, bool) or not isinstance(self.beam_width, int) or self.beam_width < 1:
            raise ValueError(f"beam_width must be an integer >= 1. Found: {self.beam_width!r}")
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"{name} must be a finite number. Found: {value!r}")

    @property
    def labels(self) -> List[str]:
        """Output alphabet, blank first."""
        return self._model.labels

    @property
    def alphabet(self) -> List[str]:
        """The characters the model emits (its labels less the CTC blank)."""
        return self._model.labels[1:]

    @property
    def sample_rate(self) -> int:
        """Sample rate the model expects, in Hz."""
        return self._model.sample_rate

    def _check_targets(self, y: Any, n_expected: Optional[int]) -> List[str]:
        return check_transcripts(y, self._model.labels[1:], n_expected)

    def _ctc_losses(self, logits: torch.Tensor, output_lengths: torch.Tensor, targets: List[str]) -> torch.Tensor:
        index = {label: i for i, label in enumerate(self._model.labels)}
        encoded = [[index[c] for c in text] for text in targets]
        frames = output_lengths.tolist()  # one device sync for the whole batch
        for i, tokens in enumerate(encoded):
            needed = ctc_frames_needed(tokens)
            if needed > frames[i]:
                raise ValueError(
                    f"Transcript {i} ({len(tokens)} characters) needs {needed} CTC frames but its utterance gives only "
                    f"{frames[i]}; use a shorter target or a longer utterance."
                )
        flat_targets = torch.tensor([t for tokens in encoded for t in tokens], dtype=torch.long)
        target_lengths = torch.tensor([len(tokens) for tokens in encoded], dtype=torch.long)
        log_probs = logits.log_softmax(-1).transpose(0, 1)
        # log_probs: (frames, batch, labels)
        return torch.nn.functional.ctc_loss(
            log_probs,
            flat_targets.to(logits.device),
            output_lengths,
            target_lengths.to(logits.device),
            blank=0,
            reduction="none",
        )

    def _greedy_decode(self, logits: torch.Tensor, output_lengths: torch.Tensor) -> List[str]:
        best = logits.argmax(-1)
        # best: (batch, frames); keep a frame if it is not blank, not a repeat of the previous frame, and real
        previous = torch.nn.functional.pad(best[:, :-1], (1, 0), value=-1)
        frames = torch.arange(best.shape[1], device=best.device)[None, :]
        keep = (best != 0) & (best != previous) & (frames < output_lengths[:, None])
        labels = self._model.labels
        rows = best.cpu().numpy()
        keep = keep.cpu().numpy()
        return ["".join(labels[k] for k in row[mask]) for row, mask in zip(rows, keep)]

    def _decode(self, logits: torch.Tensor, output_lengths: torch.Tensor) -> List[str]:
        if self.decoder_type == "greedy":
            return self._greedy_decode(logits, output_lengths)
        labels = self._model.labels
        decoder = lexicon_beam_decoder(
            labels,
            self.lm_path,
            alpha=float(self.alpha),
            beta=float(self.beta),
            beam_width=int(self.beam_width),
            blank=labels[0],
        )
        return decoder(logits.log_softmax(-1), output_lengths)

    def _utterance_losses(self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]) -> torch.Tensor:
        logits, output_lengths = self._model(waveforms, lengths)
        return self._ctc_losses(logits, output_lengths, targets)

    def _transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> List[str]:
        logits, output_lengths = self._model(waveforms, lengths)
        return self._decode(logits, output_lengths)

    def _losses_and_transcripts(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]
    ) -> Tuple[torch.Tensor, List[str]]:
        logits, output_lengths = self._model(waveforms, lengths)
        return self._ctc_losses(logits, output_lengths, targets), self._decode(logits.detach(), output_lengths)

    def predict_probabilities(self, x: np.ndarray, batch_size: int = 16) -> Tuple[np.ndarray, np.ndarray]:
        """
        Per-frame label probabilities, as ART's `predict(..., transcription_output=False)` returns them.

        :param x: Waveforms, as for `predict`.
        :param batch_size: Utterances per forward pass.
        :return: `(probabilities, sizes)`: a zero-padded float array `(batch, frames, labels)` and the real number of
                 frames of each utterance.
        """
        waveforms = check_waveforms(x)
        self._model.eval()
        outputs: List[Optional[np.ndarray]] = [None] * len(waveforms)
        with torch.no_grad():
            for index in length_sorted_batches([len(w) for w in waveforms], batch_size):
                padded, lengths = self._batch_from_numpy([waveforms[i] for i in index])
                padded, lengths = self._defended_batch(padded, lengths, fit=False)
                logits, output_lengths = self._model(padded, lengths)
                probabilities = logits.softmax(-1).cpu().numpy()
                for row, i in enumerate(index):
                    outputs[i] = probabilities[row, : int(output_lengths[row])]
        sizes = np.array([len(o) for o in outputs])
        padded_outputs = np.zeros((len(outputs), sizes.max(), len(self.labels)), dtype=np.float32)
        for i, output in enumerate(outputs):
            padded_outputs[i, : sizes[i]] = output
        return padded_outputs, sizes

    def predict(
        self, x: np.ndarray, batch_size: int = 16, **kwargs
    ) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """
        Transcribe speech by the estimator's `decoder_type`.

        :param x: Numpy object array of 1-D float waveforms in [-1, 1] at `sample_rate`, or a 2-D float array.
        :param batch_size: Utterances per forward pass.
        :param transcription_output: If False, return `(probabilities, sizes)` instead (see `predict_probabilities`).
        :return: Numpy array of transcripts.
        """
        if not kwargs.get("transcription_output", True):
            return self.predict_probabilities(x, batch_size=batch_size)
        return super().predict(x, batch_size=batch_size)
