"""NIR file -> IntNetwork: exact for our own files, quantized at a stated dt for anyone else's.

``read_graph(path)`` opens and checks a .nir file and returns the ``nir.NIRGraph``; every problem
(not HDF5, truncated, not NIR, unknown node type, missing parameter, mismatched shapes) is one
``UserError`` line naming the file, the node and the field. The node types and the fields each must
carry are those of ``converters.nir.nodes.KINDS``.

``read_intnet(path, dt=None, input_scale=None, reset=None, refractory=None)``:
- a file written by ``converters.nir.export`` carries the Loihi integers as metadata
  (``converters.nir.metadata``) and is rebuilt exactly (same arrays, same spikes);
- any other graph is lowered by forward Euler at ``dt`` (``converters.nir.lower``, whose docstring
  states the mapping). ``dt`` defaults to the graph's stated dt, else 1e-4 s, the convention of
  every graph in the NIR paper.
"""

from __future__ import annotations

import math
import os

import numpy as np

from converters.nir.graph import one_line
from converters.nir.lower import lower_graph
from converters.nir.metadata import FORMAT, META_KEY, decode_meta
from converters.nir.nodes import KINDS
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import guards
from lmu2neuro.core.conv import ConvGeometry
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError, Population, Projection

NIR_PAPER_DT = 1e-4


# -- reading and checking the file ------------------------------------------------------------------
def _check_node_group(path, name: str, grp) -> None:
    import h5py

    if "type" not in grp:
        raise UserError(f"{path}: node '{name}': missing field 'type'")
    typ = grp["type"][()]
    typ = typ.decode("utf-8") if isinstance(typ, bytes) else str(typ)
    if typ not in KINDS:
        raise UserError(
            f"{path}: node '{name}': unknown node type '{typ}' (expected one of {', '.join(KINDS)})"
        )
    kind = KINDS[typ]
    for fld in kind.required:
        if fld not in grp:
            raise UserError(f"{path}: node '{name}' ({typ}): missing parameter '{fld}'")
    if kind.role == "graph":
        for sub, sg in grp["nodes"].items():
            if not isinstance(sg, h5py.Group):
                raise UserError(f"{path}: node '{name}.{sub}': expected a group")
            _check_node_group(path, f"{name}.{sub}" if name else sub, sg)
        return
    # neuron parameters are per neuron: every array must have one shape (w_in may be one value for
    # all, nir's default)
    if kind.role == "neuron":
        fields = [f for f in kind.params if f != "w_in" and f in grp]
        ref_f = fields[0]
        ref = np.shape(grp[ref_f][()])
        for f in fields[1:]:
            shp = np.shape(grp[f][()])
            if shp != ref:
                raise UserError(
                    f"{path}: node '{name}' ({typ}): parameter '{f}' has shape {shp}, expected {ref} like '{ref_f}'"
                )
    if typ == "Affine":
        w, b = np.shape(grp["weight"][()]), np.shape(grp["bias"][()])
        if len(w) != 2 or b != (w[0],):
            raise UserError(f"{path}: node '{name}' (Affine): parameter 'bias' has shape {b}, expected ({w[0] if w else '?'},)")
    if typ in ("Linear", "Affine") and np.ndim(grp["weight"][()]) < 2:
        raise UserError(f"{path}: node '{name}' ({typ}): parameter 'weight' must be a matrix")


def _fix_non_square_kernels(graph) -> bool:
    """nir 1.0.8 computes a Conv2d's output with its first kernel size for both dimensions, so a
    non-square kernel (snnTorch's export_to_nir of a Conv2d with a 1 x k kernel) fails nir's own type
    check on a correct graph. Each such node's output type is set from its real kernel (our geometry);
    True if any was. Nested graphs are not descended into (they take the plain check)."""
    import nir

    fixed = False
    for node in graph.nodes.values():
        w = np.shape(getattr(node, "weight", ()))
        if isinstance(node, nir.Conv2d) and node.input_shape is not None and len(w) == 4 and w[2] != w[3]:
            geo = ConvGeometry((int(w[1]), *(int(v) for v in node.input_shape)), tuple(np.broadcast_to(
                node.stride, 2).tolist()), tuple(np.broadcast_to(node.padding, 2).tolist()),
                tuple(np.broadcast_to(node.dilation, 2).tolist()), int(node.groups))
            node.output_type = {"output": np.array(geo.out_shape((1, *w)))}
            fixed = True
    return fixed


