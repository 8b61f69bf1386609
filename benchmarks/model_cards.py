"""
Evaluate the embedded models and write (or check) their model cards.

Each model directory under `art_asr_ext/benchmark/models` holds the weights in the system's native layout (a deepspeech.pytorch
v3 `model.ckpt`, or an ESPnet model-zoo package), `training_run.json` (written by `benchmarks/train.py`), `learning_curve.png`,
`evaluation.json` (the WERs below) and `MODEL_CARD.md` (rendered from both). Write the cards after training::

    python benchmarks/model_cards.py --synthetic-test ../shared/data/synth/test-synth

Reproduce the committed WERs from the committed checkpoints (exit status 1 on any difference)::

    python benchmarks/model_cards.py --check                                        # embedded set + real clips
    python benchmarks/model_cards.py --check --synthetic-test ../shared/data/synth/test-synth  # + held-out test

The held-out synthetic test split is `../shared/data/synth/test-synth` (300 sentences never heard in training). With
it, the DeepSpeech2 models are also decoded on that split re-synthesised by the vocoder defence's HiFi-GAN: WAVEAUG's
test, against its baseline's WER on the clean split. The re-syntheses are made once (about 10 minutes on 2 cores) and
cached in `--resynthesis-cache` (default `runs/resynthesis`, ignored by git; the cache is keyed by the vocoder).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from art_asr_ext.benchmark.language_model import language_model_options  # noqa: E402
from art_asr_ext.benchmark.presets import EMBEDDED_SET, LANGUAGE_MODEL_DIR, MODELS_DIR  # noqa: E402
from art_asr_ext.benchmark.training.recipes import DEEPSPEECH_CHECKPOINT, Corpus, word_error_rate  # noqa: E402
from art_asr_ext.benchmark.training.train import vocoded  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REAL_CLIPS = REPO.parent / "shared" / "data" / "LibriSpeech" / "test-clean"
#: The held-out test re-synthesised by HiFi-GAN, decoded by the systems below: WAVEAUG is DeepSpeech2's (the Transformers'
#: vocoder rows are measured in Table I).
RESYNTHESISED_TEST = "synthetic_test_resynthesised"
RESYNTHESISED_SYSTEMS = ("deepspeech2",)
#: How each system decodes for its card (and in the quick Table I).
DECODING = {
    "deepspeech2": (
        f"CTC beam search with the word trigram language model `{LANGUAGE_MODEL_DIR.name}` (its card; weights and "
        "beam in its `decoding.json`), greedy CTC beside it"
    ),
    "transformer": (
        "joint CTC/attention beam search as ESPnet's `Speech2Text` (CTC weight 0.3, beam 10), its hypotheses and those "
        f"of a CTC beam search with the word trigram language model `{LANGUAGE_MODEL_DIR.name}` rescored by attention, "
        "CTC and that model (weights in its `decoding.json`); without the language model and CTC-only beside"
    ),
    # Models trained before the attention decoder could align on a CPU budget decode with their CTC branch.
    "transformer_ctc": "CTC best path of the joint CTC/attention model (`decoding: ctc`)",
}


def decoding_of(run: dict) -> str:
    """The `DECODING` key of a model: Transformers selected by beam search decode with it, older ones with CTC."""
    if run["system"] == "deepspeech2":
        return "deepspeech2"
    return "transformer" if str(run.get("dev_decoding", "")).startswith("joint") else "transformer_ctc"


#: A card's further WER columns, by their `evaluation.json` key: its title and `load_estimator`'s decoding.
PLAIN_DECODINGS = {
    "wer_greedy": ("Greedy CTC WER (%)", "ctc"),
    "wer_no_lm": ("Without LM WER (%)", "beam_no_lm"),
    "wer_ctc": ("CTC-only WER (%)", "ctc"),
}
#: The further columns of each `DECODING` key.
PLAIN_COLUMNS = {"deepspeech2": ("wer_greedy",), "transformer": ("wer_no_lm", "wer_ctc")}


def load_estimator(model_dir: Path, decoding: str = "beam"):
    """
    The ART estimator of a committed model directory (DeepSpeech2 or ESPnet, told apart by the files).

    :param decoding: `beam` (with the word language model; ESPnet: joint CTC/attention beam search rescored with it),
                     `beam_no_lm` (ESPnet: joint CTC/attention beam search) or `ctc` (DeepSpeech2: greedy; ESPnet: the
                     CTC branch's best path).
    """
    from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet

    if (model_dir / DEEPSPEECH_CHECKPOINT).is_file():
        lm = language_model_options(LANGUAGE_MODEL_DIR, "deepspeech2") if decoding == "beam" else {}
        return PyTorchDeepSpeech2(checkpoint=model_dir / DEEPSPEECH_CHECKPOINT, **lm)
    if decoding == "beam":
        options = language_model_options(LANGUAGE_MODEL_DIR, "espnet")
        return PyTorchESPnet(model_dir=model_dir, decoding="beam", beam_size=10, decode_ctc_weight=0.3, **options)
    decoding = "beam" if decoding == "beam_no_lm" else decoding
    return PyTorchESPnet(model_dir=model_dir, decoding=decoding, beam_size=10, decode_ctc_weight=0.3)


def evaluate(model_dir: Path, test_sets: Dict[str, Corpus]) -> Dict[str, Dict[str, float]]:
    """
    :param test_sets: The corpora to decode, by their `evaluation.json` name.
    :return: `{test set name: {"utterances": n, "wer": WER in %}}`, WERs rounded to 0.01; a model decoded with the
             language model also gets the WERs of its `PLAIN_COLUMNS`.
    """
    run = json.loads((model_dir / "training_run.json").read_text())
    decoding = decoding_of(run)
    estimators = {"wer": load_estimator(model_dir, "ctc" if decoding == "transformer_ctc" else "beam")}
    for key in PLAIN_COLUMNS.get(decoding, ()):
        estimators[key] = load_estimator(model_dir, PLAIN_DECODINGS[key][1])
    results = {}
    for name, corpus in test_sets.items():
        results[name] = {"utterances": len(corpus)}
        for key, estimator in estimators.items():
            results[name][key] = round(word_error_rate(estimator, corpus), 2)
    return results


def plot_learning_curve(run: dict, path: Path) -> bool:
    """Train loss and dev WER against steps and wall time (`learning_curve.png`); False for a run without a curve."""
    if not run.get("train_curve"):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, wer_axis) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [point["step"] for point in run["train_curve"]]
    loss_axis.plot(steps, [point["train_loss"] for point in run["train_curve"]], color="tab:blue", label="train")
    loss_axis.plot(
        [h["step"] for h in run["history"]],
        [h["dev_loss"] for h in run["history"]],
        "o-",
        color="tab:orange",
        label="dev (32 utterances)",
    )
    loss_axis.set(xlabel="step", ylabel="loss per utterance", yscale="log", title=f"{run['system']} {run['variant']}")
    loss_axis.legend()
    wer_axis.plot([h["step"] for h in run["history"]], [h["dev_wer"] for h in run["history"]], "o-", color="tab:green")
    wer_axis.set(xlabel="step", ylabel="dev WER (%)", ylim=(0, min(110, max(h["dev_wer"] for h in run["history"]) + 5)))
    wer_axis.set_title(f"dev WER ({run.get('dev_decoding', '')})", fontsize=9)
    minutes = wer_axis.secondary_xaxis(
        "top",
        functions=(
            lambda step: np.interp(step, steps, [p["minutes"] for p in run["train_curve"]]),
            lambda minute: np.interp(minute, [p["minutes"] for p in run["train_curve"]], steps),
        ),
    )
    minutes.set_xlabel("minutes of training")
    for axis in (loss_axis, wer_axis):
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


def training_chain(run: dict) -> List[dict]:
    """The runs that produced a model, first stage first (a fine-tuned model lists its starting model's runs)."""
    chain = []
    while run is not None:
        chain.append(run)
        run = run.get("previous_run")
    return chain[::-1]


def hardware_of(run: dict) -> List[str]:
    """Each distinct device and precision the run's pieces trained on (older runs record only the last device)."""
    pieces = run.get("pieces") or [{"hardware": run["hardware"]}]
    described = [piece["hardware"] + (f", {piece['precision']}" if "precision" in piece else "") for piece in pieces]
    return list(dict.fromkeys(described))


def render_card(model_dir: Path, run: dict, evaluation: Dict[str, Dict[str, float]]) -> str:
    chain = training_chain(run)
    size_mb = sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file() and f.suffix in {".ckpt", ".pth"}) / 1e6
    lines = [
        f"# {model_dir.name}",
        "",
        f"{run['description']}.",
        "",
        "| | |",
        "|---|---|",
        f"| System | {run['system']}, {run['parameters']:,} parameters, {size_mb:.1f} MB |",
        f"| Architecture | `{json.dumps(chain[0]['model_config'])}` |",
        f"| Training data | {run['data'].get('train')}: {run['train_utterances']} utterances, {run['train_hours']} h of "
        "synthetic speech (Piper, voice en_US-joe-medium, LJ Speech sentences; `benchmarks/synthesize_corpus.py`) |",
        f"| Development data | {run['data'].get('dev')} (first {run['schedule']['dev_utterances']} utterances, "
        f"model selection by the dev WER of {run.get('dev_decoding', 'greedy')} decoding) |",
        f"| Steps | {sum(r['steps'] for r in chain)} in total, in {len(chain)} stage(s) below |",
        f"| Wall time | {sum(r['wall_minutes'] for r in chain):.1f} min of training in total |",
        f"| Hardware | {'; '.join(hardware_of(run))} |",
        f"| Decoding | {DECODING[decoding_of(run)]} |",
        "",
        "## Training stages",
        "",
        "| Stage | Variant | Steps done / schedule (batch) | Epochs | Peak LR, warm-up | Pieces | Wall time (min) "
        "| Best dev WER (%) at step |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, stage in enumerate(chain, start=1):
        schedule = stage["schedule"]
        planned = schedule.get("max_steps", stage["steps"])
        lines.append(
            f"| {number} | {stage['variant']} | {stage['steps']} / {planned} ({schedule['batch_size']}) | "
            f"{stage['epochs_done']} | {schedule['learning_rate']}, {schedule['warmup_steps']} | "
            f"{len(stage.get('pieces', [])) or 1} | {stage['wall_minutes']} | "
            f"{stage['best_dev_wer']:.2f} at {stage['best_step']} |"
        )
    lines += [f"\nStage {n}: {stage['note']}" for n, stage in enumerate(chain, start=1) if stage.get("note")]
    lines += [
        "",
        "Every stage: AdamW, linear warm-up then cosine decay over the stage's whole schedule, gradient norm clipped;",
        "`benchmarks/train.py` with the settings in `training_run.json`, resumable in pieces (`--resume`); a later",
        "stage starts from the best weights of the one before. A stage whose steps are short of its schedule is still",
        "training: these are its best weights so far (`benchmarks/train_embedded.py` continues it).",
        "",
    ]
    restarts = [
        (number, piece)
        for number, stage in enumerate(chain, start=1)
        for piece in stage.get("pieces", [])
        if piece.get("optimizer_restarted")
    ]
    if restarts:
        lines += [
            "Pieces that continued from the published weights on another machine (fresh optimizer, learning rate "
            "ramped up): "
            + ", ".join(f"stage {number} at step {piece['from_step']}" for number, piece in restarts)
            + ".",
            "",
        ]
    lines += [
        f"Stage {number}: its learning rate restarts at step {', '.join(map(str, stage['schedule']['restarts']))} "
        f"(a warm-up to {stage['schedule']['restart_lr_ratio']} of the peak, then a cosine decay to the next restart "
        "or the end), the schedule lengthened beyond a finished run's end (`train.py --restarts`).\n"
        for number, stage in enumerate(chain, start=1)
        if stage["schedule"].get("restarts")
    ]
    if (model_dir / "learning_curve.png").is_file():
        lines += ["![Learning curve: train and dev loss, dev WER](learning_curve.png)", ""]
    columns = [key for key in PLAIN_DECODINGS if any(key in result for result in evaluation.values())]
    lines += [
        "## Word error rates",
        "",
        "| Test set | Utterances | WER (%) |" + "".join(f" {PLAIN_DECODINGS[key][0]} |" for key in columns),
        "|---|---|---|" + "---|" * len(columns),
    ]
    descriptions = {
        "synthetic_test": "Held-out synthetic test (unseen LJ Speech sentences, same voice)",
        RESYNTHESISED_TEST: "The same, re-synthesised by HiFi-GAN V1 universal (the vocoder defence's; WAVEAUG's test)",
        "embedded_eval": "Embedded evaluation set (`art_asr_ext/benchmark/data/LibriSpeech/test-synth`, the project's sentences)",
        "real_clips": "Real LibriSpeech test-clean clips (`../shared/data`, human speakers never heard in training)",
    }
    for name, result in evaluation.items():
        plain = "".join(f" {result[key]:.2f} |" for key in columns)
        lines.append(f"| {descriptions.get(name, name)} | {result['utterances']} | {result['wer']:.2f} |{plain}")
    lines += [
        "",
        "Reproduce: `python benchmarks/model_cards.py --check --synthetic-test <corpus>/test-synth` "
        "(see `benchmarks/README.md`).",
        "",
    ]
    return "\n".join(lines)


def model_dirs(names: Optional[List[str]]) -> List[Path]:
    dirs = sorted(p for p in MODELS_DIR.iterdir() if (p / "training_run.json").is_file())
    return [p for p in dirs if not names or p.name in names]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic-test", type=Path, help="the held-out synthetic test split (test-synth)")
    parser.add_argument(
        "--resynthesis-cache",
        type=Path,
        default=REPO / "runs" / "resynthesis",
        help="HiFi-GAN re-syntheses of the test",
    )
    parser.add_argument("--check", action="store_true", help="recompute and compare with the committed cards")
    parser.add_argument("--models", nargs="*", help="model directory names (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    roots = {"embedded_eval": EMBEDDED_SET, "real_clips": REAL_CLIPS}
    if args.synthetic_test is not None:
        roots = {"synthetic_test": args.synthetic_test, **roots}
    corpora = {name: Corpus.load(root) for name, root in roots.items()}
    resynthesised = None  # made once, for the first model that decodes it
    failures = 0
    for model_dir in model_dirs(args.models):
        run = json.loads((model_dir / "training_run.json").read_text())
        test_sets = corpora
        if args.synthetic_test is not None and run["system"] in RESYNTHESISED_SYSTEMS:
            if resynthesised is None:
                resynthesised = vocoded(corpora["synthetic_test"], args.resynthesis_cache, "cpu")
            test_sets = {"synthetic_test": corpora["synthetic_test"], RESYNTHESISED_TEST: resynthesised, **corpora}
        evaluation = evaluate(model_dir, test_sets)
        evaluation_path = model_dir / "evaluation.json"
        if args.check:
            committed = json.loads(evaluation_path.read_text())
            for name, result in evaluation.items():
                expected = committed.get(name)
                status = "ok" if expected == result else f"MISMATCH (card: {expected})"
                failures += status != "ok"
                print(f"{model_dir.name:28s} {name:15s} WER {result['wer']:6.2f} %  {status}")
            continue
        plot_learning_curve(run, model_dir / "learning_curve.png")
        evaluation_path.write_text(json.dumps(evaluation, indent=2) + "\n")
        (model_dir / "MODEL_CARD.md").write_text(render_card(model_dir, run, evaluation))
        print(f"{model_dir.name}: " + ", ".join(f"{k} {v['wer']:.2f} %" for k, v in evaluation.items()))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
