"""Frame-by-frame inference of a causal model: its declared graph, one frame at a time.

``Streamer`` keeps what one frame needs from the past (``models.graph.StreamState``): the last
k-1 inputs of every temporal conv, every neuron's (current, voltage), the LMU memory state m
(advanced by the exact recurrent step ``m_t = Abar m_{t-1} + Bbar u_t``) and the running sum of
head outputs. Batch norm uses its running statistics (inference). Its outputs equal the parallel
pass of the model in eval mode (tests/models/test_model.py compares spikes and per-step logits).
"""

from __future__ import annotations

import torch

from lmu2neuro.core.errors import UserError
from lmu2neuro.models.graph import StreamState


class Streamer:
    """Run a causal model (ANN or spiking) one frame at a time.

    ``step(x_t (B, F)) -> dict(logits (B, C): running mean of the head so far,
    frame_logits (B, C), spikes {population: (B, n)} for the spiking model)``.
    """

    def __init__(self, model):
        if not model.cfg.causal:
            raise UserError("model config: streaming needs causal temporal convolutions (causal: true)")
        self.model = model
        self.reset()

    def reset(self) -> None:
        """Forget the past (a new sample starts)."""
        self.t = 0
        self.graph = StreamState(self.model.graph())
        self.total = None

    @torch.no_grad()
    def step(self, x_t: torch.Tensor) -> dict:
        if getattr(self.model, "qat", False):
            raise UserError("streaming runs the float model; call set_qat(False) first")
        spikes: dict[str, torch.Tensor] = {}
        frame = self.graph.step(x_t, spikes)
        self.t += 1
        self.total = frame if self.total is None else self.total + frame
        return {"frame_logits": frame, "logits": self.total / self.t, "spikes": spikes}


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
