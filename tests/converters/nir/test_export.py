"""IntNetwork -> NIR: standard nodes that nir.read type-checks, and an exact round trip."""

import json

import nir
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from converters.nir.export import export_nir
from converters.nir.metadata import META_KEY
from lmu2neuro.core.legendre import impulse_response as lmu_impulse_response
from lmu2neuro.core.legendre import lmu_state_space as lmu_matrices
from converters.nir.read import read_intnet
from converters.nir.float_executor import load
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.core.executor import execute
from netgen import every_projection_kind as make_net


def _even(rng, shape, lo=-100, hi=100):
    return (rng.integers(lo // 2, hi // 2, size=shape) * 2).astype(np.int64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = make_net()
    path = tmp_path_factory.mktemp("nir") / "toy.nir"
    export_nir(net, path, dt=2e-3)
    return net, path


def test_file_is_standard_nir_with_expected_nodes(exported):
    net, path = exported
    g = nir.read(path)  # type-checks every edge
    types = {k: type(v).__name__ for k, v in g.nodes.items()}
    assert types["embed"] == "CubaLIF" and types["u"] == "CubaLIF" and types["integ"] == "IF"
    assert types["readout"] == "I"
    assert [types[f"embed.w.tap{j}"] for j in range(3)] == ["Affine", "Linear", "Linear"]  # tap 0 carries the bias
    assert types["embed.w.delay1"] == types["embed.w.delay2"] == "Delay"
    np.testing.assert_allclose(g.nodes["embed.w.delay2"].delay, 2 * 2e-3)
    # the LMU memory as an integrator with recurrent A/theta and input B/theta
    a, b = lmu_matrices(6)
    assert types["mem.w.m"] == "I"
    np.testing.assert_allclose(g.nodes["mem.w.A"].weight, a / 8.0)
    np.testing.assert_allclose(g.nodes["mem.w.B"].weight, b / 8.0)
    assert ("mem.w.A", "mem.w.m") in g.edges and ("mem.w.m", "mem.w.A") in g.edges
    assert ("mem.w.bn", "mem") in g.edges
    gm = json.loads(g.metadata[META_KEY])
    assert gm["dt"] == 2e-3 and gm["reset"] == "zero" and gm["input_scale"] == 16.0
    assert gm["populations"] == [p.name for p in net.populations]


def test_continuous_constants_follow_the_integers(exported):
    net, path = exported
    g, dt = nir.read(path), 2e-3
    u = g.nodes["u"]  # du = 1000, dv = 300, vth = 40, no bias
    np.testing.assert_allclose(u.tau_syn, dt * 4096 / 1001)
    np.testing.assert_allclose(u.tau_mem, dt * 4096 / 300)
    np.testing.assert_allclose(u.w_in, u.tau_syn / dt)
    np.testing.assert_allclose(u.r, u.tau_mem / dt)
    np.testing.assert_array_equal(u.v_threshold, [40.0])
    np.testing.assert_array_equal(u.v_reset, [0.0])
    mem = g.nodes["mem"]  # du = 4095: bias on the incoming Affine (first synapse), v_leak 0
    np.testing.assert_array_equal(mem.v_leak, 0)
    # the lmu "bn" node is the first synapse into mem
    assert type(g.nodes["mem.w.bn"]).__name__ == "Affine"
    np.testing.assert_allclose(g.nodes["mem.w.bn"].bias, net.population("mem").bias / 64)
    # weights leaving the input absorb input_scale; float weight = mantissa * 2**exp
    np.testing.assert_allclose(g.nodes["embed.w.tap1"].weight, net.projections[0].weights[1] * 0.5 * 16.0)


def test_lmu_integrator_matches_the_fir(exported):
    net, path = exported
    g = nir.read(path)
    meta = json.loads(g.nodes["mem.w.bn"].metadata[META_KEY])
    # G @ H reproduces the quantized FIR up to its rounding (8-bit mantissas)
    assert meta["fit_relative_error"] < 0.02
    h = lmu_impulse_response(6, 8.0, 12)
    fir = net.projections[2].weights[:, :, 0] * 2.0 ** net.projections[2].weight_exp
    assert np.abs(h.T @ np.asarray(g.nodes["mem.w.bn"].weight).T - fir).max() <= 2 * 2.0 ** net.projections[2].weight_exp


def test_round_trip_is_exact(exported):
    net, path = exported
    back = read_intnet(path)
    assert [p.name for p in back.populations] == [p.name for p in net.populations]
    for a, b in zip(net.populations, back.populations):
        assert (a.du, a.dv, a.vth, a.bias_exp, a.readout) == (b.du, b.dv, b.vth, b.bias_exp, b.readout)
        np.testing.assert_array_equal(a.bias_mant, b.bias_mant)
    for a, b in zip(net.projections, back.projections):
        assert (a.name, a.source, a.target, a.weight_exp) == (b.name, b.source, b.target, b.weight_exp)
        np.testing.assert_array_equal(a.weights, b.weights)
        assert a.origin["kind"] == b.origin["kind"]
    assert back.input_scale == net.input_scale and back.dt == net.dt and back.meta == net.meta
    x = np.random.default_rng(1).integers(-128, 128, (4, 12, 8))
    r1, r2 = execute(net, x), execute(back, x)
    assert sum(int(s.sum()) for s in r1.spikes.values()) > 50  # the comparison sees real activity
    for k in r1.spikes:
        assert torch.equal(r1.spikes[k], r2.spikes[k]), k
    assert torch.equal(r1.readout_trace, r2.readout_trace)


def test_graph_states_the_integer_dynamics_where_they_are_exact(tmp_path):
    """IF (dv = 0) and the integrating readout have no truncation: Euler on the NIR graph = the integers."""
    rng = np.random.default_rng(3)
    net = IntNetwork(
        input_size=4, input_scale=8.0,
        populations=[
            Population("h", 5, du=4095, dv=0, vth=50, bias_mant=rng.integers(-3, 4, 5), bias_exp=3),
            Population("out", 3, du=4095, dv=0, vth=fx.VTH_MAX, bias_mant=rng.integers(-9, 9, 3), readout=True),
        ],
        projections=[
            Projection("h.w", "input", "h", _even(rng, (2, 5, 4)), weight_exp=-2),
            Projection("out.w", "h", "out", _even(rng, (3, 3, 5)), weight_exp=1),
        ],
        output="out",
    )
    path = tmp_path / "if.nir"
    export_nir(net, path, dt=1e-3)
    x = rng.integers(-128, 128, (3, 20, 4))
    ref = execute(net, x)
    model = load(path, dt=1e-3)
    _, rec = model(torch.as_tensor(x / 8.0), record=True)
    assert int(ref.spikes["h"].sum()) > 5
    assert torch.equal(rec["h"]["out"].bool(), ref.spikes["h"])
    torch.testing.assert_close(rec["out"]["v"] * 64, ref.readout_trace.double(), rtol=0, atol=1e-6)


def test_checkpoint_to_nir_through_the_cli_equals_integer_forward(tmp_path, capsys):
    from lmu2neuro.training.checkpoint import save_checkpoint
    from lmu2neuro.cli import main
    from lmu2neuro.deploy.lowering import integer_forward
    from lmu2neuro.models.config import ModelConfig
    from lmu2neuro.models.registry import build_model

    torch.manual_seed(0)
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=True)
    model = build_model(cfg).eval()
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, cfg.to_dict())
    out = tmp_path / "m.nir"
    assert main(["export", str(ckpt), "-o", str(out), "--dt", "0.01"]) == 0
    assert "wrote" in capsys.readouterr().out
    g = nir.read(out)
    assert json.loads(g.metadata[META_KEY])["dt"] == 0.01
    assert type(g.nodes["block0.m.memory.m"]).__name__ == "I"  # the LMU memory in standard NIR
    back = read_intnet(out)
    x = torch.randn(3, 20, 8, generator=torch.Generator().manual_seed(1))
    ref = integer_forward(model, x)
    sim = execute(back, back.quantize_input(x.numpy()))
    assert sum(int(s.sum()) for s in sim.spikes.values()) > 0
    assert torch.equal(ref["scores"], sim.scores)
    for name, s in ref["spikes"].items():
        assert torch.equal(s, sim.spikes[name]), name
    # netx cannot hold this model: the CLI names the parts and exits non-zero
    assert main(["export", str(ckpt), "-o", str(tmp_path / "m.net"), "--format", "netx"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "delay taps" in err and "block0.m.memory" in err and err.count("\n") == 1
    assert not (tmp_path / "m.net").exists()


def test_cli_export_missing_checkpoint(tmp_path, capsys):
    from lmu2neuro.cli import main

    assert main(["export", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.nir")]) == 2
    assert "none.pt: checkpoint file not found" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "x.nir")]) == 2
    assert "is a folder, not a checkpoint file" in capsys.readouterr().err


def test_lmu_statement_run_exactly_is_the_trained_zoh_memory(exported):
    """The I + Linear(A/theta) loop stepped by its ZOH solution equals m_t = sum_k H[:, k] u_{t-k}."""
    net, path = exported
    x = np.random.default_rng(1).integers(-128, 128, (2, 12, 8)) / 16.0
    _, rec = load(path, dt=2e-3, method="exact")(torch.as_tensor(x), record=True)
    u, mem = rec["u"]["out"][..., 0], rec["mem.w.m"]["v"]
    assert u.sum() >= 5
    h = torch.as_tensor(lmu_impulse_response(6, 8.0, 12))
    fir = torch.stack([sum(h[:, k] * u[:, t - k, None] for k in range(t + 1)) for t in range(12)], dim=1)
    torch.testing.assert_close(mem, fir, rtol=0, atol=1e-12)
    # forward Euler on A/theta at the model's step is not the trained memory (|1 + eig| > 1)
    _, rec_e = load(path, dt=2e-3, method="euler")(torch.as_tensor(x), record=True)
    u_e, mem_e = rec_e["u"]["out"][..., 0], rec_e["mem.w.m"]["v"]
    fir_e = torch.stack([sum(h[:, k] * u_e[:, t - k, None] for k in range(t + 1)) for t in range(12)], dim=1)
    assert (mem_e - fir_e).abs().max() > 0.1 * fir_e.abs().max()


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), layers=st.integers(1, 3), dt=st.sampled_from([1e-4, 1e-3, 0.01]))
def test_round_trip_property(tmp_path_factory, seed, layers, dt):
    """Random chains with skip connections, taps, both exponent signs and every neuron kind."""
    rng = np.random.default_rng(seed)
    sizes = [int(rng.integers(1, 6)) for _ in range(layers)]
    pops, projs, names = [], [], ["input"]
    for i, n in enumerate(sizes):
        du, dv = [(4095, 0), (4095, int(rng.integers(1, 4096))), (int(rng.integers(0, 4095)), int(rng.integers(1, 4096)))][
            int(rng.integers(0, 3))]
        pops.append(Population(f"p{i}", n, du=du, dv=dv, vth=int(rng.integers(0, fx.VTH_MAX)),
                               bias_mant=rng.integers(-4096, 4096, n), bias_exp=int(rng.integers(0, 8))))
        for j, src in enumerate(names):
            if j == len(names) - 1 or rng.random() < 0.5:
                n_src = 4 if src == "input" else sizes[j - 1]
                projs.append(Projection(f"p{i}.w{j}", src, f"p{i}", _even(rng, (int(rng.integers(1, 4)), n, n_src), -256, 256),
                                        weight_exp=int(rng.integers(-8, 8)), origin={"kind": "dense"}))
        names.append(f"p{i}")
    pops.append(Population("ro", 2, du=4095, dv=0, vth=fx.VTH_MAX, bias_mant=rng.integers(-9, 9, 2), readout=True))
    projs.append(Projection("ro.w", names[-1], "ro", _even(rng, (1, 2, sizes[-1])), origin={"kind": "dense"}))
    net = IntNetwork(input_size=4, input_scale=float(rng.uniform(0.5, 50)), populations=pops, projections=projs, output="ro")
    path = tmp_path_factory.mktemp("prop") / "n.nir"
    export_nir(net, path, dt=dt)
    back = read_intnet(path)
    for a, b in zip(net.projections, back.projections):
        np.testing.assert_array_equal(a.weights, b.weights)
        assert (a.name, a.source, a.target, a.weight_exp) == (b.name, b.source, b.target, b.weight_exp)
    for a, b in zip(net.populations, back.populations):
        assert (a.name, a.du, a.dv, a.vth, a.bias_exp, a.readout) == (b.name, b.du, b.dv, b.vth, b.bias_exp, b.readout)
        np.testing.assert_array_equal(a.bias_mant, b.bias_mant)
    assert back.input_scale == net.input_scale


def test_export_of_files_that_are_not_spiking_checkpoints_names_them(tmp_path, capsys):
    from lmu2neuro.training.checkpoint import save_checkpoint
    from lmu2neuro.cli import main
    from lmu2neuro.models.config import ModelConfig
    from lmu2neuro.models.registry import build_model

    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=False)
    save_checkpoint(tmp_path / "ann.pt", build_model(cfg), cfg.to_dict())
    (tmp_path / "m.json").write_text("{}")
    for name, message in [("ann.pt", "ann.pt: model config: only the spiking LMUFormer"),
                          ("m.json", "m.json: not a torch checkpoint file, a JSON file")]:
        assert main(["export", str(tmp_path / name), "-o", str(tmp_path / "x.nir")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "safety" not in err
    assert not (tmp_path / "x.nir").exists()
