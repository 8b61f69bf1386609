"""
What decoding with the word language model costs, on the committed embedded models and the embedded evaluation set
(30 utterances, 1.8 min of speech): `predict` with and without `word_3gram_lm`, its WER beside.

- DeepSpeech2: CTC beam search with the language model (`decoder_type="beam"`) against greedy decoding;
- the Transformer: joint CTC/attention beam search rescored with the language model against joint beam search alone.

The language model is loaded before timing (it is loaded once per process). Prints seconds, the ratio and WERs.

Usage: ``python benchmarks/language_model_decoding.py [--threads 2] [--repeats 3]``
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from art_asr_ext.benchmark.language_model import language_model_options  # noqa: E402
from art_asr_ext.benchmark.presets import EMBEDDED_SET, LANGUAGE_MODEL_DIR, MODELS_DIR  # noqa: E402
from art_asr_ext.benchmark.training.recipes import DEEPSPEECH_CHECKPOINT, Corpus, word_error_rate  # noqa: E402


def best_time(estimator, corpus: Corpus, repeats: int) -> float:
    estimator.predict(corpus.waveforms[:1])  # loads the language model, warms the kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        estimator.predict(corpus.waveforms)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the fastest counts")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet

    corpus = Corpus.load(EMBEDDED_SET)
    checkpoint = MODELS_DIR / "deepspeech2_baseline" / DEEPSPEECH_CHECKPOINT
    transformer = MODELS_DIR / "transformer_baseline"
    pairs = {
        "DeepSpeech2 beam + LM / greedy": (
            PyTorchDeepSpeech2(checkpoint=checkpoint, **language_model_options(LANGUAGE_MODEL_DIR, "deepspeech2")),
            PyTorchDeepSpeech2(checkpoint=checkpoint),
        ),
        "Transformer rescored with LM / joint beam": (
            PyTorchESPnet(model_dir=transformer, **language_model_options(LANGUAGE_MODEL_DIR, "espnet")),
            PyTorchESPnet(model_dir=transformer),
        ),
    }
    print(f"{len(corpus)} utterances ({corpus.hours * 60:.1f} min), {args.threads} threads, best of {args.repeats}")
    for name, (with_lm, without_lm) in pairs.items():
        slow, fast = best_time(with_lm, corpus, args.repeats), best_time(without_lm, corpus, args.repeats)
        wers = word_error_rate(with_lm, corpus), word_error_rate(without_lm, corpus)
        print(f"{name}: {slow:.2f} s / {fast:.2f} s = {slow / fast:.2f} x; WER {wers[0]:.2f} % / {wers[1]:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
