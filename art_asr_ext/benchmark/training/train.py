"""
Train one of the study's model variants on a LibriSpeech-layout corpus with the estimators' own `fit`, in
resumable pieces.

A run is fixed by its schedule (`--max-steps` and the optimisation settings); it may be trained in any number of
pieces: each piece ends after `--stop-after-steps` steps, `--max-minutes` of wall time, Ctrl-C or a kill, and
`--resume` continues it from the state in `--out` (written atomically at least every 10 minutes and when a piece
ends). The same steps in one piece or in several give the same weights. For example, on the synthetic corpus of
`art_asr_ext.benchmark.training.synthesize`::

    python benchmarks/train.py --system deepspeech2 --variant baseline --max-steps 12000 \\
        --train ../shared/data/synth/train-synth --audio-extension .opus --dev ../shared/data/synth/dev-synth \\
        --out runs/train/ds2_baseline
    python benchmarks/train.py ... --out runs/train/ds2_baseline --resume     # the next piece

The same recipe at the study's sizes on LibriSpeech, on a GPU::

    python benchmarks/train.py --system transformer --variant baseline --size paper --device gpu --max-steps 100000 \\
        --train LibriSpeech/train-clean-100 --dev LibriSpeech/dev-clean --out exp/transformer_baseline

The best weights (by dev WER) are saved in `--out` in the system's own layout next to `training_run.json`;
`benchmarks/model_cards.py` evaluates them and writes the model card.
"""

import argparse
import json
import logging
import math
import signal
import sys
from pathlib import Path
from typing import List, Optional

import torch

from art_asr_ext.benchmark.training.recipes import (
    LAST_WEIGHTS,
    MODEL_SIZES,
    STATE_FILE,
    VARIANTS,
    Corpus,
    Recipe,
    Schedule,
    TrainingRun,
    write_feats_stats,
)
from art_asr_ext.utils.environment import PRECISION_CHOICES, resolve_precision

#: Defaults of each system's schedule (ESPnet practice for the Transformer: clip 5, beta2 0.98, CTC warm-up).
SCHEDULE_DEFAULTS = {
    "deepspeech2": {"learning_rate": 1.5e-3, "warmup_steps": 500, "max_grad_norm": 5.0},
    "transformer": {
        "learning_rate": 2e-3,
        "warmup_steps": 1500,
        "max_grad_norm": 5.0,
        "ctc_weight_start": 0.8,
        "ctc_warmup_steps": 2000,
    },
}


