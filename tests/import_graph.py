"""
The module-level import graph of a package, read from the source (nothing is imported), and the cycles in it.

Every ``import`` statement counts wherever it is, at module level or inside a function, a method or a ``try``: a
function-level import runs the first time the function is called, so a cycle through one fails at run time instead
of at import time, which is worse. Imports under ``if TYPE_CHECKING:`` do not count: they never execute (type
checkers resolve cycles among annotations themselves), and they are where a module puts the import it must not run.
Imports made from strings (``importlib.import_module(name)``, as :func:`art_asr_ext.utils.lazy.lazy_exports` does) are
not seen: they are the lazy edges a package ``__init__`` uses precisely to avoid import-time dependencies.

An import of ``a.b.c`` depends on ``a.b.c`` itself and also runs the ``__init__`` of ``a`` and ``a.b``. Those parent
edges count, except to the packages that enclose the importing module: when ``a.b.x`` runs, ``a.b`` is already in
``sys.modules`` (initialised, or initialising because it imported ``a.b.x``), so importing ``a.b.y`` from ``a.b.x``
does not run ``a/b/__init__.py`` again. Counting those edges would turn every package ``__init__`` that re-exports
its submodules into a cycle with each of them. An explicit ``from a.b import name`` (a name defined in the
``__init__``, not a submodule) is a dependency on the ``__init__`` having run, so that edge always counts.
"""

import ast
import dataclasses
from collections import deque
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple, Union

#: importer -> {imported module: where the first such import is}
Graph = Dict[str, Dict[str, "Site"]]


@dataclasses.dataclass(frozen=True)
class Site:
    """Where an import statement is."""

    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


def package_modules(root: Path, package: str) -> Dict[str, Tuple[Path, bool]]:
    """
    :param root: The folder holding the package's folder (the repository root).
    :param package: The top-level package name, e.g. ``art_asr_ext``.
    :return: Each module's dotted name, with its file and whether it is a package ``__init__``.
    """
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` test is ``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def executed_imports(tree: ast.AST) -> Iterator[Union[ast.Import, ast.ImportFrom]]:
    """
    :param tree: A parsed module.
    :return: Its import statements at any depth, except those only under ``if TYPE_CHECKING:``.
    """
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)  # the else branch is what runs
        else:
            stack.extend(ast.iter_child_nodes(node))


def _resolve_relative(importer: str, is_package: bool, level: int, module: Optional[str]) -> Optional[str]:
    """The absolute name of ``from <level dots><module> import ...`` in `importer`; None beyond the top level."""
    parts = importer.split(".") if is_package else importer.split(".")[:-1]
    if level - 1 > len(parts) - 1:
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imported_modules(
    node: Union[ast.Import, ast.ImportFrom], importer: str, is_package: bool, modules: Set[str]
) -> Iterator[str]:
    """
    :param node: One import statement of `importer`.
    :param importer: Dotted name of the module holding it.
    :param is_package: Whether `importer` is a package ``__init__``.
    :param modules: Dotted names of the package's modules; imports of anything else are ignored.
    :return: The modules of `modules` whose code the statement may run or whose names it needs (see the module
             docstring for the parent packages), without `importer` itself.
    """
    explicit = []
    if isinstance(node, ast.Import):
        explicit = [alias.name for alias in node.names]
    else:
        base = node.module if node.level == 0 else _resolve_relative(importer, is_package, node.level, node.module)
        if base is None:
            return
        for alias in node.names:
            # `from a import b` imports the submodule a.b when there is one, else takes the name b from a
            explicit.append(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    enclosing = {".".join(importer.split(".")[:n]) for n in range(1, importer.count(".") + 2)}
    seen = set()
    for name in explicit:
        parts = name.split(".")
        for n in range(1, len(parts) + 1):
            target = ".".join(parts[:n])
            is_explicit = n == len(parts)
            if target not in modules or target == importer or target in seen:
                continue
            if is_explicit or target not in enclosing:
                seen.add(target)
                yield target


def import_graph(root: Path, package: str) -> Graph:
    """
    :param root: The folder holding the package's folder.
    :param package: The top-level package name.
    :return: For each module of the package, the package's modules it imports, each with its first import site.
    """
    modules = package_modules(root, package)
    names = set(modules)
    graph: Graph = {}
    for importer, (path, is_package) in modules.items():
        edges = graph.setdefault(importer, {})
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in sorted(executed_imports(tree), key=lambda n: n.lineno):
            for target in imported_modules(node, importer, is_package, names):
                edges.setdefault(target, Site(path.relative_to(root), node.lineno))
    return graph


def strongly_connected_components(graph: Graph) -> List[List[str]]:
    """
    Tarjan's algorithm, iterative so that a long import chain cannot exhaust Python's recursion limit.

    :param graph: Adjacency of each node; targets missing from it are nodes without edges.
    :return: The components, each sorted, in no particular order.
    """
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    on_stack: Set[str] = set()
    stack: List[str] = []
    components = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, {}))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = len(index)
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph.get(successor, {})))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def _shortest_cycle_through(graph: Graph, node: str, component: Set[str]) -> List[str]:
    """A shortest path from `node` back to itself inside `component` (breadth-first), as ``[node, ..., node]``."""
    previous: Dict[str, str] = {}
    queue = deque([node])
    while queue:
        current = queue.popleft()
        for successor in sorted(graph.get(current, {})):
            if successor not in component:
                continue
            if successor == node:
                path = [current]
                while path[-1] != node:
                    path.append(previous[path[-1]])
                return path[::-1] + [node]
            if successor not in previous:
                previous[successor] = current
                queue.append(successor)
    raise ValueError(f"{node} is on no cycle inside its component")


def import_cycles(graph: Graph) -> List[List[str]]:
    """
    :param graph: An import graph.
    :return: For every module on a cycle, a shortest cycle through it, as ``[a, b, ..., a]`` starting at the cycle's
             smallest name; each cycle once, sorted. Together they show every module of every strongly connected
             component, without listing the (possibly exponentially many) other cycles.
    """
    cycles = set()
    for component in strongly_connected_components(graph):
        if len(component) < 2:
            continue  # the graph has no self-edges
        members = set(component)
        for node in component:
            cycle = _shortest_cycle_through(graph, node, members)[:-1]
            start = cycle.index(min(cycle))
            cycle = cycle[start:] + cycle[:start]
            cycles.add(tuple(cycle + [cycle[0]]))
    return [list(cycle) for cycle in sorted(cycles)]


def describe_cycle(cycle: List[str], graph: Graph) -> str:
    """``a -> b -> a``, then the import site of each edge on its own line."""
    sites = "".join(f"\n    {graph[a][b]}: {a} imports {b}" for a, b in zip(cycle, cycle[1:]))
    return " -> ".join(cycle) + sites
