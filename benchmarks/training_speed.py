"""
How fast the embedded models train, and what the recipe's path costs over a bare PyTorch loop.

For each embedded model (the `embedded` size of `art_asr_ext.benchmark.training.recipes`, or another of its
`MODEL_SIZES` with `--size`), one training step on one batch of real corpus utterances, timed two ways on the same
module, batch and loss:

* **recipe**: the step `Recipe.fit` takes, i.e. the ART estimator's `fit` on one batch (numpy in, padding,
  tokenising, the loss, clipping, AdamW) under the recipe's autocast;
* **bare**: a hand-written PyTorch loop over the same module with the batch already padded and tokenised
  (DeepSpeech2: forward, CTC; ESPnet: the model's own `forward`, as ESPnet's trainer calls it).

It prints each one's seconds per step (median of `--steps`, the two alternating so that a load on the machine hits
both alike), audio seconds trained per second, and the ratio recipe / bare. With `--precision fp32 bf16` it
measures both ways: bf16 autocast with float32 master weights pays off only on CPUs with bf16 matrix
units (AMX, AVX-512 BF16), which the header line names; there it measures both by default, elsewhere fp32 only.

Usage, from the repository root::

    python benchmarks/training_speed.py --threads 2
    python benchmarks/training_speed.py --systems transformer --precision fp32 --steps 3
    python benchmarks/training_speed.py --size wide --precision bf16
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from art_asr_ext.benchmark.training.embedded import DEFAULT_CORPUS  # noqa: E402
from art_asr_ext.benchmark.training.recipes import (  # noqa: E402
    MODEL_SIZES,
    SYSTEMS,
    Corpus,
    Recipe,
    Schedule,
    write_feats_stats,
)
from art_asr_ext.estimators.speech_recognition.pytorch_speech_recognizer import PyTorchSpeechRecognizer  # noqa: E402
from art_asr_ext.utils.audio import length_sorted_batches  # noqa: E402
from art_asr_ext.utils.audio_torch import pad_waveforms  # noqa: E402
from art_asr_ext.utils.environment import PRECISIONS, cpu_has_bf16_matmul, cpu_model  # noqa: E402

SAMPLE_RATE = 16000


def load_dev_split(root: Path) -> Optional[Corpus]:
    """The dev split of the corpus at `root`, or None, the error printed, where it has none."""
    split = root / "dev-synth"
    if not split.is_dir():
        print(f"error: --corpus {root} has no dev-synth/", file=sys.stderr)
        return None
    return Corpus.load(split)


def middle_batch(corpus: Corpus, batch_size: int) -> Corpus:
    """The `batch_size` utterances of median length: a typical length-sorted training batch."""
    order = np.argsort([len(w) for w in corpus.waveforms], kind="stable")
    start = max(0, len(order) // 2 - batch_size // 2)
    return corpus.subset(order[start : start + batch_size])


def consecutive_batches(corpus: Corpus, batch_size: int, count: int) -> List[Corpus]:
    """
    `count` consecutive full batches from the middle of the corpus's length-sorted batches: what training meets in a
    row (one batch repeated would find its buffers and kernels ready). Empty where the corpus has no full batch.
    """
    sorted_batches = length_sorted_batches(
        [len(w) for w in corpus.waveforms], batch_size, PyTorchSpeechRecognizer.max_padding
    )
    full = [batch for batch in sorted_batches if len(batch) == batch_size]
    middle = max(0, len(full) // 2 - count // 2)
    return [corpus.subset(batch) for batch in full[middle : middle + count]]


def add_batch_arguments(parser: argparse.ArgumentParser, compared: str) -> None:
    """The options of a benchmark that times training steps over `consecutive_batches` of the dev split, each way."""
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="its dev-synth/ gives the batches")
    parser.add_argument("--batches", type=int, default=6, help="consecutive length-sorted batches of one pass")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--passes", type=int, default=3, help=f"timed passes with each {compared} (median)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")


def batches_from_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Optional[List[Corpus]]:
    """
    Check the options of `add_batch_arguments` (a parser error names a bad count), set the torch threads and load the
    batches; None, the error printed, where the corpus has no dev split or no full batch. Prints what it measures on.
    """
    for name in ("batches", "batch_size", "passes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = load_dev_split(args.corpus)
    if corpus is None:
        return None
    batches = consecutive_batches(corpus, args.batch_size, args.batches)
    if not batches:
        print(f"error: the dev split of {args.corpus} has no batch of {args.batch_size} utterances", file=sys.stderr)
        return None
    longest = [max(len(w) for w in batch.waveforms) / SAMPLE_RATE for batch in batches]
    print(
        f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads, bf16 matrix units: "
        f"{'yes' if cpu_has_bf16_matmul() else 'no'}; torch {torch.__version__}"
    )
    print(
        f"{len(batches)} batches of {args.batch_size} dev utterances, longest {min(longest):.1f} to "
        f"{max(longest):.1f} s; median of {args.passes} passes"
    )
    return batches


def seconds(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def build_recipe(system: str, size: str, precision: str, corpus: Corpus, scratch: Path) -> Recipe:
    stats_file = None
    if Recipe.needs_stats(system, size):
        stats_file = write_feats_stats(
            corpus, {"fs": SAMPLE_RATE, "n_fft": 512, "hop_length": 160, "n_mels": 80}, scratch / "feats_stats.npz"
        )
    torch.manual_seed(0)
    return Recipe(system, "baseline", size, stats_file=stats_file, precision=precision)


def recipe_step(recipe: Recipe, batch: Corpus, schedule: Schedule) -> Callable[[], None]:
    """One step as `Recipe.fit` takes it."""
    optimizer = torch.optim.AdamW(recipe.model.parameters(), lr=schedule.learning_rate, betas=schedule.betas)
    estimator = recipe.estimator(optimizer=optimizer)

    def step() -> None:
        with recipe._autocast():
            estimator.fit(
                batch.waveforms,
                batch.transcripts,
                batch_size=len(batch),
                nb_epochs=1,
                max_grad_norm=schedule.max_grad_norm,
            )

    return step


def bare_step(recipe: Recipe, batch: Corpus, schedule: Schedule) -> Callable[[], None]:
    """One step of a hand-written loop over the same module, batch and loss; tensors prepared beforehand."""
    model = recipe.model
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.learning_rate, betas=schedule.betas)
    padded, lengths = pad_waveforms([torch.as_tensor(w, dtype=torch.float32) for w in batch.waveforms])
    if recipe.system == "deepspeech2":
        index = {label: i for i, label in enumerate(model.labels)}
        encoded = [[index[c] for c in text] for text in batch.transcripts]
        targets = torch.tensor([t for tokens in encoded for t in tokens])
        target_lengths = torch.tensor([len(tokens) for tokens in encoded])

        def loss() -> torch.Tensor:
            logits, output_lengths = model(padded, lengths)
            log_probs = logits.log_softmax(-1).transpose(0, 1)
            return torch.nn.functional.ctc_loss(
                log_probs, targets, output_lengths, target_lengths, blank=0, reduction="none", zero_infinity=True
            ).mean()

    else:
        # The estimator's own tokeniser, once, outside the timed step (a bare loop's data loader does this).
        codec = recipe.estimator()._codec
        token_ids = [torch.tensor(codec.encode(str(text))) for text in batch.transcripts]
        text_lengths = torch.tensor([len(ids) for ids in token_ids])
        text = torch.nn.utils.rnn.pad_sequence(token_ids, batch_first=True, padding_value=-1)

        def loss() -> torch.Tensor:
            return model(padded, lengths, text, text_lengths)[0]

    def step() -> None:
        model.train()
        optimizer.zero_grad()
        with recipe._autocast():
            value = loss()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), schedule.max_grad_norm)
        optimizer.step()
        model.eval()

    return step


def timed(steps: Dict[str, Callable[[], None]], repeats: int, warmup: int) -> Dict[str, float]:
    """Median seconds per call of each step, the steps taken in alternation."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="its dev-synth/ gives the batch")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument(
        "--size",
        default="embedded",
        choices=sorted({size for sizes in MODEL_SIZES.values() for size in sizes}),
        help="the key of MODEL_SIZES to build (default: embedded)",
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        help="default: fp32, and bf16 where the CPU has bf16 matrix units (elsewhere it emulates bf16, many times slower)",
    )
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="timed steps of each kind (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps of each kind first")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.precision is None:
        args.precision = ["fp32", "bf16"] if cpu_has_bf16_matmul() else ["fp32"]
    for name in ("batch_size", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.warmup < 0:
        parser.error(f"--warmup must be at least 0, got {args.warmup}")
    lacking = [system for system in args.systems if args.size not in MODEL_SIZES[system]]
    if lacking:
        parser.error(f"--size {args.size} is not a size of {', '.join(lacking)}; pick --systems among the others")
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = load_dev_split(args.corpus)
    if dev is None:
        return 2
    batch = middle_batch(dev, args.batch_size)
    audio_seconds = sum(len(w) for w in batch.waveforms) / SAMPLE_RATE
    print(
        f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads, bf16 matrix units: "
        f"{'yes' if cpu_has_bf16_matmul() else 'no'}; torch {torch.__version__}"
    )
    print(
        f"batch: {len(batch)} utterances, {audio_seconds:.1f} s of audio; median of {args.steps} steps; "
        f"size {args.size}\n"
    )
    print("| model | precision | recipe s/step | audio s/s | bare s/step | audio s/s | recipe / bare |")
    print("|---|---|---|---|---|---|---|")
    schedule = Schedule()
    with tempfile.TemporaryDirectory() as scratch:
        for system in args.systems:
            for precision in args.precision:
                recipe = build_recipe(system, args.size, precision, batch, Path(scratch))
                steps = {"recipe": recipe_step(recipe, batch, schedule), "bare": bare_step(recipe, batch, schedule)}
                seconds = timed(steps, args.steps, args.warmup)
                print(
                    f"| {system} | {precision} | {seconds['recipe']:.2f} | {audio_seconds / seconds['recipe']:.0f} | "
                    f"{seconds['bare']:.2f} | {audio_seconds / seconds['bare']:.0f} | "
                    f"{seconds['recipe'] / seconds['bare']:.3f} |",
                    flush=True,
                )
                del recipe, steps  # one model in memory at a time
    return 0


if __name__ == "__main__":
    sys.exit(main())
