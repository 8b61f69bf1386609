"""The training recipes, run for a few steps on the embedded evaluation set at the `tiny` size."""

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch

from art_asr_ext.benchmark.training.recipes import (
    DEEPSPEECH_CHECKPOINT,
    LAST_WEIGHTS,
    MODEL_SIZES,
    STATE_FILE,
    VARIANTS,
    Corpus,
    Recipe,
    Schedule,
    TrainingRun,
    Variant,
    epoch_batches,
    write_feats_stats,
)
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet
from art_asr_ext.models.dropout import FastCPUDropout
from art_asr_ext.benchmark.training import embedded
from benchmarks import model_cards

FRONTEND = {"fs": 16000, "n_fft": 512, "hop_length": 160, "n_mels": 80}


@pytest.fixture(scope="module")
def embedded_set():
    corpus = Corpus.load(model_cards.EMBEDDED_SET)
    assert len(corpus) == 30 and 1.5 < corpus.hours * 60 < 3.0  # 30 utterances, about 2 minutes of speech
    return corpus


@pytest.fixture(scope="module")
def stats_file(embedded_set, tmp_path_factory):
    return write_feats_stats(embedded_set, FRONTEND, tmp_path_factory.mktemp("stats") / "feats_stats.npz")


def quiet(line: str) -> None:
    pass


