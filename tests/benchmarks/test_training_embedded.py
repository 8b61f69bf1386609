"""
The six-model training plan in its `tiny` profile on the CPU: an Opus-packed corpus, every stage trained in turn in
subprocesses, variants from their baselines, each piece's best weights checkpointed in the models' native layouts,
published on request, and a fresh clone that holds nothing but the repository continuing where the last commit left
off.
"""

import functools
import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import torch

from art_asr_ext.benchmark.presets import EMBEDDED_SET, MODELS_DIR
from art_asr_ext.benchmark.training import embedded, pack
from art_asr_ext.benchmark.training.recipes import LAST_WEIGHTS, STATE_FILE
from art_asr_ext.data.librispeech import load_librispeech
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet
from art_asr_ext.models.espnet_asr import ZOO_WEIGHTS


def packed_corpus(root: Path) -> Path:
    for split in ("train-synth", "dev-synth"):
        stats = pack.pack_split(
            EMBEDDED_SET, root / split, 8 if split == "train-synth" else 4, pack.DEFAULT_COMPRESSION
        )
        kbps = stats["bytes"] * 8 / stats["seconds"] / 1000
        assert 12 <= kbps <= 24, kbps  # the 16 kbit/s the GPU path's size budget assumes
    return root


def tiny_plan(corpus: Path, work: Path, models: Path, *extra: str, checkpoints: Path = None) -> list:
    return [
        "--corpus",
        str(corpus),
        "--work",
        str(work),
        "--models-dir",
        str(models),
        "--checkpoints-dir",
        str(checkpoints or models.with_name("checkpoints")),
        "--dev-audio-extension",
        ".opus",
        "--profile",
        "tiny",
        "--threads",
        "1",
        *extra,
    ]


def trained_plan(tmp_path: Path, machine: str, *stages: str) -> tuple:
    """
    `stages` trained to the end of their tiny schedules on `machine` (its work directory), checkpointed in a
    repository under `tmp_path`; :return: (the plan's arguments on `machine`, as a function, the models directory,
    the checkpoints directory, the `--only` arguments).
    """
    corpus = packed_corpus(tmp_path / "packed")
    models, checkpoints = tmp_path / "repository" / "models", tmp_path / "repository" / "checkpoints"
    only = ("--only", *stages)
    plan = functools.partial(tiny_plan, corpus, tmp_path / machine, models, checkpoints=checkpoints)
    assert embedded.main(plan(*only, "--hours", "0.5")) == 0
    return plan, models, checkpoints, only


def status_of(output: str) -> dict:
    """`--status` output by stage name."""
    return {line[: embedded.NAME_WIDTH].strip(): line[embedded.NAME_WIDTH + 1 :] for line in output.splitlines()}


def git(directory: Path, *arguments: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *arguments],
        cwd=directory,
        check=True,
        capture_output=True,
    )


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


