"""
This module implements a black-box ART speech recognizer for CMU PocketSphinx: an HMM-GMM acoustic model with a
pronunciation dictionary and an n-gram language model, a system of a different family from the neural recognizers
of this package, with no gradient an attacker could follow.

The ``pocketsphinx`` wheel on PyPI ships CMU's US English acoustic model, dictionary and language model, so the
recognizer runs offline with nothing else installed. It is a target for transfer attacks: adversarial examples made on
a differentiable system and then transcribed here.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import importlib.util
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np
from art.estimators.estimator import BaseEstimator
from art.estimators.speech_recognition.speech_recognizer import SpeechRecognizerMixin

from art_asr_ext.estimators.speech_recognition.recognizer_hooks import RecognizerHooks
from art_asr_ext.utils.audio import check_waveforms
from art_asr_ext.utils.text import to_librispeech_text

#: Why gradients are refused, shared by every method that would need one.
_BLACK_BOX = (
    "PocketSphinxRecognizer is a black-box recognizer (HMM-GMM decoding has no gradient with respect to the "
    "waveform), so it cannot be attacked directly; evaluate adversarial examples made on a differentiable system on "
    "it instead, e.g. a transfer row of the benchmark runner (`transfer: {{sources: [...], targets: [...]}}`). "
    "Not available: {name}."
)


class PocketSphinxRecognizer(RecognizerHooks, SpeechRecognizerMixin, BaseEstimator):
    """
    ART speech recognizer for CMU PocketSphinx 5, for predictions only (a black-box transfer target).

    Inputs are float waveforms in [-1, 1] at `sample_rate` (16 kHz for the bundled US English model), validated as by
    the package's differentiable recognizers. Each utterance is quantised to 16-bit PCM, as PocketSphinx expects, and
    decoded on its own with the full-utterance search (PocketSphinx has no batched decoding), with its feature
    computation reset first: PocketSphinx's live cepstral mean normalisation otherwise carries what it learnt from
    each utterance into the next, so a transcript would depend on what was decoded before it. Transcripts are
    normalised to the LibriSpeech convention: upper case letters, apostrophes and spaces.

    `loss_gradient`, `compute_loss` and `fit` raise `NotImplementedError`: the recognizer has no loss an attacker
    could differentiate. ART's gradient attacks refuse it at construction, as it lacks `LossGradientsMixin`.

    | Paper link: https://arxiv.org/abs/2103.17122
    """

    estimator_params = BaseEstimator.estimator_params + [
        "acoustic_model",
        "dictionary",
        "language_model",
        "sample_rate",
        "decoder_options",
    ]

    def __init__(
        self,
        acoustic_model: Optional[Union[str, os.PathLike]] = None,
        dictionary: Optional[Union[str, os.PathLike]] = None,
        language_model: Optional[Union[str, os.PathLike]] = None,
        sample_rate: int = 16000,
        decoder_options: Optional[Mapping[str, Any]] = None,
        clip_values: Optional[Tuple[float, float]] = (-1.0, 1.0),
        preprocessing_defences: Any = None,
        postprocessing_defences: Any = None,
        preprocessing: Any = None,
    ) -> None:
        """
        :param acoustic_model: Directory of a PocketSphinx acoustic model (default: the wheel's US English model).
        :param dictionary: Pronunciation dictionary (default: the wheel's CMUdict).
        :param language_model: N-gram language model, ARPA or binary (default: the wheel's US English model).
        :param sample_rate: Sample rate of the acoustic model and of the input waveforms.
        :param decoder_options: Further PocketSphinx configuration, e.g. `{"maxhmmpf": 3000}` for a faster search.
                                PocketSphinx checks their names, not their values: with 5.1.1, a very narrow beam
                                (`{"beam": 1e-5, "wbeam": 1e-3}`) kills the process with a floating-point exception
                                in its C search, which Python cannot catch.
        :param clip_values: `(min, max)` of the waveform samples.
        :param preprocessing_defences: Not supported (the package's defences are torch preprocessors for
                                       differentiable recognizers); must be None.
        :param postprocessing_defences: Not supported; must be None.
        :param preprocessing: Not supported; must be None.
        """
        if importlib.util.find_spec("pocketsphinx") is None:  # only this recognizer needs it
            raise ImportError(
                "PocketSphinxRecognizer needs the pocketsphinx package: pip install 'art-asr-ext[blackbox]'."
            )

        self.acoustic_model = acoustic_model
        self.dictionary = dictionary
        self.language_model = language_model
        self._sample_rate = sample_rate
        self.decoder_options = {} if decoder_options is None else decoder_options
        super().__init__(
            model=None,
            clip_values=clip_values,
            preprocessing_defences=preprocessing_defences,
            postprocessing_defences=postprocessing_defences,
            preprocessing=preprocessing,
        )
        self._check_params()
        self._model = self._build_decoder()

    @property
    def sample_rate(self) -> int:
        """Sample rate of the input waveforms."""
        return self._sample_rate

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """Waveforms have a variable length: `(None,)`."""
        return (None,)  # type: ignore

    def _check_params(self) -> None:
        super()._check_params()
        if isinstance(self._sample_rate, bool) or not isinstance(self._sample_rate, (int, np.integer)):
            raise ValueError(f"sample_rate must be a positive integer. Found: {self._sample_rate!r}")
        if self._sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer. Found: {self._sample_rate!r}")
        if self.clip_values is not None and not float(self.clip_values[0]) < float(self.clip_values[1]):
            raise ValueError(f"clip_values must be (min, max) with min < max. Found: {self.clip_values}")
        for name in ("preprocessing_defences", "postprocessing_defences", "preprocessing"):
            if getattr(self, name) is not None:
                raise ValueError(
                    f"{name} is not supported by PocketSphinxRecognizer (a black-box recognizer that decodes the "
                    f"waveform it is given, while this package's defences are torch preprocessors); pass None. "
                    f"Found: {getattr(self, name)!r}"
                )
        for name, directory in (
            ("acoustic_model", True),
            ("dictionary", False),
            ("language_model", False),
        ):
            path = getattr(self, name)
            if path is None:
                continue
            if not (Path(path).is_dir() if directory else Path(path).is_file()):
                kind = "directory" if directory else "file"
                raise ValueError(f"{name} must be an existing {kind}. Found: {os.fspath(path)!r}")
        if not isinstance(self.decoder_options, Mapping):
            raise ValueError(f"decoder_options must be a mapping. Found: {self.decoder_options!r}")
        for key in ("hmm", "dict", "lm", "samprate"):
            if key in self.decoder_options:
                raise ValueError(
                    f"decoder_options[{key!r}] is set from the recognizer's own parameters (acoustic_model, "
                    f"dictionary, language_model, sample_rate); use those instead."
                )

    def set_params(self, **kwargs) -> None:
        """
        Set parameters and rebuild the decoder, so that a new model, dictionary or option takes effect.

        :param kwargs: Any of `estimator_params`.
        """
        super().set_params(**kwargs)
        self._model = self._build_decoder()

    def _decoder_config(self) -> Dict[str, Any]:
        import pocketsphinx

        model_dir = pocketsphinx.get_model_path()
        english = os.path.join(model_dir, "en-us")
        return {
            "hmm": os.fspath(self.acoustic_model) if self.acoustic_model else os.path.join(english, "en-us"),
            "dict": os.fspath(self.dictionary) if self.dictionary else os.path.join(english, "cmudict-en-us.dict"),
            "lm": os.fspath(self.language_model) if self.language_model else os.path.join(english, "en-us.lm.bin"),
            "samprate": int(self._sample_rate),
            "loglevel": "FATAL",  # PocketSphinx logs every utterance's search statistics to stderr otherwise
            **dict(self.decoder_options),
        }

    def _build_decoder(self):
        import pocketsphinx

        settings = self._decoder_config()
        try:
            return pocketsphinx.Decoder(**settings)
        except (KeyError, ValueError, RuntimeError) as error:
            raise ValueError(f"PocketSphinx rejected its configuration {settings}: {error}") from error

    def _decode(self, waveform: np.ndarray) -> str:
        # PocketSphinx takes 16-bit PCM; the float-to-int scale of soundfile and libsndfile.
        pcm = np.clip(np.round(waveform.astype(np.float64) * 32768.0), -32768, 32767).astype("<i2")
        self._model.reinit_feat()  # as a fresh decoder's features: the live CMN must not carry the last utterance
        self._model.start_utt()
        self._model.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        self._model.end_utt()
        hypothesis = self._model.hyp()
        return to_librispeech_text(hypothesis.hypstr) if hypothesis is not None else ""

    def predict(self, x: np.ndarray, batch_size: int = 1, **kwargs) -> np.ndarray:
        """
        Transcribe speech.

        :param x: Numpy object array of 1-D float waveforms in [-1, 1] at `sample_rate`, or a 2-D float array.
        :param batch_size: Accepted for ART's interface; PocketSphinx decodes one utterance at a time.
        :return: Numpy array of transcripts, one per utterance.
        """
        waveforms: List[np.ndarray] = check_waveforms(x)
        return np.array([self._decode(waveform) for waveform in waveforms], dtype=str)

    def fit(self, x: np.ndarray, y: np.ndarray, **kwargs) -> None:
        """
        Not supported: PocketSphinx models are trained with SphinxTrain.

        :raises NotImplementedError: Always.
        """
        raise NotImplementedError(
            "PocketSphinxRecognizer cannot be trained here; adapt or train its acoustic model with SphinxTrain and "
            "pass its directory as acoustic_model."
        )

    def loss_gradient(self, x: np.ndarray, y: np.ndarray, **kwargs) -> np.ndarray:
        """
        Not supported: the recognizer is black-box.

        :raises NotImplementedError: Always, pointing to transfer attacks.
        """
        raise NotImplementedError(_BLACK_BOX.format(name="loss_gradient"))

    def compute_loss(self, x: np.ndarray, y: np.ndarray, **kwargs) -> np.ndarray:
        """
        Not supported: the recognizer is black-box.

        :raises NotImplementedError: Always, pointing to transfer attacks.
        """
        raise NotImplementedError(_BLACK_BOX.format(name="compute_loss"))

    def get_activations(self, x: np.ndarray, layer: Union[int, str], batch_size: int, framework: bool = False):
        """
        Not supported: the recognizer is black-box.

        :raises NotImplementedError: Always.
        """
        raise NotImplementedError(_BLACK_BOX.format(name="get_activations"))
