"""
Evaluate the embedded models and write (or check) their model cards.

Each model directory under `benchmarks/models` holds the weights in the system's native layout (a deepspeech.pytorch
v3 `model.ckpt`, or an ESPnet model-zoo package), `training_run.json` (written by `benchmarks/train.py`),
`evaluation.json` (the WERs below) and `MODEL_CARD.md` (rendered from both). Write the cards after training::

    python benchmarks/model_cards.py --synthetic-test data/synth/test-synth

Reproduce the committed WERs from the committed checkpoints (exit status 1 on any difference)::

    python benchmarks/model_cards.py --check                                        # embedded set + real clips
    python benchmarks/model_cards.py --check --synthetic-test data/synth/test-synth # + held-out synthetic test

The held-out synthetic test split is regenerated exactly by
`python benchmarks/synthesize_corpus.py ... --splits test` (the synthesis is seeded).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.training.recipes import DEEPSPEECH_CHECKPOINT, Corpus, word_error_rate  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / "benchmarks" / "models"
EMBEDDED_SET = REPO / "benchmarks" / "data" / "LibriSpeech" / "test-synth"
REAL_CLIPS = REPO.parent / "shared" / "data" / "LibriSpeech" / "test-clean"
#: How each system decodes for its card (and in the quick Table I). The embedded Transformers decode with their CTC
#: branch: on a CPU budget their attention decoder has not learnt to align yet (its loss still dominates training,
#: and it is still part of the attacked objective).
DECODING = {
    "deepspeech2": "greedy CTC (no language model)",
    "transformer": "CTC best path of the joint CTC/attention model (`decoding: ctc`)",
}


def load_estimator(model_dir: Path):
    """The ART estimator of a committed model directory (DeepSpeech2 or ESPnet, told apart by the files)."""
    from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet

    if (model_dir / DEEPSPEECH_CHECKPOINT).is_file():
        return PyTorchDeepSpeech2(checkpoint=model_dir / DEEPSPEECH_CHECKPOINT)
    return PyTorchESPnet(model_dir=model_dir, decoding="ctc")


def evaluate(model_dir: Path, test_sets: Dict[str, Path]) -> Dict[str, Dict[str, float]]:
    """:return: `{test set name: {"utterances": n, "wer": WER in %}}`, WERs rounded to 0.01."""
    estimator = load_estimator(model_dir)
    results = {}
    for name, root in test_sets.items():
        corpus = Corpus.load(root)
        results[name] = {"utterances": len(corpus), "wer": round(word_error_rate(estimator, corpus), 2)}
    return results


def training_chain(run: dict) -> List[dict]:
    """The runs that produced a model, first stage first (a fine-tuned model lists its starting model's runs)."""
    chain = []
    while run is not None:
        chain.append(run)
        run = run.get("previous_run")
    return chain[::-1]


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
        f"model selection by the dev WER of {'CTC' if run.get('dev_decoding', 'greedy') == 'ctc' else 'greedy'} decoding) |",
        f"| Steps | {sum(r['steps'] for r in chain)} in total, in {len(chain)} stage(s) below |",
        f"| Wall time | {sum(r['wall_minutes'] for r in chain):.1f} min of training in total |",
        f"| Hardware | {run['hardware']} |",
        f"| Decoding | {DECODING[run['system']]} |",
        "",
        "## Training stages",
        "",
        "| Stage | Variant | Steps (batch) | Epochs | Peak LR, warm-up | Wall time (min) | Best dev WER (%) at step |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, stage in enumerate(chain, start=1):
        schedule = stage["schedule"]
        lines.append(
            f"| {number} | {stage['variant']} | {stage['steps']} ({schedule['batch_size']}) | {stage['epochs_done']} | "
            f"{schedule['learning_rate']}, {schedule['warmup_steps']} | {stage['wall_minutes']} | "
            f"{stage['best_dev_wer']:.2f} at {stage['best_step']} |"
        )
    lines += [f"\nStage {n}: {stage['note']}" for n, stage in enumerate(chain, start=1) if stage.get("note")]
    lines += [
        "",
        "Every stage: AdamW, linear warm-up then cosine decay, gradient norm clipped; `benchmarks/train.py` with the",
        "settings in `training_run.json`; a later stage starts from the best weights of the one before.",
        "",
        "## Word error rates",
        "",
        "| Test set | Utterances | WER (%) |",
        "|---|---|---|",
    ]
    descriptions = {
        "synthetic_test": "Held-out synthetic test (unseen LJ Speech sentences, same voice)",
        "embedded_eval": "Embedded evaluation set (`benchmarks/data/LibriSpeech/test-synth`, the project's sentences)",
        "real_clips": "Real LibriSpeech test-clean clips (`../shared/data`, human speakers never heard in training)",
    }
    for name, result in evaluation.items():
        lines.append(f"| {descriptions.get(name, name)} | {result['utterances']} | {result['wer']:.2f} |")
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
    parser.add_argument("--check", action="store_true", help="recompute and compare with the committed cards")
    parser.add_argument("--models", nargs="*", help="model directory names (default: all)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    test_sets = {"embedded_eval": EMBEDDED_SET, "real_clips": REAL_CLIPS}
    if args.synthetic_test is not None:
        test_sets = {"synthetic_test": args.synthetic_test, **test_sets}
    failures = 0
    for model_dir in model_dirs(args.models):
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
        run = json.loads((model_dir / "training_run.json").read_text())
        evaluation_path.write_text(json.dumps(evaluation, indent=2) + "\n")
        (model_dir / "MODEL_CARD.md").write_text(render_card(model_dir, run, evaluation))
        print(f"{model_dir.name}: " + ", ".join(f"{k} {v['wer']:.2f} %" for k, v in evaluation.items()))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
