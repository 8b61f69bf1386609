"""
What the embedded models' training steps gain from channels-last convolutions
(:mod:`art_asr_ext.models.memory_format`, which the training recipe uses under bf16 on the CPU) over the usual NCHW
layout.

For each system and precision, the recipe's training step (`Recipe.fit`'s, as `training_speed.py` takes it) over
consecutive length-sorted batches of real dev utterances, as training meets them, each batch taken with the
convolution weights in one layout and then in the other, on the same model. It prints seconds per step (the mean over
the batches of each batch's median over the passes), the ratio NCHW / channels-last, and both for the longest batch
alone. The Transformer's `conv2d2` front end convolves 128 channels at the full 20 ms frame rate, so it carries most of
the effect; DeepSpeech2 has two small convolutions.

Usage, from the repository root::

    python benchmarks/channels_last_speed.py --threads 2
    python benchmarks/channels_last_speed.py --systems transformer --precision bf16
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from art_asr_ext.benchmark.training.recipes import SYSTEMS, Schedule  # noqa: E402
from art_asr_ext.models.memory_format import use_channels_last_convolutions  # noqa: E402
from art_asr_ext.utils.environment import PRECISIONS, cpu_has_bf16_matmul  # noqa: E402
from benchmarks.training_speed import (  # noqa: E402
    add_batch_arguments,
    batches_from_arguments,
    build_recipe,
    recipe_step,
    seconds,
)

LAYOUTS = ("NCHW", "channels-last")


def set_layout(model: torch.nn.Module, layout: str) -> None:
    """Put the weights of every 2-D convolution of `model` in `layout` (one of `LAYOUTS`), in place."""
    if layout == "channels-last":
        use_channels_last_convolutions(model)
        return
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.weight.data = module.weight.data.contiguous()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_batch_arguments(parser, "layout")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=PRECISIONS,
        help="default: bf16 and fp32 where the CPU has bf16 matrix units, elsewhere fp32 (bf16 would be emulated)",
    )
    args = parser.parse_args(argv)
    if args.precision is None:
        args.precision = ["bf16", "fp32"] if cpu_has_bf16_matmul() else ["fp32"]
    batches = batches_from_arguments(parser, args)
    if batches is None:
        return 2
    longest_batch = int(np.argmax([max(len(w) for w in batch.waveforms) for batch in batches]))
    print()
    print(
        "| model | precision | NCHW s/step | channels-last s/step | NCHW / channels-last | longest batch: NCHW / "
        "channels-last s/step |"
    )
    print("|---|---|---|---|---|---|")
    schedule = Schedule()
    for system in args.systems:
        for precision in args.precision:
            # times[layout][i]: the seconds of batch i's steps, each batch taken in both layouts in turn
            times: Dict[str, List[List[float]]] = {layout: [[] for _ in batches] for layout in LAYOUTS}
            with tempfile.TemporaryDirectory() as scratch:
                recipe = build_recipe(system, "embedded", precision, batches[0], Path(scratch))
                steps = [recipe_step(recipe, batch, schedule) for batch in batches]
                for layout in LAYOUTS:  # warm-up: every shape once in each layout
                    set_layout(recipe.model, layout)
                    for step in steps:
                        step()
                for _ in range(args.passes):
                    for i, step in enumerate(steps):
                        for layout in LAYOUTS:
                            set_layout(recipe.model, layout)
                            times[layout][i].append(seconds(step))
            mean = {layout: float(np.mean([statistics.median(t) for t in times[layout]])) for layout in LAYOUTS}
            longest = {layout: statistics.median(times[layout][longest_batch]) for layout in LAYOUTS}
            print(
                f"| {system} | {precision} | {mean['NCHW']:.2f} | {mean['channels-last']:.2f} | "
                f"{mean['NCHW'] / mean['channels-last']:.2f} | {longest['NCHW']:.2f} / {longest['channels-last']:.2f}"
                f" = {longest['NCHW'] / longest['channels-last']:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
