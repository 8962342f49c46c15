"""Frame-by-frame inference of the causal model, and accuracy when stopping after t frames.

``Streamer`` keeps what one frame needs from the past: the last k-1 inputs of every temporal
conv, every neuron's (current, voltage), the LMU memory state m (advanced by the exact
recurrent step ``m_t = Abar m_{t-1} + Bbar u_t``) and the running sum of head outputs. Batch
norm uses its running statistics (inference). Its outputs equal the parallel pass of the model
in eval mode (tests/test_model.py streams and compares spikes and per-step logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from lmu2neuro.core.errors import UserError


def _bn(bn, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _dense1x1(conv, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, conv.weight[:, :, 0], conv.bias)


class _ConvBuffer:
    """The last k inputs of one temporal conv (zeros before the first frame: left padding)."""

    def __init__(self, conv):
        self.conv = conv
        self.buf = None

    def __call__(self, x_t: torch.Tensor) -> torch.Tensor:
        k = self.conv.kernel_size[0]
        if self.buf is None:
            self.buf = x_t.new_zeros(x_t.shape[0], x_t.shape[1], k)
        self.buf = torch.cat([self.buf[:, :, 1:], x_t[:, :, None]], dim=2)
        return F.conv1d(self.buf, self.conv.weight, self.conv.bias)[:, :, 0]


class Streamer:
    """Run a causal LMUFormer (ANN or spiking) one frame at a time.

    ``step(x_t (B, F)) -> dict(logits (B, C): running mean of the head so far,
    frame_logits (B, C), spikes {population: (B, n)} for the spiking model)``.
    """

    def __init__(self, model):
        if not model.cfg.causal:
            raise UserError("model config: streaming needs causal temporal convolutions (causal: true)")
        self.model = model
        self.spiking = model.cfg.spiking
        self.reset()

    def reset(self) -> None:
        """Forget the past (a new sample starts)."""
        m = self.model
        self.t = 0
        self.embed_bufs = [_ConvBuffer(c) for c in m.embed_convs]
        self.rpe_buf = _ConvBuffer(m.rpe_conv)
        self.mem = [None] * len(m.blocks)
        self.neuron_state: dict[int, tuple] = {}
        self.total = None

    def _lif(self, neuron, drive):
        state = self.neuron_state.get(id(neuron))
        if state is None:
            state = neuron.init_state(drive)
        spk, state = neuron.step(drive, state)
        self.neuron_state[id(neuron)] = state
        return spk

    @torch.no_grad()
    def step(self, x_t: torch.Tensor) -> dict:
        m = self.model
        if self.spiking and getattr(m, "qat", False):
            raise UserError("streaming runs the float model; call set_qat(False) first")
        frame = self._step_spiking(x_t) if self.spiking else self._step_ann(x_t)
        self.t += 1
        self.total = frame["frame_logits"] if self.total is None else self.total + frame["frame_logits"]
        frame["logits"] = self.total / self.t
        return frame

    def _step_ann(self, x: torch.Tensor) -> dict:
        m = self.model
        for buf, bn in zip(self.embed_bufs, m.embed_bns):
            x = _bn(bn, F.relu(buf(x)))
        x = x + self.rpe_buf(x)
        for b, blk in enumerate(m.blocks):
            u = F.relu(blk.w_u(x))[:, 0]
            self.mem[b] = blk.memory.step(self.mem[b], u)
            h = F.relu(blk.w_h(torch.cat([self.mem[b], x], dim=-1)))
            x = x + _bn(blk.proj_bn, _dense1x1(blk.proj_conv, h))
            y = F.gelu(_bn(blk.fc1_bn, _dense1x1(blk.fc1_conv, x)))
            x = x + F.relu(_bn(blk.fc2_bn, _dense1x1(blk.fc2_conv, y)))
        return {"frame_logits": m.head(x), "spikes": {}}

    def _step_spiking(self, x: torch.Tensor) -> dict:
        m = self.model
        g = m.gain
        spikes = {}
        s, z = x, None
        for i, (buf, bn, lif) in enumerate(zip(self.embed_bufs, m.embed_bns, m.embed_lifs)):
            z = buf(s)
            s = self._lif(lif, g * _bn(bn, z))
            spikes[f"embed{i}"] = s
        r = z + self.rpe_buf(s)
        for b, blk in enumerate(m.blocks):
            p = f"block{b}"
            a = self._lif(blk.pre_lif, g * _bn(blk.pre_bn, r))
            u = self._lif(blk.u_lif, g * _bn(blk.u_bn, blk.w_u(a)))
            self.mem[b] = blk.memory.step(self.mem[b], u[:, 0])
            ms = self._lif(blk.m_lif, g * _bn(blk.m_bn, self.mem[b]))
            h = self._lif(blk.h_lif, g * _bn(blk.h_bn, blk.w_h(torch.cat([ms, a], dim=-1))))
            r = r + _bn(blk.proj_bn, _dense1x1(blk.proj_conv, h))
            y1 = self._lif(blk.fc1_lif, g * _bn(blk.fc1_bn, r))
            y2 = self._lif(blk.fc2_lif, g * _bn(blk.fc2_bn, _dense1x1(blk.fc1_conv, y1)))
            r = r + _dense1x1(blk.fc2_conv, y2)
            spikes.update({f"{p}.pre": a, f"{p}.u": u, f"{p}.m": ms, f"{p}.h": h, f"{p}.fc1": y1, f"{p}.fc2": y2})
        hs = self._lif(m.head_lif, g * _bn(m.head_bn, r))
        spikes["head"] = hs
        return {"frame_logits": m.head(hs), "spikes": spikes}


@torch.no_grad()
def stream(model, x: torch.Tensor) -> dict:
    """Stream a batch x (B, T, F) frame by frame: dict(per_step_logits (B, T, C), spikes {name: (B, T, n)})."""
    st = Streamer(model)
    logits, spikes = [], {}
    for t in range(x.shape[1]):
        out = st.step(x[:, t])
        logits.append(out["logits"])
        for k, v in out["spikes"].items():
            spikes.setdefault(k, []).append(v)
    return {"per_step_logits": torch.stack(logits, 1), "spikes": {k: torch.stack(v, 1) for k, v in spikes.items()}}


@torch.no_grad()
def accuracy_by_frames(model, loader, integer: bool = False) -> list[float]:
    """Accuracy when the prediction is read after t = 1..T frames (index t-1), over a loader of (x, y).

    Float: argmax of the running mean of the head outputs (the paper's early exit). integer=True:
    argmax of the deployed readout voltage after t frames (``integer_forward``). A causal model's
    parallel pass at frame t only saw frames 1..t, so one pass gives every t; a non-causal model
    ('same' convs look one frame ahead) is rerun on each truncated input, so no result uses a
    frame that would not have arrived yet.
    """
    was_training = model.training
    model.eval()
    correct = None
    count = 0
    try:
        for x, y in tqdm(loader, desc="accuracy by frames", leave=False, disable=None):
            x = torch.as_tensor(x, dtype=torch.float32)
            y = torch.as_tensor(y)
            if integer:
                scores = model.integer_forward(x)["readout_trace"]
                preds = scores.argmax(-1)
            elif model.cfg.causal:
                preds = model.per_step_logits(x).argmax(-1)
            else:
                preds = torch.stack([model(x[:, : t + 1]).argmax(-1) for t in range(x.shape[1])], dim=1)
            hits = (preds == y[:, None]).sum(0).to(torch.float64)
            if correct is not None and hits.shape != correct.shape:
                raise UserError(
                    f"accuracy_by_frames: every batch needs the same number of frames ({correct.shape[0]}), "
                    f"got {hits.shape[0]}"
                )
            correct = hits if correct is None else correct + hits
            count += x.shape[0]
    finally:
        model.train(was_training)
    if not count:
        raise UserError("accuracy_by_frames: the data loader yielded no samples")
    return [float(c) / count for c in correct]
