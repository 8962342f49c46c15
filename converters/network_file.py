"""The one reader of any network file: a NIR graph or a lava-dl netx file, told apart by content.

Both formats are HDF5; a netx file has a top-level ``layer`` group and no NIR ``node`` group
(``converters.netx.read.is_netx``). Anything else goes to the NIR reader, whose errors then say what
is wrong with it. ``simulate``, ``report`` and ``lmu2neuro.read_network`` read through here, and
``inspect`` asks it which kind a file is (it sits with the converters so that the report, below the
pipeline, can use it).
"""

from __future__ import annotations

import os

from converters.netx.read import is_netx, read_netx
from converters.nir.read import is_ours, read_graph, read_intnet, refuse_restated
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import guards
from lmu2neuro.core.intnet import IntNetwork


def file_kind(path: str | os.PathLike) -> str:
    """``"netx"`` or ``"nir"`` (the NIR reader also answers for files that are neither)."""
    guards.require_file(path, "network file", "a .nir graph or a lava-dl netx file")
    return "netx" if is_netx(path) else "nir"


def exact_integers(path: str | os.PathLike) -> bool:
    """True when the file fixes its Loihi integers (our NIR files, and every netx file), so there is
    no float graph to quantize, calibrate or compare against."""
    return file_kind(path) == "netx" or is_ours(read_graph(path))


def read_network_file(path: str | os.PathLike, dt: float | None = None, input_scale: float | None = None,
                      reset: str | None = None, refractory: int | None = None) -> IntNetwork:
    """Any network file as an ``IntNetwork``: netx exactly (``read_netx``), anything else as
    ``converters.nir.read.read_intnet`` reads it. ``dt``, ``input_scale``, ``reset`` and
    ``refractory`` pass through. A netx file states both (lava-dl's CUBA neuron resets to zero; each
    layer's refractory period is its neuron/refDelay): the same value is accepted, another refused,
    as for our NIR files."""
    if file_kind(path) == "netx":
        reset = fx.check_reset(reset)
        refractory = fx.check_refractory(refractory)
        net = read_netx(path, dt=dt, input_scale=input_scale)
        refuse_restated(path, net, reset=reset, refractory=refractory)
        return net
    return read_intnet(path, dt=dt, input_scale=input_scale, reset=reset, refractory=refractory)
