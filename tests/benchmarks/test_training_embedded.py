"""
The six-model training plan (the GPU script's path, in its `tiny` profile on the CPU): an Opus-packed corpus, every
stage trained in turn in subprocesses, variants from their baselines, then published in the models' native layouts.
"""

import json
from pathlib import Path

import numpy as np

from art_asr_ext.benchmark.presets import EMBEDDED_SET
from art_asr_ext.benchmark.training import embedded, pack
from art_asr_ext.benchmark.training.recipes import STATE_FILE
from art_asr_ext.data.librispeech import load_librispeech
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet


def packed_corpus(root: Path) -> Path:
    for split in ("train-synth", "dev-synth"):
        stats = pack.pack_split(
            EMBEDDED_SET, root / split, 8 if split == "train-synth" else 4, pack.DEFAULT_COMPRESSION
        )
        kbps = stats["bytes"] * 8 / stats["seconds"] / 1000
        assert 12 <= kbps <= 24, kbps  # the 16 kbit/s the GPU path's size budget assumes
    return root


def test_packed_audio_keeps_length_and_transcripts(tmp_path):
    root = packed_corpus(tmp_path / "packed")
    original = load_librispeech(EMBEDDED_SET, max_utterances=8)
    packed = load_librispeech(root / "train-synth", audio_extension=".opus")
    assert [u.utterance_id for u in packed] == [u.utterance_id for u in original]
    assert [u.transcript for u in packed] == [u.transcript for u in original]
    for a, b in zip(original, packed):
        assert len(a.waveform) == len(b.waveform)
        # Lossy, but the same speech: the waveforms correlate strongly.
        assert np.corrcoef(a.waveform, b.waveform)[0, 1] > 0.8


def test_all_six_models_train_in_pieces_and_publish(tmp_path):
    corpus = packed_corpus(tmp_path / "packed")
    work, models = tmp_path / "work", tmp_path / "models"
    common = ["--corpus", str(corpus), "--work", str(work), "--audio-extension", ".opus"]
    assert embedded.main(common + ["--profile", "tiny", "--threads", "1", "--hours", "0.5"]) == 0
    for stage in embedded.STAGES:
        status = embedded.run_status(work / stage.name)
        assert status["finished"], stage.name
        assert (work / stage.name / STATE_FILE).is_file()
        run = json.loads((work / stage.name / "training_run.json").read_text())
        assert run["train_curve"] and run["history"]
        if stage.init:
            assert run["initialised_from"] == str(work / stage.init) and run["previous_run"]["variant"] == "baseline"
    assert embedded.run_status(work / "deepspeech2_waveaug")["steps"] == 2

    assert embedded.main(common + ["--publish", "--models-dir", str(models)]) == 0
    for stage in embedded.STAGES:
        directory = models / stage.name
        assert (directory / "training_run.json").is_file() and not (directory / STATE_FILE).exists()
        if stage.system == "deepspeech2":
            PyTorchDeepSpeech2(checkpoint=directory / "model.ckpt")
        else:
            assert PyTorchESPnet(model_dir=directory).asr_config["normalize"] == "global_mvn"
