"""
Training recipes for the study's model variants, on any LibriSpeech-layout corpus.

DeepSpeech2: ``baseline``, ``rs_aug`` (Gaussian noise with σ ~ U(0, 0.3) drawn per utterance, as training
augmentation), ``waveaug`` (trained on vocoder re-synthesised speech) and ``specaug`` (SpecAugment masks on its
spectrogram, a fine-tune outside the study's plan). ESPnet Transformer: ``baseline`` (label smoothing 0.1),
``rs_aug`` and ``no_lsm`` (label smoothing off). Every variant trains with the estimator's own ``fit`` (defences with
``apply_fit`` are the augmentation), under a warm-up + cosine learning-rate schedule, and keeps the weights with the
best greedy WER on the development set.

The ``embedded`` sizes are the small models committed under ``benchmarks/models``; the ``paper`` sizes are the
study's (DeepSpeech2 5 x 1024 LSTM; the LibriSpeech Transformer recipe, d256, 12 + 6 blocks). On a GPU with
LibriSpeech, the same command with ``--size paper`` and the LibriSpeech split paths is the full-size recipe.
"""

import contextlib
import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from art_asr_ext.data.librispeech import load_librispeech
from art_asr_ext.defences.preprocessor import GaussianSmoothingPyTorch
from art_asr_ext.estimators.speech_recognition import PyTorchDeepSpeech2, PyTorchESPnet
from art_asr_ext.estimators.speech_recognition.pytorch_speech_recognizer import PyTorchSpeechRecognizer
from art_asr_ext.utils.audio import length_sorted_batches, to_object_array
from art_asr_ext.utils.environment import PRECISIONS, device_description
from art_asr_ext.utils.io import atomic_write, atomic_write_text
from art_asr_ext.metrics.wer import transcripts_wer
from art_asr_ext.models.deepspeech2 import DeepSpeech2
from art_asr_ext.models.deepspeech_checkpoint import save_deepspeech_checkpoint
from art_asr_ext.models.dropout import FastCPUDropout, use_fast_cpu_dropout
from art_asr_ext.models.espnet_asr import build_espnet_asr, feats_stats, librispeech_char_tokens, transformer_asr_config
from art_asr_ext.models.memory_format import use_channels_last_convolutions

logger = logging.getLogger(__name__)

SYSTEMS = ("deepspeech2", "transformer")
#: File name of a DeepSpeech2 checkpoint inside its model directory.
DEEPSPEECH_CHECKPOINT = "model.ckpt"

#: SpecAugment as the embedded Transformer applies it (ESPnet's `specaug_conf`), for the overfitting that
#: DeepSpeech2's curve shows on these 9,927 sentences (train loss 1.1 against dev loss 19 by epoch 10): two masks of
#: up to 27 of the 80 mel bins (SpecAugment's LibriSpeech policy) and two of up to 20 frames of 10 ms (the sentences
#: are 4.8 s on average, against LibriSpeech's 12 s and its 0.4 s masks); no time warp.
EMBEDDED_SPECAUG: Dict[str, Any] = {
    "apply_time_warp": False,
    "freq_mask_width_range": [0, 27],
    "num_freq_mask": 2,
    "time_mask_width_range": [0, 20],
    "num_time_mask": 2,
}
#: DeepSpeech2's masks: the same time masks, and deepspeech.pytorch's frequency mask (one of up to 27 of its 161
#: linear bins, i.e. 1.35 kHz: 13 of the embedded model's 81). 27 linear bins span far more of the speech band than
#: 27 mel bins: two such masks took the finished baseline's training loss from 0.4 to 628 on one batch.
DEEPSPEECH2_SPECAUG: Dict[str, Any] = {**EMBEDDED_SPECAUG, "freq_mask_width_range": [0, 13], "num_freq_mask": 1}

#: The embedded Transformer's ESPnet settings (`MODEL_SIZES['transformer']['embedded']`).
TRANSFORMER_EMBEDDED: Dict[str, Any] = {
    "d_model": 128,
    "attention_heads": 4,
    "linear_units": 512,
    "encoder_blocks": 6,
    "decoder_blocks": 2,
    # 2.49 M parameters (5.0 MB as the float16 the package stores). 20 ms frames: the voice speaks up to ~22
    # characters a second, and character CTC needs a frame per character plus one per repeated pair; conv2d's
    # 40 ms frames leave barely more than one.
    "input_layer": "conv2d2",
    "normalize": "global_mvn",
    "init": "xavier_uniform",
    "ctc_weight": 0.3,
    "specaug": EMBEDDED_SPECAUG,
}

