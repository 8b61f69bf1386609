"""
No import cycle among the modules of `art_asr_ext`, counting imports inside functions (see :mod:`tests.import_graph`
for what counts as an edge: not ``if TYPE_CHECKING:`` imports, nor the ``__init__`` of a package enclosing the
importer), and tests that the walker finds the cycles it is meant to find.
"""

import textwrap
from pathlib import Path

import pytest

from tests.import_graph import describe_cycle, import_cycles, import_graph

REPO = Path(__file__).resolve().parents[1]


def test_art_asr_ext_has_no_import_cycle():
    graph = import_graph(REPO, "art_asr_ext")
    # the walker read the package: a known edge is there, so an empty result is not a walker that saw nothing
    assert "art_asr_ext.utils.audio" in graph["art_asr_ext.data.librispeech"]
    cycles = import_cycles(graph)
    assert not cycles, f"{len(cycles)} import cycle(s):\n" + "\n".join(describe_cycle(c, graph) for c in cycles)


def _package(root: Path, files: dict) -> Path:
    for name, source in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


@pytest.mark.parametrize(
    "files, expected",
    [
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "from pkg.b import g\n",
                "b.py": "def g():\n    from . import a\n    return a\n",
            },
            [["pkg.a", "pkg.b", "pkg.a"]],
            id="import-inside-a-function",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "sub/__init__.py": "",
                "sub/x.py": "import pkg.y\n",
                "y.py": "class C:\n    def m(self):\n        from .sub import x\n",
            },
            [["pkg.sub.x", "pkg.y", "pkg.sub.x"]],
            id="relative-from-a-method",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "from typing import TYPE_CHECKING\nimport pkg.b\n",
                "b.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg import a\n",
            },
            [],
            id="type-checking-imports-do-not-count",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "a.py": "import pkg.b\n",
                "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    pass\nelse:\n    import pkg.a\n",
            },
            [["pkg.a", "pkg.b", "pkg.a"]],
            id="the-else-of-type-checking-counts",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "m/__init__.py": "from pkg.m.x import f\nfrom pkg.m.y import g\n",
                "m/x.py": "from pkg.m.y import g\ndef f():\n    return g()\n",
                "m/y.py": "def g():\n    return 1\n",
            },
            [],
            id="an-init-re-exporting-its-submodules-is-no-cycle",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "m/__init__.py": "from pkg.m.x import f\n",
                "m/x.py": "from pkg.n.z import h\ndef f():\n    return h()\n",
                "m/y.py": "",
                "n/__init__.py": "",
                "n/z.py": "def h():\n    from pkg.m.y import g\n",
            },
            [["pkg.m", "pkg.m.x", "pkg.n.z", "pkg.m"]],
            id="through-another-packages-eager-init",
        ),
        pytest.param(
            {
                "__init__.py": "",
                "m/__init__.py": "from pkg.m.x import f\nNAME = 1\n",
                "m/x.py": "from pkg.m import NAME\ndef f():\n    return NAME\n",
            },
            [["pkg.m", "pkg.m.x", "pkg.m"]],
            id="a-name-from-the-enclosing-init",
        ),
    ],
)
def test_walker_finds_exactly_the_cycles(tmp_path, files, expected):
    graph = import_graph(_package(tmp_path, files), "pkg")
    assert import_cycles(graph) == expected


def test_every_module_of_a_larger_cycle_is_reported(tmp_path):
    files = {"__init__.py": "", "a.py": "import pkg.b\n", "b.py": "import pkg.c\n", "c.py": "import pkg.a\n"}
    files.update({"d.py": "import pkg.e\n", "e.py": "def f():\n    import pkg.d\n"})
    graph = import_graph(_package(tmp_path, files), "pkg")
    assert import_cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"], ["pkg.d", "pkg.e", "pkg.d"]]
    assert describe_cycle(["pkg.d", "pkg.e", "pkg.d"], graph) == (
        "pkg.d -> pkg.e -> pkg.d\n"
        f"    {Path('pkg/d.py')}:1: pkg.d imports pkg.e\n"
        f"    {Path('pkg/e.py')}:2: pkg.e imports pkg.d"
    )
