"""
What the embedded Transformer's training step gains from `FastCPUDropout` (:mod:`art_asr_ext.models.dropout`, which
the training recipe uses) over `torch.nn.Dropout`.

Two measurements, each taken with one dropout and then the other on the same model, in alternation:

* the dropout alone, forward, on a tensor the size of the attention weights of a 5-second batch (16 utterances,
  4 heads, 250 × 250 frames after the 2× subsampling);
* the recipe's training step (`Recipe.fit`'s, as `training_speed.py` takes it) over consecutive length-sorted batches
  of real dev utterances, as training meets them (a single batch repeated would find its buffers and kernels ready).

It prints milliseconds or seconds for each, the ratio torch / fast, and the keep rates drawn.

Usage, from the repository root::

    python benchmarks/dropout_speed.py --threads 2
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Callable, List

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from art_asr_ext.benchmark.training.embedded import DEFAULT_CORPUS  # noqa: E402
from art_asr_ext.benchmark.training.recipes import Schedule  # noqa: E402
from art_asr_ext.benchmark.training.train import resolve_precision  # noqa: E402
from art_asr_ext.models.dropout import FastCPUDropout  # noqa: E402
from art_asr_ext.utils.environment import cpu_model  # noqa: E402
from benchmarks.training_speed import (  # noqa: E402
    build_recipe,
    consecutive_batches,
    load_dev_split,
    recipe_step,
    seconds,
)

KINDS = ("torch", "fast")
ATTENTION_WEIGHTS = (16, 4, 250, 250)


def set_dropout(model: torch.nn.Module, kind: str) -> None:
    """Make every dropout of `model` a `torch.nn.Dropout` (`torch`) or a `FastCPUDropout` (`fast`), same `p`."""
    make = torch.nn.Dropout if kind == "torch" else FastCPUDropout
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Dropout):
                setattr(parent, name, make(child.p))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="its dev-synth/ gives the batches")
    parser.add_argument("--batches", type=int, default=6, help="consecutive length-sorted batches of one pass")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--passes", type=int, default=3, help="timed passes with each dropout (median)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="as train.py's")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    for name in ("batches", "batch_size", "passes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = load_dev_split(args.corpus)
    if corpus is None:
        return 2
    batches = consecutive_batches(corpus, args.batch_size, args.batches)
    if not batches:
        print(f"error: the dev split of {args.corpus} has no batch of {args.batch_size} utterances", file=sys.stderr)
        return 2
    precision = resolve_precision(args.precision, "cpu")
    longest = [max(len(w) for w in batch.waveforms) / 16000 for batch in batches]
    print(
        f"CPU: {cpu_model()}, {torch.get_num_threads()} torch threads, precision {precision}; torch {torch.__version__}"
    )
    print(
        f"{len(batches)} batches of {args.batch_size} dev utterances, longest {min(longest):.1f} to "
        f"{max(longest):.1f} s; "
        f"median of {args.passes} passes\n"
    )

    weights = torch.rand(ATTENTION_WEIGHTS)
    ops = {"torch": torch.nn.Dropout(0.1).train(), "fast": FastCPUDropout(0.1).train()}
    op_times: dict = {kind: [] for kind in KINDS}
    kept = {kind: float((ops[kind](torch.ones(ATTENTION_WEIGHTS)) > 0).float().mean()) for kind in KINDS}
    for _ in range(10):
        for kind in KINDS:
            op_times[kind].append(seconds(lambda: ops[kind](weights)) * 1000)

    schedule = Schedule()
    step_times: dict = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory() as scratch:
        torch.manual_seed(0)
        recipe = build_recipe("transformer", "embedded", precision, batches[0], Path(scratch))
        steps: List[Callable[[], None]] = [recipe_step(recipe, batch, schedule) for batch in batches]
        for kind in KINDS:  # warm-up: every shape once with each
            set_dropout(recipe.model, kind)
            for step in steps:
                step()
        for _ in range(args.passes):
            for kind in KINDS:
                set_dropout(recipe.model, kind)
                step_times[kind].append(float(np.mean([seconds(step) for step in steps])))

    op = {kind: statistics.median(op_times[kind]) for kind in KINDS}
    step = {kind: statistics.median(step_times[kind]) for kind in KINDS}
    shape = " × ".join(str(size) for size in ATTENTION_WEIGHTS)
    print("| measurement | torch.nn.Dropout | FastCPUDropout | torch / fast |")
    print("|---|---|---|---|")
    print(
        f"| dropout (p = 0.1) of {shape}, forward (ms) | {op['torch']:.1f} | {op['fast']:.1f} | "
        f"{op['torch'] / op['fast']:.2f} |"
    )
    print(
        f"| Transformer training step, mean over the batches (s) | {step['torch']:.2f} | {step['fast']:.2f} | "
        f"{step['torch'] / step['fast']:.2f} |"
    )
    print(f"| share kept | {kept['torch']:.4f} | {kept['fast']:.4f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
