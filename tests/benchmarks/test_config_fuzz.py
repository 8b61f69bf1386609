"""
Config fuzzing: hypothesis mutates the CI preset (keys dropped, wrong types, negative and huge numbers, unknown keys,
wrong nesting) and feeds each mutant to the command line's `--dry-run`, in-process. Every mutant must give exit 2
with one line naming the key path of the bad value, or exit 0 for a config that is still valid; never an exception.
"""

import copy
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from art_asr_ext.benchmark.cli import main
from art_asr_ext.benchmark.presets import preset_path
from tests.benchmarks.helpers import DATA


def _base():
    raw = yaml.safe_load(preset_path("ci_tiny").read_text())
    raw["data"]["librispeech"] = str(DATA / "LibriSpeech" / "test-clean")
    raw["targets"]["pool"] = str(DATA / "text" / "ljspeech_sentences.tsv")
    raw["systems"][1]["batch_size"] = 1
    raw["systems"][3]["attacks"] = {"pgd": {"eps": [0.01]}, "fgsm": False}
    raw["systems"][0]["training"] = {"rs_aug": [0.0, 0.3], "label_smoothing": 0.1, "notes": "x"}
    return raw


BASE = _base()
#: A message from config validation starts with a key path: `systems[2].defences[0].sigma: ...` (or `config:` for
#: the document itself).
KEY_PATH = re.compile(r"^error: (config|[A-Za-z_]\w*(\[\d+\]|\.\w+)*): \S")

WRONG_VALUES = [None, "text", "", 3, 2.5, True, False, [], {}, [1, "a"], {"type": "rs"}, "1e-3", "FILL_ME/x"]
BAD_NUMBERS = [-1, 0, -0.5, 10**30, 1e308, -1e308, float("inf"), float("nan"), 2**64]


def _paths(node, prefix=()):
    """Every place in the document: (path, value), containers before their contents."""
    yield prefix, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _parent(document, path):
    node = document
    for step in path[:-1]:
        node = node[step]
    return node


@st.composite
def mutants(draw):
    document = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        places = list(_paths(document))[1:]
        path, value = draw(st.sampled_from(places))
        parent, last = _parent(document, path), path[-1]
        kind = draw(st.sampled_from(["drop", "wrong type", "bad number", "unknown key", "nest in list", "nest in map"]))
        if kind == "drop":
            del parent[last]
        elif kind == "wrong type":
            parent[last] = draw(st.sampled_from(WRONG_VALUES))
        elif kind == "bad number":
            number = draw(st.sampled_from(BAD_NUMBERS))
            if isinstance(value, (int, float)) and not isinstance(value, bool) and draw(st.booleans()):
                number = value * draw(st.sampled_from([-1, 10**12, 1e-12]))  # near the real value: sign, scale
            parent[last] = number
        elif kind == "unknown key":
            target = value if isinstance(value, dict) else parent if isinstance(parent, dict) else document
            target[draw(st.sampled_from(["bogus", "sigmas", "Seed", "eps_list"]))] = draw(st.sampled_from([1, "x"]))
        elif kind == "nest in list":
            parent[last] = [value]
        else:
            parent[last] = {draw(st.sampled_from(["value", "eps", "type"])): value}
    return document


@settings(
    max_examples=500,
    deadline=None,
    derandomize=True,  # the same 500 mutants on every run: CI stays reproducible
    database=None,
    # capsys is read before and after every example, so sharing it between examples is safe.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
@given(document=mutants())
def test_a_mutated_config_is_valid_or_refused_with_its_key_path(document, tmp_path_factory, capsys):
    path = tmp_path_factory.getbasetemp() / "fuzzed.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    capsys.readouterr()
    status = main(["--config", str(path), "--dry-run"])
    output = capsys.readouterr()
    assert status in (0, 2), output.err
    if status == 2:
        assert KEY_PATH.match(output.err), output.err
        assert "Traceback" not in output.err
    else:
        assert output.out.startswith("Benchmark ") and "Still to run" in output.out


def test_the_unmutated_base_is_valid(tmp_path, capsys):
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False))
    assert main(["--config", str(path), "--dry-run"]) == 0, capsys.readouterr().err