def test_every_stage_trains_in_pieces_checkpoints_and_publishes(tmp_path, capfd, monkeypatch):
    corpus = packed_corpus(tmp_path / "packed")
    work, models, checkpoints = tmp_path / "work", tmp_path / "models", tmp_path / "checkpoints"
    assert embedded.main(tiny_plan(corpus, work, models, "--hours", "0.5")) == 0
    for stage in embedded.STAGES:
        run = embedded.read_run(work / stage.name)
        assert run["finished"], stage.name
        assert (work / stage.name / STATE_FILE).is_file()
        assert run["train_curve"] and run["history"]
        if stage.init:
            assert run["initialised_from"] == str(work / stage.init) and run["previous_run"]["variant"] == "baseline"
        else:  # the label-smoothing ablation included: nothing it learnt comes from a model trained with it
            assert run["initialised_from"] is None and run["previous_run"] is None
            assert run["schedule"] == embedded.read_run(work / f"{stage.system}_baseline")["schedule"]
    waveaug = embedded.read_run(work / "deepspeech2_waveaug")
    # Trained on the 8 clean sentences and the first 4 re-synthesised, and selected on re-synthesised speech: the
    # condition of the vocoder defence in front of the model.
    assert waveaug["train_utterances"] == 8 + 4
    assert waveaug["resynthesised_utterances"] == 4
    assert waveaug["data"] == {
        "train": f"{corpus / 'train-synth'}, and its first 4 utterances re-synthesised by HiFi-GAN V1 universal",
        "dev": f"{corpus / 'dev-synth'} (re-synthesised by HiFi-GAN V1 universal)",
    }
    assert len(list((work / "deepspeech2_waveaug" / "waveaug").glob("*/*.npy"))) == 4
    assert len(list((work / "deepspeech2_waveaug" / "waveaug" / "dev").rglob("*.npy"))) == 2  # those it decodes

    # Every piece was checkpointed, and nothing reached the package's models until --publish.
    assert not models.exists()
    assert embedded.main(tiny_plan(corpus, work, models, "--publish")) == 0
    # Both copies: native layouts, no training state, parameters in float16.
    for stage, root in itertools.product(embedded.STAGES, (checkpoints, models)):
        directory = root / stage.name
        assert embedded.read_run(directory) == embedded.read_run(work / stage.name)
        assert not (directory / STATE_FILE).exists()
        if stage.system == "deepspeech2":
            weights = torch.load(directory / "model.ckpt", weights_only=True)["state_dict"]
            PyTorchDeepSpeech2(checkpoint=directory / "model.ckpt")
        else:
            weights = torch.load(directory / ZOO_WEIGHTS, weights_only=True)
            assert PyTorchESPnet(model_dir=directory).asr_config["normalize"] == "global_mvn"
        dtypes = {key.rsplit(".", 1)[-1]: value.dtype for key, value in weights.items()}
        assert dtypes["weight"] == torch.float16 and dtypes["bias"] == torch.float16
        assert torch.float32 in dtypes.values()  # normalisation statistics keep their precision

    # A profile that re-synthesises fewer sentences picks none of WAVEAUG's runs up as done: it trains again.
    monkeypatch.setitem(embedded.PROFILES["tiny"], "waveaug", ["--resynthesised-utterances", "3"])
    capfd.readouterr()
    assert embedded.main(tiny_plan(corpus, work, models, "--status")) == 0
    other = "has another recipe (resynthesised_utterances: expected 3, found 4)"
    status = status_of(capfd.readouterr().out)
    assert status["deepspeech2_waveaug"] == (
        f"start     the published run {other}; the checkpointed run {other}; the run in {work / 'deepspeech2_waveaug'} "
        f"{other}"
    )
    assert all(line.startswith("done") for name, line in status.items() if name != "deepspeech2_waveaug")


