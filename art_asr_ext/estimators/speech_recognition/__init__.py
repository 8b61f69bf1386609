"""
ART speech recognizers for DeepSpeech2, ESPnet and Whisper models, and PocketSphinx as a black-box target.

Each class is imported on first use, so that using one recognizer never imports another's backend (openai-whisper
for `PyTorchWhisper`, espnet2 for `PyTorchESPnet`, pocketsphinx for `PocketSphinxRecognizer`).
"""

from art_asr_ext.utils.lazy import lazy_exports

_EXPORTS = {
    "PyTorchSpeechRecognizer": "art_asr_ext.estimators.speech_recognition.pytorch_speech_recognizer",
    "PyTorchDeepSpeech2": "art_asr_ext.estimators.speech_recognition.pytorch_deep_speech2",
    "PyTorchWhisper": "art_asr_ext.estimators.speech_recognition.pytorch_whisper",
    "PyTorchESPnet": "art_asr_ext.estimators.speech_recognition.pytorch_espnet",
    "PocketSphinxRecognizer": "art_asr_ext.estimators.speech_recognition.pocketsphinx_recognizer",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
