"""
The media of report.html, saved for each cell as it finishes: for its first utterances, the clean, adversarial and
defended audio (what the recognizer received after its preprocessing defences) as mono Opus or FLAC files, and a
spectrogram of the perturbation as a small PNG.

Files are named by a digest of their content under ``<out>/report/``, so a clip that several cells share (the clean
audio, a transfer cell's adversarial examples) is written once, and a file is never rewritten or removed: a resumed
run keeps the media of the cells computed before it. Each cell's record in ``results.jsonl`` lists its files (see
:func:`save_cell_media`); the record is appended after they are written, like the adversarial examples. On the Ray
executor a worker encodes its cell's files (:func:`encode_cell_media`) and the driver writes them.

| Paper link: https://arxiv.org/abs/2103.17122
"""

import hashlib
import io
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

from art_asr_ext.data import Utterance
from art_asr_ext.utils.io import atomic_write
from art_asr_ext.benchmark.grid import Cell
from art_asr_ext.benchmark.registry import ATTACKS
from art_asr_ext.benchmark.config.schema import ReportConfig
from art_asr_ext.benchmark.store import REPORT_MEDIA as MEDIA_DIR

#: `(soundfile format, subtype, compression level, file suffix)` of each report audio codec. Opus at compression
#: level 0.7 is about 80 kbit/s: transparent for speech, a third of FLAC's size on perturbed audio.
AUDIO_CODECS = {
    "opus": ("OGG", "OPUS", 0.7, "opus"),
    "flac": ("FLAC", "PCM_16", None, "flac"),
}
#: Spectrogram: window and hop in samples (32 ms and 16 ms at 16 kHz), frequency bins averaged per image row, and
#: the colour range in dB relative to a full-scale sine (fixed, so colours compare across cells).
SPECTROGRAM_WINDOW, SPECTROGRAM_HOP, SPECTROGRAM_BIN_GROUP = 512, 256, 4
SPECTROGRAM_RANGE_DB = (-100.0, -20.0)


def _media_name(kind: str, content: bytes, suffix: str) -> str:
    return f"{MEDIA_DIR}/{kind}/{hashlib.sha256(content).hexdigest()[:24]}.{suffix}"


class MediaFiles:
    """
    The media files a cell brings, encoded in memory and named by content: the serial runner writes them at once
    (:meth:`write`); a Ray worker encodes them beside its cell and returns them, and the driver writes them.

    :param skip: Tells, from its name, a file that need not be encoded again (already written, or already sent).
    """

    def __init__(self, skip: Callable[[str], bool]) -> None:
        self.skip = skip
        self.encoded: Dict[str, bytes] = {}

    def add(self, name: str, encode: Callable[[], bytes]) -> str:
        """
        :param name: The file's path relative to the output directory.
        :param encode: Gives its bytes (called only for a file not skipped).
        :return: `name`.
        """
        if name not in self.encoded and not self.skip(name):
            self.encoded[name] = encode()
        return name

    def write(self, out_dir: Path) -> None:
        """Write the files not already in `out_dir` (each atomically: a full disk raises OSError here)."""
        write_media_files(out_dir, self.encoded)


def write_media_files(out_dir: Path, files: Mapping[str, bytes]) -> None:
    """
    :param out_dir: The run's output directory.
    :param files: Content by path relative to `out_dir`; a file already there is left as it is (same name, same
                  content).
    """
    for name, content in files.items():
        path = Path(out_dir) / name
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda file, content=content: file.write(content), binary=True)


def encode_audio(media: MediaFiles, waveform: np.ndarray, sample_rate: int, codec: str) -> str:
    """
    :param media: Where the encoded file goes.
    :param waveform: Mono waveform in [-1, 1] (clipped to it).
    :param sample_rate: Its sample rate.
    :param codec: A key of :data:`AUDIO_CODECS`.
    :return: The file's path relative to the output directory.
    """
    import soundfile

    audio_format, subtype, level, suffix = AUDIO_CODECS[codec]
    samples = np.clip(np.asarray(waveform, dtype=np.float32), -1.0, 1.0)

    def encode() -> bytes:
        encoded = io.BytesIO()
        soundfile.write(encoded, samples, sample_rate, format=audio_format, subtype=subtype, compression_level=level)
        return encoded.getvalue()

    return media.add(
        _media_name("audio", f"{sample_rate}:{codec}:".encode("ascii") + samples.tobytes(), suffix), encode
    )