def test_a_fresh_clone_continues_every_unfinished_stage_from_the_committed_models(tmp_path, capfd):
    corpus = packed_corpus(tmp_path / "packed")
    # A machine trains both baselines for 2 of their 4 steps and publishes them, then for one more step, which only
    # its checkpoints hold; the repository is committed, then the machine, its work directory and states are gone.
    repository = tmp_path / "repository"
    models, checkpoints = repository / "models", repository / "checkpoints"
    first_machine = tmp_path / "first_machine"
    assert embedded.main(tiny_plan(corpus, first_machine, models, "--piece-steps", "2", "--pieces", "2")) == 0
    assert embedded.main(tiny_plan(corpus, first_machine, models, "--publish")) == 0
    assert embedded.main(tiny_plan(corpus, first_machine, models, "--piece-steps", "1", "--pieces", "2")) == 0
    baselines = ("deepspeech2_baseline", "transformer_baseline")
    published = {name: embedded.read_run(models / name) for name in baselines}
    checkpointed = {name: embedded.read_run(checkpoints / name) for name in baselines}
    for name in baselines:
        assert published[name]["steps"] == 2 and checkpointed[name]["steps"] == 3
        # Evaluated at the end of each piece too: the best weights are those of step 3 unless step 2 was better,
        # and then the checkpoint also holds the weights of step 3.
        run = checkpointed[name]
        assert not run["finished"] and run["best_step"] in (2, 3)
        assert run["history"][-1]["step"] == 3 and run["history"][-1]["piece_end"]
        assert (checkpoints / name / LAST_WEIGHTS).is_file() == (run["best_step"] == 2)
        assert not (models / name / LAST_WEIGHTS).exists()
    git(repository, "init", "-q")
    git(repository, "add", ".")
    git(repository, "commit", "-q", "-m", "published models and checkpoints")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repository), str(clone))
    subprocess.run(["rm", "-rf", str(first_machine)], check=True)
    capfd.readouterr()

    # On the new machine the same command, with an empty work directory, picks every stage up from the clone: from
    # the copy whose weights are the further on (its last ones where it holds them), the published one on a tie.
    second_machine = tmp_path / "second_machine"
    clone_plan = functools.partial(
        tiny_plan, corpus, second_machine, clone / "models", checkpoints=clone / "checkpoints"
    )
    assert embedded.main(clone_plan("--status")) == 0
    status = status_of(capfd.readouterr().out)
    chosen = {}
    for name in baselines:
        last = (clone / "checkpoints" / name / LAST_WEIGHTS).is_file()
        step = checkpointed[name]["steps"] if last else checkpointed[name]["best_step"]
        further = step > published[name]["best_step"]
        chosen[name] = ("checkpointed", step) if further else ("published", published[name]["best_step"])
        kind, step = chosen[name]
        expected = f"continues the {kind} run from its {'last' if kind == 'checkpointed' and last else 'best'} weights"
        assert status[name] == f"continue  {expected} (step {step})"
    assert status["deepspeech2_rs_aug"].startswith("start") and status["deepspeech2_rs_aug"].endswith(
        "waits for deepspeech2_baseline"
    )

    assert embedded.main(clone_plan("--pieces", "2")) == 0
    log = capfd.readouterr().out
    for name, (kind, start) in chosen.items():
        before = checkpointed[name] if kind == "checkpointed" else published[name]
        assert f"{name}: continues the {kind} run" in log and "--continue-from" in log
        assert embedded.read_run(clone / "models" / name) == published[name]  # the package's copy waits for --publish
        run = embedded.read_run(clone / "checkpoints" / name)
        assert run["finished"] and run["steps"] == 4
        # The step count went on from the committed weights' step, with a fresh optimizer; the record of the first
        # machine's pieces is kept, that of the steps it trained past those weights is not.
        assert run["pieces"][:-1] == before["pieces"]
        assert run["pieces"][-1]["from_step"] == start and run["pieces"][-1]["optimizer_restarted"]
        assert [entry["step"] for entry in run["history"]] == [step for step in (2, 3) if step <= start] + [4]
        assert run["data"]["train"] == str(corpus / "train-synth")

    # Both baselines have finished, so the next run of the command starts their variants from the checkpoints.
    assert embedded.main(clone_plan("--status")) == 0
    status = status_of(capfd.readouterr().out)
    assert status["deepspeech2_baseline"].startswith("done") and status["deepspeech2_rs_aug"].startswith("start")
    assert not any(line.endswith(tuple(f"waits for {name}" for name in baselines)) for line in status.values())
    # Publishing from the checkpoints (no work directory needed) makes the package's copy the finished one.
    assert embedded.main(clone_plan("--publish", "--work", str(clone / "checkpoints"))) == 0
    for name in baselines:
        assert embedded.read_run(clone / "models" / name) == embedded.read_run(clone / "checkpoints" / name)

    # Copies trained by a variant that has changed since (here: its label smoothing) are never picked up again.
    for copy in ("models", "checkpoints"):
        record = clone / copy / "transformer_baseline" / "training_run.json"
        run = json.loads(record.read_text())
        assert run["variant_settings"]["lsm_weight"] == 0.1
        run["variant_settings"]["lsm_weight"] = 0.2
        record.write_text(json.dumps(run))
    capfd.readouterr()
    third_machine = tmp_path / "third_machine"  # no state of its own, which would be resumed as it is
    assert (
        embedded.main(tiny_plan(corpus, third_machine, clone / "models", "--status", checkpoints=clone / "checkpoints"))
        == 0
    )
    refused = "has another recipe (variant_settings.lsm_weight: expected 0.1, found 0.2)"
    status = status_of(capfd.readouterr().out)
    assert status["transformer_baseline"] == f"start     the published run {refused}; the checkpointed run {refused}"


def test_the_cpu_plan_picks_every_committed_model_up_where_it_stands(tmp_path, capfd):
    # A change to the cpu profile's recipe that the committed runs do not extend (`Schedule.extends`) would train
    # that stage again from scratch, or from its baseline, and set hours of committed training aside.
    repository = Path(embedded.__file__).resolve().parents[3]
    arguments = ["--status", "--work", str(tmp_path / "work"), "--checkpoints-dir", str(repository / "checkpoints")]
    assert embedded.main(arguments) == 0
    status = status_of(capfd.readouterr().out)
    assert set(status) == {stage.name for stage in embedded.STAGES}
    for name, line in status.items():
        if embedded.has_model(repository / "checkpoints" / name) or embedded.has_model(MODELS_DIR / name):
            assert line.startswith(("done", "continue")), f"{name}: {line}"
        else:  # a stage added since the last commit of checkpoints
            assert line.startswith("start     no published or checkpointed model"), f"{name}: {line}"