def test_schedule_warms_up_then_decays_over_the_whole_run():
    schedule = Schedule(max_steps=100, learning_rate=1e-3, warmup_steps=10, final_lr_ratio=0.1)
    rates = [schedule.learning_rate_at(step) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert schedule.learning_rate_at(100) == pytest.approx(1e-4)
    ctc = Schedule(max_steps=100, warmup_steps=1, ctc_weight_start=0.8, ctc_warmup_steps=10)
    assert ctc.ctc_weight_at(0, 0.3) == pytest.approx(0.8) and ctc.ctc_weight_at(5, 0.3) == pytest.approx(0.55)
    assert ctc.ctc_weight_at(10, 0.3) == 0.3 == ctc.ctc_weight_at(50, 0.3)


def test_bad_schedules_are_refused_by_name():
    with pytest.raises(ValueError, match="warmup_steps"):
        Schedule(max_steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="max_grad_norm"):
        Schedule(max_grad_norm=0)
    with pytest.raises(ValueError, match=r"restarts is out of range. Found: \(95,\)"):
        Schedule(max_steps=100, warmup_steps=10, restarts=(95,))  # no room for the restart's warm-up
    with pytest.raises(ValueError, match="restart_lr_ratio"):
        Schedule(max_steps=100, warmup_steps=10, restarts=(50,), restart_lr_ratio=0.0)


def test_a_restart_lengthens_a_schedule_without_changing_its_steps_so_far():
    first = Schedule(max_steps=100, learning_rate=1e-3, warmup_steps=10, final_lr_ratio=0.1)
    longer = Schedule(max_steps=200, learning_rate=1e-3, warmup_steps=10, final_lr_ratio=0.1, restarts=(100,))
    assert [longer.learning_rate_at(step) for step in range(100)] == [
        first.learning_rate_at(step) for step in range(100)
    ]
    # From the restart: a warm-up to half the peak, then a cosine down to the same floor at the new end.
    assert longer.learning_rate_at(100) == pytest.approx(5e-5) and longer.learning_rate_at(109) == pytest.approx(5e-4)
    assert longer.learning_rate_at(199) == pytest.approx(5e-5, rel=1e-2)
    assert longer.extends(asdict(first)) and not first.extends(asdict(longer))
    assert not longer.extends({**asdict(first), "max_steps": 90})  # it would have to restart at 90
    assert not longer.extends({**asdict(first), "learning_rate": 2e-3})
    assert not longer.extends({"max_steps": 100, "epochs": 5})  # another recipe's record
    # A record written before restarts existed reads as a schedule without them.
    old_record = {key: value for key, value in asdict(first).items() if not key.startswith("restart")}
    assert Schedule.record(old_record) == asdict(first) and longer.extends(old_record)


def test_a_finished_run_trains_on_when_its_schedule_gains_a_restart_at_its_end(
    embedded_set, tmp_path, single_torch_thread
):
    train, dev = embedded_set.subset(np.arange(8)), embedded_set.subset(np.arange(8, 10))
    first = Schedule(max_steps=4, batch_size=4, warmup_steps=1, eval_every_steps=2, dev_utterances=2)
    longer = Schedule(max_steps=6, batch_size=4, warmup_steps=1, eval_every_steps=2, dev_utterances=2, restarts=(4,))
    run = Recipe("deepspeech2", "baseline", size="tiny").fit(train, dev, first, tmp_path / "a", log=quiet)
    assert run.finished
    # The same machine resumes its state (and optimizer) from step 4; another one continues from the record's best
    # weights, at their step.
    for directory, options, from_step in (
        (tmp_path / "a", {"resume": True}, 4),
        (tmp_path / "b", {"continue_run": run}, run.best_step),
    ):
        recipe = Recipe("deepspeech2", "baseline", size="tiny", init=None if "resume" in options else tmp_path / "a")
        lines = []
        extended = recipe.fit(train, dev, longer, directory, log=lines.append, **options)
        assert "schedule extended from 4 to 6 steps (restarts (4,))" in lines
        assert extended.finished and extended.steps == 6 and extended.schedule == asdict(longer)
        assert extended.pieces[-1]["schedule_extended_from"] == 4 and extended.pieces[-1]["from_step"] == from_step
        assert [entry["step"] for entry in extended.history] == [step for step in (2, 4) if step <= from_step] + [6]
    # A schedule that does not extend the run's is still refused.
    other = Schedule(max_steps=6, batch_size=4, warmup_steps=1, eval_every_steps=2, dev_utterances=2, restarts=(3,))
    with pytest.raises(ValueError, match="schedule.restarts"):
        Recipe("deepspeech2", "baseline", size="tiny").fit(train, dev, other, tmp_path / "a", log=quiet, resume=True)


def test_sortagrad_then_seeded_shuffles(embedded_set):
    lengths = [len(w) for w in embedded_set.waveforms]
    schedule = Schedule(max_steps=10, warmup_steps=1, seed=3)
    first = epoch_batches(lengths, 4, 0, schedule)
    assert [lengths[b[0]] for b in first] == sorted(lengths[b[0]] for b in first)  # shortest first
    assert [b.tolist() for b in epoch_batches(lengths, 4, 1, schedule)] == [
        b.tolist() for b in epoch_batches(lengths, 4, 1, schedule)
    ]
    assert [b.tolist() for b in epoch_batches(lengths, 4, 1, schedule)] != [
        b.tolist() for b in epoch_batches(lengths, 4, 2, schedule)
    ]
    assert sorted(i for b in first for i in b) == list(range(len(lengths)))


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
        max_steps=4, batch_size=4, learning_rate=1e-3, warmup_steps=1, eval_every_steps=2, dev_utterances=4
    )
    run = recipe.fit(train, dev, schedule, tmp_path, log=quiet, data={"train": "embedded"}, log_every_steps=1)

    assert run.steps == 4 and run.finished and len(run.history) == 2 and len(run.train_curve) == 4
    assert all(math.isfinite(h["dev_loss"]) and math.isfinite(h["train_loss"]) for h in run.history)
    assert [point["step"] for point in run.train_curve] == [1, 2, 3, 4]
    assert any(not torch.equal(a, b) for a, b in zip(before, recipe.model.parameters()))
    saved = json.loads((tmp_path / "training_run.json").read_text())
    assert saved["variant"] == "rs_aug" and saved["data"] == {"train": "embedded"} and saved["train_utterances"] == 8
    assert len(saved["pieces"]) == 1 and saved["pieces"][0]["to_step"] == 4
    reloaded = PyTorchDeepSpeech2(checkpoint=tmp_path / DEEPSPEECH_CHECKPOINT)
    assert reloaded.model.hidden_size == 16 and reloaded.model.spectrogram.window_size == 0.01