def vocoded(corpus: Corpus, cache_dir: Path, device_type: str) -> Corpus:
    """The corpus re-synthesised through the default pretrained HiFi-GAN (WAVEAUG), cached on disk."""
    from art_asr_ext.defences.preprocessor import WaveGANVocoderPyTorch
    from art_asr_ext.defences.preprocessor.waveaug import resynthesise_dataset
    from art_asr_ext.utils.audio import to_object_array

    vocoder = WaveGANVocoderPyTorch(seed=0, device_type=device_type)
    waveforms = resynthesise_dataset(corpus.waveforms, corpus.utterance_ids, vocoder, cache_dir, verbose=True)
    return Corpus(corpus.utterance_ids, to_object_array(waveforms), corpus.transcripts)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=sorted(VARIANTS), required=True)
    parser.add_argument(
        "--variant",
        required=True,
        help="; ".join(f"{system}: {'|'.join(variants)}" for system, variants in VARIANTS.items()),
    )
    parser.add_argument(
        "--size",
        default="embedded",
        help="model size; " + "; ".join(f"{system}: {'|'.join(sizes)}" for system, sizes in MODEL_SIZES.items()),
    )
    parser.add_argument("--train", type=Path, required=True, help="LibriSpeech-layout training split")
    parser.add_argument("--dev", type=Path, required=True, help="LibriSpeech-layout development split")
    parser.add_argument("--out", type=Path, required=True, help="run directory: best model, run record, state")
    parser.add_argument("--resume", action="store_true", help="continue the run whose state is in --out")
    parser.add_argument(
        "--continue-from",
        type=Path,
        help="continue the unfinished run published in this model directory (its weights and training_run.json) "
        f"with a fresh optimizer, e.g. on a new machine that has no state in --out: from its last step if it holds "
        f"{LAST_WEIGHTS}, else from its best weights' step",
    )
    parser.add_argument(
        "--restart-warmup-steps",
        type=int,
        default=200,
        help="with --continue-from: steps over which the fresh optimizer's learning rate ramps up",
    )
    parser.add_argument("--init", type=Path, help="start from this saved model (fine-tuning)")
    parser.add_argument("--max-train-utterances", type=int, help="use only the first N training utterances")
    parser.add_argument(
        "--resynthesised-utterances",
        type=int,
        help="WAVEAUG: re-synthesise only the first N training utterances (HiFi-GAN runs at 0.4 x real time on 2 CPU "
        "cores); default: all",
    )
    parser.add_argument(
        "--audio-extension", default=".flac", help="of the training split's audio files (.opus when packed)"
    )
    parser.add_argument("--dev-audio-extension", default=".flac", help="of the development split's audio files")
    parser.add_argument("--waveaug-cache", type=Path, help="WAVEAUG re-synthesis cache (default: --out/waveaug)")
    group = parser.add_argument_group("schedule (fixed for the whole run)")
    group.add_argument("--max-steps", type=int, help="optimizer steps of the whole run; the LR schedule spans them")
    group.add_argument(
        "--restarts",
        type=int,
        nargs="+",
        default=[],
        help="steps where the LR warms up again and decays to the next (a finished run goes on when its schedule "
        "gains a restart at its end)",
    )
    group.add_argument("--restart-lr-ratio", type=float, help="peak LR after a restart, relative to --lr")
    group.add_argument("--epochs", type=float, help="instead of --max-steps: this many passes over the data")
    group.add_argument("--batch-size", type=int, default=16)
    group.add_argument("--lr", type=float, help="peak learning rate")
    group.add_argument("--warmup-steps", type=int)
    group.add_argument("--max-grad-norm", type=float)
    group.add_argument("--ctc-weight-start", type=float, help="transformer: CTC weight at step 0 (warm-up)")
    group.add_argument("--ctc-warmup-steps", type=int, help="transformer: steps to reach the model's CTC weight")
    group.add_argument("--no-sortagrad", action="store_true", help="random batch order in the first epoch too")
    group.add_argument("--eval-every", type=int, default=500, help="steps between dev evaluations")
    group.add_argument("--dev-utterances", type=int, default=100)
    group.add_argument("--seed", type=int, default=0)
    group = parser.add_argument_group("this piece")
    group.add_argument("--stop-after-steps", type=int, help="end this piece after K more steps")
    group.add_argument("--max-minutes", type=float, help="end this piece after this much wall time")
    group.add_argument("--state-every-minutes", type=float, default=10.0)
    parser.add_argument(
        "--decoding",
        default="beam",
        choices=["beam", "greedy", "ctc"],
        help="transformer: decoding of the dev WER that selects the best weights (default: joint CTC/attention beam)",
    )
    parser.add_argument("--dev-beam-size", type=int, default=10)
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISION_CHOICES,
        help="of the training steps (bf16: autocast, float32 master weights); auto: bf16 on a CPU with bf16 matrix "
        "units, fp32 elsewhere",
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    args = parser.parse_args(argv)
    if args.variant not in VARIANTS[args.system]:
        parser.error(
            f"--variant for {args.system} must be one of {sorted(VARIANTS[args.system])}. Found: {args.variant!r}"
        )
    if args.size not in MODEL_SIZES[args.system]:
        parser.error(
            f"--size for {args.system} must be one of {sorted(MODEL_SIZES[args.system])}. Found: {args.size!r}"
        )
    if (args.max_steps is None) == (args.epochs is None):
        parser.error("give exactly one of --max-steps and --epochs")
    if args.continue_from is not None and args.resume:
        parser.error("give at most one of --resume and --continue-from")
    if args.restart_warmup_steps < 0:
        parser.error(f"--restart-warmup-steps must be >= 0. Found: {args.restart_warmup_steps}")
    for name in ("max_train_utterances", "resynthesised_utterances"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1. Found: {getattr(args, name)}")
    if args.resynthesised_utterances is not None and not VARIANTS[args.system][args.variant].waveaug:
        parser.error(f"--resynthesised-utterances is for a WAVEAUG variant, not {args.system}/{args.variant}")
    return args


def schedule_from(args: argparse.Namespace, train_utterances: Optional[int]) -> Schedule:
    """The run's schedule; `train_utterances` is needed only for `--epochs`."""
    defaults = SCHEDULE_DEFAULTS[args.system]
    if args.max_steps is not None:
        max_steps = args.max_steps
    elif train_utterances is None:
        raise ValueError("a schedule in --epochs needs the number of training utterances")
    else:
        max_steps = max(1, int(args.epochs * math.ceil(train_utterances / args.batch_size)))
    chosen = {
        "learning_rate": args.lr,
        "warmup_steps": args.warmup_steps,
        "max_grad_norm": args.max_grad_norm,
        "ctc_weight_start": args.ctc_weight_start,
        "ctc_warmup_steps": args.ctc_warmup_steps,
        "restart_lr_ratio": args.restart_lr_ratio,
    }
    settings = {**defaults, **{key: value for key, value in chosen.items() if value is not None}}
    if args.init is not None and args.warmup_steps is None:
        settings["warmup_steps"] = min(settings["warmup_steps"], max(1, max_steps // 10))  # a fine-tune
    if args.system != "transformer" or args.init is not None:
        settings.pop("ctc_weight_start", None), settings.pop("ctc_warmup_steps", None)
    settings["warmup_steps"] = min(settings["warmup_steps"], max_steps - 1)
    return Schedule(
        max_steps=max_steps,
        restarts=tuple(args.restarts),
        batch_size=args.batch_size,
        sortagrad=not args.no_sortagrad and args.init is None,
        eval_every_steps=args.eval_every,
        dev_utterances=args.dev_utterances,
        seed=args.seed,
        **settings,
    )


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    # ESPnet logs every initialised parameter at INFO on the root logger; this script prints its own progress.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    state = args.out / STATE_FILE
    if state.is_file() and not args.resume:
        print(f"error: {state} holds a run; add --resume to continue it, or choose another --out", file=sys.stderr)
        return 2
    if args.resume and not state.is_file():
        print(f"error: --resume but {args.out} holds no {STATE_FILE}", file=sys.stderr)
        return 2
    continued = continued_weights = None
    if args.continue_from is not None:
        record = args.continue_from / "training_run.json"
        if not record.is_file():
            print(f"error: --continue-from {args.continue_from} holds no training_run.json", file=sys.stderr)
            return 2
        continued = TrainingRun(**json.loads(record.read_text()))
        if (args.continue_from / LAST_WEIGHTS).is_file():
            continued_weights = args.continue_from / LAST_WEIGHTS
    try:
        train = Corpus.load(args.train, args.max_train_utterances, args.audio_extension)
        dev = Corpus.load(args.dev, audio_extension=args.dev_audio_extension)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    stats_file = None
    # A continued run rebuilds its model from the published directory: architecture, statistics and weights.
    model_source = args.continue_from or args.init
    if Recipe.needs_stats(args.system, args.size, model_source):
        stats_file = args.out / "feats_stats.npz"
        if not stats_file.is_file():
            frontend = {"fs": 16000, "n_fft": 512, "hop_length": 160, "n_mels": 80}
            write_feats_stats(train, frontend, stats_file)
    recipe = Recipe(
        args.system,
        args.variant,
        args.size,
        args.device,
        model_source,
        args.decoding,
        beam_size=args.dev_beam_size,
        stats_file=stats_file,
        precision=resolve_precision(args.precision, args.device),
        resynthesised_utterances=args.resynthesised_utterances,
    )
    if recipe.variant.waveaug:
        cache = args.waveaug_cache or args.out / "waveaug"
        resynthesised = vocoded(train.first(args.resynthesised_utterances or len(train)), cache, args.device)
        train = train.concatenate(resynthesised) if recipe.variant.waveaug_beside_clean else resynthesised
        # Model selection under the condition the model is made for: the vocoder defence in front of it.
        dev = vocoded(dev.first(args.dev_utterances), cache / "dev", args.device)
    try:
        schedule = schedule_from(args, len(train))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"{args.system}/{args.variant} ({args.size}, {sum(p.numel() for p in recipe.model.parameters()):,} parameters): "
        f"{len(train)} training utterances ({train.hours:.2f} h), {len(dev)} dev; {schedule.max_steps} steps",
        flush=True,
    )
    data = {"train": str(args.train), "dev": str(args.dev)}
    if recipe.variant.waveaug:
        vocoder = "re-synthesised by HiFi-GAN V1 universal"
        data = {split: f"{path} ({vocoder})" for split, path in data.items()}
        if recipe.variant.waveaug_beside_clean:
            data["train"] = f"{args.train}, and its first {len(resynthesised)} utterances {vocoder}"
    # A polite kill (SIGTERM) ends the piece like Ctrl-C: the state is written before the process exits.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run = recipe.fit(
            train,
            dev,
            schedule,
            args.out,
            log=lambda line: print(line, flush=True),
            data=data,
            resume=args.resume,
            continue_run=continued,
            continue_weights=continued_weights,
            restart_warmup_steps=args.restart_warmup_steps,
            stop_after_steps=args.stop_after_steps,
            max_minutes=args.max_minutes,
            state_every_minutes=args.state_every_minutes,
        )
    except KeyboardInterrupt:
        print(f"interrupted; the state in {state} holds every finished step (continue with --resume)")
        return 130
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    status = "finished" if run.finished else "paused (continue with --resume)"
    print(
        f"{status}: step {run.steps}/{schedule.max_steps}, best dev WER {run.best_dev_wer:.2f} % at step "
        f"{run.best_step}; {run.wall_minutes} min of training -> {args.out / 'training_run.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
