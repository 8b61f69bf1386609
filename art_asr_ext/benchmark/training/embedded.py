"""
Train the embedded models (the study's six variants, and larger ones where a variant needs them) in resumable
pieces, keep the progress of every piece in a committed checkpoints directory, and publish finished or improved models
into the package.

Each model is a run of :mod:`art_asr_ext.benchmark.training.train` in its own directory under `--work`, trained in a
subprocess (one model in memory at a time). Stages train in turns of `--piece-minutes`; a fine-tune starts, from its
baseline's best weights, once that baseline has finished its schedule, and the label-smoothing ablation trains from
scratch on the baseline's schedule. Run from the repository root, the one command both starts and continues the
plan::

    nice -n 19 python benchmarks/train_embedded.py --threads 2 --hours 2.5

It reads the corpus in place from `../shared/data/synth` (Opus training audio, FLAC dev audio) and keeps its working
state under `runs/train`. After every piece the stage's best weights so far, its weights at its last step when that
is past the best one (`last_weights.pt`: a new learning-rate cycle can take hours to beat its best), and its run
record are copied into `--checkpoints-dir` (`checkpoints/<stage>/` at the repository root, outside the package):
committed, they carry an unfinished run to the next machine without replacing the model that the benchmark uses,
whose card describes it.
`--publish` copies the best weights into the package (`art_asr_ext/benchmark/models/<stage>/`); write its card
(`benchmarks/model_cards.py`) and commit both. Where a stage is picked up from, in this order:

1. its resumable state in `--work` (same machine: the exact optimizer state, `--resume`), when that run was trained by
   the recipe this profile gives (below) and, for a fine-tune, from the baseline as it stands; otherwise that
   directory is set aside as `<stage>.stale-N`, never deleted and never published;
2. otherwise the further advanced (by the step of its last weights, or else of its best weights) of its checkpoint and
   its published model, each only when that run was trained by the recipe this profile gives (variant settings, model,
   schedule and, for WAVEAUG, how many sentences it re-synthesised): it continues from those weights at their step,
   with a fresh optimizer under a short learning-rate warm-up (`train.py --continue-from`). So a fresh clone, which
   holds nothing but the repository, goes on where the last commit left off;
3. otherwise from scratch (or, for a fine-tune, from the weights of the stage it starts from).

Both copies store parameters as float16, which halves the repository's growth.

On a GPU, `--device gpu` uses a schedule sized for about 9 minutes on one H200 (larger batches, fewer steps);
`--profile tiny` is the same plan at toy sizes, for tests.
"""

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch

from art_asr_ext.benchmark.training.recipes import (
    DEEPSPEECH_CHECKPOINT,
    LAST_WEIGHTS,
    MODEL_SIZES,
    STATE_FILE,
    VARIANTS,
    Schedule,
    Variant,
    comparable,
    differences,
)
from art_asr_ext.utils.environment import PRECISION_CHOICES


@dataclass(frozen=True)
class Stage:
    """One embedded model: what trains it and from which model it starts."""

    name: str
    system: str
    variant: str
    init: Optional[str] = None  # name of the stage whose best weights it fine-tunes
    size: str = "embedded"  # its key of `MODEL_SIZES[system]` (a fine-tune keeps that of the stage it starts from)


