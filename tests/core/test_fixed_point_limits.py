"""Values beyond Loihi's fixed-point ranges are refused or reported by layer, value and limit.

- export: a trained model whose folded weight or bias no threshold mantissa can hold is refused
  (CLI exit 2, one line), and no file is written;
- import of a third-party graph: the same, by node, instead of clipping the weights;
- simulation: the 24-bit synaptic current wraps in Lava (and on Loihi) without a word; the
  simulate command counts it per layer, independently of how it was computed here, and says so;
  a readout voltage that reaches the 24-bit limit (where Loihi clips it) is reported too.
"""

import json

import nir
import numpy as np
import pytest
import torch

from converters.nir.export import export_nir
from converters.nir.read import read_intnet
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.training.checkpoint import save_checkpoint
from lmu2neuro.cli import main
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.models.config import ModelConfig
from lmu2neuro.models.registry import build_model


def _checkpoint(path, scale_key=None, factor=1.0):
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=True, dim=8,
                                  memory_order=4, embed_convs=1, mlp_ratio=1)
    torch.manual_seed(0)
    model = build_model(cfg)
    if scale_key:
        sd = model.state_dict()
        sd[scale_key] = torch.full_like(sd[scale_key], factor)
        model.load_state_dict(sd)
    save_checkpoint(path, model, cfg.to_dict(), dataset={"name": "digits", "options": {}}, epoch=1)
    return path


