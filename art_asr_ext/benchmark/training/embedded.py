"""
Train all six embedded models (the study's variants) in resumable pieces, and publish the best weights so far into
the package with their model cards.

Each model is a run of :mod:`art_asr_ext.benchmark.training.train` in its own directory under `--work`, trained in a
subprocess (one model in memory at a time). The baselines train in turns of `--piece-minutes`, so both make progress
in every session; a variant starts, from its baseline's best weights, once that baseline has finished its schedule.
Rerunning the command continues where the last one stopped::

    nice python benchmarks/train_embedded.py --corpus /work/data/synth --work /work/data/train --threads 2 \\
        --hours 2.5
    python benchmarks/train_embedded.py --corpus /work/data/synth --work /work/data/train --publish

On a GPU, `--device gpu` uses a schedule sized to train all six in about 9 minutes on one H200 (larger batches,
fewer steps); `--profile tiny` is the same plan at toy sizes, for tests.
"""

import argparse
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from art_asr_ext.benchmark.training.recipes import DEEPSPEECH_CHECKPOINT, STATE_FILE


@dataclass(frozen=True)
class Stage:
    """One embedded model: what trains it and from which model it starts."""

    name: str
    system: str
    variant: str
    init: Optional[str] = None  # name of the stage whose best weights it fine-tunes


STAGES = (
    Stage("deepspeech2_baseline", "deepspeech2", "baseline"),
    Stage("transformer_baseline", "transformer", "baseline"),
    Stage("deepspeech2_rs_aug", "deepspeech2", "rs_aug", init="deepspeech2_baseline"),
    Stage("deepspeech2_waveaug", "deepspeech2", "waveaug", init="deepspeech2_baseline"),
    Stage("transformer_rs_aug", "transformer", "rs_aug", init="transformer_baseline"),
    Stage("transformer_no_lsm", "transformer", "no_lsm", init="transformer_baseline"),
)

#: Per profile: the model size and each stage's train.py schedule arguments.
PROFILES: Dict[str, Dict[str, object]] = {
    # 2 CPU cores: many hours, in pieces. Baselines: 13 and 16 epochs of the 9,927 training sentences.
    "cpu": {
        "size": "embedded",
        "baseline": ["--max-steps", "8000", "--batch-size", "16", "--eval-every", "500"],
        # Model selection by beam 4 (the cards decode with beam 10): a dev pass stays a few minutes on 2 cores.
        "transformer_baseline": [
            "--max-steps",
            "10000",
            "--batch-size",
            "16",
            "--eval-every",
            "500",
            "--dev-beam-size",
            "4",
        ],
        "variant": ["--max-steps", "1500", "--batch-size", "16", "--eval-every", "250", "--dev-beam-size", "4"],
        # HiFi-GAN re-synthesis runs at 0.4 x real time on 2 cores: WAVEAUG fine-tunes on 1,500 sentences (2 h).
        "waveaug": ["--max-train-utterances", "1500"],
    },
    # One H200: larger batches, fewer steps, all six in about 9 minutes.
    "gpu": {
        "size": "embedded",
        "baseline": ["--max-steps", "2500", "--batch-size", "48", "--eval-every", "500", "--lr", "2.5e-3"],
        "transformer_baseline": ["--max-steps", "3000", "--batch-size", "48", "--eval-every", "500", "--lr", "3e-3"],
        "variant": ["--max-steps", "400", "--batch-size", "48", "--eval-every", "200"],
        "waveaug": ["--max-train-utterances", "3000"],
    },
    # Tests: toy models, a handful of steps.
    "tiny": {
        "size": "tiny",
        "baseline": ["--max-steps", "4", "--batch-size", "4", "--eval-every", "2", "--dev-utterances", "2"],
        "transformer_baseline": ["--max-steps", "4", "--batch-size", "4", "--eval-every", "2", "--dev-utterances", "2"],
        "variant": ["--max-steps", "2", "--batch-size", "4", "--eval-every", "2", "--dev-utterances", "2"],
        "waveaug": ["--max-train-utterances", "4"],
    },
}


def stage_arguments(stage: Stage, profile: str) -> List[str]:
    settings = PROFILES[profile]
    key = "variant" if stage.init else ("transformer_baseline" if stage.system == "transformer" else "baseline")
    extra = settings["waveaug"] if stage.variant == "waveaug" else []
    return list(settings[key]) + list(extra)


def run_status(directory: Path) -> Dict[str, object]:
    """What a stage's directory holds: `finished`, the `steps` done and the `best_dev_wer`."""
    record = directory / "training_run.json"
    if not record.is_file():
        return {"finished": False, "steps": 0, "best_dev_wer": None, "started": (directory / STATE_FILE).is_file()}
    run = json.loads(record.read_text())
    return {"finished": run["finished"], "steps": run["steps"], "best_dev_wer": run["best_dev_wer"], "started": True}


