"""Lazy package exports, so that importing one class never imports another's heavy backend (ART's practice)."""

import importlib
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """
    A package's module-level `__getattr__` and `__dir__` that import each exported name from its module on first use.

    :param package: The package's `__name__`.
    :param exports: Each exported name and the module that defines it.
    :return: `(__getattr__, __dir__)`.
    """

    def getattr_(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> List[str]:
        return sorted(exports)

    return getattr_, dir_
