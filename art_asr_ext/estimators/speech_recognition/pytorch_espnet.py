"""
This module implements an ART speech recognizer for ESPnet2 attention encoder-decoder models (Transformer,
Conformer, ... with joint CTC), loaded from the ESPnet model zoo or built in memory.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import contextlib
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_asr_ext.estimators.speech_recognition.pytorch_speech_recognizer import PyTorchSpeechRecognizer
from art_asr_ext.models.espnet_asr import load_espnet_asr, sample_rate_of, save_espnet_asr
from art_asr_ext.models.ctc import lexicon_beam_decoder
from art_asr_ext.models.espnet_decoding import (
    beam_search,
    candidate_scores,
    ctc_greedy_search,
    greedy_search,
    hypothesis_tokens,
    rescored_choice,
)
from art_asr_ext.models.espnet_objective import encode, encode_utterances, unsupported_features, utterance_losses
from art_asr_ext.models.espnet_text import SPACE_SYMBOL, ESPnetTextCodec
from art_asr_ext.models.ngram import sentence_scorer

if TYPE_CHECKING:
    from espnet2.asr.espnet_model import ESPnetASRModel

DECODINGS = ("beam", "greedy", "ctc")
#: Hypotheses kept per frame by the CTC beam search with the word language model (its n-best join the rescoring).
LM_CTC_BEAM_WIDTH = 50


class PyTorchESPnet(PyTorchSpeechRecognizer):
    """
    ART speech recognizer for any ESPnet2 CTC/attention ASR model, differentiable from the raw waveform through
    ESPnet's own front end (STFT, log-mel, normalisation), encoder, decoder and CTC.

    **Input scale.** ART's boundary is float waveforms in [-1, 1]. ESPnet2 recipes (LibriSpeech included) train on
    the same scale: the ``sound`` data loader reads audio with soundfile as ``float32`` in [-1, 1]
    (``espnet2.train.dataset.sound_loader`` with ``float_dtype``), and ``Speech2Text`` is fed ``soundfile.read``
    output, so ``input_scale`` is 1. Models trained on int16-range samples (Kaldi-style features, ESPnet1) need
    ``input_scale=32768``; the waveform is multiplied by it inside the differentiable graph.

    **Loss.** The model's training objective toward the target transcript, per utterance:
    ``ctc_weight * CTC + (1 - ctc_weight) * label-smoothed attention cross-entropy`` with the model's ``ctc_weight``
    and ``lsm_weight`` (``lsm_weight`` can be overridden here, e.g. to fine-tune without label smoothing). Each
    utterance is encoded alone, so padding never changes its loss or gradient (ESPnet's batched encoder does).
    Targets are tokenised with the model's own tokenizer; characters it cannot represent raise `ValueError`.

    **Decoding.** ``predict`` runs joint CTC/attention beam search with the hypotheses of ESPnet's ``BeamSearch``
    (no language model), several times faster; with ``lm_path``, a word n-gram language model (ARPA), its hypotheses
    and those of a CTC beam search that spells the language model's words are rescored by attention, CTC and the
    language model, as in two-pass CTC/attention decoding (Sainath et al., arXiv 1908.10992). ``decoding="greedy"``
    (batched attention greedy search) and ``"ctc"`` (best CTC path) are faster and use no language model. ``compute_loss_and_decoded_output``, which ImperceptibleASRPyTorch
    calls every iteration, decodes with ``iteration_decoding`` (greedy by default) from the encoder pass the loss
    already made.

    **RNN encoders on a GPU.** cuDNN differentiates an RNN only in training mode, and the model runs in evaluation
    mode (ESPnet's dropout must stay off), so for an input gradient on CUDA a model with RNN layers runs without
    cuDNN (PyTorch's own CUDA kernels: the same values in evaluation mode, more slowly).

    | Paper link: https://arxiv.org/abs/2103.17122
    """

    estimator_params = PyTorchSpeechRecognizer.estimator_params + [
        "beam_size",
        "decode_ctc_weight",
        "penalty",
        "maxlenratio",
        "minlenratio",
        "decoding",
        "iteration_decoding",
        "lsm_weight",
        "input_scale",
        "lm_path",
        "lm_weight",
        "word_score",
    ]

    def __init__(
        self,
        model: Optional["ESPnetASRModel"] = None,
        model_dir: Optional[Union[str, os.PathLike]] = None,
        asr_train_config: Optional[Union[str, os.PathLike]] = None,
        asr_model_file: Optional[Union[str, os.PathLike]] = None,
        asr_config: Optional[Dict[str, Any]] = None,
        token_type: Optional[str] = None,
        bpemodel: Optional[Union[str, os.PathLike]] = None,
        beam_size: int = 10,
        decode_ctc_weight: Optional[float] = None,
        penalty: float = 0.0,
        maxlenratio: float = 0.0,
        minlenratio: float = 0.0,
        decoding: str = "beam",
        iteration_decoding: Optional[str] = None,
        lsm_weight: Optional[float] = None,
        input_scale: float = 1.0,
        lm_path: Optional[Union[str, os.PathLike]] = None,
        lm_weight: float = 0.0,
        word_score: float = 0.0,
        clip_values: Optional[Tuple[float, float]] = (-1.0, 1.0),
        optimizer: Optional[torch.optim.Optimizer] = None,
        preprocessing_defences: Union[PreprocessorPyTorch, List[PreprocessorPyTorch], None] = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = None,
        device_type: str = "cpu",
    ) -> None:
        """
        :param model: An in-memory `ESPnetASRModel` (e.g. from `art_asr_ext.models.espnet_asr.build_espnet_asr`);
                      give either this or the model files.
        :param model_dir: Root of an unpacked ESPnet model-zoo package (`meta.yaml`, `exp/`, `data/`).
        :param asr_train_config: The model's training `config.yaml` (instead of `model_dir`).
        :param asr_model_file: The model's weights `.pth` (with `asr_train_config`).
        :param asr_config: For an in-memory model, the config dict it was built from (tokenizer settings; needed
                           by `save`).
        :param token_type: Tokenizer (`char`, `bpe`, ...); defaults to the config's, else `char`.
        :param bpemodel: SentencePiece model for `token_type="bpe"`; defaults to the config's.
        :param beam_size: Beam size of `decoding="beam"`.
        :param decode_ctc_weight: CTC weight in beam search (`Speech2Text`'s `ctc_weight`); None: 0.3 for a model
                                  with CTC and decoder, 0 without CTC, 1 without decoder.
        :param penalty: Length bonus per token in beam search.
        :param maxlenratio: Maximum output length: 0 for the encoder length with end detection, < 0 for a fixed
                            number of tokens, > 0 for a ratio of the encoder length.
        :param minlenratio: Minimum output length as a ratio of the encoder length (< 0: a fixed number of tokens).
        :param decoding: How `predict` decodes: `beam`, `greedy` (attention) or `ctc` (best path).
        :param iteration_decoding: How `compute_loss_and_decoded_output` decodes (same choices); None: `greedy`, or
                                   `ctc` for a model without decoder.
        :param lsm_weight: Label smoothing of the attention loss; None uses the model's `lsm_weight`.
        :param input_scale: Factor from [-1, 1] waveforms to the scale the model was trained on.
        :param lm_path: ARPA word language model (plain or gzipped) for `decoding="beam"` of a character model: the
                        joint beam search's hypotheses and those of a CTC beam search with the language model (spelling
                        its words) are rescored by `(1 - decode_ctc_weight) * attention + decode_ctc_weight * CTC +
                        lm_weight * log10 P_lm + word_score * words`.
        :param lm_weight: Weight of the language model's log10 probability (also in the CTC beam search).
        :param word_score: Score added per word (also in the CTC beam search).
        :param clip_values: `(min, max)` of the waveform samples.
        :param optimizer: Optimizer used by `fit`.
        :param preprocessing_defences: ART `PreprocessorPyTorch` defence(s), applied on every path.
        :param postprocessing_defences: Not supported; must be None.
        :param preprocessing: `(subtrahend, divisor)` or an ART preprocessor.
        :param device_type: `cpu` or `gpu`.
        """
        from_files = model_dir is not None or asr_train_config is not None or asr_model_file is not None
        if (model is None) == (not from_files):
            raise ValueError(
                "Give exactly one of model (an ESPnetASRModel) or model files (model_dir, or asr_train_config with "
                "asr_model_file)."
            )
        if from_files:
            package = load_espnet_asr(model_dir, asr_train_config, asr_model_file)
            model, asr_config = package.model, package.config
        if not hasattr(model, "token_list") or not hasattr(model, "encode"):
            raise ValueError(f"model must be an espnet2 ESPnetASRModel. Found: {type(model).__name__}")
        self.asr_config = asr_config
        config = asr_config or {}
        token_type = token_type or config.get("token_type") or "char"
        bpemodel = bpemodel or config.get("bpemodel")
        self._codec = ESPnetTextCodec(
            model.token_list,
            token_type=token_type,
            bpemodel=None if bpemodel is None else str(bpemodel),
            non_linguistic_symbols=config.get("non_linguistic_symbols"),
            cleaner=config.get("cleaner"),
            g2p=config.get("g2p"),
        )
        self._sample_rate = self._find_sample_rate(model, config)
        self.beam_size = beam_size
        has_ctc, has_decoder = getattr(model, "ctc", None) is not None, getattr(model, "decoder", None) is not None
        if decode_ctc_weight is None:
            decode_ctc_weight = 0.3 if has_ctc and has_decoder else (0.0 if has_decoder else 1.0)
        if iteration_decoding is None:
            iteration_decoding = "greedy" if has_decoder else "ctc"
        self.decode_ctc_weight = decode_ctc_weight
        self.penalty = penalty
        self.maxlenratio = maxlenratio
        self.minlenratio = minlenratio
        self.decoding = decoding
        self.iteration_decoding = iteration_decoding
        self.lsm_weight = lsm_weight
        self.input_scale = input_scale
        self.lm_path = lm_path
        self.lm_weight = lm_weight
        self.word_score = word_score
        super().__init__(
            model=model,
            clip_values=clip_values,
            optimizer=optimizer,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=preprocessing,
            device_type=device_type,
        )

    @staticmethod
    def _find_sample_rate(model: torch.nn.Module, config: Dict[str, Any]) -> int:
        if config.get("frontend_conf") is not None:
            return sample_rate_of(config)
        mel_options = getattr(getattr(getattr(model, "frontend", None), "logmel", None), "mel_options", {})
        return int(mel_options.get("sr", 16000))

    def _check_params(self) -> None:
        super()._check_params()
        from espnet2.asr.espnet_model import ESPnetASRModel

        model = self._model
        if not isinstance(model, ESPnetASRModel):
            raise ValueError(f"model must be an espnet2 ESPnetASRModel. Found: {type(model).__name__}")
        unsupported = unsupported_features(model)
        if unsupported:
            raise ValueError(f"This ESPnet model uses {', '.join(unsupported)}, which PyTorchESPnet does not support.")
        vocab = len(model.token_list)
        for name, layer in (
            ("decoder.output_layer", getattr(model.decoder, "output_layer", None)),
            ("ctc.ctc_lo", getattr(model.ctc, "ctc_lo", None)),
        ):
            if layer is not None and layer.out_features != vocab:
                raise ValueError(f"The token list has {vocab} tokens but {name} has {layer.out_features} outputs.")
        if not isinstance(self.beam_size, (int, np.integer)) or self.beam_size < 1:
            raise ValueError(f"beam_size must be an integer >= 1. Found: {self.beam_size!r}")
        if not 0.0 <= float(self.decode_ctc_weight) <= 1.0:
            raise ValueError(f"decode_ctc_weight must be in [0, 1]. Found: {self.decode_ctc_weight}")
        if self.decode_ctc_weight > 0.0 and model.ctc is None:
            raise ValueError(f"decode_ctc_weight is {self.decode_ctc_weight} but the model has no CTC branch; use 0.")
        if self.decode_ctc_weight < 1.0 and model.decoder is None:
            raise ValueError(f"decode_ctc_weight is {self.decode_ctc_weight} but the model has no decoder; use 1.")
        for name in ("decoding", "iteration_decoding"):
            value = getattr(self, name)
            if value not in DECODINGS:
                raise ValueError(f"{name} must be one of {DECODINGS}. Found: {value!r}")
            if value == "greedy" and model.decoder is None:
                raise ValueError(f"{name} is 'greedy' (attention) but the model has no decoder; use 'ctc'.")
            if value == "ctc" and model.ctc is None:
                raise ValueError(f"{name} is 'ctc' but the model has no CTC branch; use 'greedy'.")
        if self.lsm_weight is not None and not 0.0 <= float(self.lsm_weight) < 1.0:
            raise ValueError(f"lsm_weight must be None or in [0, 1). Found: {self.lsm_weight}")
        if not (
            isinstance(self.input_scale, (int, float)) and math.isfinite(self.input_scale) and self.input_scale > 0
        ):
            raise ValueError(f"input_scale must be a finite number > 0. Found: {self.input_scale!r}")
        for name in ("penalty", "maxlenratio", "minlenratio", "lm_weight", "word_score"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number. Found: {value!r}")
        if self.lm_path is not None:
            if not os.path.isfile(self.lm_path):
                raise ValueError(f"lm_path must be an ARPA language model file. Found: {self.lm_path!r}")
            if self._codec.token_type != "char" or model.ctc is None or model.decoder is None:
                raise ValueError(
                    "lm_path needs a character model with CTC and decoder (the language model's words are spelt in "
                    f"characters); this one has token_type {self._codec.token_type!r}."
                )

    # ----------------------------------------------------------------------------------------------------------------
    # Hooks of PyTorchSpeechRecognizer
    # ----------------------------------------------------------------------------------------------------------------

    def _check_targets(self, y: Any, n_expected: Optional[int]) -> List[str]:
        transcripts = [y] if isinstance(y, str) else list(np.asarray(y, dtype=object).reshape(-1))
        if n_expected is not None and len(transcripts) != n_expected:
            raise ValueError(f"y holds {len(transcripts)} transcripts for {n_expected} utterances.")
        for index, text in enumerate(transcripts):
            if not isinstance(text, (str, np.str_)):
                raise ValueError(f"y[{index}] is {type(text).__name__}, not a string.")
            unknown = self._codec.unknown_characters(str(text))
            if unknown:
                raise ValueError(
                    f"y[{index}] {str(text)!r} has characters the model's {self._codec.token_type} tokenizer cannot "
                    f"represent: {unknown}. Normalise the text to the model's conventions (e.g. upper case) first."
                )
        return [str(text) for text in transcripts]

    def _encode(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return encode_utterances(self._model, waveforms, lengths, float(self.input_scale))

    def _losses(self, encoder_out: torch.Tensor, encoder_lengths: torch.Tensor, targets: List[str]) -> torch.Tensor:
        token_ids = [self._codec.encode(text) for text in targets]
        return utterance_losses(self._model, encoder_out, encoder_lengths, token_ids, self.lsm_weight)

    def _decode(self, encoder_out: torch.Tensor, encoder_lengths: torch.Tensor, decoding: str) -> List[str]:
        model = self._model
        if decoding == "ctc":
            token_ids = ctc_greedy_search(model, encoder_out, encoder_lengths)
        elif decoding == "greedy":
            token_ids = greedy_search(model, encoder_out, encoder_lengths, self.maxlenratio)
        elif self.lm_path is not None:
            token_ids = self._rescored_beam_search(encoder_out, encoder_lengths)
        else:
            token_ids = [
                next(iter(self._joint_hypotheses(encoder_out[i, : int(length)])), [])
                for i, length in enumerate(encoder_lengths)
            ]
        return [self._codec.decode(ids) for ids in token_ids]

    def _joint_hypotheses(self, memory: torch.Tensor) -> List[List[int]]:
        """The token ids of each hypothesis of the joint CTC/attention beam search of one utterance, best first."""
        hypotheses = beam_search(
            self._model,
            memory,
            beam_size=int(self.beam_size),
            ctc_weight=float(self.decode_ctc_weight),
            penalty=float(self.penalty),
            maxlenratio=float(self.maxlenratio),
            minlenratio=float(self.minlenratio),
        )
        return [hypothesis_tokens([hypothesis]) for hypothesis in hypotheses]

    def _rescored_beam_search(self, encoder_out: torch.Tensor, encoder_lengths: torch.Tensor) -> List[List[int]]:
        """Joint beam search and CTC beam search with the language model propose; all scorers choose."""
        model = self._model
        labels = list(model.token_list)
        ctc_search = lexicon_beam_decoder(
            labels,
            self.lm_path,
            alpha=float(self.lm_weight),
            beta=float(self.word_score),
            beam_width=LM_CTC_BEAM_WIDTH,
            blank=labels[model.blank_id],
            space=SPACE_SYMBOL,
            nbest=int(self.beam_size),
        )
        language_model = sentence_scorer(self.lm_path)
        ctc_proposals = ctc_search.nbest(model.ctc.log_softmax(encoder_out), encoder_lengths)
        ctc_weight = float(self.decode_ctc_weight)
        chosen = []
        for i, length in enumerate(encoder_lengths.tolist()):
            memory = encoder_out[i, :length]
            proposals = self._joint_hypotheses(memory) + [self._codec.encode(text) for text in ctc_proposals[i]]
            candidates = list(dict.fromkeys(tuple(tokens) for tokens in proposals if tokens))
            if not candidates:
                chosen.append([])
                continue
            attention, ctc = candidate_scores(model, memory, [list(c) for c in candidates])
            texts = [self._codec.decode(list(c)) for c in candidates]
            lm = torch.tensor([language_model(text) for text in texts], dtype=attention.dtype)
            words = torch.tensor([len(text.split()) for text in texts], dtype=attention.dtype)
            best = rescored_choice(attention, ctc, lm, words, ctc_weight, float(self.lm_weight), float(self.word_score))
            chosen.append(list(candidates[best]))
        return chosen

    @contextlib.contextmanager
    def _input_gradient_only(self):
        uses_rnn = any(isinstance(module, torch.nn.RNNBase) for module in self._model.modules())
        if self._device.type != "cuda" or not uses_rnn:
            with super()._input_gradient_only():
                yield
            return
        cudnn = torch.backends.cudnn
        without_cudnn = cudnn.flags(
            enabled=False, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=cudnn.allow_tf32
        )
        with super()._input_gradient_only(), without_cudnn:
            yield

    def _utterance_losses(self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]) -> torch.Tensor:
        encoder_out, encoder_lengths = self._encode(waveforms, lengths)
        return self._losses(encoder_out, encoder_lengths, targets)

    def _training_losses(self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]) -> torch.Tensor:
        # ESPnet's own batched encoder, as its trainer runs it: padding shifts a short utterance's loss slightly (see
        # `encode_utterances`), which training tolerates and attacks must not.
        scaled = waveforms * float(self.input_scale) if self.input_scale != 1.0 else waveforms
        encoder_out, encoder_lengths = encode(self._model, scaled, lengths)
        if isinstance(encoder_out, tuple):
            encoder_out = encoder_out[0]
        return self._losses(encoder_out, encoder_lengths, targets)

    def _transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> List[str]:
        encoder_out, encoder_lengths = self._encode(waveforms, lengths)
        return self._decode(encoder_out, encoder_lengths, self.decoding)

    def _losses_and_transcripts(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]
    ) -> Tuple[torch.Tensor, List[str]]:
        encoder_out, encoder_lengths = self._encode(waveforms, lengths)
        losses = self._losses(encoder_out, encoder_lengths, targets)
        with torch.no_grad():
            transcripts = self._decode(encoder_out.detach(), encoder_lengths, self.iteration_decoding)
        return losses, transcripts

    # ----------------------------------------------------------------------------------------------------------------
    # ESPnet specifics
    # ----------------------------------------------------------------------------------------------------------------

    def to_training_mode(self) -> None:
        """
        Keep the model in evaluation mode. ART's ImperceptibleASRPyTorch calls this because cuDNN's recurrent layers
        backpropagate only in training mode; ESPnet's Transformer needs no such thing, and training mode would make
        the attack optimise against dropout and SpecAugment instead of the deployed recognizer.
        """
        self._model.eval()

    @property
    def sample_rate(self) -> int:
        """Sample rate the model's front end expects, in Hz."""
        return self._sample_rate

    @property
    def token_list(self) -> List[str]:
        """The model's output tokens."""
        return list(self._model.token_list)

    def tokenize(self, text: str) -> List[int]:
        """Token ids of `text` with the model's tokenizer (no `<sos/eos>`); raises `ValueError` for unknown characters."""
        return self._codec.encode(text)

    def save(self, filename: str, path: Optional[str] = None) -> None:
        """
        Save the model in ESPnet model-zoo layout (`meta.yaml`, `exp/asr_train/config.yaml`, weights, statistics,
        BPE model), loadable with `PyTorchESPnet(model_dir=...)` and by ESPnet's `Speech2Text`.

        :param filename: Directory to write (created if needed).
        :param path: Parent directory of `filename`; if None, `filename` is the full path.
        """
        if self.asr_config is None:
            raise ValueError("save needs the model's config: pass asr_config (the dict the model was built from).")
        config = dict(self.asr_config)
        config["token_type"] = self._codec.token_type
        config["bpemodel"] = self._codec.bpemodel
        if self.lsm_weight is not None:
            config["model_conf"] = {**(config.get("model_conf") or {}), "lsm_weight": float(self.lsm_weight)}
        save_espnet_asr(self._model, config, Path(filename) if path is None else Path(path) / filename)
