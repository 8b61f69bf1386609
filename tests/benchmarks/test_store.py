import json

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


def test_a_partial_last_line_from_a_killed_run_is_dropped(tmp_path):
    store = ResultStore(tmp_path)
    store.append({"key": "a", "status": "ok"})
    with open(store.path, "a") as file:
        file.write(json.dumps({"key": "b", "status": "ok"})[:12])  # killed mid-write
    assert list(store.latest()) == ["a"]
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
