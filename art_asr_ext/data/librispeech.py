"""
Read audio and transcripts laid out as LibriSpeech: ``<root>/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac``
with one ``<speaker>-<chapter>.trans.txt`` per chapter (``<utterance-id> <TRANSCRIPT>`` lines).
"""

import dataclasses
import os
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import soundfile

PathLike = Union[str, os.PathLike]


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One utterance: its id, float32 waveform in [-1, 1], sample rate and reference transcript."""

    utterance_id: str
    waveform: np.ndarray
    sample_rate: int
    transcript: str


def read_audio(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """
    Read a mono audio file as float32 in [-1, 1].

    :param path: Audio file (any format soundfile reads: FLAC, WAV, ...).
    :param sample_rate: Required sample rate; a file at another rate is an error, never silently resampled.
    :return: 1-D float32 waveform.
    :raises FileNotFoundError: If the file does not exist.
    :raises ValueError: For a wrong sample rate, several channels, or an empty file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Audio file not found: {os.fspath(path)!r}")
    waveform, file_rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    if file_rate != sample_rate:
        raise ValueError(
            f"{os.fspath(path)!r} is sampled at {file_rate} Hz; expected {sample_rate} Hz. Resample it first."
        )
    if waveform.shape[1] != 1:
        raise ValueError(f"{os.fspath(path)!r} has {waveform.shape[1]} channels; expected mono.")
    if waveform.shape[0] == 0:
        raise ValueError(f"{os.fspath(path)!r} holds no samples.")
    return waveform[:, 0]


def load_librispeech(
    root: PathLike, max_utterances: Optional[int] = None, sample_rate: int = 16000, audio_extension: str = ".flac"
) -> List[Utterance]:
    """
    Load the utterances of a LibriSpeech-layout directory in sorted utterance-id order (the study takes the first N
    of test-clean in this order).

    :param root: Split directory, e.g. `LibriSpeech/test-clean`.
    :param max_utterances: Keep only the first N utterances.
    :param sample_rate: Required sample rate of every file.
    :param audio_extension: Extension of the audio files.
    :return: Utterances.
    :raises FileNotFoundError: If the directory holds no transcripts, or a transcript names a missing file.
    """
    root = Path(root)
    transcripts = {}
    for transcript_file in sorted(root.glob("*/*/*.trans.txt")):
        for line in transcript_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                utterance_id, _, text = line.strip().partition(" ")
                transcripts[utterance_id] = (transcript_file.parent / (utterance_id + audio_extension), text.strip())
    if not transcripts:
        raise FileNotFoundError(f"No */*/*.trans.txt transcripts under {os.fspath(root)!r}: not a LibriSpeech split.")
    selected = sorted(transcripts)[:max_utterances]
    return [
        Utterance(uid, read_audio(transcripts[uid][0], sample_rate), sample_rate, transcripts[uid][1])
        for uid in selected
    ]
