"""Random networks and lively models for tests: the shapes that matter for Lava (skip paths of unequal
latency, multi-tap projections, graded input, decaying currents, biases, negative exponents)."""

from pathlib import Path

import nir
import numpy as np
import pytest

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.executor import execute
from lmu2neuro.core.legendre import impulse_response
from lmu2neuro.core.intnet import IntNetwork, Population, Projection


def _paper_data() -> Path:
    """The NIR paper's single-LIF benchmark, read where the project's shared data lies (beside
    the checkout, as ../shared/data); LMU2NEURO_NIR_PAPER_DATA names another folder."""
    import os

    for candidate in (os.environ.get("LMU2NEURO_NIR_PAPER_DATA"),
                      Path(__file__).resolve().parents[2] / "shared" / "data" / "nir_paper_lif",
                      "/work/shared/data/nir_paper_lif"):
        if candidate and (Path(candidate) / "lif_norse.nir").is_file():
            return Path(candidate)
    return Path("/nonexistent/nir_paper_lif")


PAPER_DATA = _paper_data()
PAPER_SPIKES = [460, 510, 710, 760]  # every platform's spike steps at dt = 1e-4 (NIR paper, Fig. 3)
# a user's clone without the shared data cannot run these; the reason says what to provide
needs_paper_data = pytest.mark.skipif(
    not PAPER_DATA.is_dir(),
    reason="NIR paper benchmark data not found beside the checkout (../shared/data/nir_paper_lif); "
           "set LMU2NEURO_NIR_PAPER_DATA to its folder")


def _pilotnet_data() -> Path:
    """lava-dl's PilotNet LIF with its Loihi 2 recordings, where the project's shared data lies
    (beside the checkout, ../shared/data); LMU2NEURO_PILOTNET_DATA names another folder."""
    import os

    for candidate in (os.environ.get("LMU2NEURO_PILOTNET_DATA"),
                      Path(__file__).resolve().parents[2] / "shared" / "data" / "lava_dl_pilotnet_lif",
                      "/work/shared/data/lava_dl_pilotnet_lif"):
        if candidate and (Path(candidate) / "network.net").is_file():
            return Path(candidate)
    return Path("/nonexistent/lava_dl_pilotnet_lif")


PILOTNET = _pilotnet_data()
needs_pilotnet = pytest.mark.skipif(not PILOTNET.is_dir(), reason=(
    "lava-dl PilotNet LIF data not found beside the checkout (../shared/data/lava_dl_pilotnet_lif); set "
    "LMU2NEURO_PILOTNET_DATA to its folder"))


def random_network(seed: int = 0, n_in: int = 4, long_taps: int = 3) -> IntNetwork:
    rng = np.random.default_rng(seed)

    def w(taps, out, inp, lo=-60, hi=60):
        return rng.integers(lo, hi, (taps, out, inp)) * 2

    pops = [
        Population("a", 6, 4095, 1000, 80, rng.integers(-5, 5, 6)),
        Population("b", 5, 300, 2048, 120, np.zeros(5, dtype=np.int64)),  # current decays
        Population("u", 1, 4095, 2048, 60, np.zeros(1, dtype=np.int64)),
        Population("c", 4, 4095, 500, 100, rng.integers(0, 5, 4), bias_exp=2),
        Population("out", 3, 4095, 0, fx.VTH_MAX, np.zeros(3, dtype=np.int64), readout=True),
    ]
    projs = [
        Projection("in-a", "input", "a", w(3, 6, n_in), 0, {"kind": "conv"}),
        Projection("a-b", "a", "b", w(1, 5, 6, 0, 120), 1, {"kind": "dense"}),
        Projection("a-u", "a", "u", w(1, 1, 6, 0, 100), 0, {"kind": "dense"}),
        Projection("b-c", "b", "c", w(1, 4, 5, -20, 127), 1, {"kind": "dense"}),
        Projection("a-c", "a", "c", w(2, 4, 6, -40, 100), -1, {"kind": "conv"}),  # skip path
        Projection("u-c", "u", "c", w(long_taps, 4, 1, -30, 120), 0, {"kind": "dense"}),  # FIR-like
        Projection("in-c", "input", "c", w(1, 4, n_in), 0, {"kind": "dense"}),  # longest skip
        Projection("c-out", "c", "out", w(1, 3, 4), 0, {"kind": "dense"}),
    ]
    return IntNetwork(n_in, 10.0, pops, projs, "out")


