"""
Training recipes for the study's model variants, on any LibriSpeech-layout corpus.

DeepSpeech2: ``baseline``, ``rs_aug`` (Gaussian noise with σ ~ U(0, 0.3) drawn per utterance, as training augmentation)
and ``waveaug`` (trained on vocoder re-synthesised speech). ESPnet Transformer: ``baseline`` (label smoothing 0.1),
``rs_aug`` and ``no_lsm`` (label smoothing off). Every variant trains with the estimator's own ``fit`` (defences with
``apply_fit`` are the augmentation), under a warm-up + cosine learning-rate schedule, and keeps the weights with the
best greedy WER on the development set.

The ``embedded`` sizes are the small models committed under ``benchmarks/models``; the ``paper`` sizes are the
study's (DeepSpeech2 5 x 1024 LSTM; the LibriSpeech Transformer recipe, d256, 12 + 6 blocks). On a GPU with
LibriSpeech, the same command with ``--size paper`` and the LibriSpeech split paths is the full-size recipe.
"""

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from art_asr_ext.data.librispeech import load_librispeech
from art_asr_ext.defences.preprocessor import GaussianSmoothingPyTorch
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet
from art_asr_ext.estimators.speech_recognition.speech_inputs import to_object_array
from art_asr_ext.metrics.wer import corpus_wer, utterance_word_errors
from art_asr_ext.models.deepspeech2 import DeepSpeech2
from art_asr_ext.models.deepspeech_checkpoint import save_deepspeech_checkpoint
from art_asr_ext.models.espnet_asr import (
    build_espnet_asr,
    librispeech_char_tokens,
    transformer_asr_config,
)
from benchmarks.runner.runner import device_description

logger = logging.getLogger(__name__)

SYSTEMS = ("deepspeech2", "transformer")
#: File name of a DeepSpeech2 checkpoint inside its model directory.
DEEPSPEECH_CHECKPOINT = "model.ckpt"

MODEL_SIZES: Dict[str, Dict[str, Dict[str, Any]]] = {
    "deepspeech2": {
        # 2.2 M parameters (8.6 MB): three bidirectional LSTM layers over a 10 ms-window spectrogram.
        "embedded": {"rnn_type": "lstm", "hidden_size": 160, "hidden_layers": 3, "window_size": 0.01},
        "paper": {"rnn_type": "lstm", "hidden_size": 1024, "hidden_layers": 5},
        "tiny": {"rnn_type": "lstm", "hidden_size": 16, "hidden_layers": 1, "window_size": 0.01},  # smoke tests
    },
    "transformer": {
        "embedded": {
            "d_model": 128,
            "attention_heads": 4,
            "linear_units": 512,
            "encoder_blocks": 6,
            "decoder_blocks": 2,
            # A larger CTC share than the LibriSpeech recipe's 0.3: on a few hours of data and ~1000 steps, the CTC
            # branch teaches the encoder to align long before the attention decoder would on its own.
            "ctc_weight": 0.5,
        },
        "paper": {},  # transformer_asr_config's defaults: ESPnet's LibriSpeech train_asr_transformer
        "tiny": {"d_model": 32, "attention_heads": 2, "linear_units": 64, "encoder_blocks": 1, "decoder_blocks": 1},
    },
}


@dataclass(frozen=True)
class Variant:
    """One of the study's training variants."""

    description: str
    rs_sigma: Optional[Tuple[float, float]] = None
    waveaug: bool = False
    lsm_weight: Optional[float] = None


