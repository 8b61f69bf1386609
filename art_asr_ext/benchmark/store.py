"""
Crash-safe results of a run: one JSON line per finished (or failed) cell, appended and fsync'ed in one write, and
the adversarial examples of transfer-source cells as ``.npz`` files written atomically before their line.

A killed run loses at most the cell in flight: a partial last line (killed mid-write) is dropped when the store is
next opened, and an ``.npz`` without its line is simply rewritten when the cell is run again. The file is read once,
when the store is opened; after that the latest record of each cell is kept in memory, so a run's I/O grows with its
number of cells, not with its square. One run at a time owns an output directory (:class:`OutputLock`).

| Paper link: https://arxiv.org/abs/2103.17122
"""

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional

import numpy as np

from art_asr_ext.utils.io import atomic_write, fsync_directory

logger = logging.getLogger(__name__)

RESULTS = "results.jsonl"
LOCK = ".lock"
#: The folder of report.html's media, written per cell (see :mod:`art_asr_ext.benchmark.report_media`).
REPORT_MEDIA = "report"

#: Errors that mean a file system cannot take more writes (full, over quota, file too large, read-only).
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
#: Errors about the output directory only when they name it or a file inside it: no permission, or a file where a
#: directory should be.
_PATH_ERRNOS = (errno.EACCES, errno.EPERM, errno.EEXIST, errno.ENOTDIR)


class OutputError(RuntimeError):
    """The output directory cannot be used: another run holds it, or it cannot be written."""


@contextlib.contextmanager
def output_errors(out_dir: Path) -> Iterator[None]:
    """
    Turn an `OSError` that says the output directory cannot be written into an :class:`OutputError` naming the
    directory, the file and the cause (other errors pass through).

    :param out_dir: The run's output directory.
    """
    try:
        yield
    except OSError as error:
        named, out = Path(os.path.abspath(error.filename or "/")), Path(os.path.abspath(out_dir))
        # a file inside the directory, or the directory or one of its parents (while creating it)
        about_out = error.filename is not None and (named.is_relative_to(out) or out.is_relative_to(named))
        if not (error.errno in _WRITE_ERRNOS or (error.errno in _PATH_ERRNOS and about_out)):
            raise
        where = f" ({error.filename})" if error.filename else ""
        if error.errno in (errno.EEXIST, errno.ENOTDIR):
            raise OutputError(f"The output directory {out_dir} cannot be created: {error.strerror}{where}.") from error
        raise OutputError(
            f"Cannot write to the output directory {out_dir}: {error.strerror or error}{where}. Finished cells are "
            f"kept in {RESULTS}; make room (or make it writable) and rerun the same command to resume."
        ) from error


def slug(key: str) -> str:
    """
    :param key: A cell key.
    :return: A file name for it: readable characters and a short hash (keys differing only in punctuation stay apart).
    """
    readable = re.sub(r"[^A-Za-z0-9.]+", "_", key).strip("_")[:80]
    return f"{readable}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:10]}"


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


class OutputLock:
    """
    Exclusive use of an output directory by one run: an `flock` on ``<out>/.lock``, which holds the owner's pid.

    The kernel releases an `flock` when its process dies, even by SIGKILL, so a lock left by a dead run (a stale
    lock) is taken over without any clean-up; a live holder is named in the error.
    """

    def __init__(self, out_dir: Path) -> None:
        """
        :param out_dir: The output directory (it must exist).
        """
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK
        self._descriptor: Optional[int] = None
        #: Set by `acquire` when the lock was left by a run that died (or gave it up without clearing it).
        self.taken_over: Optional[str] = None

    def _recorded_pid(self, descriptor: int) -> Optional[int]:
        text = os.pread(descriptor, 64, 0).decode("ascii", errors="replace").strip()
        return int(text) if text.isdigit() else None

    def acquire(self) -> None:
        """
        :raises OutputError: If a live run holds the directory (its pid is named).
        """
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._recorded_pid(descriptor)
            os.close(descriptor)
            raise OutputError(
                f"The output directory {self.out_dir} is in use by another run (pid {holder if holder else 'unknown'}"
                f", lock file {self.path}); wait for it to finish, stop it, or choose another --out."
            ) from None
        except BaseException:
            os.close(descriptor)
            raise
        previous = self._recorded_pid(descriptor)
        if previous is not None and previous != os.getpid():
            state = "no longer running" if not _pid_running(previous) else "running but no longer holding it"
            self.taken_over = f"Taking over the lock of {self.out_dir} from pid {previous} ({state})."
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
        os.fsync(descriptor)
        self._descriptor = descriptor

    def release(self) -> None:
        """Give the directory up (the file stays: removing it would race with a run opening it)."""
        if self._descriptor is None:
            return
        try:
            os.ftruncate(self._descriptor, 0)
        except OSError:  # a read-only or full directory: the kernel's lock is what counts
            pass
        fcntl.flock(self._descriptor, fcntl.LOCK_UN)
        os.close(self._descriptor)
        self._descriptor = None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


