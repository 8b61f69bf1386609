"""DeepSpeech2's beam search with a word language model (`decoder_type="beam"`), on the committed models."""

import numpy as np
import pytest

from art_asr_ext.benchmark.language_model import ARPA_FILE, language_model_options
from art_asr_ext.benchmark.presets import LANGUAGE_MODEL_DIR, MODELS_DIR
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.models.ctc import _cached_decoder
from art_asr_ext.metrics.wer import transcripts_wer
from art_asr_ext.models import DeepSpeech2
from art_asr_ext.models.ngram import arpa_vocabulary

CHECKPOINT = MODELS_DIR / "deepspeech2_baseline" / "model.ckpt"
WITH_LM = language_model_options(LANGUAGE_MODEL_DIR, "deepspeech2")


def test_the_language_model_lowers_the_wer_and_speaks_its_vocabulary(embedded_speech, single_torch_thread):
    x, references = embedded_speech
    greedy = PyTorchDeepSpeech2(checkpoint=CHECKPOINT).predict(x)
    beam = PyTorchDeepSpeech2(checkpoint=CHECKPOINT, **WITH_LM).predict(x)
    assert transcripts_wer(references, beam) < transcripts_wer(references, greedy)
    vocabulary = set(arpa_vocabulary(LANGUAGE_MODEL_DIR / ARPA_FILE))
    assert {word for transcript in beam for word in transcript.split()} <= vocabulary


def test_decoding_leaves_the_loss_and_its_gradient_alone(embedded_speech, single_torch_thread):
    x, references = embedded_speech
    model = PyTorchDeepSpeech2(checkpoint=CHECKPOINT).model
    greedy = PyTorchDeepSpeech2(model=model)
    beam = PyTorchDeepSpeech2(model=model, **WITH_LM)
    y = np.array(references[:2])
    np.testing.assert_array_equal(greedy.compute_loss(x[:2], y), beam.compute_loss(x[:2], y))
    for a, b in zip(greedy.loss_gradient(x[:2], y), beam.loss_gradient(x[:2], y)):
        np.testing.assert_array_equal(a, b)


def test_estimators_that_decode_alike_share_one_decoder_and_set_params_builds_another(embedded_speech):
    x, _ = embedded_speech
    _cached_decoder.cache_clear()
    first = PyTorchDeepSpeech2(checkpoint=CHECKPOINT, **WITH_LM)
    first.predict(x[:1])
    second = PyTorchDeepSpeech2(checkpoint=CHECKPOINT, **WITH_LM)
    second.predict(x[:1])
    assert _cached_decoder.cache_info()[:2] == (1, 1)  # (hits, misses)
    second.set_params(alpha=0.0, beam_width=4)
    assert len(second.predict(x[:1])[0]) > 0
    assert _cached_decoder.cache_info()[:2] == (1, 2)


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(decoder_type="viterbi"), r"decoder_type must be one of \('greedy', 'beam'\). Found: 'viterbi'"),
        (dict(decoder_type="beam"), "decoder_type 'beam' needs lm_path, an ARPA language model file. Found: None"),
        (dict(decoder_type="beam", lm_path="no/such.arpa"), "needs lm_path.*Found: 'no/such.arpa'"),
        (dict(lm_path=LANGUAGE_MODEL_DIR / ARPA_FILE), "lm_path is used only by decoder_type 'beam'. Found: "),
        ({**WITH_LM, "beam_width": 0}, "beam_width must be an integer >= 1. Found: 0"),
        ({**WITH_LM, "alpha": float("nan")}, "alpha must be a finite number. Found: nan"),
        ({**WITH_LM, "beta": "1"}, "beta must be a finite number. Found: '1'"),
    ],
)
def test_bad_decoder_settings_are_named(settings, match):
    with pytest.raises(ValueError, match=match):
        PyTorchDeepSpeech2(model=DeepSpeech2(hidden_size=8, hidden_layers=1), **settings)


def test_a_language_model_directory_without_its_files_is_refused(tmp_path):
    with pytest.raises(ValueError, match=f"holding lm.arpa.gz and decoding.json.*Found: '{tmp_path}'"):
        language_model_options(tmp_path, "deepspeech2")