def spectrogram_db(waveform: np.ndarray) -> np.ndarray:
    """
    :param waveform: Mono waveform `(samples,)`.
    :return: Power spectrogram in dB relative to a full-scale sine, `(bins, frames)`, low frequencies last (image
             rows): Hann windows of :data:`SPECTROGRAM_WINDOW` samples every :data:`SPECTROGRAM_HOP`, bins averaged
             in groups of :data:`SPECTROGRAM_BIN_GROUP`.
    """
    window = np.hanning(SPECTROGRAM_WINDOW)
    padded = np.pad(np.asarray(waveform, dtype=np.float64), (0, SPECTROGRAM_WINDOW))
    frames = np.lib.stride_tricks.sliding_window_view(padded, SPECTROGRAM_WINDOW)[::SPECTROGRAM_HOP] * window
    power = np.abs(np.fft.rfft(frames, axis=1)[:, : SPECTROGRAM_WINDOW // 2]) ** 2
    power = power.reshape(power.shape[0], -1, SPECTROGRAM_BIN_GROUP).mean(axis=2)
    full_scale = (window.sum() / 2.0) ** 2
    return np.flipud(10.0 * np.log10(power / full_scale + 1e-20).T)


def encode_spectrogram(media: MediaFiles, perturbation: np.ndarray) -> Optional[str]:
    """
    :param media: Where the encoded file goes.
    :param perturbation: `x_adv - x`.
    :return: The path, relative to the output directory, of a PNG of its spectrogram (one pixel per frame and bin
             group, 32 colours of matplotlib's magma), or None without matplotlib.
    """
    try:
        import matplotlib
        from PIL import Image
    except ImportError:
        return None
    low, high = SPECTROGRAM_RANGE_DB
    scaled = np.clip((spectrogram_db(perturbation) - low) / (high - low), 0.0, 1.0)
    pixels = (matplotlib.colormaps["magma"](scaled)[:, :, :3] * 255).astype(np.uint8)

    def encode() -> bytes:
        encoded = io.BytesIO()
        Image.fromarray(pixels).quantize(colors=32).save(encoded, format="PNG", optimize=True)
        return encoded.getvalue()

    return media.add(_media_name("spectrograms", pixels.tobytes() + str(pixels.shape).encode("ascii"), "png"), encode)


def defended_input(estimator, waveform: np.ndarray) -> Optional[np.ndarray]:
    """
    :param estimator: A system's recognizer.
    :param waveform: One waveform it is given.
    :return: What its model receives after the preprocessing defences that apply at prediction (None without any):
             the same defences as in `predict`, with a fresh draw of a random defence's noise.
    """
    defences = [op for op in getattr(estimator, "preprocessing_operations", None) or [] if op.apply_predict]
    if not defences:
        return None
    import torch

    with torch.no_grad():
        tensor = torch.as_tensor(np.asarray(waveform, dtype=np.float32), device=getattr(estimator, "device", "cpu"))
        for defence in defences:
            tensor, _ = defence.forward(tensor)
    return tensor.detach().cpu().numpy().astype(np.float32)


def encode_cell_media(
    media: MediaFiles,
    cell: Cell,
    estimator,
    utterances: Sequence[Utterance],
    adversarial: Mapping[str, np.ndarray],
    settings: ReportConfig,
    defended: Optional[Mapping[str, np.ndarray]] = None,
) -> List[Dict[str, Any]]:
    """
    Encode the report's media of a finished cell into `media`.

    :param media: Where the encoded files go (see :class:`MediaFiles`).
    :param cell: The cell.
    :param estimator: Its system's recognizer (whose defences make the defended input).
    :param utterances: The benchmark's utterances; the first `settings.utterances` get media.
    :param adversarial: The waveform the cell gave the system, per utterance id (the clean one on a clean cell).
    :param settings: The config's `report` section.
    :param defended: What the recognizer received after its defences, per utterance id, where the cell recorded
                     it (see `run_cell`'s `keep_defended`); computed again with :func:`defended_input` otherwise.
    :return: Per utterance, its id, length in seconds, and the paths (relative to the output directory) of its
             `clean`, `adversarial` (None on a clean cell) and `defended` (None without defences) audio and
             `spectrogram` of the perturbation (None on a clean cell, or without matplotlib).
    """
    entries = []
    for utterance in utterances[: settings.utterances]:
        clean, attacked = utterance.waveform, adversarial[utterance.utterance_id]
        received = (defended or {}).get(utterance.utterance_id)
        if received is None:
            received = defended_input(estimator, attacked)
        rate = utterance.sample_rate
        is_clean = cell.attack == "clean" or not ATTACKS[cell.attack].perturbs  # nothing added to the speech
        entries.append(
            {
                "utterance_id": utterance.utterance_id,
                "seconds": len(clean) / rate,
                "clean": encode_audio(media, clean, rate, settings.audio),
                "adversarial": None if is_clean else encode_audio(media, attacked, rate, settings.audio),
                "defended": None if received is None else encode_audio(media, received, rate, settings.audio),
                "spectrogram": (
                    None if is_clean else encode_spectrogram(media, np.asarray(attacked, np.float64) - clean)
                ),
            }
        )
    return entries


def save_cell_media(
    out_dir: Path,
    cell: Cell,
    estimator,
    utterances: Sequence[Utterance],
    adversarial: Mapping[str, np.ndarray],
    settings: ReportConfig,
    defended: Optional[Mapping[str, np.ndarray]] = None,
) -> List[Dict[str, Any]]:
    """
    Write the report's media of a finished cell under `out_dir` (a file already there is not encoded again).

    :param out_dir: The run's output directory.
    :return: As :func:`encode_cell_media`, whose other parameters it takes.
    """
    media = MediaFiles(skip=lambda name: (Path(out_dir) / name).is_file())
    entries = encode_cell_media(media, cell, estimator, utterances, adversarial, settings, defended)
    media.write(out_dir)
    return entries