def _train_in_pieces(system, variant, train, dev, schedule, out, pieces, stats_file=None):
    """Train `schedule.max_steps` steps in the given pieces (None: the rest), each in a fresh Recipe."""
    run = None
    for number, piece in enumerate(pieces):
        torch.manual_seed(1234 + number)  # a new process would start from other RNG states
        recipe = Recipe(system, variant, size="tiny", stats_file=stats_file, decoding="greedy")
        run = recipe.fit(train, dev, schedule, out, log=quiet, resume=number > 0, stop_after_steps=piece)
    state = torch.load(out / STATE_FILE, weights_only=True)
    return run, state["model"]


@pytest.mark.parametrize(
    "system, variant",
    [("deepspeech2", "rs_aug"), ("transformer", "baseline")],
    ids=["deepspeech2-noise-augmentation", "transformer-dropout"],
)
def test_two_pieces_give_the_weights_of_one(system, variant, embedded_set, stats_file, tmp_path, single_torch_thread):
    """N steps in one piece and the same N steps in two pieces: the same weights (max abs difference <= 1e-6)."""
    train, dev = embedded_set.subset(np.arange(12)), embedded_set.subset(np.arange(12, 14))
    # 3 batches an epoch, so the pieces cut an epoch in the middle and cross an epoch boundary (new data order).
    schedule = Schedule(max_steps=7, batch_size=4, warmup_steps=2, eval_every_steps=5, dev_utterances=2)
    stats = stats_file if system == "transformer" else None
    whole, weights = _train_in_pieces(system, variant, train, dev, schedule, tmp_path / "one", [None], stats)
    split, split_weights = _train_in_pieces(system, variant, train, dev, schedule, tmp_path / "two", [4, None], stats)

    assert whole.steps == split.steps == 7 and split.finished and len(split.pieces) == 2
    assert split.pieces[0]["to_step"] == 4 and split.pieces[1]["from_step"] == 4
    difference = max(float((weights[key].double() - split_weights[key].double()).abs().max()) for key in weights)
    assert difference <= 1e-6
    # The first piece ended between two scheduled evaluations, so it was evaluated there too.
    assert [(h["step"], h.get("piece_end")) for h in split.history] == [(4, True), (5, None), (7, None)]
    scheduled = [h["dev_wer"] for h in split.history if not h.get("piece_end")]
    assert [h["dev_wer"] for h in whole.history] == scheduled
    assert [p["train_loss"] for p in whole.train_curve] == [p["train_loss"] for p in split.train_curve]
    # The control: a different data order does change the weights, so the comparison above can fail.
    shuffled = Schedule(max_steps=7, batch_size=4, warmup_steps=2, eval_every_steps=5, dev_utterances=2, seed=1)
    _, other = _train_in_pieces(system, variant, train, dev, shuffled, tmp_path / "other", [None], stats)
    assert max(float((weights[key].double() - other[key].double()).abs().max()) for key in weights) > 1e-4


def test_resume_refuses_another_run_and_a_fresh_start_refuses_a_state(embedded_set, tmp_path, single_torch_thread):
    train, dev = embedded_set.subset(np.arange(8)), embedded_set.subset(np.arange(8, 10))
    schedule = Schedule(max_steps=4, batch_size=4, warmup_steps=1, eval_every_steps=4, dev_utterances=2)
    Recipe("deepspeech2", "baseline", size="tiny").fit(train, dev, schedule, tmp_path, log=quiet, stop_after_steps=1)
    with pytest.raises(FileExistsError, match="--resume"):
        Recipe("deepspeech2", "baseline", size="tiny").fit(train, dev, schedule, tmp_path, log=quiet)
    longer = Schedule(max_steps=8, batch_size=4, warmup_steps=1, eval_every_steps=4, dev_utterances=2)
    with pytest.raises(ValueError, match="schedule"):
        Recipe("deepspeech2", "baseline", size="tiny").fit(train, dev, longer, tmp_path, log=quiet, resume=True)
    with pytest.raises(ValueError, match="training corpus"):
        Recipe("deepspeech2", "baseline", size="tiny").fit(
            train.subset(np.arange(7)), dev, schedule, tmp_path, log=quiet, resume=True
        )