VARIANTS: Dict[str, Dict[str, Variant]] = {
    "deepspeech2": {
        "baseline": Variant("DeepSpeech2, clean training data"),
        "rs_aug": Variant("DeepSpeech2, randomized-smoothing augmentation: sigma ~ U(0, 0.3)", rs_sigma=(0.0, 0.3)),
        "waveaug": Variant("DeepSpeech2, trained on HiFi-GAN re-synthesised speech (WAVEAUG)", waveaug=True),
    },
    "transformer": {
        "baseline": Variant("ESPnet Transformer, label smoothing 0.1", lsm_weight=0.1),
        "rs_aug": Variant(
            "ESPnet Transformer, label smoothing 0.1, randomized-smoothing augmentation: sigma ~ U(0, 0.3)",
            rs_sigma=(0.0, 0.3),
            lsm_weight=0.1,
        ),
        "no_lsm": Variant("ESPnet Transformer without label smoothing (the study's ablation)", lsm_weight=0.0),
    },
}


@dataclass
class Schedule:
    """Optimisation settings of a run."""

    epochs: float = 10.0
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 300
    final_lr_ratio: float = 0.05
    max_grad_norm: float = 100.0
    max_minutes: Optional[float] = None
    eval_every_steps: int = 200
    dev_utterances: int = 100
    seed: int = 0

    def learning_rate_at(self, step: int, total_steps: int) -> float:
        """Linear warm-up, then cosine decay to `final_lr_ratio * learning_rate` at `total_steps`."""
        if step < self.warmup_steps:
            return self.learning_rate * (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, total_steps - self.warmup_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.learning_rate * (self.final_lr_ratio + (1.0 - self.final_lr_ratio) * cosine)


@dataclass
class Corpus:
    """Waveforms and transcripts of one split."""

    utterance_ids: List[str]
    waveforms: np.ndarray
    transcripts: np.ndarray

    @classmethod
    def load(cls, root: Path, max_utterances: Optional[int] = None) -> "Corpus":
        utterances = load_librispeech(root, max_utterances=max_utterances)
        if not utterances:
            raise ValueError(f"No utterances under {root}.")
        return cls(
            [u.utterance_id for u in utterances],
            to_object_array([u.waveform for u in utterances]),
            np.array([u.transcript for u in utterances]),
        )

    def __len__(self) -> int:
        return len(self.utterance_ids)

    def subset(self, index: np.ndarray) -> "Corpus":
        """:param index: Positions of the utterances to keep, in order."""
        return Corpus([self.utterance_ids[i] for i in index], self.waveforms[index], self.transcripts[index])

    @property
    def hours(self) -> float:
        return sum(len(w) for w in self.waveforms) / 16000 / 3600


def word_error_rate(estimator, corpus: Corpus, batch_size: int = 16) -> float:
    """Corpus WER (in %) of an estimator's `predict` on a corpus."""
    hypotheses = estimator.predict(corpus.waveforms, batch_size=batch_size)
    errors = utterance_word_errors(list(corpus.transcripts), list(hypotheses))
    return 100.0 * corpus_wer([e.errors for e in errors], [e.reference_words for e in errors])


@dataclass
class TrainingRun:
    """Everything a model card reports about a run."""

    system: str
    variant: str
    description: str
    size: str
    model_config: Dict[str, Any]
    schedule: Dict[str, Any]
    train_utterances: int
    train_hours: float
    initialised_from: Optional[str] = None
    dev_decoding: str = "greedy"
    #: The `TrainingRun` (as a dict) of the model this run started from, so a card can report the whole chain.
    previous_run: Optional[Dict[str, Any]] = None
    data: Dict[str, str] = field(default_factory=dict)
    steps: int = 0
    epochs_done: float = 0.0
    wall_minutes: float = 0.0
    best_dev_wer: float = float("inf")
    best_step: int = 0
    history: List[Dict[str, float]] = field(default_factory=list)
    hardware: str = ""
    parameters: int = 0


class Recipe:
    """
    Builds, trains and saves one variant.

    :param system: `deepspeech2` or `transformer`.
    :param variant: A key of `VARIANTS[system]`.
    :param size: `embedded` or `paper` (see `MODEL_SIZES`).
    :param device_type: `cpu` or `gpu`.
    :param decoding: ESPnet decoding of the dev WER that selects the best weights: `greedy` (attention) or `ctc`.
    :param init: A model directory this recipe saved (same system) to start from, instead of random weights; the
                 model keeps its saved architecture (`size` is then ignored).
    """

    def __init__(
        self,
        system: str,
        variant: str,
        size: str = "embedded",
        device_type: str = "cpu",
        init: Optional[Path] = None,
        decoding: str = "greedy",
    ) -> None:
        if system not in VARIANTS or variant not in VARIANTS[system]:
            raise ValueError(
                f"Unknown system/variant {system}/{variant}. Known: { {s: list(v) for s, v in VARIANTS.items()} }"
            )
        if size not in MODEL_SIZES[system]:
            raise ValueError(f"Unknown size {size!r}. Known: {list(MODEL_SIZES[system])}")
        self.system, self.variant_name, self.size = system, variant, size
        self.variant = VARIANTS[system][variant]
        self.device_type = device_type
        self.init = init
        self.decoding = decoding
        self.model_config = dict(MODEL_SIZES[system][size])
        self.espnet_config: Optional[Dict[str, Any]] = None
        self.model = self._build_model()

    def _build_model(self) -> torch.nn.Module:
        # A fine-tuned model keeps the architecture it was saved with; model_config then records that one.
        if self.system == "deepspeech2":
            if self.init is not None:
                # The estimator that loads the checkpoint freezes its weights; training unfreezes them all.
                model = PyTorchDeepSpeech2(checkpoint=self.init / DEEPSPEECH_CHECKPOINT).model.requires_grad_(True)
                self.model_config = {
                    "rnn_type": model.rnn_type,
                    "hidden_size": model.hidden_size,
                    "hidden_layers": model.hidden_layers,
                    "window_size": model.spectrogram.window_size,
                }
                return model
            return DeepSpeech2(**self.model_config)
        if self.init is not None:
            loaded = PyTorchESPnet(model_dir=self.init)
            self.espnet_config = loaded.asr_config
            self.model_config = {key: self.espnet_config[key] for key in ("encoder_conf", "decoder_conf")}
            return loaded.model.requires_grad_(True)
        self.espnet_config = transformer_asr_config(
            librispeech_char_tokens(), lsm_weight=self.variant.lsm_weight, **self.model_config
        )
        return build_espnet_asr(self.espnet_config)

    def _previous_run(self) -> Optional[Dict[str, Any]]:
        path = None if self.init is None else self.init / "training_run.json"
        return json.loads(path.read_text()) if path is not None and path.is_file() else None

    def estimator(self, optimizer: Optional[torch.optim.Optimizer] = None, seed: int = 0):
        """The ART estimator that trains and evaluates the model, with the variant's training augmentation."""
        defences = []
        if self.variant.rs_sigma is not None:
            defences.append(
                GaussianSmoothingPyTorch(
                    sigma=self.variant.rs_sigma,
                    seed=seed,
                    apply_fit=True,
                    apply_predict=False,
                    device_type=self.device_type,
                )
            )
        common = dict(optimizer=optimizer, preprocessing_defences=defences or None, device_type=self.device_type)
        if self.system == "deepspeech2":
            return PyTorchDeepSpeech2(model=self.model, **common)
        # A fast decoding for the dev WER while training; lsm_weight overrides a fine-tuned model's own.
        return PyTorchESPnet(
            model=self.model,
            asr_config=self.espnet_config,
            decoding=self.decoding,
            lsm_weight=self.variant.lsm_weight,
            **common,
        )

    def save(self, estimator, out_dir: Path) -> None:
        """Save in the system's native layout: a deepspeech.pytorch v3 `.ckpt`, or an ESPnet model-zoo package."""
        out_dir.mkdir(parents=True, exist_ok=True)
        if self.system == "deepspeech2":
            save_deepspeech_checkpoint(self.model, out_dir / DEEPSPEECH_CHECKPOINT)
        else:
            estimator.save(str(out_dir))

    def fit(
        self,
        train: Corpus,
        dev: Corpus,
        schedule: Schedule,
        out_dir: Path,
        log: Callable[[str], None] = print,
        data: Optional[Dict[str, str]] = None,
    ) -> TrainingRun:
        """
        Train with the estimator's `fit`, one shuffled chunk of batches at a time (the learning rate is set before
        each chunk), evaluate the greedy dev WER every `eval_every_steps` steps and save the best weights to `out_dir`.
        """
        # Every weight trains (an estimator built earlier froze them; the one below unfreezes them inside fit).
        trainable = list(self.model.requires_grad_(True).parameters())
        optimizer = torch.optim.AdamW(trainable, lr=schedule.learning_rate, weight_decay=1e-6)
        estimator = self.estimator(optimizer=optimizer, seed=schedule.seed)
        dev = dev.subset(np.arange(min(len(dev), schedule.dev_utterances)))
        run = TrainingRun(
            system=self.system,
            variant=self.variant_name,
            description=self.variant.description,
            size=self.size,
            model_config=self.model_config,
            schedule=asdict(schedule),
            train_utterances=len(train),
            train_hours=round(train.hours, 3),
            initialised_from=None if self.init is None else str(self.init),
            previous_run=self._previous_run(),
            dev_decoding=self.decoding if self.system == "transformer" else "ctc",
            data=dict(data or {}),
            hardware=device_description(self.device_type),
            parameters=sum(p.numel() for p in self.model.parameters()),
        )
        rng = np.random.default_rng(schedule.seed)
        steps_per_epoch = math.ceil(len(train) / schedule.batch_size)
        total_steps = max(1, int(schedule.epochs * steps_per_epoch))
        chunk = schedule.batch_size * max(1, min(8, schedule.eval_every_steps))
        start = time.perf_counter()
        next_eval = schedule.eval_every_steps
        order = np.array([], dtype=int)
        out_of_time = False
        while run.steps < total_steps and not out_of_time:
            if len(order) < chunk:
                order = np.concatenate([order, rng.permutation(len(train))])
            index, order = order[:chunk], order[chunk:]
            for group in optimizer.param_groups:
                group["lr"] = schedule.learning_rate_at(run.steps, total_steps)
            estimator.fit(
                train.waveforms[index],
                train.transcripts[index],
                batch_size=schedule.batch_size,
                nb_epochs=1,
                seed=int(rng.integers(2**31)),
                max_grad_norm=schedule.max_grad_norm,
            )
            run.steps += math.ceil(len(index) / schedule.batch_size)
            minutes = (time.perf_counter() - start) / 60
            out_of_time = schedule.max_minutes is not None and minutes >= schedule.max_minutes
            if run.steps >= next_eval or run.steps >= total_steps or out_of_time:
                next_eval += schedule.eval_every_steps
                dev_wer = word_error_rate(estimator, dev)
                loss = float(np.mean(estimator.compute_loss(dev.waveforms[:32], dev.transcripts[:32])))
                run.history.append(
                    {
                        "step": run.steps,
                        "minutes": round(minutes, 2),
                        "dev_wer": round(dev_wer, 2),
                        "dev_loss": round(loss, 3),
                    }
                )
                log(
                    f"step {run.steps}/{total_steps}  {minutes:.1f} min  lr {optimizer.param_groups[0]['lr']:.2e}  "
                    f"dev loss {loss:.3f}  dev WER {dev_wer:.2f} %"
                )
                if dev_wer <= run.best_dev_wer:
                    run.best_dev_wer, run.best_step = dev_wer, run.steps
                    self.save(estimator, out_dir)
        run.wall_minutes = round((time.perf_counter() - start) / 60, 2)
        run.epochs_done = round(run.steps / steps_per_epoch, 2)
        (out_dir / "training_run.json").write_text(json.dumps(asdict(run), indent=2) + "\n")
        return run