MODEL_SIZES: Dict[str, Dict[str, Dict[str, Any]]] = {
    "deepspeech2": {
        # 2.4 M parameters (4.8 MB as float16; an embedded model may take 10 MB): three bidirectional GRU layers of
        # 208 over a 10 ms-window spectrogram (a GRU is three quarters of an LSTM's cost at the same width).
        "embedded": {"rnn_type": "gru", "hidden_size": 208, "hidden_layers": 3, "window_size": 0.01},
        # 4.1 M parameters (8.2 MB as the float16 the package stores): the 10 MB fits about twice the parameters of
        # `embedded`, for the variants that the smaller model cannot fit (randomized-smoothing augmentation).
        "wide": {"rnn_type": "gru", "hidden_size": 296, "hidden_layers": 3, "window_size": 0.01},
        "paper": {"rnn_type": "lstm", "hidden_size": 1024, "hidden_layers": 5},
        "tiny": {"rnn_type": "gru", "hidden_size": 16, "hidden_layers": 1, "window_size": 0.01},  # smoke tests
    },
    "transformer": {
        "embedded": TRANSFORMER_EMBEDDED,
        # 4.69 M parameters (9.4 MB in float16): `embedded` at a model width of 176 (heads of 44), about twice its
        # parameters, for the variant that the smaller model cannot fit (randomized-smoothing augmentation).
        "wide": {**TRANSFORMER_EMBEDDED, "d_model": 176, "linear_units": 704},
        "paper": {},  # transformer_asr_config's defaults: ESPnet's LibriSpeech train_asr_transformer
        "tiny": {
            "d_model": 32,
            "attention_heads": 2,
            "linear_units": 64,
            "encoder_blocks": 1,
            "decoder_blocks": 1,
            "input_layer": "conv2d2",
            "normalize": "global_mvn",
            "init": "xavier_uniform",
        },
    },
}


@dataclass(frozen=True)
class Variant:
    """One of the study's training variants."""

    description: str
    rs_sigma: Optional[Tuple[float, float]] = None
    waveaug: bool = False
    #: With `waveaug`: train on the clean sentences beside the re-synthesised ones (an augmentation), not on the
    #: re-synthesised alone.
    waveaug_beside_clean: bool = False
    lsm_weight: Optional[float] = None
    #: DeepSpeech2: ESPnet `SpecAug` settings, masks drawn on the spectrogram in the training steps only (the
    #: Transformer's masks are part of its ESPnet model, see `MODEL_SIZES`).
    feature_masks: Optional[Dict[str, Any]] = None

    def settings(self) -> Dict[str, Any]:
        """What the variant trains with (all but its description), as a run record stores it."""
        return _plain({key: value for key, value in asdict(self).items() if key != "description"})

    @classmethod
    def record(cls, recorded: Dict[str, Any]) -> Dict[str, Any]:
        """
        A run record's variant settings with the settings added since it was written at their defaults (which is what
        the run trained with), so that they compare equal to the settings that would write it now.
        """
        try:
            return cls(description="", **recorded).settings()
        except TypeError:  # another recipe's settings: compared as they are
            return recorded