@pytest.mark.parametrize("key, factor, pattern", [
    ("embed_bns.0.weight", 1e9, r"projection 'embed0\.conv0': folded weight of [\d.e+]+ thresholds per input unit "
                                r"does not fit the weight limit 32512"),
    ("embed_bns.0.bias", 1e9, r"population 'embed0' .*folded bias of [\d.e+]+ thresholds per step does not fit the "
                              r"bias limit 524160"),
])
def test_export_refuses_values_beyond_loihi_ranges(tmp_path, capsys, key, factor, pattern):
    good = _checkpoint(tmp_path / "good.pt")
    assert main(["export", str(good), "-o", str(tmp_path / "good.nir")]) == 0
    capsys.readouterr()
    bad = _checkpoint(tmp_path / "bad.pt", key, factor)
    out = tmp_path / "bad.nir"
    assert main(["export", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert str(bad) in err and "fixed-point ranges" in err
    assert __import__("re").search(pattern, err), err
    assert not out.exists() and not list(tmp_path.glob(".bad.nir*"))


def _lif_graph(weight: float, bias: float = 0.0) -> nir.NIRGraph:
    return nir.NIRGraph(
        nodes={
            "x": nir.Input(input_type=np.array([2])),
            "fc": nir.Affine(weight=np.array([[weight, 0.5], [0.25, -0.5]]), bias=np.array([bias, 0.0])),
            "lif": nir.LIF(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
            "y": nir.Output(output_type=np.array([2])),
        },
        edges=[("x", "fc"), ("fc", "lif"), ("lif", "y")],
    )


def test_thirdparty_values_beyond_range_are_named_not_clipped(tmp_path):
    ok = tmp_path / "ok.nir"
    nir.write(ok, _lif_graph(1.0))
    assert read_intnet(ok).population("lif").vth >= 1
    heavy = tmp_path / "heavy.nir"
    nir.write(heavy, _lif_graph(1e12))  # 1e11 thresholds per input spike at dt / tau = 0.1
    with pytest.raises(UserError, match=r"heavy.nir: node 'lif': a synaptic weight of 1e\+11 thresholds per input "
                                        r"unit exceeds Loihi's weight limit 32512"):
        read_intnet(heavy)
    biased = tmp_path / "biased.nir"
    nir.write(biased, _lif_graph(1.0, bias=1e9))
    with pytest.raises(UserError, match=r"biased.nir: node 'lif': a bias of [\d.e+]+ thresholds per step exceeds "
                                        r"Loihi's bias limit"):
        read_intnet(biased)


# -- simulation: the 24-bit current wraps -------------------------------------------------------------
W_BIG = 254  # the largest even mantissa, at the largest exponent


def _wrapping_net() -> IntNetwork:
    pops = [
        # du = 4095 clears u every step, so u_t = a_t << 6 exactly: whether it wraps is known per step
        Population("big", 2, 4095, 2048, 1000, np.zeros(2, dtype=np.int64)),
        Population("out", 2, 4095, 0, fx.VTH_MAX, np.zeros(2, dtype=np.int64), readout=True),
    ]
    w_in = np.array([[[W_BIG, W_BIG], [2, 2]]])  # neuron 0 of 'big' wraps on large inputs, neuron 1 never
    projs = [Projection("in-big", "input", "big", w_in, 7, {"kind": "dense"}),
             Projection("big-out", "big", "out", np.array([[[2, 0], [0, 2]]]), 0, {"kind": "dense"})]
    return IntNetwork(2, 1.0, pops, projs, "out")


def _expected_wraps(net: IntNetwork, x_int: np.ndarray) -> int:
    proj = net.projections[0]
    a = (x_int.astype(np.int64) @ proj.weights[0].T) << proj.weight_exp  # (samples, T, 2)
    u = a << fx.ACT_SHIFT
    return int(np.count_nonzero((u > fx.STATE_MAX) | (u <= -fx.STATE_MAX)))


def _simulate(tmp_path, capsys, backend):
    net = _wrapping_net()
    model = tmp_path / "wrap.nir"
    export_nir(net, model)
    rng = np.random.default_rng(0)
    x = rng.integers(-127, 128, (3, 8, 2)).astype(np.float64)
    x[:, ::3] = rng.integers(-3, 4, (3, 3, 2))  # small inputs: no wrap on these steps
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "traffic.json"
    rc = main(["simulate", str(model), "--input", str(tmp_path / "x.npy"), "--backend", backend, "-o", str(out)])
    cap = capsys.readouterr()
    expected = _expected_wraps(net, net.quantize_input(x))
    assert 0 < expected < x.shape[0] * x.shape[1]  # some steps wrap, some do not
    return rc, cap.err, json.loads(out.read_text()), expected


def test_reference_reports_wrapped_current_by_layer_and_limit(tmp_path, capsys):
    rc, err, traffic, expected = _simulate(tmp_path, capsys, "reference")
    assert rc == 0
    layer = next(l for l in traffic["layers"] if l["name"] == "big")
    assert layer["wrapped_current"] == expected
    line = next(l for l in err.splitlines() if "wrapped" in l)
    assert f"layer 'big'" in line and f"{expected} neuron-steps" in line
    assert "8388608" in line or "2**23" in line, line  # the limit is named
    assert "'out'" not in err.replace("layer 'big'", "")  # nothing else is reported


@pytest.mark.lava
def test_lava_wraps_the_current_the_same_way_and_it_is_reported(tmp_path, capsys):
    rc, err, traffic, expected = _simulate(tmp_path, capsys, "both")
    assert rc == 0, err
    assert traffic["agreement"]["identical_spikes"] == 1.0  # Lava wrapped exactly where the reference did
    layer = next(l for l in traffic["layers"] if l["name"] == "big")
    assert layer["wrapped_current"] == expected  # counted inside the Lava graph
    assert f"layer 'big': the 24-bit synaptic current wrapped in {expected} neuron-steps" in err


def test_readout_voltage_out_of_range_is_reported(tmp_path, capsys):
    # A readout integrates (dv = 0) and is meant never to fire; 127 * 254 * 2**2 per step (below the
    # current's limit) takes its voltage past vth << 6 = 8388544 on the second step, where Loihi (and
    # Lava) fires it and resets it to 0; downwards the voltage is clipped at -(2**23 - 1). Either
    # way the score is no longer the model's, and the simulate command must say so.
    pops = [Population("out", 1, 4095, 0, fx.VTH_MAX, np.zeros(1, dtype=np.int64), readout=True)]
    net = IntNetwork(1, 1.0, pops, [Projection("in-out", "input", "out", np.array([[[254]]]), 2, {"kind": "dense"})],
                     "out")
    model = tmp_path / "sat.nir"
    export_nir(net, model)
    x = np.full((3, 4, 1), 127.0)
    x[1] = 1.0  # this sample stays far from the limits
    x[2] = -127.0
    np.save(tmp_path / "x.npy", x)
    rc = main(["simulate", str(model), "--input", str(tmp_path / "x.npy"), "--backend", "reference",
               "-o", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert rc == 0
    step = 254 * 4 * 64
    scores = json.loads((tmp_path / "t.json").read_text())["scores"]
    assert scores == [[0], [4 * step], [-(fx.STATE_MAX - 1)]]  # reset, exact, clipped
    line = next(l for l in err.splitlines() if "readout" in l)
    assert "layer 'out'" in line and "2 of 3 samples" in line, line
    assert "8388544" in line and "-8388607" in line, line
