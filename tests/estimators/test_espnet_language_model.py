"""The Transformer's beam search rescored with a word language model (`PyTorchESPnet(lm_path=...)`), on the
committed models."""

import numpy as np
import pytest
import torch

from art_asr_ext.benchmark.language_model import ARPA_FILE, language_model_options
from art_asr_ext.benchmark.presets import LANGUAGE_MODEL_DIR, MODELS_DIR
from art_asr_ext.estimators.speech_recognition import PyTorchESPnet
from art_asr_ext.metrics.wer import transcripts_wer
from art_asr_ext.models.espnet_decoding import candidate_scores
from art_asr_ext.models.ngram import arpa_vocabulary

MODEL = MODELS_DIR / "transformer_baseline"
WITH_LM = language_model_options(LANGUAGE_MODEL_DIR, "espnet")

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_rescoring_with_the_language_model_lowers_the_wer(embedded_speech):
    x, references = embedded_speech
    plain = PyTorchESPnet(model_dir=MODEL).predict(x)
    rescored = PyTorchESPnet(model_dir=MODEL, **WITH_LM).predict(x)
    assert transcripts_wer(references, rescored) < transcripts_wer(references, plain)


def test_without_weight_the_language_model_only_adds_candidates(embedded_speech):
    """At lm_weight 0 the joint score alone chooses, among more candidates than the joint search's own best."""
    x, _ = embedded_speech
    vocabulary = set(arpa_vocabulary(LANGUAGE_MODEL_DIR / ARPA_FILE))
    estimator = PyTorchESPnet(model_dir=MODEL, lm_path=WITH_LM["lm_path"], lm_weight=0.0, word_score=0.0)
    transcripts = estimator.predict(x[:3])
    assert all(isinstance(t, str) and t for t in transcripts)
    # heavy weight: every chosen word is one the language model knows, as the CTC search spells
    estimator.set_params(lm_weight=50.0)
    assert all(set(t.split()) <= vocabulary for t in estimator.predict(x[:3]))


def test_decoding_under_bf16_autocast_adds_its_scores_in_float32(embedded_speech):
    # Under autocast the encoder output is bf16; the hypotheses' scores must not be (bf16 rounds a log-likelihood of
    # -50 to steps of 0.25, and the rescoring wrote float32 losses into bf16 buffers)
    x, references = embedded_speech
    estimator = PyTorchESPnet(model_dir=MODEL, **WITH_LM)
    exact = transcripts_wer(references[:4], estimator.predict(x[:4]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = transcripts_wer(references[:4], estimator.predict(x[:4]))
        memory = torch.randn(40, 128, dtype=torch.bfloat16)
        attention, ctc = candidate_scores(estimator.model, memory, [[5, 6, 7], [8]])
    assert attention.dtype == ctc.dtype == torch.float32 and torch.isfinite(attention).all()
    assert rounded <= exact + 0.1  # rounding, not another decoder


def test_decoding_leaves_the_loss_and_its_gradient_alone(embedded_speech):
    x, references = embedded_speech
    plain = PyTorchESPnet(model_dir=MODEL)
    rescored = PyTorchESPnet(model_dir=MODEL, **WITH_LM)
    y = np.array(references[:2])
    np.testing.assert_array_equal(plain.compute_loss(x[:2], y), rescored.compute_loss(x[:2], y))
    for a, b in zip(plain.loss_gradient(x[:2], y), rescored.loss_gradient(x[:2], y)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(lm_path="no/such.arpa"), "lm_path must be an ARPA language model file. Found: 'no/such.arpa'"),
        ({**WITH_LM, "lm_weight": float("inf")}, "lm_weight must be a finite number. Found: inf"),
        ({**WITH_LM, "word_score": True}, "word_score must be a finite number. Found: True"),
    ],
)
def test_bad_language_model_settings_are_named(settings, match):
    with pytest.raises(ValueError, match=match):
        PyTorchESPnet(model_dir=MODEL, **settings)


def test_options_for_an_estimator_type_without_language_models_are_refused():
    with pytest.raises(
        ValueError, match=r"estimator_type must be one of \('deepspeech2', 'espnet'\). Found: 'whisper'"
    ):
        language_model_options(LANGUAGE_MODEL_DIR, "whisper")