def test_a_changed_variant_or_model_never_resumes_or_continues_the_old_run(
    embedded_set, tmp_path, single_torch_thread, monkeypatch
):
    train, dev = embedded_set.subset(np.arange(8)), embedded_set.subset(np.arange(8, 10))
    schedule = Schedule(max_steps=4, batch_size=4, warmup_steps=1, eval_every_steps=2, dev_utterances=2)
    run = Recipe("deepspeech2", "baseline", size="tiny").fit(
        train, dev, schedule, tmp_path / "first", log=quiet, stop_after_steps=2
    )
    assert run.variant_settings == {
        "rs_sigma": None,
        "waveaug": False,
        "waveaug_beside_clean": False,
        "lsm_weight": None,
        "feature_masks": None,
    }
    assert (
        json.loads((tmp_path / "first" / "training_run.json").read_text())["variant_settings"] == run.variant_settings
    )

    with monkeypatch.context() as patch:  # the same variant name, now with noise augmentation
        patch.setitem(VARIANTS["deepspeech2"], "baseline", Variant("DeepSpeech2, noisy", rs_sigma=(0.0, 0.1)))
        changed = Recipe("deepspeech2", "baseline", size="tiny")
        with pytest.raises(ValueError, match=r"another run: recipe.variant_settings.rs_sigma: expected \[0.0, 0.1\]"):
            changed.fit(train, dev, schedule, tmp_path / "first", log=quiet, resume=True)
        continued = Recipe("deepspeech2", "baseline", init=tmp_path / "first")
        with pytest.raises(
            ValueError, match=r"another recipe: variant_settings.rs_sigma: expected \[0.0, 0.1\], found"
        ):
            continued.fit(train, dev, schedule, tmp_path / "second", log=quiet, continue_run=run)
    with monkeypatch.context() as patch:  # the same variant, on a wider model
        patch.setitem(MODEL_SIZES["deepspeech2"], "tiny", {**MODEL_SIZES["deepspeech2"]["tiny"], "hidden_size": 24})
        with pytest.raises(ValueError, match="another run: model.hidden_size: expected 24, found 16"):
            Recipe("deepspeech2", "baseline", size="tiny").fit(
                train, dev, schedule, tmp_path / "first", log=quiet, resume=True
            )
    # Unchanged, the run resumes, also from a state written before a variant setting existed (it trained at the
    # setting's default).
    state_file = tmp_path / "first" / STATE_FILE
    state = torch.load(state_file, weights_only=True)
    del state["recipe"]["variant_settings"]["waveaug_beside_clean"]
    torch.save(state, state_file)
    run = Recipe("deepspeech2", "baseline", size="tiny").fit(
        train, dev, schedule, tmp_path / "first", log=quiet, resume=True
    )
    assert run.finished and run.steps == 4


