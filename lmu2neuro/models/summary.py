"""Per-layer trainable parameters and multiply-accumulates of a model, for `lmu2neuro summary`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from lmu2neuro.models.lmu import LMUMemory


@dataclass
class LayerRow:
    name: str
    kind: str
    params: int  # trainable parameters
    macs: int  # dense-equivalent multiply-accumulates per sample of `frames` frames


def summarize(model: nn.Module, frames: int | None = None) -> dict:
    """dict(rows=[LayerRow as dict], total_params, total_macs, frames, notes).

    MACs are dense-equivalent per sample: a temporal conv costs out*in*k per frame, a Linear or
    1x1 conv out*in, a batch norm one per element (it folds into the weights at deployment),
    the LMU memory d*d + d per frame (the recurrent step; the FIR form used on Loihi costs d per
    frame and past spike of u instead). In the spiking model most inputs are binary spikes, so
    most of these become accumulates; `lmu2neuro simulate` counts the events that really occur.
    """
    frames = int(frames or getattr(getattr(model, "cfg", None), "max_len", 1))
    rows: list[LayerRow] = []
    for name, mod in model.named_modules():
        params = sum(p.numel() for p in mod.parameters(recurse=False) if p.requires_grad)
        if isinstance(mod, nn.Conv1d):
            k = mod.kernel_size[0]
            macs = mod.out_channels * (mod.in_channels // mod.groups) * k * frames
            rows.append(LayerRow(name, f"Conv1d k{k}", params, macs))
        elif isinstance(mod, nn.Linear):
            rows.append(LayerRow(name, "Linear", params, mod.out_features * mod.in_features * frames))
        elif isinstance(mod, nn.BatchNorm1d):
            rows.append(LayerRow(name, "BatchNorm1d", params, mod.num_features * frames))
        elif isinstance(mod, LMUMemory):
            d = mod.order
            rows.append(LayerRow(name, f"LMU memory d={d} theta={mod.theta:g}", params, (d * d + d) * frames))
        elif params:
            rows.append(LayerRow(name, type(mod).__name__, params, 0))
    total_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert total_params == sum(r.params for r in rows), "a parameterised layer kind is missing"
    return {
        "frames": frames,
        "rows": [asdict(r) for r in rows],
        "total_params": total_params,
        "total_macs": sum(r.macs for r in rows),
    }


def format_summary(summary: dict, title: str = "") -> str:
    """A plain-text table of summarize()'s result."""
    rows = summary["rows"]
    w = max([len(r["name"]) for r in rows] + [5])
    kw = max([len(r["kind"]) for r in rows] + [4])
    lines = [title] if title else []
    lines.append(f"{'layer':<{w}}  {'kind':<{kw}}  {'params':>12}  {'MACs/sample':>14}")
    lines.append("-" * (w + kw + 32))
    for r in rows:
        lines.append(f"{r['name']:<{w}}  {r['kind']:<{kw}}  {r['params']:>12,}  {r['macs']:>14,}")
    lines.append("-" * (w + kw + 32))
    lines.append(f"{'total':<{w}}  {'':<{kw}}  {summary['total_params']:>12,}  {summary['total_macs']:>14,}")
    lines.append(f"(trainable parameters; dense-equivalent MACs for {summary['frames']} frames per sample)")
    return "\n".join(lines)