STAGES = (
    Stage("deepspeech2_baseline", "deepspeech2", "baseline"),
    Stage("transformer_baseline", "transformer", "baseline"),
    Stage("deepspeech2_rs_aug", "deepspeech2", "rs_aug", init="deepspeech2_baseline"),
    Stage("deepspeech2_waveaug", "deepspeech2", "waveaug", init="deepspeech2_baseline"),
    Stage("transformer_rs_aug", "transformer", "rs_aug", init="transformer_baseline"),
    # The label-smoothing ablation trains from scratch on the baseline's schedule: fine-tuned from the baseline's
    # weights, it would inherit what label smoothing taught them.
    Stage("transformer_no_lsm", "transformer", "no_lsm"),
    # RS-aug again at about twice the parameters: the smaller models' three learning-rate cycles converged far above
    # their bars (benchmarks/README.md). The published models stay in use until these are better.
    Stage("deepspeech2_wide_baseline", "deepspeech2", "baseline", size="wide"),
    Stage("deepspeech2_wide_rs_aug", "deepspeech2", "rs_aug", init="deepspeech2_wide_baseline", size="wide"),
    Stage("transformer_wide_baseline", "transformer", "baseline", size="wide"),
    Stage("transformer_wide_rs_aug", "transformer", "rs_aug", init="transformer_wide_baseline", size="wide"),
)
#: Width of the stage names in `--status`.
NAME_WIDTH = max(len(stage.name) for stage in STAGES)

#: The corpus, read in place, relative to the repository root (see `../shared/data/README.md`).
DEFAULT_CORPUS = Path("../shared/data/synth")
#: Working state of the runs (ignored by git; lost with the machine, which the published models survive).
DEFAULT_WORK = Path("runs/train")
#: Committed progress of the runs: each stage's best weights after its last piece (see the module docstring).
DEFAULT_CHECKPOINTS = Path("checkpoints")

#: The tiny profile's batches and dev evaluations.
TINY_STEPS = ["--batch-size", "4", "--eval-every", "2", "--dev-utterances", "2"]

#: Per profile: the train.py schedule arguments of a run from scratch, per system, of a fine-tune (`fine_tune`), and
#: those added for a variant's fine-tune (keyed by the variant: `waveaug`, `rs_aug`; train.py takes the last of a
#: repeated flag, so these override `fine_tune`'s); `size`, where given, replaces every stage's model size.
PROFILES: Dict[str, Dict[str, object]] = {
    # 2 CPU cores: many hours, in pieces. From scratch: 13 and 32 epochs of the 9,927 training sentences.
    "cpu": {
        "deepspeech2": ["--max-steps", "8000", "--batch-size", "16", "--eval-every", "500"],
        # Model selection by beam 4 (the cards decode with beam 10): a dev pass stays a few minutes on 2 cores.
        # 10,000 steps left the dev WER still falling (50.6 % at 7,000, 45.5 % at 8,000, 42.7 % at 10,000): the
        # schedule restarts there and goes on to 20,000, so the finished 10,000-step run trains on (`Schedule.extends`).
        # The second cycle still gained 4.7 points in its last 2 hours (34.9 % at 16,000, 30.2 % at 20,000): a third,
        # shorter one (about 2 h on 2 cores) follows it. That one gained 3.7 points (30.2 % at 19,500, 26.4 % at
        # 26,500, at the end of its decay): a fourth of the same length follows. It gained 2.25 points (24.19 % at
        # 33,311; 24.68 % at its end).
        "transformer": [
            *["--max-steps", "34000", "--restarts", "10000", "20000", "27000"],
            *["--batch-size", "16", "--eval-every", "500", "--dev-beam-size", "4"],
        ],
        # At the system's peak learning rate: at a fifth of it, DeepSpeech2's RS-aug kept more clean accuracy early on
        # but ended no better, and less robust to noise (benchmarks/README.md).
        "fine_tune": ["--max-steps", "1500", "--batch-size", "16", "--eval-every", "250", "--dev-beam-size", "4"],
        # HiFi-GAN re-synthesis runs at 0.4 x real time on 2 cores: WAVEAUG re-synthesises the first 1,500 sentences
        # (2 h of speech). Trained on those alone, at the peak learning rate, it overfit them (train loss 0) and never
        # got back to where it started: re-synthesised dev WER (greedy) 38.5 % at step 250 and 30.2 % at its best,
        # against the baseline's own 29.6 %. So it trains on the clean corpus beside them (the variant's
        # `waveaug_beside_clean`), at a third of the peak: 26.9 % at step 1,500.
        "waveaug": ["--resynthesised-utterances", "1500", "--lr", "5e-4"],
        # 1,500 steps left DeepSpeech2's RS-aug dev WER still falling by 5 points every 250 steps until the learning
        # rate had decayed (88.99 % at 250, 75.11 % at 1,000, 69.99 % at 1,500, greedy, against the baseline's 23 %):
        # the schedule restarts there and goes on (`Schedule.extends`), for the Transformer's RS-aug as well. That
        # second cycle, to 4,500, gained DeepSpeech2 11.6 points (58.42 % at 4,500, still falling: 59.12 % at 3,500)
        # and the Transformer 3.1 (joint beam 4: 44.95 % at 1,331, 41.87 % at 4,250): a third one followed, to 7,500.
        # It gained DeepSpeech2 5.3 points (53.09 % at 7,500), half the second's, so further cycles converge far above
        # the 1.3 x bar, and the Transformer none (42.43 % at best, at 7,155; its best stays 41.87 % at 4,250): both
        # curves point to a larger model within 10 MB, not to a fourth cycle.
        "rs_aug": ["--max-steps", "7500", "--restarts", "1500", "4500", "--warmup-steps", "150"],
    },
    # One H200: larger batches, fewer steps, about 9 minutes in all.
    "gpu": {
        "deepspeech2": ["--max-steps", "2500", "--batch-size", "48", "--eval-every", "500", "--lr", "2.5e-3"],
        "transformer": ["--max-steps", "3000", "--batch-size", "48", "--eval-every", "500", "--lr", "3e-3"],
        "fine_tune": ["--max-steps", "400", "--batch-size", "48", "--eval-every", "200"],
        "waveaug": ["--resynthesised-utterances", "3000"],
    },
    # Tests: toy models, a handful of steps.
    "tiny": {
        "size": "tiny",
        "deepspeech2": ["--max-steps", "4", *TINY_STEPS],
        # An explicit warm-up: the default one is cut to fit the run, and a longer schedule must keep it (restarts).
        "transformer": ["--max-steps", "4", "--warmup-steps", "1", *TINY_STEPS],
        "fine_tune": ["--max-steps", "2", *TINY_STEPS],
        "waveaug": ["--resynthesised-utterances", "4"],
    },
}


