"""Checkpoint -> deployed integer network -> a NIR or netx file."""

from __future__ import annotations

import os

from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError

FORMATS = ("nir", "netx", "sanafe")


def network_from_checkpoint(path: str | os.PathLike) -> IntNetwork:
    """Load a checkpoint written by `lmu2neuro train` (weights_only) and lower it to Loihi integers.

    A checkpoint of the user's own model (`train --model FILE.py:FUNCTION`) imports that file again
    (training.user_model.rebuild); a changed file (sha256) is a UserError naming it."""
    from lmu2neuro.deploy.lowering import lower
    from lmu2neuro.training.checkpoint import model_from_checkpoint

    model, _ = model_from_checkpoint(path)
    try:
        return lower(model)
    except IntNetworkError as exc:
        # a weight, bias or threshold beyond Loihi's ranges: refused with the layer, value and
        # limit, never clipped or wrapped into a network that computes something else
        raise UserError(f"{path}: cannot be deployed in Loihi's fixed-point ranges: {exc}") from None
    except UserError as exc:  # e.g. the ANN LMUFormer, which has no spiking form to lower
        raise UserError(f"{path}: {exc}") from None


def export(checkpoint: str | os.PathLike, output: str | os.PathLike, format: str = "nir",
           dt: float | None = None) -> IntNetwork:
    """Write a trained checkpoint's deployed network to `output` as NIR (any NIR tool reads it; the
    exact integers ride along as metadata), lava-dl netx HDF5 or a SANA-FE network YAML; returns the
    IntNetwork written."""
    if format not in FORMATS:
        raise UserError(f"format {format!r}: expected one of {', '.join(FORMATS)}")
    net = network_from_checkpoint(checkpoint)
    if format == "nir":
        from converters.nir.export import export_nir

        export_nir(net, output, dt=dt)
    elif format == "netx":
        from converters.netx.export import export_netx

        export_netx(net, output)
    else:
        # laid out on Loihi 1 cores as lmu2neuro's report maps it, so SANA-FE's figures compare with ours
        from converters.sanafe.export import export_sanafe
        from lmu2neuro.analysis.chip_mapping import map_to_chip
        from lmu2neuro.analysis.profiles import load_profile

        prof = load_profile("loihi1")
        export_sanafe(net, output, core_of=map_to_chip(net, prof).core_of,
                      cores_per_tile=int(prof.chip.cores_per_tile.value))
    return net
