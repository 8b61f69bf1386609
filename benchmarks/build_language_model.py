"""
Build the word language model the embedded models decode with, and tune its decoding weights for each system.

The model is an interpolated Kneser-Ney trigram of the training transcripts and, with `--text`, of further sentences
of the same source (the LJ Speech sentences too long for the corpus), never a dev or test sentence. Its unigrams are
interpolated with general English word frequencies, the unigrams of CMU's US English trigram model that the
pocketsphinx wheel ships, whose 72,000 words join the vocabulary, so that the decoder can spell common words the
training text lacks (the target phrases' "password" or "email", say) and prefers the commoner of two spellings. The
decoding weights are chosen on the dev split, for DeepSpeech2 (`alpha`, the language model weight, and `beta`, the
word score of its CTC beam search) with its baseline, for the Transformer (`lm_weight` and `word_score` of its
rescoring) with its baseline::

    python benchmarks/build_language_model.py --train ../shared/data/synth/train-synth \\
        --dev ../shared/data/synth/dev-synth --text ../shared/data/text/ljspeech_sentences.tsv \\
        --held-out ../shared/data/synth/test-synth --threads 2

It writes `art_asr_ext/benchmark/models/word_3gram_lm/` (`lm.arpa.gz`, `decoding.json` and `MODEL_CARD.md`); the
same command reproduces the files byte for byte (`--check` compares instead of writing).
"""

import argparse
import gzip
import io
import itertools
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from art_asr_ext.benchmark.language_model import ARPA_FILE, DECODING_FILE  # noqa: E402
from art_asr_ext.benchmark.presets import LANGUAGE_MODEL_DIR, MODELS_DIR  # noqa: E402
from art_asr_ext.benchmark.training.corpus import read_sentences  # noqa: E402
from art_asr_ext.benchmark.training.recipes import DEEPSPEECH_CHECKPOINT, Corpus, word_error_rate  # noqa: E402
from art_asr_ext.data import librispeech_transcripts  # noqa: E402
from art_asr_ext.metrics.wer import transcripts_wer  # noqa: E402
from art_asr_ext.models.ngram import kneser_ney_arpa  # noqa: E402

ORDER = 3
# Dev perplexity of the model with the LJ Speech text: 285 at 0.75, 281 at 0.8 and at 0.9; order 2: 322, order 4: 276.
DISCOUNT = 0.8
#: DeepSpeech2: the CTC beam search's width, and the dev grid of the language model weight and the word score.
BEAM_WIDTH = 50
ALPHAS = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
BETAS = (0.0, 0.5, 1.0, 2.0, 3.0)
#: The Transformer: the dev grid of the rescoring's language model weight and word score.
LM_WEIGHTS = (0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 3.0)
WORD_SCORES = (0.0, 1.0)
#: The models each system's weights are tuned with.
TUNED_WITH = {"deepspeech2": "deepspeech2_baseline", "espnet": "transformer_baseline"}


def background_unigrams() -> Dict[str, float]:
    """
    The unigram probabilities of the US English trigram model in the pocketsphinx wheel (`en-us.lm.bin`) for the
    words of its pronouncing dictionary (`cmudict-en-us.dict`) that it knows, upper-cased, letters and apostrophes
    only. (Asked word by word: its `NGramModel.write` to ARPA crashes part way.)
    """
    try:
        import pocketsphinx
    except ImportError as error:
        raise SystemExit(
            "The background unigrams come from the pocketsphinx wheel: pip install pocketsphinx."
        ) from error
    model_dir = Path(pocketsphinx.get_model_path()) / "en-us"
    log_math = pocketsphinx.LogMath()
    model = pocketsphinx.NGramModel(pocketsphinx.Config(), log_math, str(model_dir / "en-us.lm.bin"))
    unigrams: Dict[str, float] = {}
    for line in (model_dir / "cmudict-en-us.dict").read_text(encoding="utf-8").splitlines():
        word = re.sub(r"\(\d+\)$", "", line.split(" ", 1)[0])  # "read(2)": a second pronunciation
        score = model.prob([word])
        if re.fullmatch(r"[a-z']+", word) and score > log_math.get_zero():  # the model knows it
            unigrams[word.upper()] = 10 ** log_math.log_to_log10(score)
    return unigrams


def language_model_sentences(
    train: Path, text_files: Sequence[Path], held_out: Sequence[Path]
) -> Tuple[List[str], List[str]]:
    """
    The transcripts of the `train` split, and the sentences of `text_files` (read as the corpus's sentences are,
    without its length limit) that are neither among them nor among the transcripts of the `held_out` splits.
    """
    transcripts = list(librispeech_transcripts(train).values())
    excluded = set(transcripts).union(*(librispeech_transcripts(split).values() for split in held_out))
    extra = []
    for path in text_files:
        for sentence in read_sentences(path, min_words=1, max_words=sys.maxsize):
            if sentence.transcript not in excluded:
                excluded.add(sentence.transcript)
                extra.append(sentence.transcript)
    return transcripts, extra