def random_inputs(seed: int, samples: int, steps: int, n_in: int = 4) -> np.ndarray:
    return np.random.default_rng(seed + 100).integers(-20, 40, (samples, steps, n_in))


def lively(model, seed=0, linear_bias=True):
    """Random BN statistics and affine parameters, so folding is exercised and neurons fire."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) * 3 + 1.0)
            mod.bias.data.copy_(torch.rand(n, generator=g) - 0.2)
        elif isinstance(mod, torch.nn.Linear):  # the official init (std 0.02) keeps u silent
            fan_in = mod.weight.shape[1]
            mod.weight.data.copy_((torch.rand(mod.weight.shape, generator=g) * 2 - 1) * 2 / fan_in**0.5)
            if linear_bias:
                mod.bias.data.copy_(torch.rand(mod.bias.shape, generator=g) * 0.2 - 0.1)
    for blk in getattr(model, "blocks", []):
        if hasattr(blk, "u_bn"):  # one neuron drives the whole memory: make it fire, data-dependently
            blk.u_bn.weight.data.fill_(2.0)
            blk.u_bn.bias.data.fill_(1.5)
    return model.eval()


def lif_chain_graph() -> nir.NIRGraph:
    """The smallest useful third-party NIR graph: Input(3) -> Affine -> LIF(2) -> Output."""
    return nir.NIRGraph(
        nodes={
            "x": nir.Input(input_type=np.array([3])),
            "fc": nir.Affine(weight=np.ones((2, 3)), bias=np.zeros(2)),
            "lif": nir.LIF(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
            "y": nir.Output(output_type=np.array([2])),
        },
        edges=[("x", "fc"), ("fc", "lif"), ("lif", "y")],
    )


def as_at_a_terminal() -> None:
    """preexec_fn for a CLI subprocess that a test interrupts: SIGINT as a terminal gives it.

    A test run started in the background (CI, `cmd &`, nohup) inherits SIGINT ignored, and so
    would the CLI, where Ctrl-C then does nothing; a user at a terminal has the default.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_population(x_int, weights, weight_exp, du, dv, vth, bias_mant, bias_exp=0):
    """One LIF population fed by the input through one projection (taps, n, n_in), run by the one
    integer executor: (spikes (B, T, n) bool, voltages (B, T, n) int64)."""
    import torch

    from lmu2neuro.core.executor import execute

    w = np.asarray(weights, dtype=np.int64)
    n, n_in = w.shape[1], w.shape[2]
    net = IntNetwork(input_size=n_in, input_scale=1.0, output="p",
                     populations=[Population("p", n, du, dv, vth, np.asarray(bias_mant, dtype=np.int64), bias_exp)],
                     projections=[Projection("in->p", "input", "p", w, weight_exp)])
    r = execute(net, torch.as_tensor(x_int), record=("p",))
    return r.spikes["p"], r.voltages["p"]


