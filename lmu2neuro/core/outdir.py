"""One lmu2neuro run per output folder at a time.

Each file is already written atomically (``lmu2neuro.core.atomic``), but two runs writing the same
folder would still interleave: one training's last.pt beside another's metrics.json, a resume
reading a checkpoint that the other run is replacing. A run therefore holds an exclusive
``fcntl.flock`` on ``DIR/.lmu2neuro.lock`` for as long as it writes there. The kernel drops the lock
when the process ends however it ends (SIGKILL included), so a crashed run never leaves a stale
lock behind; the pid written into the file only names the holder in the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from lmu2neuro.core.errors import UserError

LOCK_NAME = ".lmu2neuro.lock"


@contextlib.contextmanager
def output_lock(folder: str | os.PathLike, what: str = "lmu2neuro run"):
    """Hold the folder's lock for the duration of the block (creating the folder if needed).

    Raises ``UserError`` "DIR is in use by another lmu2neuro run (pid N)" at once, without
    waiting, if another process holds it. Not re-entrant within one process: take it once, in
    the command that owns the folder.
    """
    folder = Path(folder)
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot create the output folder ({exc.strerror})") from None
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder; expected an output folder")
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"{path}: cannot open the output folder's lock file ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            who = f"pid {holder}" if holder else "pid unknown"
            raise UserError(f"{folder} is in use by another {what} ({who}); wait for it to finish or choose "
                            "another output folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            # the file stays (removing it would race with a process that has just opened it);
            # emptying it says nobody holds it
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:
            # a run that failed before writing anything leaves no folder behind; removed while
            # still locked, so no other run can be holding this lock file
            with contextlib.suppress(OSError):
                path.unlink()
                folder.rmdir()
        os.close(fd)  # releases the lock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


def holder_pid(folder: str | os.PathLike) -> int | None:
    """The pid of the process holding ``folder``'s lock, or None when nobody holds it."""
    path = Path(folder) / LOCK_NAME
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def output_file_lock(path: str | os.PathLike, flag: str):
    """``output_lock`` on the folder of an output file, after checking that ``path`` can be a file:
    a folder given as the output fails now, not after the work when the file is written."""
    if Path(path).is_dir():
        raise UserError(f"{flag} {path}: is a folder; expected the path of a file to write")
    return output_lock(Path(path).parent)