def read_graph(path: str | os.PathLike, type_check: bool = True):
    """Open a .nir file and return its ``nir.NIRGraph``; bad files raise a one-line UserError."""
    import h5py
    import nir

    p = guards.require_file(path, "NIR file", "a .nir graph")
    guards.check_file_size(p, "NIR file")
    if not h5py.is_hdf5(p):
        raise UserError(f"{path}: not an HDF5 file (a .nir graph is HDF5, written by nir.write)")
    try:
        # declared sizes, links and nesting first: nothing below reads data the guard has not bounded
        guards.check_hdf5(p)
        with h5py.File(p, "r") as f:
            if "node" not in f or not isinstance(f["node"], h5py.Group):
                raise UserError(f"{path}: an HDF5 file but not a NIR graph: no 'node' group")
            _check_node_group(path, "", f["node"])
    except UserError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: unreadable HDF5 (truncated or corrupt file): {one_line(exc)}") from None
    try:
        try:
            return nir.read(p, type_check=type_check)
        except ValueError as exc:
            if not type_check or "type mismatch" not in str(exc):
                raise
            graph = nir.read(p, type_check=False)
            if not _fix_non_square_kernels(graph):
                raise
            graph.check_types()  # every edge, now with each Conv2d's true output shape
            return graph
    except OSError as exc:
        raise UserError(f"{path}: unreadable HDF5 (truncated or corrupt file): {one_line(exc)}") from None
    except Exception as exc:  # nir raises ValueError/AssertionError/KeyError on malformed graphs
        raise UserError(f"{path}: not a valid NIR graph: {type(exc).__name__}: {one_line(exc)}") from None


def is_ours(graph) -> bool:
    md = getattr(graph, "metadata", None) or {}
    if META_KEY not in md:
        return False
    try:
        return decode_meta(md[META_KEY]).get("format") == FORMAT
    except (ValueError, TypeError, AttributeError):
        return False


# -- our own files: exact ------------------------------------------------------------------------------
def _intnet_from_ours(graph, path) -> IntNetwork:
    gm = decode_meta(graph.metadata[META_KEY])

    def node_meta(name):
        if name not in graph.nodes:
            raise UserError(f"{path}: node '{name}' named in the graph metadata is missing")
        md = graph.nodes[name].metadata or {}
        if META_KEY not in md:
            raise UserError(f"{path}: node '{name}': missing metadata field '{META_KEY}'")
        return decode_meta(md[META_KEY]), md

    pops = []
    for name in gm["populations"]:
        m, md = node_meta(name)
        if "bias_mant" not in md:
            raise UserError(f"{path}: node '{name}': missing metadata field 'bias_mant'")
        shape = m.get("shape")
        pops.append(
            Population(name=name, size=int(np.asarray(md["bias_mant"]).shape[0]), du=int(m["du"]),
                       dv=int(m["dv"]), vth=int(m["vth"]),
                       bias_mant=np.asarray(md["bias_mant"], dtype=np.int64),
                       bias_exp=int(m["bias_exp"]), readout=bool(m["readout"]), meta=m.get("meta") or {},
                       # files written before resets were stated: every population reset to zero
                       reset=str(m.get("reset", "zero")), refractory=_refractory_meta(path, name, m),
                       shape=None if shape is None else tuple(int(v) for v in shape))
        )
    helpers = gm.get("helpers") or {"populations": [], "projections": []}
    projs: list[Projection] = []
    try:  # helper sources (the always-on bias source) come first: nothing feeds them
        pops[:0] = [Population(name=h["name"], size=len(h["bias_mant"]), du=int(h["du"]), dv=int(h["dv"]),
                               vth=int(h["vth"]), bias_mant=np.asarray(h["bias_mant"], dtype=np.int64),
                               bias_exp=int(h["bias_exp"]), meta=h.get("meta") or {}, reset=str(h["reset"]))
                    for h in helpers["populations"]]
        extra = [Projection(name=h["name"], source=h["source"], target=h["target"], weight_exp=int(h["weight_exp"]),
                            weights=np.asarray(h["weights"], dtype=np.int64), origin=h.get("origin") or {})
                 for h in helpers["projections"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path}: graph metadata field 'helpers' is malformed ({type(exc).__name__}: {exc}); "
                        "expected helper populations and projections as this project writes them") from None
    for pm in gm["projections"]:
        mants, origin = [], {}
        for n in pm["nodes"]:
            m, md = node_meta(n)
            if "weight_mant" not in md:
                raise UserError(f"{path}: node '{n}': missing metadata field 'weight_mant'")
            w = np.asarray(md["weight_mant"], dtype=np.int64)
            mants.append(w if m.get("form") == "lmu_integrator" else w[None])
            origin = m.get("origin") or {}
        weights = np.concatenate(mants, axis=0)
        c = pm.get("conv")
        geometry = None if c is None else ConvGeometry(tuple(c["in_shape"]), tuple(c["stride"]), tuple(c["padding"]),
                                                       tuple(c["dilation"]), int(c["groups"]))
        projs.append(Projection(name=pm["name"], source=pm["source"], target=pm["target"], weights=weights,
                                weight_exp=int(pm["weight_exp"]), origin=origin, conv=geometry))
    for h in extra:  # each after its target's own synapses, where the lowering puts it
        at = max((i + 1 for i, q in enumerate(projs) if q.target == h.target), default=len(projs))
        projs.insert(at, h)
    try:
        return IntNetwork(input_size=int(gm["input_size"]), input_scale=float(gm["input_scale"]), populations=pops,
                          projections=projs, output=gm["output"], input_name=gm["input_name"],
                          dt=gm.get("net_dt") or gm.get("dt"), meta=gm.get("net_meta") or {})
    except IntNetworkError as exc:
        raise UserError(f"{path}: metadata does not form a valid integer network: {exc}") from None


