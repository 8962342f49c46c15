"""LMUFormer / Spiking LMUFormer: official sizes, config contract, float vs folded plan, QAT."""

import json

import pytest
import torch

from lmu2neuro.core.errors import UserError
from lmu2neuro.deploy.lowering import integer_forward
from lmu2neuro.models.quantize import run_qat
from lmu2neuro.models.config import PRESETS, ModelConfig
from lmu2neuro.models.registry import build_model, count_parameters
from netgen import lively


@pytest.mark.parametrize("spiking,expected", [(False, 1_621_796), (True, 1_689_894)])
def test_scv2_paper_parameter_counts_match_the_official_models(spiking, expected):
    cfg = ModelConfig.from_preset("scv2-paper", spiking=spiking)
    assert cfg.causal is False and cfg.memory_order == (512 if spiking else 256)
    assert count_parameters(build_model(cfg)) == expected


def test_causal_variant_has_the_same_size():
    cfg = ModelConfig.from_preset("scv2", spiking=True)
    assert cfg.causal and count_parameters(build_model(cfg)) == 1_689_894


def test_config_round_trip_and_overrides():
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=True, dim=24, depth=2)
    d = cfg.to_dict()
    json.dumps(d)
    again = ModelConfig.from_dict(json.loads(json.dumps(d)))
    assert again == cfg and again.dim == 24 and again.depth == 2 and again.preset == "digits-small"
    assert set(PRESETS) >= {"scv2-paper", "digits-small", "kws-small"}


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda: ModelConfig.from_preset("nope"), "nope"),
        (lambda: ModelConfig.from_preset("digits-small", dim=0), "dim"),
        (lambda: ModelConfig.from_preset("digits-small", theta=-1.0), "theta"),
        (lambda: ModelConfig.from_dict({"input_size": 3, "num_classes": 2, "widht": 3}), "widht"),
        (lambda: ModelConfig.from_dict({"num_classes": 2}), "input_size"),
    ],
)
def test_bad_config_is_a_one_line_user_error(call, needle):
    with pytest.raises(UserError) as e:
        call()
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("spiking", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_forward_shapes_and_running_mean(spiking, causal):
    torch.manual_seed(0)
    cfg = ModelConfig.from_preset("digits-small", input_size=5, num_classes=4, spiking=spiking, causal=causal, depth=2)
    model = build_model(cfg)
    x = torch.randn(3, 11, 5)
    y = model(x)
    steps = model.per_step_logits(x)
    assert y.shape == (3, 4) and steps.shape == (3, 11, 4)
    torch.testing.assert_close(steps[:, -1], y, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(grads) > 0 and all(torch.isfinite(g).all() for g in grads)
    with pytest.raises(UserError):
        model(torch.randn(3, 11, 6))


def test_causal_model_output_at_t_ignores_the_future():
    torch.manual_seed(1)
    cfg = ModelConfig.from_preset("digits-small", input_size=5, num_classes=4, spiking=False)
    model = build_model(cfg).eval()
    x = torch.randn(2, 12, 5)
    x2 = x.clone()
    x2[:, 7:] = torch.randn(2, 5, 5)
    a, b = model.per_step_logits(x), model.per_step_logits(x2)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_folded_plan_equals_the_layer_by_layer_float_model():
    # The membrane-shortcut stream as per-contributor projections, BN and the 0.5 input factor
    # folded, the LMU as an FIR of u: the same numbers as the paper's layout in eval mode.
    torch.manual_seed(2)
    cfg = ModelConfig.from_preset("digits-small", input_size=6, num_classes=5, spiking=True, depth=2)
    model = lively(build_model(cfg), linear_bias=False)
    x = torch.randn(4, 16, 6) * 2
    with torch.no_grad():
        ref_spikes = model.spikes(x)
        ref = model.frame_logits_float(x)
        plan_spikes: dict = {}
        got = run_qat(model.graph(), x, cfg.input_scale, cfg.max_len, quantized=False, spikes=plan_spikes)
    assert set(plan_spikes) == set(ref_spikes)
    for name, s in ref_spikes.items():
        mismatch = (plan_spikes[name] != s).float().mean().item()
        assert mismatch <= 0.002, (name, mismatch)  # threshold ties from float32 rounding only
    assert all(float(s.mean()) > 0 for s in ref_spikes.values())
    torch.testing.assert_close(got, ref, rtol=1e-3, atol=2e-3)


def test_qat_mode_trains_and_stays_close_to_float():
    torch.manual_seed(3)
    cfg = ModelConfig.from_preset("digits-small", input_size=6, num_classes=5, spiking=True)
    model = lively(build_model(cfg), linear_bias=False)
    x = torch.randn(8, 12, 6) * 2
    with torch.no_grad():
        ref = model(x)
    model.set_qat(True)
    out = model(x)
    out.pow(2).sum().backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
    assert model.embed_bns[0].weight.grad.abs().sum() > 0  # through the BN fold
    assert model.blocks[0].w_u.weight.grad is not None
    # 8-bit weights: the logits move, but only by a fraction of their spread.
    err = (out.detach() - ref).abs().max() / ref.std()
    assert 0 < err < 0.5
    model.set_qat(False)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref)


def test_ann_has_no_integer_mode():
    model = build_model(ModelConfig.from_preset("digits-small", input_size=4, num_classes=3, spiking=False))
    with pytest.raises(UserError):
        model.set_qat(True)
    with pytest.raises(UserError):
        integer_forward(model, torch.zeros(1, 4, 4))


@pytest.mark.parametrize("spiking", [True, False])
def test_streaming_one_frame_at_a_time_equals_the_parallel_pass(spiking):
    from lmu2neuro.models.streaming import stream

    torch.manual_seed(4)
    cfg = ModelConfig.from_preset("digits-small", input_size=6, num_classes=5, spiking=spiking, depth=2, max_len=16)
    model = lively(build_model(cfg), linear_bias=False).double()
    x = torch.randn(3, 24, 6, dtype=torch.float64) * 2  # longer than max_len: the float memory extends
    with torch.no_grad():
        par = model.per_step_logits(x)
        par_spikes = model.spikes(x) if spiking else {}
    out = stream(model, x)
    torch.testing.assert_close(out["per_step_logits"], par, rtol=1e-9, atol=1e-9)
    assert set(out["spikes"]) == set(par_spikes)
    for name, s in par_spikes.items():
        assert torch.equal(out["spikes"][name], s), name
    if spiking:
        assert all(s.any() for s in par_spikes.values())


def test_streaming_refuses_non_causal_models():
    from lmu2neuro.models.streaming import Streamer

    cfg = ModelConfig.from_preset("digits-small", input_size=6, num_classes=5, causal=False)
    with pytest.raises(UserError, match="causal"):
        Streamer(build_model(cfg))


@pytest.mark.parametrize("causal", [True, False])
def test_accuracy_by_frames(causal):
    from lmu2neuro.training.evaluate import accuracy_by_frames

    torch.manual_seed(6)
    cfg = ModelConfig.from_preset("digits-small", input_size=6, num_classes=3, spiking=True, causal=causal)
    model = lively(build_model(cfg), linear_bias=False)
    batches = [(torch.randn(5, 7, 6) * 2, torch.randint(0, 3, (5,))) for _ in range(3)]
    acc = accuracy_by_frames(model, batches)
    assert len(acc) == 7 and all(0.0 <= a <= 1.0 for a in acc)
    with torch.no_grad():
        full = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches) / 15
        first = sum(int((model(x[:, :1]).argmax(1) == y).sum()) for x, y in batches) / 15
    assert acc[-1] == pytest.approx(full) and acc[0] == pytest.approx(first)
    if causal:
        acc_int = accuracy_by_frames(model, batches, integer=True)
        final = sum(int((integer_forward(model, x)["scores"].argmax(1) == y).sum()) for x, y in batches) / 15
        assert len(acc_int) == 7 and acc_int[-1] == pytest.approx(final)


def test_summary_command_reports_the_official_totals(capsys):
    from lmu2neuro.cli import main

    assert main(["summary", "--preset", "scv2-paper", "--spiking", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total_params"] == 1_689_894 and out["frames"] == 128
    rows = {r["name"]: r for r in out["rows"]}
    assert rows["head"]["params"] == 256 * 35 + 35 and rows["head"]["macs"] == 256 * 35 * 128
    assert rows["blocks.0.memory"]["macs"] == (512 * 512 + 512) * 128
    assert sum(r["params"] for r in out["rows"]) == out["total_params"]
    assert main(["summary", "--preset", "digits-small", "--input-size", "8", "--num-classes", "10"]) == 0
    text = capsys.readouterr().out
    assert "total" in text and "embed_convs.0" in text
    assert main(["summary", "--preset", "digits-small", "--input-size", "0"]) == 2
    assert "input_size" in capsys.readouterr().err