def test_continuing_a_published_run_goes_on_from_its_best_step_and_refuses_another_recipe(
    embedded_set, tmp_path, single_torch_thread
):
    train, dev = embedded_set.subset(np.arange(8)), embedded_set.subset(np.arange(8, 10))
    schedule = Schedule(max_steps=6, batch_size=4, warmup_steps=1, eval_every_steps=2, dev_utterances=2)
    # Its best weights are a step behind its last one (no evaluation at the end of the piece).
    published = Recipe("deepspeech2", "baseline", size="tiny").fit(
        train, dev, schedule, tmp_path / "first", log=quiet, stop_after_steps=3, evaluate_at_piece_end=False
    )
    assert (published.steps, published.best_step) == (3, 2)

    recipe = Recipe("deepspeech2", "baseline", init=tmp_path / "first")
    lines = []
    run = recipe.fit(train, dev, schedule, tmp_path / "second", log=lines.append, continue_run=published)
    assert "from its published weights at step 2/6" in lines[0]
    assert run.finished and run.steps == 6 and [entry["step"] for entry in run.history] == [2, 4, 6]
    assert run.pieces[-1]["from_step"] == 2 and run.pieces[-1]["optimizer_restarted"] == {"warmup_steps": 200}

    longer = Schedule(max_steps=8, batch_size=4, warmup_steps=1, eval_every_steps=2, dev_utterances=2)
    with pytest.raises(ValueError, match=r"another recipe: schedule.max_steps: expected 8, found 6"):
        recipe.fit(train, dev, longer, tmp_path / "third", log=quiet, continue_run=published)
    with pytest.raises(ValueError, match="nothing to continue"):
        recipe.fit(train, dev, schedule, tmp_path / "third", log=quiet, continue_run=run)
    with pytest.raises(FileExistsError, match="resume it"):
        recipe.fit(train, dev, schedule, tmp_path / "first", log=quiet, continue_run=published)

    # A WAVEAUG run goes on only with as many re-synthesised utterances (the caller's data) as it was trained with.
    waveaug = Recipe("deepspeech2", "waveaug", size="tiny", resynthesised_utterances=4).fit(
        train, dev, schedule, tmp_path / "waveaug", log=quiet, stop_after_steps=2
    )
    assert waveaug.resynthesised_utterances == 4
    with pytest.raises(ValueError, match="another recipe: resynthesised_utterances: expected 3, found 4"):
        Recipe("deepspeech2", "waveaug", init=tmp_path / "waveaug", resynthesised_utterances=3).fit(
            train, dev, schedule, tmp_path / "fewer", log=quiet, continue_run=waveaug
        )
    with pytest.raises(ValueError, match=r"for a WAVEAUG variant \(deepspeech2/baseline is not one\). Found: 4"):
        Recipe("deepspeech2", "baseline", size="tiny", resynthesised_utterances=4)


def test_the_record_beside_new_best_weights_names_them_while_the_run_goes_on(
    embedded_set, tmp_path, single_torch_thread
):
    # Publishing or checkpointing a run directory while it trains copies the weights with the record beside them.
    train, dev = embedded_set.subset(np.arange(8)), embedded_set.subset(np.arange(8, 10))
    schedule = Schedule(max_steps=4, batch_size=4, warmup_steps=1, eval_every_steps=2, dev_utterances=2)
    seen = {}

    def log(line: str) -> None:
        if line.startswith("step 3 "):  # after the evaluation at step 2, the first, so the best so far
            seen.update(json.loads((tmp_path / "run" / "training_run.json").read_text()))

    Recipe("deepspeech2", "baseline", size="tiny").fit(
        train, dev, schedule, tmp_path / "run", log=log, log_every_steps=1
    )
    assert (seen["best_step"], seen["steps"]) == (2, 2) and seen["history"][-1]["step"] == 2
    assert seen["pieces"][-1]["to_step"] == 2 and not seen["finished"]