def model_size(stage: Stage, profile: str) -> str:
    """The key of `MODEL_SIZES[stage.system]` that `stage` trains at under `profile`."""
    return str(PROFILES[profile].get("size", stage.size))


def stage_arguments(stage: Stage, profile: str) -> List[str]:
    settings = PROFILES[profile]
    key = "fine_tune" if stage.init else stage.system
    return list(settings[key]) + list(settings.get(stage.variant, []) if stage.init else [])


def read_run(directory: Path) -> Optional[dict]:
    record = directory / "training_run.json"
    return json.loads(record.read_text()) if record.is_file() else None


def has_model(directory: Path) -> bool:
    return (directory / DEEPSPEECH_CHECKPOINT).is_file() or (directory / "meta.yaml").is_file()


def recipe_mismatch(expected: dict, run: dict) -> str:
    """
    The first differences between the `expected` settings and a run record's, or "" if none. A recorded schedule
    that the expected one extends (`Schedule.extends`) is no difference: the run goes on under the longer one.
    """
    found = {key: run.get(key) for key in expected}
    if found.get("initialised_from") is not None:  # a path on some machine, to the directory named by its stage
        found["initialised_from"] = Path(found["initialised_from"]).name
    if isinstance(found.get("schedule"), dict):
        found["schedule"] = comparable(found["schedule"], Schedule(**expected["schedule"]))
    if isinstance(found.get("variant_settings"), dict):
        found["variant_settings"] = Variant.record(found["variant_settings"])
    mismatch = [difference for difference in differences(expected, found).split("; ") if difference]
    return "; ".join(mismatch[:3]) + (f"; and {len(mismatch) - 3} more" if len(mismatch) > 3 else "")


