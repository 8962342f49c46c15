"""Peak memory of a block of work, Lava's worker processes included, for the benchmarks.

Lava runs its processes in children of this one; their memory is their private pages plus their
share of shared memory (Lava's channels), not their PSS (which would also split this process's own
pages, shared after the fork, and so grow with whatever this process holds).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


def _kib(text: str, key: str) -> int:
    part = text.split(f"\n{key}:", 1) if not text.startswith(f"{key}:") else ["", text[len(key) + 1:]]
    return int(part[1].split()[0]) if len(part) == 2 else 0


def children_bytes() -> int:
    me, total = str(os.getpid()), 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1] != me:
                continue
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (OSError, IndexError):
            continue
        total += sum(_kib(rollup, k) for k in ("Private_Clean", "Private_Dirty", "Pss_Shmem"))  # Pss_Shmem: Linux 5.14 on
    return total * 1024


def own_bytes() -> int:
    return _kib(Path("/proc/self/status").read_text(), "VmRSS") * 1024


class PeakMemory:
    """``with PeakMemory() as m: ...`` -> ``m.peak`` bytes, polled every ``every`` seconds: the
    children's memory, plus this process's RSS unless ``children_only``."""

    def __init__(self, children_only: bool = False, every: float = 0.1):
        self.children_only, self.every = children_only, every

    def _now(self) -> int:
        return children_bytes() + (0 if self.children_only else own_bytes())

    def __enter__(self):
        self.peak, self._stop = self._now(), threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._now())

    def _poll(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._now())