def has_model(directory: Path) -> bool:
    return (directory / DEEPSPEECH_CHECKPOINT).is_file() or (directory / "meta.yaml").is_file()


def train_piece(stage: Stage, args: argparse.Namespace, minutes: float) -> int:
    """Train one piece of a stage in a subprocess; :return: its exit status."""
    directory = args.work / stage.name
    command = [
        sys.executable,
        "-m",
        "art_asr_ext.benchmark.training.train",
        "--system",
        stage.system,
        "--variant",
        stage.variant,
        "--size",
        str(PROFILES[args.profile]["size"]),
        "--train",
        str(args.corpus / "train-synth"),
        "--dev",
        str(args.corpus / "dev-synth"),
        "--out",
        str(directory),
        "--device",
        args.device,
        "--max-minutes",
        f"{minutes:.2f}",
        "--audio-extension",
        args.audio_extension,
        *stage_arguments(stage, args.profile),
    ]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if stage.init:
        command += ["--init", str(args.work / stage.init)]
    if (directory / STATE_FILE).is_file():
        command.append("--resume")
    print("+ " + " ".join(command), flush=True)
    return subprocess.call(command)


def runnable(stage: Stage, work: Path) -> bool:
    if run_status(work / stage.name)["finished"]:
        return False
    return stage.init is None or (run_status(work / stage.init)["finished"] and has_model(work / stage.init))


def train_all(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.hours * 3600.0
    turn = 0
    while True:
        left = (deadline - time.monotonic()) / 60.0
        candidates = [stage for stage in STAGES if runnable(stage, args.work)]
        if not candidates:
            print(
                (
                    "every stage has finished its schedule"
                    if all(run_status(args.work / s.name)["finished"] for s in STAGES)
                    else "no stage can run"
                ),
                flush=True,
            )
            return 0
        if left < 1.0:
            print("time is up; rerun the same command to continue", flush=True)
            return 0
        stage = candidates[turn % len(candidates)]
        turn += 1
        status = train_piece(stage, args, min(args.piece_minutes, left))
        if status != 0:
            print(f"{stage.name}: train.py exited with {status}; stopping", file=sys.stderr, flush=True)
            return status


def publish(args: argparse.Namespace) -> int:
    """Copy each stage's best weights and run record into the package's models directory."""
    from art_asr_ext.benchmark.presets import MODELS_DIR

    destination_root = args.models_dir or MODELS_DIR
    for stage in STAGES:
        source = args.work / stage.name
        if not has_model(source):
            print(f"{stage.name}: no model yet; the published one stays")
            continue
        destination = destination_root / stage.name
        if destination.exists():
            shutil.rmtree(destination)
        destination.mkdir(parents=True)
        if stage.system == "deepspeech2":
            shutil.copy2(source / DEEPSPEECH_CHECKPOINT, destination / DEEPSPEECH_CHECKPOINT)
        else:
            shutil.copy2(source / "meta.yaml", destination / "meta.yaml")
            shutil.copytree(source / "exp", destination / "exp")
        shutil.copy2(source / "training_run.json", destination / "training_run.json")
        print(f"{stage.name}: published step {run_status(source)['steps']} -> {destination}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="root holding train-synth/ and dev-synth/")
    parser.add_argument("--work", type=Path, required=True, help="one run directory per model (outside the repo)")
    parser.add_argument("--profile", choices=sorted(PROFILES), help="default: the --device's")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--hours", type=float, default=1.0, help="stop after this much wall time")
    parser.add_argument("--piece-minutes", type=float, default=40.0, help="length of one turn of a model")
    parser.add_argument("--threads", type=int, help="torch CPU threads of each piece")
    parser.add_argument("--audio-extension", default=".flac", help="of the corpus's audio files (.opus when packed)")
    parser.add_argument("--publish", action="store_true", help="copy the best models into the package, train none")
    parser.add_argument("--models-dir", type=Path, help="where --publish writes (default: the package's models)")
    args = parser.parse_args(argv)
    args.profile = args.profile or args.device
    for split in ("train-synth", "dev-synth"):
        if not args.publish and not (args.corpus / split).is_dir():
            print(f"error: {args.corpus / split} is missing; synthesise the corpus first", file=sys.stderr)
            return 2
    args.work.mkdir(parents=True, exist_ok=True)
    return publish(args) if args.publish else train_all(args)


if __name__ == "__main__":
    sys.exit(main())
