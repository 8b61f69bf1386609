"""
Build a system of the table: an ART speech recognizer with its chain of preprocessing defences.

Estimator classes are imported only for the types a config uses, so a run on DeepSpeech2 needs neither ESPnet nor
Whisper nor PocketSphinx. Randomized smoothing with training augmentation (RS-aug) is a property of a checkpoint, not
built here.

| Paper link: https://arxiv.org/abs/2103.17122
"""

from typing import Iterable, List, Sequence

import torch
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch

from art_asr_ext.benchmark.config.fields import ConfigError
from art_asr_ext.benchmark.config.schema import DefenceConfig, EstimatorConfig, SystemConfig
from art_asr_ext.benchmark.registry import DEFENCES
from art_asr_ext.defences.preprocessor.device_following import FollowsEstimatorDevice


def build_defences(defences: Sequence[DefenceConfig], device: str, seed: int) -> List[PreprocessorPyTorch]:
    """
    :param defences: The system's defence chain, in the order it is applied.
    :param device: `cpu` or `gpu`.
    :param seed: Seed of the first random defence (the next ones get seed + 1, ...); the runner reseeds every cell.
    :return: The ART preprocessors.
    """
    return [
        DEFENCES[defence.type].build(defence.settings, device, seed + index) for index, defence in enumerate(defences)
    ]


def build_estimator(config: EstimatorConfig, defences: List[PreprocessorPyTorch], device: str):
    """
    :param config: The estimator section of a system.
    :param defences: Its preprocessing defences.
    :param device: `cpu` or `gpu`.
    :return: The ART speech recognizer.
    """
    if config.type == "pocketsphinx":
        from art_asr_ext.estimators.speech_recognition.pocketsphinx_recognizer import PocketSphinxRecognizer

        if defences:
            raise ValueError("A pocketsphinx system takes no defences (it is a black-box transfer target).")
        files = dict(
            acoustic_model=config.acoustic_model, dictionary=config.dictionary, language_model=config.language_model
        )
        return PocketSphinxRecognizer(**files, **config.options)
    common = dict(preprocessing_defences=defences or None, device_type=device, **config.options)
    if config.language_model is not None:  # its weights tuned for this estimator type, unless the options set them
        from art_asr_ext.benchmark.language_model import language_model_options

        common = {**language_model_options(config.language_model, config.type), **common}
    if config.type == "deepspeech2":
        from art_asr_ext.estimators.speech_recognition.pytorch_deep_speech2 import PyTorchDeepSpeech2

        if config.random_init is not None:
            from art_asr_ext.models.deepspeech2 import DeepSpeech2

            init = dict(config.random_init)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(init.pop("seed"))
                model = DeepSpeech2(**init)
            return PyTorchDeepSpeech2(model=model, **common)
        return PyTorchDeepSpeech2(checkpoint=config.checkpoint, **common)
    if config.type == "espnet":
        from art_asr_ext.estimators.speech_recognition.pytorch_espnet import PyTorchESPnet

        if config.model_dir is not None:
            return PyTorchESPnet(model_dir=config.model_dir, **common)
        return PyTorchESPnet(asr_train_config=config.asr_train_config, asr_model_file=config.asr_model_file, **common)
    if config.type == "whisper":
        from art_asr_ext.estimators.speech_recognition.pytorch_whisper import PyTorchWhisper

        checkpoint = config.checkpoint
        if config.bundled:
            from art_asr_ext.models.whisper_ctranslate2 import bundled_tiny_en_path

            checkpoint = bundled_tiny_en_path()
        return PyTorchWhisper(checkpoint=checkpoint, **common)
    raise ValueError(
        f"estimator type must be one of deepspeech2, espnet, whisper, pocketsphinx. Found: {config.type!r}"
    )


def check_alphabet(estimator, texts: Iterable[str], label: str) -> None:
    """
    Check that a character model can emit every reference and target (models with a tokenizer check their own).

    :param estimator: The recognizer.
    :param texts: References and targets.
    :param label: The system's label, for the message.
    :raises ValueError: Naming the first text with characters outside the model's alphabet.
    """
    if estimator.alphabet is None:
        return
    allowed = set(estimator.alphabet)
    for text in texts:
        unknown = sorted(set(text) - allowed)
        if unknown:
            raise ValueError(
                f"{label}: {text!r} has characters {unknown} outside the model's alphabet {''.join(sorted(allowed))!r}."
            )


def check_device(device: str) -> None:
    """
    :param device: `cpu` or `gpu`.
    :raises ConfigError: For `gpu` where torch finds no CUDA device (ART's estimators would quietly run on the CPU).
    """
    if device == "gpu" and not torch.cuda.is_available():
        raise ConfigError(
            "device: gpu, but torch finds no CUDA device on this machine (torch.cuda.is_available() is False); "
            "set device: cpu, or run where a GPU is"
        )


def build_system(system: SystemConfig, device: str, seed: int):
    """
    :param system: The system's configuration.
    :param device: `cpu` or `gpu`.
    :param seed: Seed of its random defences.
    :return: The defended ART speech recognizer.
    :raises ConfigError: For `gpu` without a CUDA device.
    """
    check_device(device)
    wrappers = [(index, d) for index, d in enumerate(system.defences) if DEFENCES[d.type].wrap is not None]
    preprocessors = [d for d in system.defences if DEFENCES[d.type].wrap is None]
    # The config puts a wrapping defence first (it adds its noise in front of the chain), so defence i of the config
    # is preprocessor i of the estimator and gets seed + i, as reseed_defences gives it.
    estimator = build_estimator(system.estimator, build_defences(preprocessors, device, seed + len(wrappers)), device)
    for index, defence in wrappers:
        estimator = DEFENCES[defence.type].wrap(estimator, defence.settings, seed + index)
    return estimator


def reseed_defences(estimator, seed: int) -> None:
    """
    Restart the noise of every seeded defence, so each cell draws the same noise whatever ran before it (a resumed
    run then matches an uninterrupted one).

    :param estimator: The recognizer.
    :param seed: The cell's seed; defence i gets seed + i.
    """
    for index, defence in enumerate(estimator.preprocessing_operations):
        if isinstance(defence, FollowsEstimatorDevice):
            defence.set_params(seed=seed + index)


def set_eot_samples(estimator, system: SystemConfig, cell) -> None:
    """
    Give each defence of the estimator the EOT draws of the cell: the config's `eot_samples`, or the cell's own on
    the attack-strength axis (its `params["eot_samples"]`, defence index -> draws).

    :param estimator: The system's recognizer, its defences in config order.
    :param system: The system's config.
    :param cell: The cell about to run.
    """
    overrides = cell.params.get("eot_samples", {})
    for index, (operation, config) in enumerate(zip(estimator.preprocessing_operations, system.defences)):
        if isinstance(operation, FollowsEstimatorDevice):  # a random defence: its draws per gradient
            operation.set_params(eot_samples=int(overrides.get(str(index), config.eot_samples)))
