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

from art_asr_ext.benchmark.training.recipes import Schedule  # noqa: E402
from art_asr_ext.utils.environment import PRECISION_CHOICES, resolve_precision  # noqa: E402
from art_asr_ext.models.dropout import FastCPUDropout  # noqa: E402
from benchmarks.training_speed import (  # noqa: E402
    add_batch_arguments,
    batches_from_arguments,
    build_recipe,
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
    add_batch_arguments(parser, "dropout")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help="as train.py's")
    args = parser.parse_args(argv)
    batches = batches_from_arguments(parser, args)
    if batches is None:
        return 2
    precision = resolve_precision(args.precision, "cpu")
    print(f"precision {precision}\n")

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
