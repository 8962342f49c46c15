"""What the network-file fuzz tests (NIR and netx) share.

Every mutated file gets one check (`FileCheck.run`): `lmu2neuro inspect` (the CLI's main,
in-process) returns 0, or 2 with exactly one line `error: ...` naming the file; the reader
returns an IntNetwork or raises a one-line UserError naming the file. Examples are derandomized
(the same files every run) unless LMU2NEURO_FUZZ_SCALE asks for a longer soak of fresh ones.
"""

import contextlib
import io
import os
import resource
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import h5py
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from lmu2neuro.cli import main
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork

SCALE = int(os.environ.get("LMU2NEURO_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=60 * SCALE, deadline=timedelta(seconds=20), derandomize=SCALE == 1, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
FLIPS = st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=12)


class FileCheck:
    """The check of one file format's reader; counts what it tried and the module's memory growth."""

    def __init__(self, reader, suffix: str):
        self.reader, self.suffix = reader, suffix
        self.counts = {"files": 0, "ok": 0, "refused": 0}
        self._start_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @contextlib.contextmanager
    def scratch(self, base: Path):
        d = tempfile.mkdtemp(prefix="fuzz-")
        try:
            p = Path(d) / f"m{self.suffix}"
            shutil.copyfile(base, p)
            yield p
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def run(self, path: Path) -> int:
        """inspect through the CLI and the reader: 0 or a one-line UserError; returns the CLI's status."""
        self.counts["files"] += 1
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(["inspect", str(path)])  # an exception escaping here is a traceback for the user
        text = err.getvalue()
        assert rc in (0, 2), (rc, text)
        if rc == 2:
            assert text.startswith("error: ") and text.count("\n") == 1, text
            assert str(path) in text and "Traceback" not in text, text
            self.counts["refused"] += 1
        else:
            assert text == "", text
            self.counts["ok"] += 1
        try:
            net = self.reader(path)
        except UserError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
        else:
            assert isinstance(net, IntNetwork)
        return rc

    def truncated(self, base: Path, frac: float) -> int:
        data = base.read_bytes()
        with self.scratch(base) as p:
            p.write_bytes(data[: int(frac * len(data))])
            return self.run(p)

    def bit_flipped(self, base: Path, flips) -> int:
        data = bytearray(base.read_bytes())
        # half the flips land in the first 4 KiB: the superblock and object headers, where they bite
        for k, (pos, bit) in enumerate(flips):
            span = min(len(data), 4096) if k % 2 == 0 else len(data)
            data[int(pos * span)] ^= 1 << bit
        with self.scratch(base) as p:
            p.write_bytes(bytes(data))
            return self.run(p)

    def assert_bounded(self, at_least: int, limit_mib: float) -> None:
        """Files were both accepted and refused, and the module's peak memory grew by less than the limit."""
        print(f"fuzzed files: {self.counts}")
        c = self.counts
        assert c["files"] >= at_least and c["refused"] > 0 and c["ok"] > 0, c
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._start_rss_kb) / 1024
        assert grown_mib < limit_mib, f"peak memory grew by {grown_mib:.0f} MiB while reading fuzzed files"


def datasets(path: Path) -> list[str]:
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def groups(path: Path) -> list[str]:
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Group) else None)
    return sorted(names)


def replace(f, name, **kw):
    del f[name]
    f.create_dataset(name, **kw)


# -- the other input surfaces: a whole CLI command per input -----------------------------------------
TEXT_FUZZ = settings(FUZZ, deadline=timedelta(seconds=30))


class CliCheck:
    """One CLI run per fuzzed input (the CLI's main, in-process): exit 0, or 2 with exactly one line
    ``error: ...`` on stderr that names the input; a failing run leaves none of its outputs and no
    folder it created. Counts what it tried and the module's peak memory growth."""

    def __init__(self):
        self.counts = {"inputs": 0, "ok": 0, "refused": 0}
        self._start_rss_kb = None  # taken at the first input: modules are imported long before they run

    def run(self, argv: list[str], names: str, outputs=(), scratch: Path | None = None) -> int:
        """``names``: text the error line must contain (the input's path); ``outputs``: paths a failing
        run must not leave; ``scratch``: a folder whose entries a failing run must not change."""
        if self._start_rss_kb is None:
            self._start_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.counts["inputs"] += 1
        before = sorted(p.name for p in scratch.iterdir()) if scratch is not None else None
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in argv])  # an exception escaping here is a traceback for the user
        text = err.getvalue()
        assert rc in (0, 2), (rc, text[-2000:])
        if rc == 2:
            assert text.startswith("error: ") and text.count("\n") == 1, text[-2000:]
            assert names in text and "Traceback" not in text, text
            assert len(text) < 2000, f"an error line of {len(text)} characters"
            for p in outputs:
                assert not Path(p).exists(), f"a failing run left {p}"
            if before is not None:
                assert sorted(p.name for p in scratch.iterdir()) == before, "a failing run changed its folder"
            self.counts["refused"] += 1
        else:
            self.counts["ok"] += 1
        return rc

    def assert_bounded(self, at_least: int, limit_mib: float) -> None:
        print(f"fuzzed inputs: {self.counts}")
        c = self.counts
        assert c["inputs"] >= at_least and c["refused"] > 0 and c["ok"] > 0, c
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._start_rss_kb) / 1024
        assert grown_mib < limit_mib, f"peak memory grew by {grown_mib:.0f} MiB on fuzzed inputs"


def special_file(kind: str, where: Path) -> Path:
    """A path that is not a regular file: a folder, a FIFO (a reader would block on it) or a device."""
    if kind == "folder":
        where.mkdir()
        return where
    if kind == "fifo":
        os.mkfifo(where)
        return where
    return Path("/dev/zero")  # endless: a reader without a size check never returns
