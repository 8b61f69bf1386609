"""
Train one of the study's model variants on a LibriSpeech-layout corpus with the estimators' own `fit`.

The embedded models under `benchmarks/models` were trained on the synthetic corpus of
`benchmarks/synthesize_corpus.py`, e.g.::

    python benchmarks/train.py --system deepspeech2 --variant baseline \\
        --train data/synth/train-synth --dev data/synth/dev-synth --out benchmarks/models/deepspeech2_baseline
    python benchmarks/train.py --system deepspeech2 --variant rs_aug --init benchmarks/models/deepspeech2_baseline \\
        --train data/synth/train-synth --dev data/synth/dev-synth --out benchmarks/models/deepspeech2_rs_aug

The same recipe at the study's sizes on LibriSpeech, on a GPU::

    python benchmarks/train.py --system transformer --variant baseline --size paper --device gpu --epochs 100 \\
        --train LibriSpeech/train-clean-100 --dev LibriSpeech/dev-clean --out exp/transformer_baseline

Model cards (test WERs) are written afterwards by `benchmarks/model_cards.py`.
"""

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.training.recipes import MODEL_SIZES, VARIANTS, Corpus, Recipe, Schedule  # noqa: E402


def vocoded(corpus: Corpus, cache_dir: Path, device_type: str) -> Corpus:
    """The corpus re-synthesised through the default pretrained HiFi-GAN (WAVEAUG), cached on disk."""
    from art_asr_ext.defences.preprocessor import WaveGANVocoderPyTorch
    from art_asr_ext.defences.preprocessor.waveaug import resynthesise_dataset
    from art_asr_ext.estimators.speech_recognition.speech_inputs import to_object_array

    vocoder = WaveGANVocoderPyTorch(seed=0, device_type=device_type)
    waveforms = resynthesise_dataset(corpus.waveforms, corpus.utterance_ids, vocoder, cache_dir, verbose=True)
    return Corpus(corpus.utterance_ids, to_object_array(waveforms), corpus.transcripts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", choices=sorted(VARIANTS), required=True)
    parser.add_argument(
        "--variant", required=True, help="deepspeech2: baseline|rs_aug|waveaug; transformer: baseline|rs_aug|no_lsm"
    )
    parser.add_argument("--size", default="embedded", choices=["embedded", "paper", "tiny"])
    parser.add_argument("--train", type=Path, required=True, help="LibriSpeech-layout training split")
    parser.add_argument("--dev", type=Path, required=True, help="LibriSpeech-layout development split")
    parser.add_argument("--out", type=Path, required=True, help="model directory to write")
    parser.add_argument("--init", type=Path, help="start from this saved model (fine-tuning)")
    parser.add_argument("--max-train-utterances", type=int, help="use only the first N training utterances")
    parser.add_argument("--waveaug-cache", type=Path, default=Path("runs/waveaug_cache"))
    parser.add_argument("--epochs", type=float, default=10.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup-steps", type=int, default=300)
    parser.add_argument("--max-grad-norm", type=float, default=100.0)
    parser.add_argument("--max-minutes", type=float, help="stop after this much training time")
    parser.add_argument("--eval-every", type=int, default=200, help="steps between dev evaluations")
    parser.add_argument("--dev-utterances", type=int, default=100)
    parser.add_argument(
        "--decoding",
        default="greedy",
        choices=["greedy", "ctc"],
        help="transformer: decoding of the dev WER that selects the best weights",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.variant not in VARIANTS[args.system]:
        parser.error(f"--variant for {args.system} must be one of {sorted(VARIANTS[args.system])}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    recipe = Recipe(args.system, args.variant, args.size, args.device, args.init, args.decoding)
    train = Corpus.load(args.train, args.max_train_utterances)
    dev = Corpus.load(args.dev)
    if recipe.variant.waveaug:
        train = vocoded(train, args.waveaug_cache, args.device)
    print(
        f"{args.system}/{args.variant} ({args.size}, {sum(p.numel() for p in recipe.model.parameters()):,} parameters): "
        f"{len(train)} training utterances ({train.hours:.2f} h), {len(dev)} dev",
        flush=True,
    )
    schedule = Schedule(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup_steps=args.warmup_steps,
        max_grad_norm=args.max_grad_norm,
        max_minutes=args.max_minutes,
        eval_every_steps=args.eval_every,
        dev_utterances=args.dev_utterances,
        seed=args.seed,
    )
    data = {"train": str(args.train), "dev": str(args.dev)}
    if recipe.variant.waveaug:
        data["train"] += " (re-synthesised by HiFi-GAN V1 universal)"
    run = recipe.fit(train, dev, schedule, args.out, log=lambda line: print(line, flush=True), data=data)
    run_path = args.out / "training_run.json"
    print(
        f"best dev WER {run.best_dev_wer:.2f} % at step {run.best_step}; {run.steps} steps in {run.wall_minutes} min -> {run_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