def test_a_checkpoint_past_its_best_step_continues_from_its_last_weights(embedded_set, tmp_path, single_torch_thread):
    train, dev = embedded_set.subset(np.arange(8)), embedded_set.subset(np.arange(8, 10))
    schedule = Schedule(max_steps=6, batch_size=4, warmup_steps=1, eval_every_steps=2, dev_utterances=2)
    stage = next(stage for stage in embedded.STAGES if stage.name == "deepspeech2_baseline")
    work, checkpoints = tmp_path / "work", tmp_path / "checkpoints"
    first = Recipe("deepspeech2", "baseline", size="tiny").fit(
        train, dev, schedule, work / stage.name, log=quiet, stop_after_steps=3, evaluate_at_piece_end=False
    )
    assert (first.steps, first.best_step) == (3, 2)
    assert embedded.copy_best_weights(stage, work, checkpoints, last_weights=True)
    checkpoint = checkpoints / stage.name
    last = torch.load(checkpoint / LAST_WEIGHTS, weights_only=True)
    trained = torch.load(work / stage.name / STATE_FILE, weights_only=True)["model"]
    # The weights of step 3, parameters in float16 (as in the best weights' copy).
    assert set(last) == set(trained) and last["rnns.0.rnn.weight_ih_l0"].dtype == torch.float16
    assert all(torch.equal(last[key], value.to(last[key].dtype)) for key, value in trained.items())
    best = torch.load(checkpoint / DEEPSPEECH_CHECKPOINT, weights_only=True)["state_dict"]
    assert any(not torch.equal(best[key], last[key]) for key in last)  # step 3 trained on from step 2

    recipe = Recipe("deepspeech2", "baseline", init=checkpoint)
    record = TrainingRun(**json.loads((checkpoint / "training_run.json").read_text()))
    lines = []
    second = tmp_path / "second"
    paused = recipe.fit(
        train,
        dev,
        schedule,
        second / stage.name,
        log=lines.append,
        continue_run=record,
        continue_weights=checkpoint / LAST_WEIGHTS,
        stop_after_steps=0,
    )
    assert "from its last weights at step 3/6" in lines[0] and paused.steps == 3
    assert all(torch.equal(recipe.model.state_dict()[key], value.float()) for key, value in last.items())
    # Before its first evaluation the continued run already holds the best weights its record names, so it can be
    # checkpointed again, its steps kept, before a new learning-rate cycle beats them.
    assert embedded.copy_best_weights(stage, second, tmp_path / "checkpoints2", last_weights=True)
    again = tmp_path / "checkpoints2" / stage.name
    best_again = torch.load(again / DEEPSPEECH_CHECKPOINT, weights_only=True)["state_dict"]
    last_again = torch.load(again / LAST_WEIGHTS, weights_only=True)
    assert best_again.keys() == best.keys() and all(torch.equal(best_again[key], best[key]) for key in best)
    assert last_again.keys() == last.keys() and all(torch.equal(last_again[key], last[key]) for key in last)
    run = Recipe("deepspeech2", "baseline", init=checkpoint).fit(
        train, dev, schedule, second / stage.name, log=quiet, resume=True
    )
    # Nothing between the best and the last step is trained again, and every record of the first run is kept.
    assert run.finished and [entry["step"] for entry in run.history] == [2, 4, 6]
    assert run.pieces[-2]["from_step"] == 3 and run.pieces[-2]["optimizer_restarted"] == {"warmup_steps": 200}
    assert run.pieces[:-2] == first.pieces
    with pytest.raises(ValueError, match="needs the continue_run"):
        recipe.fit(train, dev, schedule, tmp_path / "third", log=quiet, continue_weights=checkpoint / LAST_WEIGHTS)


def test_bf16_autocast_trains_float32_master_weights(embedded_set, tmp_path, single_torch_thread):
    train, dev = embedded_set.subset(np.arange(4)), embedded_set.subset(np.arange(4, 6))
    recipe = Recipe("deepspeech2", "baseline", size="tiny", precision="bf16")
    before = {key: value.clone() for key, value in recipe.model.state_dict().items()}
    run = recipe.fit(
        train, dev, Schedule(max_steps=1, batch_size=4, warmup_steps=0, dev_utterances=2), tmp_path, log=quiet
    )
    assert run.pieces[0]["precision"] == "bf16" and math.isfinite(run.train_curve[0]["train_loss"])
    assert "convolutions" not in run.pieces[0]  # DeepSpeech2's convolutions gain nothing channels-last
    after = recipe.model.state_dict()
    assert all(value.dtype == before[key].dtype for key, value in after.items())
    assert any(not torch.equal(after[key], before[key]) for key in before)
    with pytest.raises(ValueError, match="Unknown precision 'fp16'"):
        Recipe("deepspeech2", "baseline", size="tiny", precision="fp16")


