"""The LMUFormers' graphs are found by tracing their forward (``frame_forward``), not declared by hand.

The reference below is the hand declaration the models had before: the traced graph must be the same
nodes, terms, sources, ops on the same modules, shared residual terms and names, and run to the same
bits, so QAT, lowering and NIR export (which take only the graph) are unchanged."""

import pytest
import torch
import torch.nn.functional as F

from lmu2neuro.core.errors import UserError
from lmu2neuro.models.config import ModelConfig
from lmu2neuro.models.graph import (
    INPUT, Activation, Dense, DenseBN, Identity, Memory, Node, Readout, Spiking, TemporalConv, Term, annotate, run,
    spiking,
)
from lmu2neuro.models.lmuformer import SpikingLMUFormer
from lmu2neuro.models.registry import build_model


def _hand_spiking(model):
    cfg, g = model.cfg, model.gain
    nodes, src, last = [], INPUT, None
    for i, (conv, bn, lif) in enumerate(zip(model.embed_convs, model.embed_bns, model.embed_lifs)):
        last = Term(f"conv{i}", [src], TemporalConv(conv, cfg.causal))
        nodes.append(Node(f"embed{i}", [last], Spiking(bn, lif, g)))
        src = f"embed{i}"
    stream = [last, Term("rpe", [src], TemporalConv(model.rpe_conv, cfg.causal))]
    for b, blk in enumerate(model.blocks):
        p = f"block{b}"
        nodes += [
            Node(f"{p}.pre", list(stream), Spiking(blk.pre_bn, blk.pre_lif, g)),
            Node(f"{p}.u", [Term("w_u", [f"{p}.pre"], Dense(blk.w_u))], Spiking(blk.u_bn, blk.u_lif, g)),
            Node(f"{p}.m", [Term("memory", [f"{p}.u"], Memory(blk.memory, cfg.max_len))],
                 Spiking(blk.m_bn, blk.m_lif, g)),
            Node(f"{p}.h", [Term("w_h", [f"{p}.m", f"{p}.pre"], Dense(blk.w_h, [blk.memory.order, cfg.dim]),
                                 parts=["w_h_m", "w_h_x"])], Spiking(blk.h_bn, blk.h_lif, g)),
        ]
        stream.append(Term(f"{p}.proj", [f"{p}.h"], DenseBN(blk.proj_conv, blk.proj_bn)))
        nodes += [
            Node(f"{p}.fc1", list(stream), Spiking(blk.fc1_bn, blk.fc1_lif, g)),
            Node(f"{p}.fc2", [Term("fc1_conv", [f"{p}.fc1"], Dense(blk.fc1_conv))],
                 Spiking(blk.fc2_bn, blk.fc2_lif, g)),
        ]
        stream.append(Term(f"{p}.fc2_conv", [f"{p}.fc2"], Dense(blk.fc2_conv)))
    nodes.append(Node("head", list(stream), Spiking(model.head_bn, model.head_lif, g)))
    nodes.append(Node("readout", [Term("head", ["head"], Dense(model.head))], Readout()))
    return annotate(model, nodes)


def _hand_ann(model):
    cfg, nodes, src = model.cfg, [], INPUT
    for i, (conv, bn) in enumerate(zip(model.embed_convs, model.embed_bns)):
        nodes.append(Node(f"embed{i}", [Term(f"conv{i}", [src], TemporalConv(conv, cfg.causal))],
                          Activation(F.relu, bn)))
        src = f"embed{i}"
    nodes.append(Node("x", [Term("skip", [src], Identity()),
                            Term("rpe", [src], TemporalConv(model.rpe_conv, cfg.causal))], Activation()))
    x = "x"
    for b, blk in enumerate(model.blocks):
        p = f"block{b}"
        nodes += [
            Node(f"{p}.u", [Term("w_u", [x], Dense(blk.w_u))], Activation(F.relu)),
            Node(f"{p}.m", [Term("memory", [f"{p}.u"], Memory(blk.memory, cfg.max_len))], Activation()),
            Node(f"{p}.h", [Term("w_h", [f"{p}.m", x], Dense(blk.w_h, [blk.memory.order, cfg.dim]))],
                 Activation(F.relu)),
            Node(f"{p}.x", [Term("skip", [x], Identity()),
                            Term("proj", [f"{p}.h"], DenseBN(blk.proj_conv, blk.proj_bn))], Activation()),
            Node(f"{p}.fc1", [Term("fc1", [f"{p}.x"], DenseBN(blk.fc1_conv, blk.fc1_bn))], Activation(F.gelu)),
            Node(f"{p}.fc2", [Term("fc2", [f"{p}.fc1"], DenseBN(blk.fc2_conv, blk.fc2_bn))], Activation(F.relu)),
            Node(f"{p}.out", [Term("skip", [f"{p}.x"], Identity()), Term("skip2", [f"{p}.fc2"], Identity())],
                 Activation()),
        ]
        x = f"{p}.out"
    nodes.append(Node("readout", [Term("head", [x], Dense(model.head))], Readout()))
    return annotate(model, nodes)


