"""
Crash-safe file writes: a reader (or a run resumed after a kill) sees a file's old content or its new content, never
a torn mix, and what was written survives a power cut (the file and its directory are fsync'ed).
"""

import os
import tempfile
from pathlib import Path
from typing import IO, Callable

import numpy as np


def fsync_directory(directory: Path) -> None:
    if hasattr(os, "O_DIRECTORY"):
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _default_mode() -> int:
    """Permissions of a new file under the current umask (mkstemp's files are private otherwise)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, write: Callable[[IO], None], binary: bool = False) -> None:
    """
    Replace a file's content in one step (a reader sees the old or the new file, never a mix): write a temporary
    file beside it, fsync it, rename it over the file and fsync the directory.

    :param path: The file.
    :param write: Writes the new content to the open temporary file.
    :param binary: Open the temporary file in binary mode.
    """
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        mode = {"mode": "wb"} if binary else {"mode": "w", "encoding": "utf-8", "newline": ""}
        with os.fdopen(descriptor, **mode) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _default_mode())
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = os.fspath(path)  # a failed write names no file; say which one (e.g. on a full disk)
        raise
    fsync_directory(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """
    Replace a text file's content in one step (see `atomic_write`).

    :param path: The file.
    :param text: Its new content.
    """
    atomic_write(path, lambda file: file.write(text))


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """
    Replace a `.npy` file in one step (see `atomic_write`); object arrays are refused (no pickles).

    :param path: The file.
    :param array: A numeric array.
    """
    atomic_write(Path(path), lambda file: np.save(file, array, allow_pickle=False), binary=True)
