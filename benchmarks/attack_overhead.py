"""
Overhead of ART's PGD through PyTorchDeepSpeech2, and batched versus single-utterance attacks.

Prints three comparisons on the real test-clean clips (plus a 5 s crop) with a DeepSpeech2 of 3 biLSTM x 512:

1. ART ``ProjectedGradientDescent`` (7 iterations, batch of 4) through the estimator against 7 x one forward+backward
   of the bare torch model (``loss.backward()``, as a training step computes it) on the same padded batch.
2. The same PGD with batch_size 4 against batch_size 1.
3. One forward+backward of the padded batch against the four utterances one at a time, for our unpacked recurrent
   layers and for deepspeech.pytorch's packed-sequence formulation (``nn.LSTM`` on ``pack_padded_sequence``).

Usage: ``python benchmarks/attack_overhead.py [--data DIR] [--hidden-size 512] [--hidden-layers 3] [--repeats 1]``
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from art.attacks.evasion import ProjectedGradientDescent

from art_asr_ext.data import load_librispeech
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
from art_asr_ext.utils.audio import to_object_array
from art_asr_ext.utils.audio_torch import pad_waveforms
from art_asr_ext.features.spectrogram import time_mask
from art_asr_ext.models import DeepSpeech2

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "LibriSpeech" / "test-clean"
TARGETS = ["OPEN THE DOOR", "TURN OFF THE LIGHTS", "CALL MY BROTHER NOW", "DELETE ALL FILES"]


def packed_forward(model: DeepSpeech2, waveforms: torch.Tensor, lengths: torch.Tensor):
    """deepspeech.pytorch's formulation: each recurrent layer runs nn.LSTM on a PackedSequence."""
    features, frame_lengths = model.spectrogram(waveforms, lengths)
    output_lengths = model.output_lengths(frame_lengths)
    x = model.conv(features.unsqueeze(1), output_lengths)
    batch, channels, freq, time_steps = x.shape
    x = x.reshape(batch, channels * freq, time_steps).permute(2, 0, 1).contiguous()
    for layer in model.rnns:
        if layer.batch_norm is not None:
            x = layer.batch_norm(x)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, output_lengths.cpu(), enforce_sorted=False)
        x, _ = torch.nn.utils.rnn.pad_packed_sequence(layer.rnn(packed)[0], total_length=time_steps)
        x = x.view(time_steps, batch, 2, -1).sum(2) if layer.bidirectional else x
    mask = time_mask(output_lengths, time_steps).t().unsqueeze(-1).to(x.dtype)
    return model.fc(x * mask).transpose(0, 1), output_lengths


def ctc_loss(logits, output_lengths, targets, labels):
    index = {c: i for i, c in enumerate(labels)}
    flat = torch.tensor([index[c] for t in targets for c in t])
    target_lengths = torch.tensor([len(t) for t in targets])
    log_probs = logits.log_softmax(-1).transpose(0, 1)
    return torch.nn.functional.ctc_loss(log_probs, flat, output_lengths, target_lengths, reduction="sum")


def timed(function, repeats: int, warmup=None) -> float:
    """
    Best wall time of `repeats` calls, after one untimed call of `warmup` (default: `function` itself). oneDNN
    builds a kernel per input shape on first use; the warm-up keeps that one-off cost out of the comparison.
    """
    (warmup or function)()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="LibriSpeech-layout directory")
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--hidden-layers", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1, help="repeats per measurement (the best is kept)")
    parser.add_argument("--eps", type=float, default=0.01)
    args = parser.parse_args()

    torch.manual_seed(0)
    utterances = load_librispeech(args.data)
    waveforms = [u.waveform for u in utterances] + [utterances[1].waveform[: 5 * 16000]]
    x = to_object_array(waveforms)
    y = np.array(TARGETS[: len(waveforms)])
    model = DeepSpeech2(hidden_size=args.hidden_size, hidden_layers=args.hidden_layers).eval()
    estimator = PyTorchDeepSpeech2(model=model)
    padded, lengths = pad_waveforms([torch.from_numpy(w) for w in waveforms])
    seconds = float(lengths.sum()) / 16000
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; DeepSpeech2 {args.hidden_layers} biLSTM x "
        f"{args.hidden_size}; batch of {len(waveforms)} utterances, {seconds:.1f} s of audio"
    )

    def bare_step(forward=model, batch=padded, batch_lengths=lengths, targets=list(y)):
        inputs = batch.clone().requires_grad_(True)
        logits, output_lengths = forward(inputs, batch_lengths)
        ctc_loss(logits, output_lengths, targets, model.labels).backward()

    def pgd(batch_size: int):
        attack = ProjectedGradientDescent(
            estimator,
            norm=np.inf,
            eps=args.eps,
            eps_step=args.eps / 5,
            max_iter=7,
            targeted=True,
            num_random_init=0,
            batch_size=batch_size,
            verbose=False,
        )
        return attack.generate(x, y)

    # The estimator freezes the weights while it builds an attack's graph; the bare model is timed both frozen and as
    # a training step would run it.
    model.requires_grad_(False)
    bare_frozen = timed(bare_step, args.repeats)
    model.requires_grad_(True)
    bare_training = timed(bare_step, args.repeats)
    pgd_batched = timed(
        lambda: pgd(len(waveforms)), args.repeats, lambda: estimator.loss_gradient(x, y, len(waveforms))
    )
    print(f"\n1. ART PGD (7 it., batch {len(waveforms)}) through PyTorchDeepSpeech2: {pgd_batched:.2f} s")
    print(
        f"   7 x bare forward+backward, frozen weights:  {7 * bare_frozen:.2f} s -> ratio {pgd_batched / (7 * bare_frozen):.3f} (target <= 1.1)"
    )
    print(
        f"   7 x bare forward+backward, weight grads too: {7 * bare_training:.2f} s -> ratio {pgd_batched / (7 * bare_training):.3f}"
    )

    pgd_single = timed(lambda: pgd(1), args.repeats, lambda: estimator.loss_gradient(x, y, 1))
    print(
        f"2. ART PGD batch_size {len(waveforms)}: {pgd_batched:.2f} s; batch_size 1: {pgd_single:.2f} s; "
        f"batched/single time {pgd_batched / pgd_single:.2f}"
    )

    singles = [(padded[i : i + 1, : int(lengths[i])], lengths[i : i + 1], [y[i]]) for i in range(len(waveforms))]
    print(
        "3. one forward+backward (frozen weights) of the batch vs the utterances one at a time (time ratio < 1: "
        "batching pays):"
    )
    for name, forward in (("packed nn.LSTM (deepspeech.pytorch)", None), ("ours, one padded batch", model)):
        run = forward or (lambda w, l: packed_forward(model, w, l))
        batch_time = timed(lambda: bare_step(run), args.repeats)
        single_time = timed(lambda: [bare_step(run, *s) for s in singles], args.repeats)
        print(
            f"   {name:45s} batch {batch_time:6.2f} s, singles {single_time:6.2f} s, ratio {batch_time / single_time:.2f}"
        )
    batch_time = timed(lambda: estimator.loss_gradient(x, y, batch_size=len(waveforms)), args.repeats)
    single_time = timed(lambda: estimator.loss_gradient(x, y, batch_size=1), args.repeats)
    print(
        f"   {'ours, estimator with length bucketing':45s} batch {batch_time:6.2f} s, singles {single_time:6.2f} s, "
        f"ratio {batch_time / single_time:.2f}"
    )


if __name__ == "__main__":
    main()
