"""
Pack a LibriSpeech-layout corpus small, as Opus in Ogg through soundfile, so that it travels with a command to a
machine that cannot synthesise it in time (a GPU lent for minutes, with 64 MiB carried along)::

    python -m art_asr_ext.benchmark.training.pack --corpus ../shared/data/synth --out packed \\
        --max-train-utterances 3500

writes `packed/train-synth` and `packed/dev-synth` (same layout, `.opus` files, the same transcripts); train on it
with `--audio-extension .opus --dev-audio-extension .opus`. At 16 kbit/s speech keeps what a recognizer needs (checked by the tests).
"""

import argparse
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional

import soundfile

from art_asr_ext.data.librispeech import read_audio

#: soundfile's compression level for Opus is libsndfile's bitrate scale (0: ~260 kbit/s, 1: ~7 kbit/s at 16 kHz);
#: 0.965 gives about 16 kbit/s for 16 kHz speech.
DEFAULT_COMPRESSION = 0.965


def pack_split(
    source: Path, destination: Path, max_utterances: Optional[int], compression: float, source_extension: str = ".flac"
) -> Dict[str, float]:
    """
    Write the first `max_utterances` utterances of a split (sorted ids) as Opus, with their transcripts.

    :param source_extension: Of the split's audio files (`.flac`, or `.opus` to re-pack smaller).

    :return: `utterances`, `seconds` and `bytes` written.
    """
    kept: Dict[Path, List[str]] = {}
    for transcript in sorted(source.glob("*/*/*.trans.txt")):
        lines = [line for line in transcript.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept[transcript] = lines
    ids = sorted(line.split(" ", 1)[0] for lines in kept.values() for line in lines)[:max_utterances]
    chosen = set(ids)
    seconds, size = 0.0, 0
    for transcript, lines in kept.items():
        lines = [line for line in lines if line.split(" ", 1)[0] in chosen]
        if not lines:
            continue
        folder = destination / transcript.parent.relative_to(source)
        folder.mkdir(parents=True, exist_ok=True)
        for line in lines:
            utterance_id = line.split(" ", 1)[0]
            waveform = read_audio(transcript.parent / f"{utterance_id}{source_extension}")
            path = folder / f"{utterance_id}.opus"
            soundfile.write(path, waveform, 16000, format="OGG", subtype="OPUS", compression_level=compression)
            seconds += len(waveform) / 16000
            size += path.stat().st_size
        (folder / transcript.name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"utterances": len(ids), "seconds": seconds, "bytes": size}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, required=True, help="root holding train-synth/ and dev-synth/")
    parser.add_argument(
        "--audio-extension", default=".opus", help="of the corpus's training audio (default: %(default)s)"
    )
    parser.add_argument("--dev-audio-extension", default=".flac", help="of its dev audio (default: %(default)s)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-train-utterances", type=int, default=None)
    parser.add_argument("--compression", type=float, default=DEFAULT_COMPRESSION, help="soundfile compression_level")
    args = parser.parse_args(argv)
    if not 0.0 <= args.compression <= 1.0:
        print(f"error: --compression must be in [0, 1]. Found: {args.compression}", file=sys.stderr)
        return 2
    splits = (
        ("train-synth", args.max_train_utterances, args.audio_extension),
        ("dev-synth", None, args.dev_audio_extension),
    )
    for split, limit, extension in splits:
        if not (args.corpus / split).is_dir():
            print(f"error: {args.corpus / split} is missing", file=sys.stderr)
            return 2
        if (args.out / split).exists():
            shutil.rmtree(args.out / split)
        stats = pack_split(args.corpus / split, args.out / split, limit, args.compression, extension)
        kbps = stats["bytes"] * 8 / max(stats["seconds"], 1e-9) / 1000
        print(
            f"{split}: {stats['utterances']} utterances, {stats['seconds'] / 3600:.2f} h, "
            f"{stats['bytes'] / 1e6:.1f} MB ({kbps:.1f} kbit/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
