"""
ART speech recognizers for DeepSpeech2, ESPnet and Whisper models.
"""

from art_asr_ext.estimators.speech_recognition.pytorch_speech_recognizer import PyTorchSpeechRecognizer
from art_asr_ext.estimators.speech_recognition.pytorch_deep_speech2 import PyTorchDeepSpeech2
from art_asr_ext.estimators.speech_recognition.pytorch_whisper import PyTorchWhisper
from art_asr_ext.estimators.speech_recognition.pytorch_espnet import PyTorchESPnet