def extension(schedule: Schedule, run: dict) -> str:
    """A note that `schedule` extends the run's (`Schedule.extends`), or ""."""
    if not schedule.extends(run["schedule"]):
        return ""
    return f"; its schedule extended from {run['schedule']['max_steps']} to {schedule.max_steps} steps"


@dataclass
class StagePlan:
    """
    Where a stage stands: `action` is `resume`, `continue`, `start` or `done`; `source` holds its weights;
    `stale_work`: why the run in the stage's work directory is not picked up (another recipe, or it started from
    another model).
    """

    action: str
    source: Optional[Path]
    reason: str
    stale_work: str = ""


class Planner:
    """Decides, for each stage, where it is picked up from (see the module docstring)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args

    def init_dir(self, stage: Stage) -> Optional[Path]:
        """The finished baseline a variant starts from, or None while there is none."""
        if stage.init is None:
            return None
        baseline = next(s for s in STAGES if s.name == stage.init)
        plan = self.plan(baseline)
        return plan.source if plan.action == "done" else None

    def command(self, stage: Stage, minutes: float, init: Optional[Path]) -> List[str]:
        """The train.py arguments of one piece of `stage` (without the resume or continue flag)."""
        arguments = [
            "--system",
            stage.system,
            "--variant",
            stage.variant,
            "--size",
            model_size(stage, self.args.profile),
            "--train",
            str(self.args.corpus / "train-synth"),
            "--dev",
            str(self.args.corpus / "dev-synth"),
            "--out",
            str(self.args.work / stage.name),
            "--device",
            self.args.device,
            "--max-minutes",
            f"{minutes:.2f}",
            "--audio-extension",
            self.args.audio_extension,
            "--dev-audio-extension",
            self.args.dev_audio_extension,
            "--precision",
            self.args.precision,
            *stage_arguments(stage, self.args.profile),
        ]
        if self.args.threads:
            arguments += ["--threads", str(self.args.threads)]
        if self.args.piece_steps:
            arguments += ["--stop-after-steps", str(self.args.piece_steps)]
        if init is not None:
            arguments += ["--init", str(init)]
        return arguments

    def stage_settings(self, stage: Stage) -> argparse.Namespace:
        """The settings `train.py` would run `stage` with under this profile."""
        from art_asr_ext.benchmark.training.train import parse_args

        # They depend on the init only through whether there is one.
        placeholder = Path("baseline") if stage.init else None
        return parse_args(self.command(stage, 1.0, placeholder))

    def expected_schedule(self, stage: Stage) -> dict:
        from art_asr_ext.benchmark.training.train import schedule_from

        return asdict(schedule_from(self.stage_settings(stage), train_utterances=None))

    def plan(self, stage: Stage) -> StagePlan:
        schedule = Schedule(**self.expected_schedule(stage))
        local = self.args.work / stage.name
        local_run = read_run(local)
        unusable = "" if local_run is None else self.unusable(stage, schedule, local_run)
        if (local / STATE_FILE).is_file() and not unusable:
            extended = "" if local_run is None else extension(schedule, local_run)
            if local_run is not None and local_run["finished"] and has_model(local) and not extended:
                return StagePlan("done", local, f"finished in {local}")
            return StagePlan("resume", local, f"resumes its state in {local / STATE_FILE}{extended}")
        plan = self.plan_from_copies(stage, schedule)
        if unusable:
            plan.stale_work = f"the run in {local} {unusable}"
            plan.reason += f"; {plan.stale_work}"
        return plan

    def expected_record(self, stage: Stage, schedule: Schedule) -> dict:
        """What a run record of `stage` must hold to be picked up (see `recipe_mismatch`)."""
        expected = {
            "system": stage.system,
            "variant": stage.variant,
            "variant_settings": VARIANTS[stage.system][stage.variant].settings(),
            "resynthesised_utterances": self.stage_settings(stage).resynthesised_utterances,
            "schedule": asdict(schedule),
        }
        if stage.init is None:
            expected["model_config"] = MODEL_SIZES[stage.system][model_size(stage, self.args.profile)]
        else:  # a fine-tune keeps the architecture of the stage it starts from, whichever copy of it that was
            expected["initialised_from"] = stage.init
        return expected

    def unusable(self, stage: Stage, schedule: Schedule, run: dict) -> str:
        """Why a run of `stage` cannot be picked up (another recipe, or a stale start), or ""."""
        mismatch = recipe_mismatch(self.expected_record(stage, schedule), run)
        if mismatch:
            return f"has another recipe ({mismatch})"
        stale = self.stale_start(stage, run)
        return f"started from another {stage.init} ({stale})" if stale else ""

    def plan_from_copies(self, stage: Stage, schedule: Schedule) -> StagePlan:
        """Where a stage without a usable state of its own is picked up: its published or checkpointed copy."""
        sources, refused = [], []
        for kind, directory in (("published", self.args.models_dir), ("checkpointed", self.args.checkpoints_dir)):
            run = read_run(directory / stage.name)
            if run is None or not has_model(directory / stage.name):
                continue
            unusable = self.unusable(stage, schedule, run)
            if unusable:
                refused.append(f"the {kind} run {unusable}")
            else:
                extended = extension(schedule, run)
                last = (directory / stage.name / LAST_WEIGHTS).is_file()
                step = run["steps"] if last else run["best_step"]
                sources.append((run["finished"] and not extended, step, last, kind, directory / stage.name, extended))
        if not sources:
            return StagePlan("start", None, "; ".join(refused) or "no published or checkpointed model")
        # A finished run first, then the one whose weights are the furthest on; the published one on a tie.
        finished, step, last, kind, source, extended = max(sources, key=lambda source: source[:2])
        if finished:
            return StagePlan("done", source, f"finished, {kind} in {source}")
        weights = "last" if last else "best"
        return StagePlan(
            "continue", source, f"continues the {kind} run from its {weights} weights (step {step}){extended}"
        )

    def stale_start(self, stage: Stage, run: dict) -> str:
        """
        For a fine-tune: how the run's starting model differs from the run of the stage it starts from as it stands
        now, on the schedule the profile gives it (e.g. the baseline's schedule was extended since), or "".
        """
        if stage.init is None:
            return ""
        baseline = next(s for s in STAGES if s.name == stage.init)
        source = self.plan(baseline).source
        if source is None:
            return ""
        now, then = read_run(source), run.get("previous_run") or {}
        expected = {"steps": now["steps"], "best_step": now["best_step"], "schedule": self.expected_schedule(baseline)}
        found = {"steps": then.get("steps"), "best_step": then.get("best_step"), "schedule": then.get("schedule")}
        if isinstance(found["schedule"], dict):
            found["schedule"] = Schedule.record(found["schedule"])
        return differences(expected, found, prefix=f"{stage.init}.")


def train_piece(stage: Stage, planner: Planner, plan: StagePlan, minutes: float) -> int:
    """Train one piece of a stage in a subprocess; :return: its exit status."""
    work = planner.args.work / stage.name
    if plan.stale_work and work.exists():  # set aside, not deleted: train.py starts afresh only in an empty place
        candidates = (work.with_name(f"{work.name}.stale-{number}") for number in itertools.count(1))
        aside = next(candidate for candidate in candidates if not candidate.exists())
        work.rename(aside)
        print(f"{stage.name}: {work} moved to {aside}", flush=True)
    command = [sys.executable, "-m", "art_asr_ext.benchmark.training.train"]
    command += planner.command(stage, minutes, planner.init_dir(stage))
    if plan.action == "resume":
        command.append("--resume")
    elif plan.action == "continue":
        command += ["--continue-from", str(plan.source)]
    print(f"{stage.name}: {plan.reason}\n+ " + " ".join(command), flush=True)
    return subprocess.call(command)


def train_all(args: argparse.Namespace) -> int:
    planner = Planner(args)
    deadline = time.monotonic() + args.hours * 3600.0
    # Turns: the runnable stage with the fewest pieces so far in this run, in STAGES order on a tie.
    pieces = {stage: 0 for stage in STAGES}
    while True:
        if args.pieces is not None and sum(pieces.values()) >= args.pieces:
            print(f"{args.pieces} pieces trained; rerun the same command to continue", flush=True)
            return 0
        left = (deadline - time.monotonic()) / 60.0
        plans = {stage: planner.plan(stage) for stage in STAGES}
        candidates = [
            stage
            for stage, plan in plans.items()
            if plan.action != "done"
            and (stage.init is None or planner.init_dir(stage) is not None)
            and (not args.only or stage.name in args.only)
        ]
        if not candidates:
            finished = all(plan.action == "done" for plan in plans.values())
            print("every stage has finished its schedule" if finished else "no stage can run", flush=True)
            return 0
        if left < 1.0:
            print("time is up; rerun the same command to continue", flush=True)
            return 0
        stage = min(candidates, key=lambda candidate: pieces[candidate])
        pieces[stage] += 1
        status = train_piece(stage, planner, plans[stage], min(args.piece_minutes, left))
        if status != 0:
            print(f"{stage.name}: train.py exited with {status}; stopping", file=sys.stderr, flush=True)
            return status
        copy_best_weights(stage, args.work, args.checkpoints_dir, last_weights=True)


def half_weights(state_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """
    Parameters (`weight*`, `bias*`) in float16, the rest (normalisation statistics, counters) as they are: float16
    keeps 3 significant digits, plenty for weights and too few for a feature variance.
    """
    return {
        key: (
            value.half()
            if value.dtype == torch.float32 and key.rsplit(".", 1)[-1].startswith(("weight", "bias"))
            else value
        )
        for key, value in state_dict.items()
    }


def copy_best_weights(stage: Stage, work: Path, models_dir: Path, last_weights: bool = False) -> bool:
    """
    Copy a stage's best weights (parameters as float16) and run record from its run directory in `work` into
    `models_dir` (the package's models, or the checkpoints); False if it has none yet. With `last_weights` (the
    checkpoints), also its weights at its last step (`LAST_WEIGHTS`) when that is past the best one.
    """
    from art_asr_ext.models.espnet_asr import ZOO_WEIGHTS

    source = work / stage.name
    if not has_model(source) or read_run(source) is None:
        print(f"{stage.name}: no model yet; {models_dir / stage.name} stays as it is")
        return False
    destination = models_dir / stage.name
    staging = models_dir / f".{stage.name}.publishing"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if stage.system == "deepspeech2":
        checkpoint = torch.load(source / DEEPSPEECH_CHECKPOINT, map_location="cpu", weights_only=True)
        checkpoint["state_dict"] = half_weights(checkpoint["state_dict"])
        torch.save(checkpoint, staging / DEEPSPEECH_CHECKPOINT)
    else:
        shutil.copy2(source / "meta.yaml", staging / "meta.yaml")
        shutil.copytree(source / "exp", staging / "exp")
        weights = torch.load(staging / ZOO_WEIGHTS, map_location="cpu", weights_only=True)
        torch.save(half_weights(weights), staging / ZOO_WEIGHTS)
    shutil.copy2(source / "training_run.json", staging / "training_run.json")
    run = read_run(staging)
    if last_weights and run["steps"] > run["best_step"] and (source / STATE_FILE).is_file():
        state = torch.load(source / STATE_FILE, map_location="cpu", weights_only=True)
        if state["run"]["steps"] != run["steps"]:
            raise ValueError(f"{source / STATE_FILE} holds step {state['run']['steps']}, its run record {run['steps']}")
        torch.save(half_weights(state["model"]), staging / LAST_WEIGHTS)
    # The card and its figures belong to the weights they describe: a published model keeps them until
    # model_cards.py writes new ones.
    if destination.exists():
        for kept in ("MODEL_CARD.md", "evaluation.json", "learning_curve.png"):
            if (destination / kept).is_file():
                shutil.copy2(destination / kept, staging / kept)
        shutil.rmtree(destination)
    staging.rename(destination)
    last = " and the last ones" if (destination / LAST_WEIGHTS).is_file() else ""
    print(f"{stage.name}: copied the best weights (step {run['best_step']} of {run['steps']}){last} -> {destination}")
    return True


def publish(args: argparse.Namespace) -> int:
    """Copy each stage's (or each `--only` stage's) best weights and run record into the package's models directory."""
    planner = Planner(args)
    for stage in STAGES:
        if not args.only or stage.name in args.only:
            plan = planner.plan(stage)
            if plan.stale_work:
                print(f"{stage.name}: not copied, {plan.stale_work}")
            else:
                copy_best_weights(stage, args.work, args.models_dir)
    return 0