def test_a_longer_schedule_trains_a_finished_baseline_on_and_its_fine_tune_again(tmp_path, capfd, monkeypatch):
    first_machine, models, checkpoints, only = trained_plan(
        tmp_path, "first_machine", "transformer_baseline", "transformer_rs_aug"
    )
    corpus = tmp_path / "packed"
    trained = {name: embedded.read_run(checkpoints / name) for name in only[1:]}
    assert all(run["finished"] for run in trained.values())
    assert trained["transformer_rs_aug"]["previous_run"]["steps"] == 4

    # The profile's Transformer schedule gains a restart at its end: 2 more steps.
    longer = ["--max-steps", "6", "--restarts", "4", *embedded.PROFILES["tiny"]["transformer"][2:]]
    monkeypatch.setitem(embedded.PROFILES["tiny"], "transformer", longer)
    for machine in ("first_machine", "second_machine"):  # its own state, or only the committed checkpoints
        capfd.readouterr()
        assert embedded.main(tiny_plan(corpus, tmp_path / machine, models, "--status", checkpoints=checkpoints)) == 0
        status = status_of(capfd.readouterr().out)
        if machine == "first_machine":
            assert status["transformer_baseline"].startswith("resume    resumes its state in")
        else:
            assert status["transformer_baseline"].startswith("continue  continues the checkpointed run from its")
        assert status["transformer_baseline"].endswith("its schedule extended from 4 to 6 steps")
        # Its fine-tune started from the baseline of the shorter schedule, which trains on: it waits to start again.
        started_from = (
            "started from another transformer_baseline (transformer_baseline.schedule.max_steps: "
            "expected 6, found 4; transformer_baseline.schedule.restarts: expected [4], found []"
        )
        assert status["transformer_rs_aug"].startswith(f"start     the checkpointed run {started_from}")
        assert status["transformer_rs_aug"].endswith("waits for transformer_baseline")
        if machine == "first_machine":
            assert (
                f"the run in {tmp_path / machine / 'transformer_rs_aug'} {started_from}" in status["transformer_rs_aug"]
            )

    assert embedded.main(first_machine(*only, "--pieces", "1")) == 0
    extended = embedded.read_run(checkpoints / "transformer_baseline")
    assert extended["finished"] and extended["steps"] == 6 and extended["schedule"]["restarts"] == [4]
    assert extended["pieces"][-1]["schedule_extended_from"] == 4 and extended["history"][-1]["step"] == 6
    capfd.readouterr()
    assert embedded.main(first_machine("--status")) == 0
    status = status_of(capfd.readouterr().out)
    assert status["transformer_baseline"].startswith("done")
    assert status["transformer_rs_aug"].startswith("start     the checkpointed run started from another")
    assert "transformer_baseline.steps: expected 6, found 4" in status["transformer_rs_aug"]
    assert "waits for" not in status["transformer_rs_aug"]

    # The fine-tune trains again from the extended baseline; its earlier work directory is kept aside.
    assert embedded.main(first_machine(*only, "--pieces", "1")) == 0
    work = tmp_path / "first_machine" / "transformer_rs_aug"
    assert f"transformer_rs_aug: {work} moved to {work}.stale-1" in capfd.readouterr().out
    assert embedded.read_run(work.with_name("transformer_rs_aug.stale-1")) == trained["transformer_rs_aug"]
    again = embedded.read_run(checkpoints / "transformer_rs_aug")
    assert again["finished"] and again["previous_run"]["steps"] == 6
    assert again["previous_run"]["schedule"]["restarts"] == [4]


def test_a_fine_tune_of_another_recipe_is_set_aside_and_trains_again(tmp_path, capfd, monkeypatch):
    plan, models, checkpoints, only = trained_plan(tmp_path, "work", "deepspeech2_baseline", "deepspeech2_rs_aug")
    assert embedded.main(plan(*only, "--publish")) == 0
    before = embedded.read_run(checkpoints / "deepspeech2_rs_aug")

    # The profile's fine-tunes change their learning rate: neither the work directory nor a copy is picked up.
    monkeypatch.setitem(
        embedded.PROFILES["tiny"], "fine_tune", [*embedded.PROFILES["tiny"]["fine_tune"], "--lr", "1e-4"]
    )
    capfd.readouterr()
    assert embedded.main(plan("--status")) == 0
    status = status_of(capfd.readouterr().out)
    other = f"has another recipe (schedule.learning_rate: expected 0.0001, found {before['schedule']['learning_rate']})"
    assert status["deepspeech2_baseline"].startswith("done")
    assert status["deepspeech2_rs_aug"].startswith(f"start     the published run {other}; the checkpointed run {other}")
    assert f"the run in {tmp_path / 'work' / 'deepspeech2_rs_aug'} {other}" in status["deepspeech2_rs_aug"]
    assert embedded.main(plan(*only, "--publish")) == 0
    assert "deepspeech2_rs_aug: not copied, the run in" in capfd.readouterr().out
    assert embedded.read_run(models / "deepspeech2_rs_aug") == before

    assert embedded.main(plan(*only, "--pieces", "1")) == 0
    work = tmp_path / "work" / "deepspeech2_rs_aug"
    assert f"deepspeech2_rs_aug: {work} moved to {work}.stale-1" in capfd.readouterr().out
    again = embedded.read_run(checkpoints / "deepspeech2_rs_aug")
    assert again["finished"] and again["schedule"]["learning_rate"] == 1e-4
    assert embedded.read_run(work.with_name("deepspeech2_rs_aug.stale-1")) == before
