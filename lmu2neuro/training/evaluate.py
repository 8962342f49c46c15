"""Accuracy when the prediction is read after t frames: the early-exit curve of a trained model."""

from __future__ import annotations

import torch
from tqdm import tqdm

from lmu2neuro.core.errors import UserError
from lmu2neuro.deploy.lowering import integer_forward


@torch.no_grad()
def accuracy_by_frames(model, loader, integer: bool = False) -> list[float]:
    """Accuracy when the prediction is read after t = 1..T frames (index t-1), over a loader of (x, y).

    Float: argmax of the running mean of the head outputs (the paper's early exit). integer=True:
    argmax of the deployed readout voltage after t frames (``deploy.integer_forward``). A causal model's
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
                scores = integer_forward(model, x)["readout_trace"]
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