def _even_weights(rng, shape, lo=-100, hi=100):
    return (rng.integers(lo // 2, hi // 2, size=shape) * 2).astype(np.int64)


def every_projection_kind(seed=0, T=12):
    """A small network with every projection kind: conv taps, dense, the LMU FIR, IF and a readout."""
    import torch

    rng = np.random.default_rng(seed)
    d = 6
    h = impulse_response(d, 8.0, T)
    g = rng.normal(size=(5, d))
    mant, exp = fx.quantize_weights(torch.as_tensor((g @ h).T[:, :, None]))
    pops = [
        Population("embed", 7, du=4095, dv=2048, vth=80, bias_mant=rng.integers(-50, 50, 7)),
        Population("u", 1, du=1000, dv=300, vth=40, bias_mant=np.zeros(1, dtype=np.int64)),
        Population("mem", 5, du=4095, dv=1024, vth=3, bias_mant=rng.integers(-20, 20, 5), bias_exp=2),
        Population("integ", 4, du=4095, dv=0, vth=60, bias_mant=rng.integers(-5, 5, 4)),
        Population("readout", 3, du=4095, dv=0, vth=fx.VTH_MAX, bias_mant=rng.integers(-9, 9, 3), readout=True),
    ]
    projs = [
        Projection("embed.w", "input", "embed", _even_weights(rng, (3, 7, 8)), weight_exp=-1, origin={"kind": "conv", "kernel": 3}),
        Projection("u.w", "embed", "u", _even_weights(rng, (1, 1, 7), 0, 200), weight_exp=1, origin={"kind": "dense"}),
        Projection("mem.w", "u", "mem", mant.numpy(), weight_exp=exp,
                   origin={"kind": "lmu_fir", "order": d, "theta": 8.0, "bn_scale": g[:, 0]}),
        Projection("integ.w", "embed", "integ", _even_weights(rng, (1, 4, 7)), origin={"kind": "dense"}),
        Projection("ro.w1", "mem", "readout", _even_weights(rng, (1, 3, 5)), origin={"kind": "dense"}),
        Projection("ro.w2", "integ", "readout", _even_weights(rng, (2, 3, 4)), weight_exp=2, origin={"kind": "dense"}),
        Projection("ro.w3", "embed", "readout", _even_weights(rng, (1, 3, 7)), origin={"kind": "dense"}),
    ]
    return IntNetwork(input_size=8, input_scale=16.0, populations=pops, projections=projs, output="readout",
                      dt=1e-3, meta={"name": "toy"})


def make_traffic(net: IntNetwork, x_int: np.ndarray, labels=None, model_sha256: str = "0" * 64) -> dict:
    """A traffic dict (docs/CONTRACTS.md) from a reference simulation, built as `simulate` does."""
    x = np.asarray(x_int)
    r = execute(net, x)
    samples, steps, _ = x.shape
    nz_in = x != 0
    layers = [{"name": net.input_name, "kind": "input", "neurons": net.input_size, "graded": True,
               "nonzero_inputs": int(nz_in.sum()), "nonzero_inputs_per_step": nz_in.sum(axis=(0, 2)).tolist()}]
    raster = {}
    for p in net.populations:
        s = r.spikes[p.name].numpy()
        entry = {"name": p.name, "kind": "readout" if p.readout else "lif", "neurons": p.size,
                 "spikes": int(s.sum()), "spike_counts": s.sum(axis=(0, 1)).tolist(),
                 "spikes_per_step": s.sum(axis=(0, 2)).tolist()}
        layers.append(entry)
        if not p.readout:
            raster[p.name] = np.argwhere(s[0]).tolist()
    counts = {net.input_name: nz_in.sum(axis=(0, 1))}
    counts.update({p.name: r.spikes[p.name].numpy().sum(axis=(0, 1)) for p in net.populations})
    projections = []
    for pr in net.projections:
        fo = pr.fan_out()
        projections.append({"name": pr.name, "source": pr.source, "target": pr.target, "taps": pr.taps,
                            "graded": net.is_graded(pr), "weights": pr.stored_weights(),
                            "nonzero_weights": int(np.count_nonzero(pr.weights)), "weight_bits": 8,
                            "fan_out": fo.tolist(), "synaptic_events": int(counts[pr.source] @ fo)})
    preds = r.predictions.numpy()
    trace = r.readout_trace.numpy()
    acc = by_frame = None
    if labels is not None:
        labels = np.asarray(labels)
        acc = float((preds == labels).mean())
        by_frame = [float((trace[:, t].argmax(1) == labels).mean()) for t in range(steps)]
    return {"schema": "lmu2neuro.traffic/1", "model": "model.nir", "model_sha256": model_sha256,
            "backend": "reference", "samples": samples, "timesteps": steps, "dt": net.dt,
            "layers": layers, "projections": projections, "predictions": preds.tolist(),
            "labels": None if labels is None else labels.tolist(), "accuracy": acc,
            "accuracy_by_frame": by_frame, "scores": r.scores.tolist(),
            "raster": {"sample": 0, "layers": raster}}


def spiking_mlp(seed=0, sizes=(6, 12, 10, 4)) -> IntNetwork:
    """input -> h1 -> h2 -> readout with sparse random even weights."""
    rng = np.random.default_rng(seed)
    names = ["input", "h1", "h2", "out"]
    pops, projs = [], []
    for i in range(1, len(sizes)):
        n = sizes[i]
        readout = i == len(sizes) - 1
        pops.append(Population(names[i], n, du=4095 if readout else 1024, dv=0 if readout else 512,
                               vth=fx.VTH_MAX if readout else 60, bias_mant=np.zeros(n, np.int64), readout=readout))
        w = rng.integers(-40, 100, size=(1, n, sizes[i - 1])) * 2
        w[rng.random(w.shape) < 0.3] = 0  # zero weights must not count as effective ops
        projs.append(Projection(f"{names[i - 1]}->{names[i]}", names[i - 1], names[i], w))
    return IntNetwork(sizes[0], 1.0, pops, projs, "out")