class ResultStore:
    """The results of one output directory: read once when opened, then appended to."""

    def __init__(self, out_dir: Path, create: bool = True) -> None:
        """
        :param out_dir: The run's output directory.
        :param create: Create the directory if needed and repair a partial last line (the run that owns the
                       directory); False to only read what is there, changing nothing (the dry run).
        """
        self.out_dir = Path(out_dir)
        if create:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / RESULTS
        self.adversarial_dir = self.out_dir / "adversarial"
        self._latest: Dict[str, Dict[str, Any]] = {}
        #: Bytes of complete lines in the file: where the next record goes, and where a failed append rolls back to.
        self._size = 0
        self._load(repair=create)

    def _load(self, repair: bool) -> None:
        """
        Read every complete record. With `repair`, drop a partial last line and the temporary files of atomic writes
        left by a run killed mid-write (the caller owns the directory: no other run is writing them).
        """
        if repair:
            for directory in (self.out_dir, self.adversarial_dir):
                for temporary in directory.glob(".*.tmp"):
                    temporary.unlink()
            for temporary in (self.out_dir / REPORT_MEDIA).rglob(".*.tmp"):
                temporary.unlink()
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            if repair:
                logger.warning("Dropping a partial last line of %s (a run was killed while writing it).", self.path)
                with open(self.path, "r+b") as file:
                    file.truncate(len(complete))
                    file.flush()
                    os.fsync(file.fileno())
            else:
                logger.warning("Ignoring a partial last line of %s.", self.path)
        self._size = len(complete)
        for number, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("Skipping unreadable line %d of %s.", number, self.path)
                continue
            if isinstance(record, dict) and "key" in record:
                self._latest[record["key"]] = record

    def latest(self) -> Dict[str, Dict[str, Any]]:
        """
        :return: The latest record of each cell key (a new dict; the records themselves are shared).
        """
        return dict(self._latest)

    def append(self, record: Mapping[str, Any]) -> None:
        """
        Append one record in a single write, then fsync it. If the write fails (a full disk), the file is cut back
        to its last complete line before the error is raised.

        :param record: JSON-serialisable record with a `key`.
        """
        data = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
        created = not self.path.exists()
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                os.fsync(descriptor)
            except OSError as error:
                os.ftruncate(descriptor, self._size)
                error.filename = error.filename or os.fspath(self.path)
                raise
        finally:
            os.close(descriptor)
        if created:
            fsync_directory(self.out_dir)
        self._size += len(data)
        self._latest[record["key"]] = dict(record)

    def adversarial_path(self, key: str) -> Path:
        """
        :param key: A cell key.
        :return: Where that cell's adversarial examples are kept.
        """
        return self.adversarial_dir / f"{slug(key)}.npz"

    def save_adversarial(self, key: str, waveforms: Mapping[str, np.ndarray]) -> None:
        """
        :param key: A cell key.
        :param waveforms: Adversarial waveform of each utterance id.
        """
        self.adversarial_dir.mkdir(exist_ok=True)
        path = self.adversarial_path(key)
        arrays = {uid: np.asarray(w, dtype=np.float32) for uid, w in waveforms.items()}
        atomic_write(path, lambda file: np.savez(file, **arrays), binary=True)

    def load_adversarial(self, key: str, utterance_ids: Iterable[str]) -> Dict[str, np.ndarray]:
        """
        :param key: A cell key.
        :param utterance_ids: The utterances wanted.
        :return: Their adversarial waveforms (utterances the file lacks are left out).
        :raises FileNotFoundError: If the cell's examples were never saved.
        """
        path = self.adversarial_path(key)
        if not path.is_file():
            raise FileNotFoundError(f"No saved adversarial examples for {key!r} ({path}).")
        with np.load(path) as data:
            return {uid: data[uid] for uid in utterance_ids if uid in data.files}
