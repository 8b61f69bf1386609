"""
How much faster the runner attacks a cell in length-sorted batches than one utterance at a time.

Runs one PGD cell (targeted, 7 iterations, step eps/5, as in the study) through the runner's own cell code
(``art_asr_ext.benchmark.execution.run_cell``) twice: with ``--batch-size 1`` and with ``--batch-size B``, on the same
utterances, model and targets, and prints both times and their ratio. The real test-clean clips are cut into
consecutive segments (``--segment-seconds``) so that a handful of files gives a batch of varied lengths.

Usage: ``python benchmarks/batching_speed.py [--device gpu] [--batch-size 8] [--hidden-size 1024 --hidden-layers 5]``
(a random DeepSpeech2 of the given size, or ``--checkpoint`` for a trained one).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import argparse
import sys
import time
from pathlib import Path
from typing import List

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from art_asr_ext.data import Utterance, load_librispeech  # noqa: E402
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2  # noqa: E402
from art_asr_ext.models import DeepSpeech2  # noqa: E402
from art_asr_ext.benchmark.grid import Cell  # noqa: E402
from art_asr_ext.benchmark.execution import run_cell  # noqa: E402
from art_asr_ext.benchmark.evaluation_data import read_phrase_pool, sample_target  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"


def segments(utterances: List[Utterance], seconds: float, count: int) -> List[Utterance]:
    """
    :param utterances: Whole utterances.
    :param seconds: Length of each segment (the last piece of an utterance may be shorter, down to half of it).
    :param count: Number of segments wanted.
    :return: Consecutive segments, each with the matching fraction of its utterance's reference words.
    """
    pieces = []
    for u in utterances:
        step = int(seconds * u.sample_rate)
        words = u.transcript.split()
        for start in range(0, len(u.waveform), step):
            waveform = u.waveform[start : start + step]
            if len(waveform) < step // 2:
                break
            first = int(len(words) * start / len(u.waveform))
            last = max(first + 1, int(round(len(words) * (start + len(waveform)) / len(u.waveform))))
            uid = f"{u.utterance_id}-{start // step}"
            pieces.append(Utterance(uid, waveform, u.sample_rate, " ".join(words[first:last])))
    return pieces[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="shared data folder (LibriSpeech/, text/)")
    parser.add_argument("--checkpoint", default=None, help="deepspeech.pytorch checkpoint (default: random model)")
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--hidden-layers", type=int, default=3)
    parser.add_argument("--segment-seconds", type=float, default=3.0)
    parser.add_argument("--utterances", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--max-iter", type=int, default=7)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    data = Path(args.data)
    utterances = segments(load_librispeech(data / "LibriSpeech" / "test-clean"), args.segment_seconds, args.utterances)
    pool = read_phrase_pool(data / "text" / "ljspeech_sentences.tsv")
    targets = {u.utterance_id: sample_target(u.transcript, u.utterance_id, pool, 0, "words", 1) for u in utterances}
    torch.manual_seed(0)
    if args.checkpoint:
        estimator = PyTorchDeepSpeech2(checkpoint=args.checkpoint, device_type=args.device)
    else:
        model = DeepSpeech2(hidden_size=args.hidden_size, hidden_layers=args.hidden_layers)
        estimator = PyTorchDeepSpeech2(model=model, device_type=args.device)
    cell = Cell("speed", "speed", "speed", "pgd", args.eps, True, {"max_iter": args.max_iter, "step_ratio": 0.2})
    seconds = sum(len(u.waveform) for u in utterances) / 16000
    print(
        f"PGD ({args.max_iter} iterations, eps {args.eps}) on {len(utterances)} utterances ({seconds:.1f} s of audio), "
        f"DeepSpeech2 {'checkpoint' if args.checkpoint else f'{args.hidden_layers} x {args.hidden_size} (random)'}, "
        f"device {estimator.device}, {torch.get_num_threads()} threads"
    )
    run_cell(cell, estimator, utterances[:2], targets, 2)  # warm-up (kernels, allocator)
    timings, outputs = {}, {}
    for batch_size in (1, args.batch_size):
        if estimator.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        outputs[batch_size] = run_cell(cell, estimator, utterances, targets, batch_size)
        if estimator.device.type == "cuda":
            torch.cuda.synchronize()
        timings[batch_size] = time.perf_counter() - start
        print(f"  batch size {batch_size:3d}: {timings[batch_size]:8.2f} s")
    ratio = timings[1] / timings[args.batch_size]
    print(f"Batched (batch size {args.batch_size}) is {ratio:.2f}x the speed of batch size 1.")
    single, batched = outputs[1], outputs[args.batch_size]
    differing = sum(
        int(np.sum(np.abs(single.adversarial[u.utterance_id] - batched.adversarial[u.utterance_id]) > 1e-6))
        for u in utterances
    )
    same_text = sum(a["hypothesis"] == b["hypothesis"] for a, b in zip(single.rows, batched.rows))
    print(
        f"Agreement: {same_text}/{len(utterances)} identical transcripts; {differing / (seconds * 16000):.2%} of the "
        f"samples differ (PGD steps by the gradient's sign, so float rounding in a padded batch flips the sign where "
        f"the gradient is near zero)."
    )


if __name__ == "__main__":
    main()
