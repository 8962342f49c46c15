"""`lmu2neuro summary`: trainable parameters and MACs per layer of a model preset."""

from __future__ import annotations

import json

from lmu2neuro.models.config import PRESETS, ModelConfig


def register(sub) -> None:
    p = sub.add_parser(
        "summary",
        help="print trainable parameters and MACs per layer of a model preset",
        description=(
            "Build a model from a preset and print each layer's trainable parameters and "
            "dense-equivalent multiply-accumulates per sample, with totals. Example: "
            "`lmu2neuro summary --preset scv2-paper --spiking` prints the official Spiking "
            "LMUFormer (1,689,894 parameters)."
        ),
    )
    p.add_argument("--preset", required=True, choices=sorted(PRESETS),
                   help="model preset: scv2-paper (the official SCv2 model, non-causal convs), scv2 (the same, causal), "
                        "kws-small, digits-small, mnist-small (small models for a CPU)")
    p.add_argument("--spiking", action="store_true", help="the Spiking LMUFormer (default: the ANN LMUFormer)")
    p.add_argument("--input-size", type=int, default=None, metavar="N",
                   help="features per frame (default: the preset's)")
    p.add_argument("--num-classes", type=int, default=None, metavar="N", help="classes (default: the preset's)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help="frames per sample for the MAC count (default: the preset's max_len)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmu2neuro.core.errors import UserError
    from lmu2neuro.models.registry import build_model
    from lmu2neuro.models.summary import format_summary, summarize

    if args.frames is not None and args.frames < 1:
        raise UserError(f"--frames: expected a positive integer, got {args.frames}")
    cfg = ModelConfig.from_preset(args.preset, input_size=args.input_size, num_classes=args.num_classes,
                                  spiking=args.spiking)
    summary = summarize(build_model(cfg), args.frames)
    summary["model_config"] = cfg.to_dict()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        kind = "Spiking LMUFormer" if cfg.spiking else "LMUFormer"
        print(format_summary(summary, f"{kind}, preset {args.preset} (input {cfg.input_size}, "
                                      f"{cfg.num_classes} classes)"))
    return 0
