"""
Read audio and transcripts laid out as LibriSpeech: ``<root>/<speaker>/<chapter>/<speaker>-<chapter>-<nnnn>.flac``
with one ``<speaker>-<chapter>.trans.txt`` per chapter (``<utterance-id> <TRANSCRIPT>`` lines).
"""

import dataclasses
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import soundfile

from art_asr_ext.utils.audio import check_waveform

PathLike = Union[str, os.PathLike]


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One utterance: its id, float32 waveform in [-1, 1], sample rate and reference transcript."""

    utterance_id: str
    waveform: np.ndarray
    sample_rate: int
    transcript: str


@dataclasses.dataclass(frozen=True)
class BadUtterance:
    """An utterance that cannot be used, and why."""

    utterance_id: str
    #: Its audio file (which may not exist).
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.utterance_id} ({os.fspath(self.path)}): {self.reason}"


def _audio_problem(path: PathLike, sample_rate: int) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """
    :return: The mono float32 waveform and None, or None and why the file cannot be used (without its path).
    """
    if not os.path.isfile(path):
        return None, "audio file not found"
    try:
        waveform, file_rate = soundfile.read(os.fspath(path), dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError) as error:  # libsndfile's decode errors are RuntimeErrors
        return None, f"cannot be decoded ({str(error).strip() or type(error).__name__})"
    if file_rate != sample_rate:
        return None, f"sampled at {file_rate} Hz; expected {sample_rate} Hz (resample it first)"
    if waveform.shape[1] != 1:
        return None, f"has {waveform.shape[1]} channels; expected mono"
    if waveform.shape[0] == 0:
        return None, "holds no samples"
    try:
        check_waveform(waveform[:, 0], name="the audio")  # finite and in [-1, 1] (float WAV files can be neither)
    except ValueError as error:
        return None, str(error).rstrip(".")
    return waveform[:, 0], None


def read_audio(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """
    Read a mono audio file as float32 in [-1, 1].

    :param path: Audio file (any format soundfile reads: FLAC, WAV, ...).
    :param sample_rate: Required sample rate; a file at another rate is an error, never silently resampled.
    :return: 1-D float32 waveform.
    :raises FileNotFoundError: If the file does not exist.
    :raises ValueError: For a file that cannot be decoded, a wrong sample rate, several channels, no samples, or
                        samples that are not finite or outside [-1, 1].
    """
    waveform, problem = _audio_problem(path, sample_rate)
    if problem == "audio file not found":
        raise FileNotFoundError(f"Audio file not found: {os.fspath(path)!r}")
    if problem is not None:
        raise ValueError(f"{os.fspath(path)!r}: {problem}.")
    return waveform


def _transcripts(root: Path, audio_extension: str) -> Dict[str, Tuple[Path, str]]:
    """The audio file and transcript of each utterance id of a LibriSpeech-layout directory."""
    transcripts = {}
    for transcript_file in sorted(root.glob("*/*/*.trans.txt")):
        for line in transcript_file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                utterance_id, _, text = line.strip().partition(" ")
                transcripts[utterance_id] = (transcript_file.parent / (utterance_id + audio_extension), text.strip())
    if not transcripts:
        raise FileNotFoundError(f"No */*/*.trans.txt transcripts under {os.fspath(root)!r}: not a LibriSpeech split.")
    return transcripts


def librispeech_transcripts(root: PathLike) -> Dict[str, str]:
    """
    The transcript of each utterance of a LibriSpeech-layout directory, without reading its audio.

    :param root: Split directory.
    :return: `{utterance id: transcript}`, in sorted utterance-id order.
    :raises FileNotFoundError: If the directory holds no transcripts.
    """
    transcripts = _transcripts(Path(root), audio_extension="")
    return {uid: transcripts[uid][1] for uid in sorted(transcripts)}


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
    :raises ValueError: For the first audio file `read_audio` refuses (see `check_librispeech` for all of them).
    """
    transcripts = _transcripts(Path(root), audio_extension)
    selected = sorted(transcripts)[:max_utterances]
    return [
        Utterance(uid, read_audio(transcripts[uid][0], sample_rate), sample_rate, transcripts[uid][1])
        for uid in selected
    ]


def check_librispeech(
    root: PathLike, max_utterances: Optional[int] = None, sample_rate: int = 16000, audio_extension: str = ".flac"
) -> Tuple[List[Utterance], List[BadUtterance]]:
    """
    Read and check every selected utterance of a LibriSpeech-layout directory, collecting every problem instead of
    stopping at the first: the audio must exist, decode, be mono at `sample_rate`, hold finite samples in [-1, 1],
    and the transcript must not be empty.

    :param root: Split directory, e.g. `LibriSpeech/test-clean`.
    :param max_utterances: Check only the first N utterances in sorted id order (bad ones among them included).
    :param sample_rate: Required sample rate of every file.
    :param audio_extension: Extension of the audio files.
    :return: The good utterances and the bad ones, each in sorted utterance-id order.
    :raises FileNotFoundError: If the directory holds no transcripts.
    """
    transcripts = _transcripts(Path(root), audio_extension)
    good: List[Utterance] = []
    bad: List[BadUtterance] = []
    for uid in sorted(transcripts)[:max_utterances]:
        path, text = transcripts[uid]
        waveform, problem = _audio_problem(path, sample_rate)
        reasons = [] if problem is None else [problem]
        if not text:
            reasons.append("empty transcript")
        if reasons:
            bad.append(BadUtterance(uid, path, "; ".join(reasons)))
        else:
            good.append(Utterance(uid, waveform, sample_rate, text))
    return good, bad
