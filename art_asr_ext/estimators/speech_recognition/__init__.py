"""
ART speech recognizers for DeepSpeech2, ESPnet and Whisper models.

Each class is imported on first use, so that using one recognizer never imports another's backend (openai-whisper
for `PyTorchWhisper`, espnet2 for `PyTorchESPnet`).
"""

import importlib
from typing import Any

_EXPORTS = {
    "PyTorchSpeechRecognizer": "art_asr_ext.estimators.speech_recognition.pytorch_speech_recognizer",
    "PyTorchDeepSpeech2": "art_asr_ext.estimators.speech_recognition.pytorch_deep_speech2",
    "PyTorchWhisper": "art_asr_ext.estimators.speech_recognition.pytorch_whisper",
    "PyTorchESPnet": "art_asr_ext.estimators.speech_recognition.pytorch_espnet",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