def _refractory_meta(path, name: str, m: dict) -> int:
    # files written before the refractory period was stated hold none
    return fx.check_refractory(m.get("refractory", 0), f"{path}: node '{name}': metadata field 'refractory' =")


def refuse_restated(path, net: IntNetwork, reset: str | None = None, refractory: int | None = None) -> None:
    """The one rule for a reset or refractory period given for a file that states its own (ours;
    a netx file's refractory): the same value is accepted, another refused, for the file's integers
    were computed with what it states."""
    stated = sorted({p.reset for p in net.populations if not p.readout})
    if reset is not None and stated and stated != [reset]:
        raise UserError(f"{path}: reset '{reset}' given, but this file states reset '{'/'.join(stated)}' for "
                        "its populations, with which its integers were computed (expected no reset, or the same)")
    held = sorted({p.refractory for p in net.populations if not p.readout})
    if refractory is not None and held and held != [refractory]:
        raise UserError(f"{path}: refractory {refractory} given, but this file states "
                        f"{'/'.join(map(str, held))} steps for its populations (expected no refractory, "
                        "or the same)")


def read_intnet(path: str | os.PathLike, dt: float | None = None, input_scale: float | None = None,
                reset: str | None = None, conv: bool = True, refractory: int | None = None) -> IntNetwork:
    """Read a .nir file as an IntNetwork (exact for our files; forward-Euler quantized at dt otherwise).

    For files written by ``export_nir`` the integers are fixed: the stored dt, input scale and
    each population's reset are used, and a different ``dt`` or ``reset`` is refused. For other
    graphs: ``dt`` defaults to the graph's stated dt, else 1e-4 s; ``input_scale`` maps float
    input -> ``clip(round(x * input_scale), -128, 127)``, default 1 (spike or small-integer
    inputs); ``reset`` ("zero" or "subtract", ``fixed_point.RESETS``) sets what a spike does in
    every spiking population, None = what the file states (NIR can state only "zero"; snnTorch
    writes v_reset = 0 for its subtract reset too). ``refractory``: steps every spiking population
    is held after a spike (``fixed_point.lif_step``), None = what the file states (NIR has no
    field for it: 0 for other tools' graphs; snnTorch's RLeaky with reset_mechanism="zero" needs 1).
    ``conv=False`` expands convolutions into dense matrices (the reference the convolution path is
    tested against).
    """
    reset = fx.check_reset(reset)
    refractory = fx.check_refractory(refractory)
    graph = read_graph(path)
    ours = is_ours(graph)
    try:
        if ours:
            net = _intnet_from_ours(graph, path)
            if dt is not None and not (net.dt and math.isclose(dt, net.dt)):
                raise UserError(f"{path}: dt = {dt} given, but this file carries its own dt = {net.dt} s, for which "
                                "its Loihi integers were computed (expected no dt, or the same)")
            refuse_restated(path, net, reset, refractory)
            return net
        where = f"{path}: dt = {dt}"
        if dt is None:
            md = graph.metadata or {}
            dt = float(md["dt"]) if "dt" in md and np.ndim(md["dt"]) == 0 else NIR_PAPER_DT
            where = f"{path}: graph metadata field 'dt' = {dt}"
        if not (dt > 0 and math.isfinite(dt)):
            raise UserError(f"{where}: expected a positive, finite number of seconds per step")
        return lower_graph(graph, path, float(dt), input_scale, reset=reset, conv=conv, refractory=refractory or 0)
    except UserError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, MemoryError) as exc:
        # The checks above name what they know; a file from elsewhere (or a corrupted one of ours)
        # can still hold values of the wrong kind deep inside, and that is bad input, not a crash.
        what = "lmu2neuro metadata" if ours else "graph parameters"
        raise UserError(f"{path}: malformed {what} ({type(exc).__name__}: {one_line(exc)[:200]}); expected "
                        + ("the metadata `lmu2neuro export` writes" if ours else "numeric NIR parameters of "
                           "consistent shapes")) from None
