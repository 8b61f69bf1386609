import errno
import json
import logging
import resource
import signal
from pathlib import Path

import numpy as np
import pytest

from art_asr_ext.benchmark.store import ResultStore, slug


def test_latest_record_of_a_cell_wins(tmp_path):
    store = ResultStore(tmp_path)
    store.append({"key": "a", "status": "failed"})
    store.append({"key": "b", "status": "ok"})
    store.append({"key": "a", "status": "ok", "value": float("inf")})
    latest = store.latest()
    assert latest["a"] == {"key": "a", "status": "ok", "value": float("inf")} and latest["b"]["status"] == "ok"


def test_a_torn_last_line_is_repaired_once_when_the_store_opens(tmp_path, caplog):
    store = ResultStore(tmp_path)
    store.append({"key": "a", "status": "ok"})
    with open(store.path, "a") as file:
        file.write(json.dumps({"key": "b", "status": "ok"})[:12])  # killed mid-write
    torn = store.path.read_bytes()
    assert list(ResultStore(tmp_path, create=False).latest()) == ["a"]  # the dry run reads, changes nothing
    assert store.path.read_bytes() == torn
    with caplog.at_level(logging.WARNING, logger="art_asr_ext.benchmark.store"):
        resumed = ResultStore(tmp_path)  # a run starting up
        assert list(resumed.latest()) == ["a"] and store.path.read_bytes() == torn[: torn.rfind(b"\n") + 1]
        resumed.append({"key": "c", "status": "ok"})
        resumed.append({"key": "d", "status": "ok"})
    assert [json.loads(line)["key"] for line in store.path.read_text().splitlines()] == ["a", "c", "d"]
    assert caplog.text.count("Dropping a partial last line") == 1


def test_the_file_is_read_once_then_records_are_kept_in_memory(tmp_path, monkeypatch):
    ResultStore(tmp_path).append({"key": "old", "status": "ok"})
    store = ResultStore(tmp_path)

    def no_reading(*args, **kwargs):
        raise AssertionError("results.jsonl was read again")

    monkeypatch.setattr(Path, "read_bytes", no_reading)
    monkeypatch.setattr(Path, "read_text", no_reading)
    monkeypatch.setattr("builtins.open", no_reading)
    for index in range(50):
        store.append({"key": f"cell {index % 10}", "status": "ok", "index": index})
    latest = store.latest()
    monkeypatch.undo()
    assert len(latest) == 11 and latest["cell 3"]["index"] == 43 and latest["old"]["status"] == "ok"
    assert ResultStore(tmp_path).latest() == latest  # memory and file agree
    assert len(store.path.read_text().splitlines()) == 51


def test_a_failed_append_leaves_no_partial_line(tmp_path):
    store = ResultStore(tmp_path)
    store.append({"key": "a", "status": "ok"})
    size = store.path.stat().st_size
    # A real short write: the kernel stops the file at RLIMIT_FSIZE (EFBIG once SIGXFSZ is ignored).
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, limits[1]))
    try:
        with pytest.raises(OSError) as error:
            store.append({"key": "b", "status": "ok", "rows": ["x" * 100]})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)
    assert error.value.errno == errno.EFBIG
    assert store.path.stat().st_size == size and list(store.latest()) == ["a"]
    store.append({"key": "c", "status": "ok"})
    assert [json.loads(line)["key"] for line in store.path.read_text().splitlines()] == ["a", "c"]


def test_adversarial_examples_round_trip(tmp_path):
    store = ResultStore(tmp_path)
    waveforms = {"1089-134686-0001": np.linspace(-1, 1, 5, dtype=np.float32), "x": np.zeros(3, np.float32)}
    store.save_adversarial("(1) A | pgd | 0.1", waveforms)
    loaded = store.load_adversarial("(1) A | pgd | 0.1", ["1089-134686-0001", "missing"])
    assert list(loaded) == ["1089-134686-0001"]
    np.testing.assert_array_equal(loaded["1089-134686-0001"], waveforms["1089-134686-0001"])
    assert not list(store.adversarial_dir.glob(".*"))  # no temporary file left
    with pytest.raises(FileNotFoundError, match="No saved adversarial examples"):
        store.load_adversarial("(1) A | fgsm | 0.1", ["x"])


def test_slugs_are_file_names_and_distinct():
    assert slug("(1) A | pgd | 0.1").startswith("1_A_pgd_0.1-")
    assert slug("(1) A | pgd | 0.1") != slug("(1) A , pgd , 0.1")


def test_a_starting_run_removes_temporary_files_a_killed_run_left(tmp_path):
    (tmp_path / "adversarial").mkdir()
    left = [tmp_path / ".table1.csv.k3j2.tmp", tmp_path / "adversarial" / ".cell.npz.x9.tmp"]
    for path in left:
        path.write_bytes(b"half a file")
    (tmp_path / "keep.tmp").write_bytes(b"not ours")
    ResultStore(tmp_path, create=False)  # the dry run changes nothing
    assert all(path.exists() for path in left)
    ResultStore(tmp_path)
    assert not any(path.exists() for path in left) and (tmp_path / "keep.tmp").exists()
