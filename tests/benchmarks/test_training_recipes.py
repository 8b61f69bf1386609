"""The training recipes, run for a few steps on the embedded evaluation set at the `tiny` size."""

import json
import math

import numpy as np
import pytest
import torch

from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet
from benchmarks import model_cards
from benchmarks.training.recipes import DEEPSPEECH_CHECKPOINT, Corpus, Recipe, Schedule


@pytest.fixture(scope="module")
def embedded_set():
    corpus = Corpus.load(model_cards.EMBEDDED_SET)
    assert len(corpus) == 30 and 1.5 < corpus.hours * 60 < 3.0  # 30 utterances, about 2 minutes of speech
    return corpus


def test_schedule_warms_up_then_decays():
    schedule = Schedule(learning_rate=1e-3, warmup_steps=10, final_lr_ratio=0.1)
    rates = [schedule.learning_rate_at(step, 100) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert schedule.learning_rate_at(100, 100) == pytest.approx(1e-4)


def test_deepspeech2_rs_aug_trains_and_saves_a_v3_checkpoint(embedded_set, tmp_path, single_torch_thread):
    torch.manual_seed(0)
    recipe = Recipe("deepspeech2", "rs_aug", size="tiny")
    defences = recipe.estimator().preprocessing_defences
    assert (
        len(defences) == 1
        and defences[0].sigma == (0.0, 0.3)
        and defences[0].apply_fit
        and not defences[0].apply_predict
    )
    before = [p.detach().clone() for p in recipe.model.parameters()]
    train, dev = embedded_set.subset(np.arange(8)), embedded_set.subset(np.arange(8, 12))
    schedule = Schedule(
        epochs=2, batch_size=4, learning_rate=1e-3, warmup_steps=1, eval_every_steps=2, dev_utterances=4
    )
    run = recipe.fit(train, dev, schedule, tmp_path, log=lambda line: None, data={"train": "embedded"})

    assert run.steps == 4 and run.epochs_done == 2 and len(run.history) == 2
    assert all(math.isfinite(h["dev_loss"]) for h in run.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, recipe.model.parameters()))
    saved = json.loads((tmp_path / "training_run.json").read_text())
    assert saved["variant"] == "rs_aug" and saved["data"] == {"train": "embedded"} and saved["train_utterances"] == 8
    reloaded = PyTorchDeepSpeech2(checkpoint=tmp_path / DEEPSPEECH_CHECKPOINT)
    assert reloaded.model.hidden_size == 16 and reloaded.model.spectrogram.window_size == 0.01


def test_transformer_no_lsm_fine_tunes_from_a_saved_model(embedded_set, tmp_path, single_torch_thread):
    torch.manual_seed(0)
    train, dev = embedded_set.subset(np.arange(4)), embedded_set.subset(np.arange(4, 6))
    schedule = Schedule(epochs=1, batch_size=4, warmup_steps=1, eval_every_steps=1, dev_utterances=2)
    Recipe("transformer", "baseline", size="tiny").fit(train, dev, schedule, tmp_path / "base", log=lambda line: None)
    assert PyTorchESPnet(model_dir=tmp_path / "base").asr_config["model_conf"]["lsm_weight"] == 0.1

    recipe = Recipe("transformer", "no_lsm", init=tmp_path / "base")
    assert recipe.model_config["encoder_conf"]["output_size"] == 32  # the saved architecture, not the size label
    estimator = recipe.estimator()
    assert estimator.lsm_weight == 0.0 and estimator.model.encoder.output_size() == 32
    run = recipe.fit(train, dev, schedule, tmp_path / "no_lsm", log=lambda line: None)
    assert run.initialised_from == str(tmp_path / "base")
    assert PyTorchESPnet(model_dir=tmp_path / "no_lsm").asr_config["model_conf"]["lsm_weight"] == 0.0


def test_unknown_variants_are_refused():
    with pytest.raises(ValueError, match="Unknown system/variant"):
        Recipe("deepspeech2", "no_lsm")
    with pytest.raises(ValueError, match="Unknown size"):
        Recipe("transformer", "baseline", size="huge")