def test_transformer_no_lsm_fine_tunes_from_a_saved_model(embedded_set, stats_file, tmp_path, single_torch_thread):
    torch.manual_seed(0)
    train, dev = embedded_set.subset(np.arange(4)), embedded_set.subset(np.arange(4, 6))
    schedule = Schedule(
        max_steps=2, batch_size=4, warmup_steps=1, eval_every_steps=1, dev_utterances=2, ctc_weight_start=0.8
    )
    base = Recipe("transformer", "baseline", size="tiny", stats_file=stats_file, beam_size=2)
    assert base.espnet_config["normalize"] == "global_mvn" and base.espnet_config["init"] == "xavier_uniform"
    assert base.espnet_config["encoder_conf"]["input_layer"] == "conv2d2"
    # It trains with the CPU's cheaper dropout, and says so in the record of its pieces.
    dropouts = [module for module in base.model.modules() if isinstance(module, torch.nn.Dropout)]
    assert dropouts and all(type(module) is FastCPUDropout for module in dropouts)
    run = base.fit(train, dev, schedule, tmp_path / "base", log=quiet)
    assert run.pieces[-1]["dropout"] == "FastCPUDropout" and "convolutions" not in run.pieces[-1]
    # Under bf16 its convolutions train channels-last, where oneDNN's kernels need no reordering; the record says so,
    # and the saved model loads into the usual layout with every weight as trained.
    bf16 = Recipe("transformer", "baseline", size="tiny", stats_file=stats_file, beam_size=2, precision="bf16")
    convolutions = [module for module in bf16.model.modules() if isinstance(module, torch.nn.Conv2d)]
    assert convolutions and all(
        module.weight.is_contiguous(memory_format=torch.channels_last) for module in convolutions
    )
    assert any(not module.weight.is_contiguous() for module in convolutions)  # one input channel: both layouts
    assert all(module.weight.is_contiguous() for module in base.model.modules() if isinstance(module, torch.nn.Conv2d))
    bf16_run = bf16.fit(train, dev, replace(schedule, max_steps=1, warmup_steps=0), tmp_path / "bf16", log=quiet)
    assert bf16_run.pieces[-1]["convolutions"] == "channels_last"
    trained = bf16.model.state_dict()
    saved_bf16 = PyTorchESPnet(model_dir=tmp_path / "bf16").model.state_dict()
    assert all(torch.equal(saved_bf16[key], value) for key, value in trained.items())
    assert run.dev_decoding == "joint CTC/attention beam search (beam 2)"
    assert base.model.ctc_weight == 0.3  # the CTC warm-up never leaks into the saved model
    saved = PyTorchESPnet(model_dir=tmp_path / "base")
    assert saved.asr_config["model_conf"]["lsm_weight"] == 0.1 and saved.asr_config["normalize"] == "global_mvn"

    recipe = Recipe("transformer", "no_lsm", init=tmp_path / "base")
    assert all(
        type(module) is FastCPUDropout for module in recipe.model.modules() if isinstance(module, torch.nn.Dropout)
    )
    assert recipe.model_config["encoder_conf"]["output_size"] == 32  # the saved architecture, not the size label
    estimator = recipe.estimator()
    assert estimator.lsm_weight == 0.0 and estimator.model.encoder.output_size() == 32
    run = recipe.fit(train, dev, Schedule(max_steps=2, batch_size=4, warmup_steps=1), tmp_path / "no_lsm", log=quiet)
    assert run.initialised_from == str(tmp_path / "base") and run.previous_run["variant"] == "baseline"
    assert PyTorchESPnet(model_dir=tmp_path / "no_lsm").asr_config["model_conf"]["lsm_weight"] == 0.0


