"""One run at a time: an exclusive lock file beside the warehouse.

DuckDB lets one process write a database file; two pipeline runs would also interleave
their deliveries and their publish step. Every run therefore holds an exclusive
``flock`` on ``<warehouse>.run-lock`` for its whole length. The lock is taken without
waiting (a second run says who holds it and exits) unless the caller asks to wait. The
kernel releases it when the holder dies, however it dies, so a crashed run never leaves a
stale lock behind; the pid and start time written into the file are only for messages.

The lock is re-entrant within a process: ``idds run`` takes it before Prefect starts and
the flow takes it again (a no-op) so that a deployment run started by ``idds serve`` is
covered as well.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PAUSE_ENV = "IDDS_PAUSE_AT"
PAUSE_FILE_ENV = "IDDS_PAUSE_FILE"


class RunInProgress(Exception):
    """Another process holds the run lock."""


@dataclass
class _Held:
    fd: int
    depth: int


_held: dict[Path, _Held] = {}


def lock_path(warehouse: Path) -> Path:
    return warehouse.with_name(warehouse.name + ".run-lock")


def holder(warehouse: Path) -> str:
    """'pid N, started T' of the process holding the lock, as far as the file tells."""
    try:
        text = lock_path(warehouse).read_text(encoding="utf-8").split()
    except OSError:
        text = []
    if len(text) >= 2:
        return f"pid {text[0]}, started {text[1].replace('T', ' ')}"
    return "pid unknown"


def in_progress_message(warehouse: Path) -> str:
    return (f"another run is in progress ({holder(warehouse)}); "
            "try again later or pass --wait")


def running_pid(warehouse: Path) -> int | None:
    """The pid of a live process holding the run lock, else None. Reads the lock file only
    (never probes the lock, so it cannot get in a starting run's way): the holder writes
    its pid on taking the lock and empties the file on release; a killed holder's pid is
    no longer alive."""
    try:
        pid = int(lock_path(warehouse.resolve()).read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


@contextmanager
def run_lock(warehouse: Path, wait: bool = False, poll: float = 1.0,
             on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the run lock for the block; raise RunInProgress (or wait, if asked: then
    ``on_wait`` gets the in-progress message once)."""
    path = lock_path(Path(warehouse).resolve())
    if path in _held:
        _held[path].depth += 1
        try:
            yield
        finally:
            _held[path].depth -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise RunInProgress(in_progress_message(warehouse)) from None
                if on_wait is not None:
                    on_wait(in_progress_message(warehouse))
                    on_wait = None
                time.sleep(poll)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {datetime.now().isoformat(timespec='seconds')}\n".encode(), 0)
        _held[path] = _Held(fd, 1)
        try:
            yield
        finally:
            del _held[path]
            os.ftruncate(fd, 0)  # the lock file stays (deleting it would race a waiter)
    finally:
        os.close(fd)  # releases the flock


def pause_point(name: str) -> None:
    """Test hook: when IDDS_PAUSE_AT names this point, wait here while the file named by
    IDDS_PAUSE_FILE exists (at most ten minutes). ``<file>.reached`` says we got here."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    hold = Path(os.environ.get(PAUSE_FILE_ENV, ""))
    if not str(hold) or str(hold) == ".":
        return
    Path(f"{hold}.reached").write_text(str(os.getpid()), encoding="utf-8")
    deadline = time.monotonic() + 600
    while hold.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
