"""The one way the pipeline reads a network file: NIR or lava-dl netx, told apart by content.

``read_network_file(path, dt=None, input_scale=None, reset=None) -> IntNetwork`` is defined in
``converters.netx.read``, so that ``lmu2neuro.reports`` (below the pipeline) can call it under the
import rule. Both formats are HDF5; a netx file has a top-level ``layer`` group and no NIR ``node``
group (``converters.netx.read.is_netx``); anything else goes to the NIR reader, whose errors then
say what is wrong with it. ``dt``, ``input_scale`` and ``reset`` pass through to the reader.
"""

from __future__ import annotations

import os

# the reader itself sits with the converters, where the report (below the pipeline) can use it too
from converters.netx.read import is_netx, read_network_file, summarize_netx  # noqa: F401
from lmu2neuro.core import guards


def file_kind(path: str | os.PathLike) -> str:
    """``"netx"`` or ``"nir"`` (the NIR reader also answers for files that are neither)."""
    guards.require_file(path, "network file", "a .nir graph or a lava-dl netx file")
    return "netx" if is_netx(path) else "nir"


def exact_integers(path: str | os.PathLike) -> bool:
    """True when the file fixes its Loihi integers (our NIR files, and every netx file), so there is
    no float graph to quantize, calibrate or compare against."""
    if file_kind(path) == "netx":
        return True
    from converters.nir.read import is_ours, read_graph

    return is_ours(read_graph(path))