def status(args: argparse.Namespace) -> int:
    """Print where each stage would be picked up from."""
    planner = Planner(args)
    for stage in STAGES:
        plan = planner.plan(stage)
        waiting = stage.init is not None and plan.action != "done" and planner.init_dir(stage) is None
        print(
            f"{stage.name:{NAME_WIDTH}s} {plan.action:9s} {plan.reason}"
            + (f"; waits for {stage.init}" if waiting else "")
        )
    return 0


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    from art_asr_ext.benchmark.presets import MODELS_DIR

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help="root holding train-synth/ and dev-synth/ (default: %(default)s)",
    )
    parser.add_argument(
        "--work", type=Path, default=DEFAULT_WORK, help="one run directory per model (default: %(default)s)"
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), help="default: the --device's")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--hours", type=float, default=1.0, help="stop after this much wall time")
    parser.add_argument("--piece-minutes", type=float, default=40.0, help="length of one turn of a model")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[stage.name for stage in STAGES],
        help="train (or publish) only these stages (default: all)",
    )
    parser.add_argument("--piece-steps", type=int, help="also end a piece after this many steps")
    parser.add_argument("--pieces", type=int, help="stop after this many pieces")
    parser.add_argument("--threads", type=int, help="torch CPU threads of each piece")
    parser.add_argument("--precision", default="auto", choices=PRECISION_CHOICES, help="see train.py")
    parser.add_argument("--audio-extension", default=".opus", help="of the training audio (default: %(default)s)")
    parser.add_argument("--dev-audio-extension", default=".flac", help="of the dev audio (default: %(default)s)")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="copy each stage's best weights from --work into --models-dir, train none (--work checkpoints publishes "
        "the committed checkpoints)",
    )
    parser.add_argument("--status", action="store_true", help="say where each stage would be picked up, train none")
    parser.add_argument(
        "--models-dir", type=Path, default=MODELS_DIR, help="where models are published and picked up from"
    )
    parser.add_argument(
        "--checkpoints-dir",
        type=Path,
        default=DEFAULT_CHECKPOINTS,
        help="where every piece leaves its best weights, to commit and pick up from (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    args.profile = args.profile or args.device
    for name in ("piece_steps", "pieces"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1. Found: {getattr(args, name)}")
    if not args.hours > 0 or not args.piece_minutes > 0:
        parser.error(f"--hours and --piece-minutes must be positive. Found: {args.hours}, {args.piece_minutes}")
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.status:
        return status(args)
    if args.publish:
        return publish(args)
    for split in ("train-synth", "dev-synth"):
        if not (args.corpus / split).is_dir():
            print(f"error: --corpus {args.corpus} has no {split}/ (see ../shared/data/README.md)", file=sys.stderr)
            return 2
    args.work.mkdir(parents=True, exist_ok=True)
    return train_all(args)


if __name__ == "__main__":
    sys.exit(main())
