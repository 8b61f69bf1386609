"""
Bad utterances in the data directory: every one is found before the first cell and reported at once (exit 2), or
skipped and listed with `data.on_bad_utterance: skip`. The directory is built from the real clips in ../shared/data.
"""

import json
import shutil

import numpy as np
import pytest
import soundfile

from art_asr_ext.benchmark.cli import main
from tests.benchmarks.helpers import DATA, mini_config_dict, read_csv, write_config

SPLIT = DATA / "LibriSpeech" / "test-clean"
GOOD = {
    "1089-134686-0001": SPLIT / "1089" / "134686" / "1089-134686-0001.flac",
    "1221-135766-0002": SPLIT / "1221" / "135766" / "1221-135766-0002.flac",
}
#: The five bad utterances and a word of the reason each must be reported with.
BAD = {
    "1089-134686-0002": "cannot be decoded",
    "1089-134686-0003": "2 channels; expected mono",
    "1089-134686-0004": "sampled at 8000 Hz; expected 16000 Hz",
    "1089-134686-0005": "audio file not found",
    "1089-134686-0006": "empty transcript",
}


@pytest.fixture
def bad_split(tmp_path):
    """A LibriSpeech-layout split: two good clips and five bad utterances made from a real one."""
    root = tmp_path / "test-bad"
    chapter = root / "1089" / "134686"
    chapter.mkdir(parents=True)
    other = root / "1221" / "135766"
    other.mkdir(parents=True)
    references = {}
    for path in GOOD.values():
        for line in path.with_name(f"{path.stem.rsplit('-', 1)[0]}.trans.txt").read_text().splitlines():
            utterance_id, _, text = line.partition(" ")
            references[utterance_id] = text
    for utterance_id, path in GOOD.items():
        shutil.copy(path, (chapter if utterance_id.startswith("1089") else other) / path.name)
    source = GOOD["1089-134686-0001"]
    waveform, rate = soundfile.read(source, dtype="float32")
    data = source.read_bytes()
    (chapter / "1089-134686-0002.flac").write_bytes(data[: len(data) // 3])  # cut mid-stream, as a broken download
    soundfile.write(chapter / "1089-134686-0003.flac", np.stack([waveform, waveform], axis=1), rate)
    soundfile.write(chapter / "1089-134686-0004.flac", waveform[::2], rate // 2)
    shutil.copy(source, chapter / "1089-134686-0006.flac")  # 0005 has a transcript line and no audio
    text = references["1089-134686-0001"]
    lines = [f"1089-134686-0001 {text}"] + [f"1089-134686-000{i} {text}" for i in (2, 3, 4, 5)] + ["1089-134686-0006"]
    (chapter / "1089-134686.trans.txt").write_text("\n".join(lines) + "\n")
    (other / "1221-135766.trans.txt").write_text(f"1221-135766-0002 {references['1221-135766-0002']}\n")
    return root


def _config(tmp_path, split, on_bad_utterance=None):
    config = mini_config_dict()
    config["data"] = {"librispeech": str(split), "crop_seconds": 1.0}
    if on_bad_utterance is not None:
        config["data"]["on_bad_utterance"] = on_bad_utterance
    config["attacks"] = {"fgsm": {"eps": [0.01]}}
    config["systems"] = config["systems"][:1]
    config["systems"][0].pop("imperceptible")
    config["transfer"] = []
    return write_config(tmp_path, config)


def _run(config, out):
    return main(["--config", str(config), "--out", str(out), "--threads", "1", "--no-progress", "--no-plot"])


def test_every_bad_utterance_is_reported_at_once(tmp_path, bad_split, capsys):
    out = tmp_path / "out"
    assert _run(_config(tmp_path, bad_split), out) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: 5 of 7 utterances") and "data.on_bad_utterance: skip" in error
    assert "Traceback" not in error
    lines = error.splitlines()
    for utterance_id, reason in BAD.items():
        line = next(line for line in lines if utterance_id in line)
        assert reason in line and str(bad_split) in line  # the id, its file and the reason on one line
    assert not any(utterance_id in error for utterance_id in GOOD)
    assert not out.exists()  # checked before anything is written
    # The dry run reports the same problems, also with exit 2.
    assert main(["--config", str(_config(tmp_path, bad_split)), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert all(utterance_id in error for utterance_id in BAD)


def test_bad_utterances_are_skipped_and_listed(tmp_path, bad_split, capsys):
    out = tmp_path / "out"
    assert _run(_config(tmp_path, bad_split, on_bad_utterance="skip"), out) == 0
    rows = read_csv(out / "utterances.csv")
    assert sorted({row["utterance_id"] for row in rows}) == sorted(GOOD) and len(rows) == 2 * 2
    assert [row["System"] for row in read_csv(out / "table1.csv")] == ["(1) Tiny"]
    table = (out / "table1.md").read_text()
    assert "5 more skipped as bad data" in table.splitlines()[0]
    for utterance_id, reason in BAD.items():
        assert any(utterance_id in line and reason in line for line in table.splitlines())
    skipped = json.loads((out / "run.json").read_text())["invocation"]["skipped_utterances"]
    assert {item["utterance_id"]: item["reason"] for item in skipped}.keys() == BAD.keys()
    assert all(BAD[item["utterance_id"]] in item["reason"] for item in skipped)
    assert "Skipping bad utterance 1089-134686-0005" in (out / "run.log").read_text()
    assert "5 skipped as bad data" in _dry_run(tmp_path, bad_split, out, capsys)


def _dry_run(tmp_path, split, out, capsys):
    assert main(["--config", str(_config(tmp_path, split, "skip")), "--out", str(out), "--dry-run"]) == 0
    return capsys.readouterr().out


def test_no_good_utterance_left_is_an_error(tmp_path, bad_split, capsys):
    for utterance_id in GOOD:
        for path in bad_split.rglob(f"{utterance_id}.flac"):
            path.write_bytes(b"")
    assert _run(_config(tmp_path, bad_split, on_bad_utterance="skip"), tmp_path / "out") == 2
    error = capsys.readouterr().err
    assert "7 of 7 utterances" in error and "no good utterance is left" in error


def test_on_bad_utterance_must_be_error_or_skip(tmp_path, bad_split, capsys):
    assert main(["--config", str(_config(tmp_path, bad_split, "ignore")), "--dry-run"]) == 2
    assert "data.on_bad_utterance: must be one of ['error', 'skip']. Found: 'ignore'" in capsys.readouterr().err