VARIANTS: Dict[str, Dict[str, Variant]] = {
    "deepspeech2": {
        "baseline": Variant("DeepSpeech2, clean training data"),
        "specaug": Variant(
            "DeepSpeech2, clean training data, SpecAugment feature masks", feature_masks=DEEPSPEECH2_SPECAUG
        ),
        "rs_aug": Variant("DeepSpeech2, randomized-smoothing augmentation: sigma ~ U(0, 0.3)", rs_sigma=(0.0, 0.3)),
        "waveaug": Variant(
            "DeepSpeech2, trained on clean and HiFi-GAN re-synthesised speech (WAVEAUG)",
            waveaug=True,
            waveaug_beside_clean=True,
        ),
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
    """
    Optimisation settings of a run. They fix the whole trajectory: a run trained in one piece or in several
    (`Recipe.fit` with `resume`) takes the same steps with the same learning rates, batches and noise.
    """

    #: Length of the whole run in optimizer steps; the learning-rate schedule spans exactly this many.
    max_steps: int = 10000
    #: Steps at which the learning rate starts a new cycle (warm restarts): a warm-up over `warmup_steps` to
    #: `restart_lr_ratio * learning_rate`, then a cosine decay to the next restart or `max_steps`. A run trained to
    #: step R by a schedule that ended there is the start of a schedule that restarts at R (`extends`), so a finished
    #: run can be trained on by lengthening its schedule this way.
    restarts: Tuple[int, ...] = ()
    restart_lr_ratio: float = 0.5
    batch_size: int = 16
    learning_rate: float = 1e-3
    warmup_steps: int = 500
    final_lr_ratio: float = 0.02
    max_grad_norm: float = 5.0
    #: AdamW's betas; ESPnet's Transformer recipes use beta2 = 0.98.
    betas: Tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 1e-6
    #: First epoch in increasing length (DeepSpeech2's SortaGrad), later epochs in random batch order.
    sortagrad: bool = True
    #: Transformer: CTC weight of the training loss at step 0, falling linearly to the model's own weight at
    #: `ctc_warmup_steps` (the encoder learns to align through CTC before the attention decoder leans on it).
    ctc_weight_start: Optional[float] = None
    ctc_warmup_steps: int = 0
    eval_every_steps: int = 500
    dev_utterances: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        self.betas = tuple(float(beta) for beta in self.betas)  # a resumed state holds a list
        self.restarts = tuple(int(step) for step in self.restarts)
        cycle_starts = (0, *self.restarts)
        checks = {
            "max_steps": self.max_steps >= 1,
            "batch_size": self.batch_size >= 1,
            "learning_rate": self.learning_rate > 0,
            "warmup_steps": 0 <= self.warmup_steps < self.max_steps,
            "final_lr_ratio": 0.0 <= self.final_lr_ratio <= 1.0,
            "max_grad_norm": self.max_grad_norm > 0,
            "eval_every_steps": self.eval_every_steps >= 1,
            "dev_utterances": self.dev_utterances >= 1,
            "ctc_weight_start": self.ctc_weight_start is None or 0.0 <= self.ctc_weight_start < 1.0,
            "ctc_warmup_steps": self.ctc_warmup_steps >= 0,
            "restarts": all(
                start + self.warmup_steps < end for start, end in zip(cycle_starts, (*self.restarts, self.max_steps))
            ),
            "restart_lr_ratio": 0.0 < self.restart_lr_ratio <= 1.0,
        }
        for name, valid in checks.items():
            if not valid:
                raise ValueError(f"Schedule.{name} is out of range. Found: {getattr(self, name)!r}")

    def learning_rate_at(self, step: int) -> float:
        """
        Linear warm-up, then cosine decay to `final_lr_ratio` times the peak at `max_steps`; from each restart on,
        the same at a peak of `restart_lr_ratio * learning_rate`, ending at the next restart.
        """
        start = max((restart for restart in self.restarts if restart <= step), default=0)
        end = min((restart for restart in self.restarts if restart > step), default=self.max_steps)
        peak = self.learning_rate * (self.restart_lr_ratio if start else 1.0)
        if step - start < self.warmup_steps:
            return peak * (step - start + 1) / self.warmup_steps
        progress = min(1.0, (step - start - self.warmup_steps) / max(1, end - start - self.warmup_steps))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return peak * (self.final_lr_ratio + (1.0 - self.final_lr_ratio) * cosine)

    def extends(self, earlier: Dict[str, Any]) -> bool:
        """
        Whether a run trained by the `earlier` schedule (a run record's) took the same steps as this one up to its
        end: the same settings, except that this one restarts where the earlier one ended.
        """
        try:
            earlier_schedule = Schedule(**earlier)
        except (TypeError, ValueError):  # a record of another recipe's schedule
            return False
        end = earlier_schedule.max_steps
        return (
            end in self.restarts
            and earlier_schedule.restarts == tuple(restart for restart in self.restarts if restart < end)
            # (a schedule without restarts never used its restart_lr_ratio)
            and replace(
                earlier_schedule,
                max_steps=self.max_steps,
                restarts=self.restarts,
                restart_lr_ratio=(
                    earlier_schedule.restart_lr_ratio if earlier_schedule.restarts else self.restart_lr_ratio
                ),
            )
            == self
        )

    @classmethod
    def record(cls, recorded: Dict[str, Any]) -> Dict[str, Any]:
        """
        A run record's schedule with the settings added since it was written at their defaults (which is what the
        run trained with), so that it compares equal to the schedule that would write it now.
        """
        try:
            return asdict(cls(**recorded))
        except (TypeError, ValueError):  # another recipe's schedule: compared as it is
            return recorded

    def ctc_weight_at(self, step: int, final: float) -> float:
        """The training loss's CTC weight at `step` for a model whose own weight is `final`."""
        if self.ctc_weight_start is None or step >= self.ctc_warmup_steps:
            return final
        return self.ctc_weight_start + (final - self.ctc_weight_start) * step / self.ctc_warmup_steps


@dataclass
class Corpus:
    """Waveforms and transcripts of one split."""

    utterance_ids: List[str]
    waveforms: np.ndarray
    transcripts: np.ndarray

    @classmethod
    def load(cls, root: Path, max_utterances: Optional[int] = None, audio_extension: str = ".flac") -> "Corpus":
        utterances = load_librispeech(root, max_utterances=max_utterances, audio_extension=audio_extension)
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

    def first(self, count: int) -> "Corpus":
        """The first `count` utterances (all of them if there are fewer)."""
        return self.subset(np.arange(min(len(self), count)))

    def concatenate(self, other: "Corpus") -> "Corpus":
        """This corpus's utterances, then `other`'s."""
        return Corpus(
            self.utterance_ids + other.utterance_ids,
            to_object_array(list(self.waveforms) + list(other.waveforms)),
            np.concatenate([self.transcripts, other.transcripts]),
        )

    @property
    def hours(self) -> float:
        return sum(len(w) for w in self.waveforms) / 16000 / 3600


def word_error_rate(estimator, corpus: Corpus, batch_size: int = 16) -> float:
    """Corpus WER (in %) of an estimator's `predict` on a corpus."""
    hypotheses = estimator.predict(corpus.waveforms, batch_size=batch_size)
    return 100.0 * transcripts_wer(list(corpus.transcripts), list(hypotheses))


@dataclass
class TrainingRun:
    """Everything a model card reports about a run, kept up to date across the pieces it was trained in."""

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
    #: Dev evaluations: step, minutes of training so far, dev WER and loss, mean train loss since the last one.
    history: List[Dict[str, float]] = field(default_factory=list)
    #: The learning curve: mean train loss and learning rate over each `log_every_steps` steps, against wall time.
    train_curve: List[Dict[str, float]] = field(default_factory=list)
    #: One entry per piece of training (start time, steps from/to, minutes, hardware).
    pieces: List[Dict[str, Any]] = field(default_factory=list)
    finished: bool = False
    hardware: str = ""
    parameters: int = 0
    #: The variant's settings (`Variant.settings`), so a changed variant never continues a run trained by the old
    #: one; empty in a record that predates them.
    variant_settings: Dict[str, Any] = field(default_factory=dict)
    #: WAVEAUG: how many of the training corpus's first utterances were re-synthesised (None: all of them, or not
    #: WAVEAUG), so that a run never continues, or counts as done, under another count.
    resynthesised_utterances: Optional[int] = None


#: File of the resumable training state inside a run's output directory (never committed or packaged).
STATE_FILE = "training_state.pt"
#: A checkpoint's weights at its run's last step, when that is past the best one (parameters in float16): where a run
#: continued on another machine goes on, so that the steps since the best weights are not trained again.
LAST_WEIGHTS = "last_weights.pt"
STATE_FORMAT = 1


def epoch_batches(lengths: Sequence[int], batch_size: int, epoch: int, schedule: Schedule) -> List[np.ndarray]:
    """
    The batches of one epoch, a pure function of the corpus, the schedule and the epoch number (so a resumed run
    finds its place from the step count alone): similar-length batches, visited shortest first in epoch 0 when
    `sortagrad` is set, otherwise in a random order seeded by `(seed, epoch)`.
    """
    batches = length_sorted_batches(lengths, batch_size, PyTorchSpeechRecognizer.max_padding)
    if epoch == 0 and schedule.sortagrad:
        return batches[::-1]
    order = np.random.default_rng([schedule.seed, epoch]).permutation(len(batches))
    return [batches[i] for i in order]


def corpus_fingerprint(corpus: "Corpus") -> str:
    """Hash of a corpus's utterance ids, lengths and transcripts: a resumed run must see the same data."""
    digest = hashlib.sha256()
    for utterance_id, waveform, transcript in zip(corpus.utterance_ids, corpus.waveforms, corpus.transcripts):
        digest.update(f"{utterance_id}\t{len(waveform)}\t{transcript}\n".encode())
    return digest.hexdigest()


class Recipe:
    """
    Builds, trains and saves one variant.

    :param system: `deepspeech2` or `transformer`.
    :param variant: A key of `VARIANTS[system]`.
    :param size: A key of `MODEL_SIZES[system]`.
    :param device_type: `cpu` or `gpu`.
    :param init: A model directory this recipe saved (same system) to start from, instead of random weights; the
                 model keeps its saved architecture (`size` is then ignored).
    :param decoding: ESPnet decoding of the dev WER that selects the best weights: `beam` (joint CTC/attention, as
                     the model is evaluated), `greedy` (attention) or `ctc`.
    :param beam_size: Beam of `decoding="beam"` for the dev WER.
    :param stats_file: ESPnet `feats_stats.npz` for a size with `normalize: global_mvn` (see `write_feats_stats`).
    :param precision: Of the training steps: `fp32`, or `bf16` (autocast, float32 master weights; worth it on CPUs
                      with bf16 matrix units, see `benchmarks/training_speed.py`).
    :param resynthesised_utterances: A WAVEAUG variant: how many of the training corpus's first utterances its
                                     training data holds re-synthesised (None: all). The caller re-synthesises them;
                                     the recipe records the count, and resumes or continues only a run of the same.
    """

    def __init__(
        self,
        system: str,
        variant: str,
        size: str = "embedded",
        device_type: str = "cpu",
        init: Optional[Path] = None,
        decoding: str = "beam",
        beam_size: int = 10,
        stats_file: Optional[Path] = None,
        precision: str = "fp32",
        resynthesised_utterances: Optional[int] = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {precision!r}. Known: {list(PRECISIONS)}")
        if system not in VARIANTS or variant not in VARIANTS[system]:
            raise ValueError(
                f"Unknown system/variant {system}/{variant}. Known: { {s: list(v) for s, v in VARIANTS.items()} }"
            )
        if size not in MODEL_SIZES[system]:
            raise ValueError(f"Unknown size {size!r}. Known: {list(MODEL_SIZES[system])}")
        self.system, self.variant_name, self.size = system, variant, size
        self.variant = VARIANTS[system][variant]
        if resynthesised_utterances is not None and not (
            self.variant.waveaug and isinstance(resynthesised_utterances, int) and resynthesised_utterances > 0
        ):
            raise ValueError(
                f"resynthesised_utterances must be a positive int, for a WAVEAUG variant ({system}/{variant} is "
                f"{'' if self.variant.waveaug else 'not '}one). Found: {resynthesised_utterances!r}"
            )
        self.resynthesised_utterances = resynthesised_utterances
        self.device_type = device_type
        self.init = None if init is None else Path(init)
        self.decoding = decoding
        self.beam_size = beam_size
        self.stats_file = None if stats_file is None else Path(stats_file)
        self.precision = precision
        self.model_config = dict(MODEL_SIZES[system][size])
        self.espnet_config: Optional[Dict[str, Any]] = None
        self.model = self._build_model()
        # On the CPU the per-element Bernoulli draws of torch's dropout cost more than the Transformer's attention
        # itself; the same dropout from fewer, wider draws (benchmarks/dropout_speed.py). No weights change.
        self.fast_dropout = use_fast_cpu_dropout(self.model) > 0
        # oneDNN's bf16 convolutions on the CPU reorder NCHW activations to their blocked layout and back in every
        # pass, channels-last ones do not (benchmarks/channels_last_speed.py); nothing is gained in float32, or for
        # DeepSpeech2's two small convolutions. Only the weights' strides change.
        self.channels_last = (
            system == "transformer"
            and device_type == "cpu"
            and precision == "bf16"
            and use_channels_last_convolutions(self.model) > 0
        )

    @staticmethod
    def needs_stats(system: str, size: str, init: Optional[Path] = None) -> bool:
        """Whether a fresh model of this size normalises with global statistics of its training data."""
        return system == "transformer" and init is None and MODEL_SIZES[system][size].get("normalize") == "global_mvn"

    def _build_model(self) -> torch.nn.Module:
        # A fine-tuned model keeps the architecture it was saved with; model_config then records that one.
        if self.system == "deepspeech2":
            if self.init is not None:
                # Training fine-tunes every weight, whatever the checkpoint had frozen.
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
        options = dict(self.model_config)
        if options.get("normalize") == "global_mvn":
            if self.stats_file is None or not self.stats_file.is_file():
                raise ValueError(
                    f"The {self.size} Transformer normalises with global statistics; pass stats_file (written by "
                    f"write_feats_stats from the training data). Found: {self.stats_file}"
                )
            options["stats_file"] = str(self.stats_file)
        self.espnet_config = transformer_asr_config(
            librispeech_char_tokens(), lsm_weight=self.variant.lsm_weight, **options
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
        # lsm_weight overrides a fine-tuned model's own.
        return PyTorchESPnet(
            model=self.model,
            asr_config=self.espnet_config,
            decoding=self.decoding,
            beam_size=self.beam_size,
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

    def _identity(self) -> Dict[str, Any]:
        """What a run must share with this recipe to be resumed or continued by it."""
        # Not the init path: the state holds the weights, and the same run may be picked up from another copy of
        # its starting model (a work directory on one machine, the published one on another).
        return {
            "system": self.system,
            "variant": self.variant_name,
            "variant_settings": self.variant.settings(),
            "resynthesised_utterances": self.resynthesised_utterances,
        }

    def _autocast(self):
        """The training step's autocast context: bf16 with float32 master weights, or nothing."""
        device = "cuda" if self.device_type == "gpu" and torch.cuda.is_available() else "cpu"
        return torch.autocast(device, dtype=torch.bfloat16, enabled=self.precision == "bf16")

    @contextlib.contextmanager
    def _feature_masks(self) -> Iterator[None]:
        """
        The variant's SpecAugment masks on DeepSpeech2's spectrogram, within this context only: the recipe's training
        steps. Not by training mode, which the imperceptible attack also sets (`to_training_mode`).
        """
        if self.variant.feature_masks is None:
            yield
            return
        from espnet2.asr.specaug.specaug import SpecAug

        spec_aug = SpecAug(**self.variant.feature_masks)

        def masked(module, inputs, output):
            features, lengths = output  # (batch, bins, frames); SpecAug takes (batch, frames, bins)
            return spec_aug(features.transpose(1, 2), lengths)[0].transpose(1, 2), lengths

        hook = self.model.spectrogram.register_forward_hook(masked)
        try:
            yield
        finally:
            hook.remove()

    def fit(
        self,
        train: Corpus,
        dev: Corpus,
        schedule: Schedule,
        out_dir: Path,
        log: Callable[[str], None] = print,
        data: Optional[Dict[str, str]] = None,
        resume: bool = False,
        continue_run: Optional[TrainingRun] = None,
        continue_weights: Optional[Path] = None,
        restart_warmup_steps: int = 200,
        stop_after_steps: Optional[int] = None,
        max_minutes: Optional[float] = None,
        state_every_minutes: float = 10.0,
        log_every_steps: int = 50,
        evaluate_at_piece_end: bool = True,
    ) -> TrainingRun:
        """
        Train for `schedule.max_steps` optimizer steps, possibly over several calls (pieces).

        Each step is one call of the estimator's `fit` on one batch, under the schedule's learning rate (and, for
        the Transformer, CTC weight) at that step. Every `eval_every_steps` steps the dev WER is computed and the
        best weights are saved to `out_dir` in the system's native layout. The resumable state (model, optimizer,
        step, RNG states of torch and of the augmentation) is written atomically to `out_dir/training_state.pt`
        every `state_every_minutes` and when the piece ends; the data order is a function of the step.

        :param resume: Continue from `out_dir/training_state.pt` (which must come from the same recipe, schedule
                       and corpus, or from a schedule that `schedule` extends) instead of starting afresh.
        :param continue_run: The record of an unfinished run of the same recipe and schedule (or a run, finished or
                             not, of a schedule that `schedule` extends) whose best weights the model already
                             holds (a published model directory): training goes on from its
                             `best_step` with a fresh optimizer, whose learning rate ramps up over
                             `restart_warmup_steps` (a restarted Adam has no moment estimates yet). The records of
                             steps after `best_step` are dropped, since those steps are trained again.
        :param continue_weights: With `continue_run`: the model's weights at the run's last step (`LAST_WEIGHTS` of
                                 a checkpoint), from which it goes on instead, its records all kept.
        :param stop_after_steps: End this piece after this many more steps.
        :param max_minutes: End this piece after this much wall time (at a step boundary).
        :param evaluate_at_piece_end: When a piece ends (not by an interruption) between two scheduled dev
                                      evaluations, evaluate there too (marked `piece_end` in the history), so that
                                      the saved best weights can include the piece's last steps.
        :return: The run, also written to `out_dir/training_run.json`.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        state_path = out_dir / STATE_FILE
        if stop_after_steps is not None and stop_after_steps < 0:
            raise ValueError(f"stop_after_steps must be >= 0. Found: {stop_after_steps}")
        # Every weight trains, whatever the model had frozen when it was loaded.
        trainable = list(self.model.requires_grad_(True).parameters())
        optimizer = torch.optim.AdamW(
            trainable, lr=schedule.learning_rate, betas=schedule.betas, weight_decay=schedule.weight_decay
        )
        estimator = self.estimator(optimizer=optimizer, seed=schedule.seed)
        dev = dev.first(schedule.dev_utterances)
        lengths = [len(w) for w in train.waveforms]
        fingerprint = corpus_fingerprint(train)
        losses: List[float] = []
        if resume and continue_run is not None:
            raise ValueError("Give at most one of resume and continue_run.")
        if continue_weights is not None and continue_run is None:
            raise ValueError("continue_weights needs the continue_run whose last step they hold.")
        restarted_at = None
        if continue_run is not None:
            if state_path.is_file():
                raise FileExistsError(f"{state_path} holds a run; resume it instead of continuing another one.")
            run = self._continued(continue_run, schedule, at_last_step=continue_weights is not None)
            # The record names the continued run's best weights, which the model holds until the last ones are
            # loaded: saved now, they stay beside the record, so that the run can be copied (checkpointed,
            # published) with its steps before a new learning-rate cycle beats them, which can take hours.
            self.save(estimator, out_dir)
            if continue_weights is not None:
                self.model.load_state_dict(torch.load(continue_weights, map_location="cpu", weights_only=True))
            restarted_at = run.steps
            log(
                f"continuing {self.system}/{self.variant_name} from its "
                f"{'last' if continue_weights is not None else 'published'} weights at step "
                f"{run.steps}/{schedule.max_steps} (fresh optimizer, {restart_warmup_steps} warm-up steps)"
            )
            self._reseed_defences(estimator, schedule.seed, run.steps)
        elif resume:
            if not state_path.is_file():
                raise FileNotFoundError(f"--resume: no training state {state_path} to resume from.")
            run = self._restore(state_path, estimator, optimizer, schedule, fingerprint, losses)
            log(f"resumed {self.system}/{self.variant_name} at step {run.steps}/{schedule.max_steps}")
        else:
            if state_path.is_file():
                raise FileExistsError(
                    f"{state_path} holds an unfinished run; pass resume=True (--resume) to continue it, or use "
                    f"another output directory."
                )
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
                dev_decoding=self._dev_decoding(),
                data=dict(data or {}),
                parameters=sum(p.numel() for p in self.model.parameters()),
                variant_settings=self.variant.settings(),
                resynthesised_utterances=self.resynthesised_utterances,
            )
        extended_from = None if Schedule.record(run.schedule) == asdict(schedule) else run.schedule["max_steps"]
        run.schedule, run.finished = asdict(schedule), run.steps >= schedule.max_steps
        run.hardware = device_description(self.device_type)
        piece = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "from_step": run.steps,
            "hardware": run.hardware,
            "precision": self.precision,
        }
        if self.fast_dropout and self.device_type == "cpu":
            piece["dropout"] = FastCPUDropout.__name__
        if self.channels_last:
            piece["convolutions"] = "channels_last"
        if restarted_at is not None:
            piece["optimizer_restarted"] = {"warmup_steps": restart_warmup_steps}
        if extended_from is not None:
            piece["schedule_extended_from"] = extended_from
            log(f"schedule extended from {extended_from} to {schedule.max_steps} steps (restarts {schedule.restarts})")
        run.pieces.append(piece)
        steps_per_epoch = len(epoch_batches(lengths, schedule.batch_size, 1, schedule))
        wall_before = run.wall_minutes * 60.0
        start = last_state = last_curve = time.perf_counter()
        last_curve_step = run.steps
        piece_end = (
            schedule.max_steps if stop_after_steps is None else min(schedule.max_steps, run.steps + stop_after_steps)
        )
        final_ctc_weight = getattr(self.model, "ctc_weight", None)
        epoch, batches = -1, []

        def minutes_now() -> float:
            return (wall_before + time.perf_counter() - start) / 60.0

        def finish_piece() -> None:
            run.wall_minutes = round(minutes_now(), 2)
            run.epochs_done = round(run.steps / steps_per_epoch, 3)
            run.finished = run.steps >= schedule.max_steps
            piece.update({"to_step": run.steps, "minutes": round((time.perf_counter() - start) / 60.0, 2)})

        def write_record() -> None:
            atomic_write_text(out_dir / "training_run.json", json.dumps(asdict(run), indent=2) + "\n")

        try:
            while run.steps < piece_end:
                if max_minutes is not None and (time.perf_counter() - start) / 60.0 >= max_minutes:
                    break
                if run.steps // steps_per_epoch != epoch:
                    epoch = run.steps // steps_per_epoch
                    batches = epoch_batches(lengths, schedule.batch_size, epoch, schedule)
                index = batches[run.steps % steps_per_epoch]
                restart_ramp = 1.0
                if restarted_at is not None and run.steps - restarted_at < restart_warmup_steps:
                    restart_ramp = (run.steps - restarted_at + 1) / restart_warmup_steps
                for group in optimizer.param_groups:
                    group["lr"] = schedule.learning_rate_at(run.steps) * restart_ramp
                if final_ctc_weight is not None:
                    self.model.ctc_weight = schedule.ctc_weight_at(run.steps, final_ctc_weight)
                try:
                    with self._autocast(), self._feature_masks():
                        estimator.fit(
                            train.waveforms[index],
                            train.transcripts[index],
                            batch_size=len(index),
                            nb_epochs=1,
                            max_grad_norm=schedule.max_grad_norm,
                            step_callback=losses.append,
                        )
                finally:
                    if final_ctc_weight is not None:
                        self.model.ctc_weight = final_ctc_weight
                run.steps += 1
                if run.steps % log_every_steps == 0 or run.steps == schedule.max_steps:
                    window = losses[-log_every_steps:]
                    run.train_curve.append(
                        {
                            "step": run.steps,
                            "minutes": round(minutes_now(), 2),
                            "train_loss": round(float(np.mean(window)), 4),
                            "lr": float(f"{optimizer.param_groups[0]['lr']:.4g}"),
                        }
                    )
                    now = time.perf_counter()
                    log(
                        f"step {run.steps}  train loss {run.train_curve[-1]['train_loss']:.3f}  "
                        f"{(now - last_curve) / max(1, run.steps - last_curve_step):.2f} s/step"
                    )
                    last_curve, last_curve_step = now, run.steps
                if run.steps % schedule.eval_every_steps == 0 or run.steps == schedule.max_steps:
                    self._evaluate(estimator, dev, run, losses, minutes_now(), optimizer, out_dir, log)
                    losses.clear()
                    if run.best_step == run.steps:  # new best weights: the record that names them goes beside them
                        finish_piece()
                        write_record()
                if (time.perf_counter() - last_state) / 60.0 >= state_every_minutes:
                    finish_piece()
                    self._save_state(state_path, estimator, optimizer, schedule, fingerprint, run, losses)
                    last_state = time.perf_counter()
            evaluated = run.history[-1]["step"] if run.history else -1
            if evaluate_at_piece_end and piece["from_step"] < run.steps != evaluated:
                # The best weights so far then include this piece's last steps: what is published, and where a
                # run continued on another machine starts, is never more than one piece behind.
                self._evaluate(estimator, dev, run, losses, minutes_now(), optimizer, out_dir, log, piece_end=True)
        finally:
            # Also on KeyboardInterrupt or a failed step: the steps done so far are never lost.
            finish_piece()
            self._save_state(state_path, estimator, optimizer, schedule, fingerprint, run, losses)
            write_record()
        return run

    def _dev_decoding(self) -> str:
        if self.system == "deepspeech2":
            return "greedy CTC"
        if self.decoding == "beam":
            return f"joint CTC/attention beam search (beam {self.beam_size})"
        return self.decoding

    def _evaluate(self, estimator, dev, run, losses, minutes, optimizer, out_dir, log, piece_end=False) -> None:
        dev_wer = word_error_rate(estimator, dev)
        dev_loss = float(np.mean(estimator.compute_loss(dev.waveforms[:32], dev.transcripts[:32])))
        train_loss = float(np.mean(losses)) if losses else float("nan")
        run.history.append(
            {
                "step": run.steps,
                "minutes": round(minutes, 2),
                "dev_wer": round(dev_wer, 2),
                "dev_loss": round(dev_loss, 3),
                "train_loss": round(train_loss, 4),
                **({"piece_end": True} if piece_end else {}),
            }
        )
        log(
            f"step {run.steps}/{run.schedule['max_steps']}  {minutes:.1f} min  lr {optimizer.param_groups[0]['lr']:.2e}  "
            f"train loss {train_loss:.3f}  dev loss {dev_loss:.3f}  dev WER {dev_wer:.2f} %"
            + ("  (end of piece)" if piece_end else "")
        )
        if dev_wer <= run.best_dev_wer:
            run.best_dev_wer, run.best_step = dev_wer, run.steps
            self.save(estimator, out_dir)

    def _continued(self, published: TrainingRun, schedule: Schedule, at_last_step: bool = False) -> TrainingRun:
        """
        The published run, cut back to the step of its best weights, which the model holds (or, `at_last_step`,
        as it is: the model holds the weights of its last step).
        """
        identity = self._identity()
        mismatch = differences(
            {**identity, "schedule": asdict(schedule)},
            {
                **{key: getattr(published, key) for key in identity},
                "variant_settings": Variant.record(published.variant_settings),
                "schedule": comparable(published.schedule, schedule),
            },
        )
        if mismatch:
            raise ValueError(f"Cannot continue the published run, it was trained by another recipe: {mismatch}")
        if published.finished and not schedule.extends(published.schedule):
            raise ValueError(
                f"The published run has finished its {published.steps} steps; there is nothing to continue."
            )
        run = TrainingRun(**json.loads(json.dumps(asdict(published))))
        if at_last_step:
            return run
        run.steps = run.best_step
        run.history = [entry for entry in run.history if entry["step"] <= run.best_step]
        run.train_curve = [entry for entry in run.train_curve if entry["step"] <= run.best_step]
        minutes = [entry["minutes"] for entry in run.history if entry["step"] == run.best_step]
        run.wall_minutes = minutes[-1] if minutes else run.wall_minutes
        return run

    def _reseed_defences(self, estimator, seed: int, step: int) -> None:
        """Fresh augmentation noise for a continued run (the published record holds no generator state)."""
        for generator in self._defence_generators(estimator):
            generator.manual_seed(int(np.random.SeedSequence([seed, step]).generate_state(1)[0]))

    def _defence_generators(self, estimator) -> List[torch.Generator]:
        return [op._generator for op in estimator.preprocessing_operations if hasattr(op, "_generator")]

    def _save_state(self, path, estimator, optimizer, schedule, fingerprint, run, losses) -> None:
        state = {
            "format": STATE_FORMAT,
            "recipe": self._identity(),
            "schedule": asdict(schedule),
            "corpus": fingerprint,
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "defence_rng": [generator.get_state() for generator in self._defence_generators(estimator)],
            "losses": list(losses),
            "run": json.loads(json.dumps(asdict(run))),
        }
        atomic_write(path, lambda file: torch.save(state, file), binary=True)

    def _restore(self, path, estimator, optimizer, schedule, fingerprint, losses) -> TrainingRun:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} has state format {state.get('format')!r}; this version reads {STATE_FORMAT}.")
        mismatch = differences(
            # The model's settings too (e.g. its SpecAugment masks), in the form the run was started with: the
            # configuration a fine-tune read from its starting model, or MODEL_SIZES' entry.
            {
                "recipe": self._identity(),
                "model": self.model_config,
                "schedule": asdict(schedule),
                "training corpus": fingerprint,
            },
            {
                "recipe": {**state["recipe"], "variant_settings": Variant.record(state["recipe"]["variant_settings"])},
                "model": state["run"]["model_config"],
                "schedule": comparable(state["schedule"], schedule),
                "training corpus": state["corpus"],
            },
        )
        if mismatch:
            raise ValueError(f"Cannot resume {path}, it was written by another run: {mismatch}")
        self.model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        for generator, saved in zip(self._defence_generators(estimator), state["defence_rng"]):
            generator.set_state(saved)
        losses.extend(state["losses"])
        return TrainingRun(**state["run"])


def comparable(recorded: Dict[str, Any], schedule: Schedule) -> Dict[str, Any]:
    """
    A recorded schedule as it compares with `schedule`: equal to it if `schedule` extends it, otherwise with the
    settings added since it was written at their defaults (`Schedule.record`).
    """
    return asdict(schedule) if schedule.extends(recorded) else Schedule.record(recorded)


def _plain(value: Any) -> Any:
    """JSON round trip: tuples and lists compare equal, as they do after a state was saved."""
    return json.loads(json.dumps(value))


def differences(expected: Dict[str, Any], found: Dict[str, Any], prefix: str = "") -> str:
    """
    The keys on which two (nested) records differ, as `key: expected X, found Y` joined by `; `; empty if none.
    Values are compared after a JSON round trip, so tuples equal lists.
    """
    expected, found = _plain(expected), _plain(found)
    parts = []
    for key in sorted(set(expected) | set(found), key=str):
        mine, theirs = expected.get(key), found.get(key)
        if isinstance(mine, dict) and isinstance(theirs, dict):
            nested = differences(mine, theirs, f"{prefix}{key}.")
            parts += [nested] if nested else []
        elif mine != theirs:
            parts.append(f"{prefix}{key}: expected {mine!r}, found {theirs!r}")
    return "; ".join(parts)


def write_feats_stats(corpus: Corpus, frontend_conf: Dict[str, Any], path: Path, max_utterances: int = 2000) -> Path:
    """
    ESPnet's global mean-variance statistics (`feats_stats.npz`, as its `collect_stats` stage writes them) of the
    log-mel features of the first `max_utterances` training utterances.
    """
    from types import SimpleNamespace

    from espnet2.asr.frontend.default import DefaultFrontend

    frontend = DefaultFrontend(**frontend_conf).eval()
    stats = feats_stats(SimpleNamespace(frontend=frontend), corpus.waveforms[:max_utterances])
    atomic_write(Path(path), lambda file: np.savez(file, **stats), binary=True)
    return Path(path)