def gzipped(text: str) -> bytes:
    """`text` gzipped with no time stamp or file name, so that the same text gives the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as out:
        out.write(text.encode("utf-8"))
    return buffer.getvalue()


def dev_wer(references: List[str], hypotheses: List[str]) -> float:
    return round(100.0 * transcripts_wer(references, list(hypotheses)), 2)


def tune_deepspeech2(arpa_path: Path, dev: Corpus) -> Dict[str, object]:
    """The dev WER of every (alpha, beta) of the grid, decoding the baseline's outputs once computed."""
    from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2
    from art_asr_ext.models.ctc import CTCLexiconBeamDecoder

    estimator = PyTorchDeepSpeech2(checkpoint=MODELS_DIR / TUNED_WITH["deepspeech2"] / DEEPSPEECH_CHECKPOINT)
    probabilities, sizes = estimator.predict_probabilities(dev.waveforms)
    log_probs = torch.from_numpy(np.log(np.maximum(probabilities, np.finfo(np.float32).tiny)))
    lengths = torch.from_numpy(sizes)
    references = list(dev.transcripts)
    grid = []
    for alpha, beta in itertools.product(ALPHAS, BETAS):
        decoder = CTCLexiconBeamDecoder(estimator.labels, arpa_path, alpha, beta, BEAM_WIDTH, blank=estimator.labels[0])
        grid.append({"alpha": alpha, "beta": beta, "dev_wer": dev_wer(references, decoder(log_probs, lengths))})
        print(f"deepspeech2: alpha {alpha}  beta {beta}  dev WER {grid[-1]['dev_wer']:.2f} %", flush=True)
    best = min(grid, key=lambda point: (point["dev_wer"], point["alpha"], point["beta"]))
    return {
        "alpha": best["alpha"],
        "beta": best["beta"],
        "beam_width": BEAM_WIDTH,
        "without_lm_dev_wer": round(word_error_rate(estimator, dev), 2),
        "grid": grid,
    }


def tune_transformer(arpa_path: Path, dev: Corpus) -> Dict[str, object]:
    """The dev WER of every (lm_weight, word_score) of the grid, beam search rescored with the language model."""
    from art_asr_ext.estimators.speech_recognition import PyTorchESPnet

    estimator = PyTorchESPnet(model_dir=MODELS_DIR / TUNED_WITH["espnet"])
    without_lm = round(word_error_rate(estimator, dev), 2)
    references = list(dev.transcripts)
    grid = []
    for lm_weight, word_score in itertools.product(LM_WEIGHTS, WORD_SCORES):
        estimator.set_params(lm_path=arpa_path, lm_weight=lm_weight, word_score=word_score)
        grid.append({"lm_weight": lm_weight, "word_score": word_score})
        grid[-1]["dev_wer"] = dev_wer(references, estimator.predict(dev.waveforms))
        print(
            f"espnet: lm_weight {lm_weight}  word_score {word_score}  dev WER {grid[-1]['dev_wer']:.2f} %", flush=True
        )
    best = min(grid, key=lambda point: (point["dev_wer"], point["lm_weight"], point["word_score"]))
    return {
        "lm_weight": best["lm_weight"],
        "word_score": best["word_score"],
        "without_lm_dev_wer": without_lm,
        "grid": grid,
    }


def text_description(text: dict) -> str:
    """The card's account of what the model learnt from; paths as given (relative to the repository root)."""
    train, transcripts = text["train"]
    described = f"the {transcripts:,} transcripts of the training split `{train.as_posix()}`"
    files, extra = text["extra"]
    if files:
        names = ", ".join(f"`{path.as_posix()}`" for path in files)
        held_out = ", ".join(f"`{path.as_posix()}`" for path in text["held_out"])
        described += f" and {extra:,} further sentences of {names}, less those of the dev split and of {held_out}"
    return described