def _model(spiking_model: bool, depth=2):
    torch.manual_seed(0)
    cfg = ModelConfig.from_preset("digits-small", spiking=spiking_model, dim=16, depth=depth)
    model = build_model(cfg)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():  # BN away from the identity, so a misplaced fold would show
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


def _described(nodes):
    """Everything a graph declares; ops and bodies by their fields (modules by identity), and each
    term by the index of its first use, so a term shared by several nodes shows as shared."""
    def fields(o):
        return type(o).__name__, tuple((k, id(v) if isinstance(v, torch.nn.Module) else v) for k, v in vars(o).items())

    first: dict[int, int] = {}
    for n in nodes:
        for t in n.terms:
            first.setdefault(id(t), len(first))
    return [(n.name, n.layer, n.shape, fields(n.body),
             [(first[id(t)], t.name, list(t.sources), fields(t.op), t.part_names(), n.term_layers[id(t)])
              for t in n.terms])
            for n in nodes]


@pytest.mark.parametrize("spiking_model", [True, False])
def test_traced_graph_is_the_hand_declaration(spiking_model):
    model = _model(spiking_model)
    traced, hand = model.graph(), (_hand_spiking if spiking_model else _hand_ann)(model)
    assert _described(traced) == _described(hand)
    if spiking_model:  # the residual stream: one Term object per contribution, shared by its consumers
        by_name = {n.name: n for n in traced}
        assert by_name["block0.fc1"].terms[0] is by_name["block0.pre"].terms[0] is by_name["embed1"].terms[0]
        assert by_name["head"].terms[-1].name == "block1.fc2_conv" and len(by_name["head"].terms) == 6
    x = torch.rand(2, 10, 8, generator=torch.Generator().manual_seed(3)) * 1.5
    with torch.no_grad():
        assert torch.equal(run(traced, x), run(hand, x))


@pytest.mark.parametrize("spiking_model", [True, False])
def test_forward_equals_its_graph_bit_for_bit_with_gradients(spiking_model):
    model = _model(spiking_model).train()  # batch statistics: the forward's BN as training runs it
    x = torch.rand(2, 10, 8, generator=torch.Generator().manual_seed(4)) * 1.5
    grads = []
    for fn in (model.frame_forward, lambda v: run(model.graph(), v)):
        model.zero_grad()
        y = fn(x)
        y.square().sum().backward()
        grads.append((y.detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(grads[0][0], grads[1][0])
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1]))


class _Tanh(SpikingLMUFormer):
    def frame_forward(self, x):  # a nonlinearity on a sum of terms: no node takes it as synaptic input
        return super().frame_forward(torch.tanh(x))


class _Reused(SpikingLMUFormer):
    def frame_forward(self, x):  # a body's input must be terms, not another node's output
        return spiking(x, None, self.head_lif, 1.0, name="oops")


@pytest.mark.parametrize("cls,needle", [(_Tanh, "operation 'tanh'"),
                                        (_Reused, "node 'oops': its input is not a term")])
def test_a_forward_the_graph_cannot_state_is_refused_by_name(cls, needle):
    cfg = ModelConfig.from_preset("digits-small", spiking=True, dim=8, depth=1)
    with pytest.raises(UserError, match=needle):
        cls(cfg).graph()
