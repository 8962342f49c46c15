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
    made = missing_folders(folder, "output folder")
    created = bool(made)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _remove_empty(made)
        raise UserError(f"{folder}: cannot create the output folder ({exc.strerror})") from None
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
            # a run that failed before writing anything leaves no folder behind (nor the parents it
            # made); removed while still locked, so no other run can be holding this lock file
            with contextlib.suppress(OSError):
                path.unlink()
                _remove_empty(made)
        os.close(fd)  # releases the lock


def missing_folders(folder: Path, what: str) -> list[Path]:
    """The folders ``folder.mkdir(parents=True)`` would create, deepest first; UserError when a part
    of the path exists but is not a folder (a file, FIFO or device), before anything is created."""
    made: list[Path] = []
    p = Path(os.path.abspath(folder))
    while not p.exists():
        if p.is_symlink():  # a dangling link: mkdir would fail behind it
            raise UserError(f"{folder}: '{p}' is a broken symbolic link; expected a path to a folder ({what})")
        made.append(p)
        if p.parent == p:
            break
        p = p.parent
    if not p.is_dir():
        raise UserError(f"{folder}: '{p}' is not a folder; expected a path to a folder ({what})")
    return made


def _remove_empty(folders: list[Path]) -> None:
    for d in folders:  # deepest first; a folder something else wrote into stays
        try:
            d.rmdir()
        except OSError:
            return


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Before any work: ``path`` can be written as a file. Refused (one line naming ``flag``): a
    folder, an existing FIFO or device (the atomic rename would replace it), a path under an
    existing file, and a place where no file can be created (read-only, /proc, /sys: probed by
    creating and removing an empty temporary file in the nearest existing folder)."""
    import tempfile

    p = Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {path}: is a folder; expected the path of a file to write")
    if p.exists() and not p.is_file():
        raise UserError(f"{flag} {path}: is not a regular file (a device or pipe); expected the path of a file to write")
    try:
        made = missing_folders(p.parent, f"the folder of {flag}")
    except UserError as exc:
        raise UserError(f"{flag} {exc}") from None
    existing = Path(os.path.abspath(p.parent))
    for _ in made:
        existing = existing.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".lmu2neuro-probe.", dir=existing)
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot create files in {existing} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    return p


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
    check_output_file(path, flag)
    return output_lock(Path(path).parent)