def render_card(decoding: dict, text: dict, words: int, vocabulary: int, arpa: str, size: int) -> str:
    counts = re.findall(r"ngram (\d+)=(\d+)", arpa)
    deepspeech2, espnet = decoding["deepspeech2"], decoding["espnet"]
    best = {
        name: min(settings["grid"], key=lambda point: point["dev_wer"])["dev_wer"]
        for name, settings in decoding.items()
    }
    text_line = textwrap.fill(
        f"- **Text:** {text_description(text)}: {words:,} words, never a dev or test sentence.",
        118,
        subsequent_indent="  ",
        break_on_hyphens=False,
    )
    return f"""# Word trigram language model of the embedded models

Made by `benchmarks/build_language_model.py` (its docstring gives the command).

{text_line}
- **Model:** interpolated Kneser-Ney, order {ORDER}, discount {DISCOUNT} (`art_asr_ext.models.ngram`), as gzipped
  ARPA ({size / 1e6:.1f} MB): {", ".join(f"{int(n):,} {order}-grams" for order, n in counts)}.
- **Vocabulary:** {vocabulary:,} words, the training text's and those of CMU's US English trigram model (the
  pocketsphinx wheel's `en-us.lm.bin`). Its unigram probabilities are the base distribution the Kneser-Ney unigrams
  are interpolated with (the text's words it lacks, and `<unk>`, at its smallest). The decoders spell only these
  words.
- **DeepSpeech2:** flashlight's lexicon beam search through torchaudio, as
  `PyTorchDeepSpeech2(decoder_type="beam", lm_path=..., alpha={deepspeech2["alpha"]}, beta={deepspeech2["beta"]}, beam_width={deepspeech2["beam_width"]})`.
  Dev WER with `{TUNED_WITH["deepspeech2"]}`: {best["deepspeech2"]:.2f} % (greedy: {deepspeech2["without_lm_dev_wer"]:.2f} %).
- **Transformer:** the joint CTC/attention beam search's hypotheses and those of the CTC lexicon beam search with
  this model are rescored by attention, CTC and this model, as
  `PyTorchESPnet(lm_path=..., lm_weight={espnet["lm_weight"]}, word_score={espnet["word_score"]})`.
  Dev WER with `{TUNED_WITH["espnet"]}`: {best["espnet"]:.2f} % (joint beam search alone: {espnet["without_lm_dev_wer"]:.2f} %).
- The weights were chosen on the dev split (`{text["dev"][0].as_posix()}`, {text["dev"][1]} sentences), with the models
  published when this was built (a model published later decodes with them untuned); the grids are in
  `{DECODING_FILE}`.
- Decoding changes transcripts only: the losses that attacks follow are the acoustic models' alone.
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, required=True, help="training split whose transcripts the model learns")
    parser.add_argument("--dev", type=Path, required=True, help="dev split the decoding weights are tuned on")
    parser.add_argument(
        "--text",
        type=Path,
        nargs="+",
        default=[],
        help="further sentences to learn from (id<TAB>text or one per line), less those of --dev and --held-out",
    )
    parser.add_argument(
        "--held-out", type=Path, nargs="+", default=[], help="test splits whose sentences --text must not give"
    )
    parser.add_argument("--out", type=Path, default=LANGUAGE_MODEL_DIR, help="the language model directory")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name, split in [("train", args.train), ("dev", args.dev), *(("held-out", split) for split in args.held_out)]:
        if not split.is_dir():
            parser.error(f"--{name} must be a LibriSpeech-layout split directory. Found: {str(split)!r}")
    for path in args.text:
        if not path.is_file():
            parser.error(f"--text must be a sentence file. Found: {str(path)!r}")
    if args.text and not args.held_out:
        parser.error("--text needs --held-out: the test splits whose sentences the language model must not learn")

    transcripts, extra = language_model_sentences(args.train, args.text, [args.dev, *args.held_out])
    sentences = transcripts + extra
    vocabulary = background_unigrams()
    arpa = kneser_ney_arpa(sentences, order=ORDER, discount=DISCOUNT, vocabulary=vocabulary)
    files = {ARPA_FILE: gzipped(arpa)}
    work = args.out if not args.check else Path(args.out.parent / (args.out.name + ".check"))
    work.mkdir(parents=True, exist_ok=True)
    (work / ARPA_FILE).write_bytes(files[ARPA_FILE])
    dev = Corpus.load(args.dev)
    decoding = {
        "deepspeech2": tune_deepspeech2(work / ARPA_FILE, dev),
        "espnet": tune_transformer(work / ARPA_FILE, dev),
    }
    files[DECODING_FILE] = (json.dumps(decoding, indent=2) + "\n").encode()
    words = sum(len(sentence.split()) for sentence in sentences)
    vocabulary_size = len(set(vocabulary) | {word for sentence in sentences for word in sentence.split()})
    text = {
        "train": (args.train, len(transcripts)),
        "dev": (args.dev, len(dev)),
        "extra": (args.text, len(extra)),
        "held_out": args.held_out,
    }
    card = render_card(decoding, text, words, vocabulary_size, arpa, len(files[ARPA_FILE]))
    files["MODEL_CARD.md"] = card.encode()
    if args.check:
        differing = [name for name, data in files.items() if (args.out / name).read_bytes() != data]
        for name in files:
            (work / name).unlink(missing_ok=True)
        work.rmdir()
        print("differs: " + ", ".join(differing) if differing else f"{args.out}: reproduced")
        return 1 if differing else 0
    for name, data in files.items():
        (args.out / name).write_bytes(data)
    print(
        f"{json.dumps({name: {k: v for k, v in d.items() if k != 'grid'} for name, d in decoding.items()})} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