def test_a_variant_setting_added_since_a_run_reads_as_its_default():
    for system, variants in VARIANTS.items():
        for variant in variants.values():
            old_record = {key: value for key, value in variant.settings().items() if key != "waveaug_beside_clean"}
            # The runs written before the setting existed trained without it: they stay the recipe of every variant
            # but the one that now trains on clean speech beside the re-synthesised.
            assert (Variant.record(old_record) == variant.settings()) == (not variant.waveaug_beside_clean)
    assert Variant.record({"sigma": 0.1}) == {"sigma": 0.1}  # another recipe's settings: compared as they are


def test_unknown_variants_and_missing_statistics_are_refused():
    with pytest.raises(ValueError, match="Unknown system/variant"):
        Recipe("deepspeech2", "no_lsm")
    with pytest.raises(ValueError, match="Unknown size"):
        Recipe("transformer", "baseline", size="huge")
    with pytest.raises(ValueError, match="stats_file"):
        Recipe("transformer", "baseline", size="tiny")


def test_the_embedded_transformer_trains_with_specaugment_and_is_attacked_without(stats_file, single_torch_thread):
    from espnet2.asr.specaug.specaug import SpecAug

    recipe = Recipe("transformer", "baseline", size="embedded", stats_file=stats_file)
    assert recipe.espnet_config["specaug_conf"]["freq_mask_width_range"] == [0, 27]
    model = recipe.model
    assert isinstance(model.specaug, SpecAug)
    masked = []
    model.specaug.register_forward_hook(lambda module, inputs, output: masked.append(output[0]))
    torch.manual_seed(0)
    speech, lengths = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000])
    model.train()
    model.encode(speech, lengths)
    assert len(masked) == 1 and (masked[0] == 0).any()  # training masks whole bins and frames with zeros
    model.eval()
    first, second = model.encode(speech, lengths)[0], model.encode(speech, lengths)[0]
    assert len(masked) == 1 and torch.equal(first, second)  # evaluation (every attack and decoding) draws no masks


def test_deepspeech2_specaug_masks_its_training_steps_only(embedded_set, tmp_path, single_torch_thread):
    recipe = Recipe("deepspeech2", "specaug", size="tiny")
    model = recipe.model.train()  # as the imperceptible attack's to_training_mode leaves it: no masks outside fit
    speech, lengths = torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000])
    spectra = []
    torch.manual_seed(0)
    with recipe._feature_masks():
        # Registered after the recipe's hook, so it sees the masked spectrogram.
        model.spectrogram.register_forward_hook(lambda module, inputs, output: spectra.append(output[0]))
        model(speech, lengths)
    model(speech, lengths)
    masked, plain = spectra
    assert plain.shape[1] == 81  # 10 ms windows: 81 linear bins, against which the mask widths were chosen
    assert (plain[0] != 0).all()  # the full-length utterance: no zeros but masks'
    assert ((masked == 0) & (plain != 0)).any() and ((masked == 0) | (masked == plain)).all()

    # Through fit: the masks change the training steps (the same steps with the same data order, without them,
    # give other weights), and leave the model unhooked afterwards.
    train, dev = embedded_set.subset(np.arange(8)), embedded_set.subset(np.arange(8, 10))
    schedule = Schedule(max_steps=2, batch_size=4, warmup_steps=1, eval_every_steps=2, dev_utterances=2)
    weights = {}
    for variant in ("specaug", "baseline"):
        torch.manual_seed(0)
        trained = Recipe("deepspeech2", variant, size="tiny")
        trained.fit(train, dev, schedule, tmp_path / variant, log=quiet)
        assert not trained.model.spectrogram._forward_hooks
        weights[variant] = trained.model.state_dict()
    assert max(float((weights["specaug"][k] - weights["baseline"][k]).abs().max()) for k in weights["baseline"]) > 1e-6
