"""`lmu2neuro simulate`: the network as a Loihi-style chip would run it, with its spike traffic."""

from __future__ import annotations

import argparse
import sys


def _reset(value: str) -> str:
    # checked at parse time against core.fixed_point.RESETS, imported only then: building the
    # parser must not load torch (tests/cli/test_cli.py)
    from lmu2neuro.core.errors import UserError
    from lmu2neuro.core.fixed_point import check_reset

    try:
        return check_reset(value)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="run a .nir model in Lava fixed point and/or the reference simulator; write traffic.json",
        description=(
            "Stream samples through one compiled Lava network, B side by side (fixed_pt: "
            "bit-accurate Loihi arithmetic), and/or the batched reference integer simulator, count spikes and "
            "synaptic events per layer inside the graph, and write traffic.json. With --backend "
            "both, an agreement block says which fraction of samples had identical spikes in "
            "every layer and identical predictions, and the first mismatch if any."
        ),
        epilog="example: lmu2neuro simulate runs/demo/model.nir --dataset digits --samples 50 --backend both -o traffic.json",
    )
    p.add_argument("model", metavar="MODEL.nir", help="a .nir file (ours, or another tool's)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="take inputs (and labels) from this dataset's test split")
    src.add_argument("--input", metavar="FILE.npy",
                     help="float array shaped (samples, timesteps, *input shape), quantized with the model's input scale")
    p.add_argument("--data-root", metavar="DIR", help="dataset folder (not needed for digits)")
    p.add_argument("--samples", type=int, metavar="N", help="number of samples (default: all)")
    p.add_argument("--backend", choices=["lava", "reference", "both"], default="both")
    p.add_argument("--tag", choices=["fixed_pt", "floating_pt"], default="fixed_pt",
                   help="Lava ProcessModels: fixed_pt is bit-accurate (default)")
    p.add_argument("--lava-batch", metavar="B", default=None,
                   help="samples side by side in the one compiled Lava network: one Lava step advances all B "
                        "(default: auto, from the model's size and the free memory; 1 runs one sample at a time)")
    p.add_argument("--device", default="cpu", metavar="DEV",
                   help="where the reference executor computes: cpu (default), cuda or cuda:N (exact integers on "
                        "any; Lava always runs on the CPU)")
    p.add_argument("--dt", type=float, metavar="SECONDS",
                   help="time step for graphs that carry no dt of their own (third-party NIR; default 1e-4)")
    p.add_argument("--input-scale", type=float, metavar="S",
                   help="another tool's graph: float input x -> clip(round(x * S), -128, 127) (default: calibrated "
                        "from the inputs given, 127 / max |x|); refused for our own files, which carry theirs")
    p.add_argument("--reset", type=_reset, default=None, metavar="MODE",
                   help="another tool's graph: what a spike does to the voltage of every spiking population. NIR "
                        "cannot state a subtract reset (snnTorch writes v_reset = 0 for both of its mechanisms). "
                        "zero (the default, what the file states): Loihi 1 and 2; subtract: Loihi's same-step rule, "
                        "v - threshold in the step it fires, before the next decay (Loihi 2 only, run in Lava by a "
                        "custom neuron process). That is snnTorch's reset_mechanism='subtract' only with "
                        "reset_delay=False (and while the voltage after a reset stays below threshold); snnTorch's "
                        "default, reset_delay=True, subtracts one step late, from the decayed voltage, taking "
                        "(1 - beta) threshold more per spike, so --reset subtract only approximates it (the fidelity "
                        "block measures by how much). For an exact conversion of an snnTorch model use `lmu2neuro "
                        "export --model FILE.py:FUNCTION CHECKPOINT` on the model itself. Our own files state their "
                        "reset: the same is accepted, another refused")
    p.add_argument("--refractory", type=int, default=None, metavar="STEPS",
                   help="another tool's graph: steps every spiking neuron is held after a spike (its voltage kept, "
                        "no spike, its current integrating on; Loihi's refractDelay - 1, 0..62). NIR has no field "
                        "for it. snnTorch RLeaky with reset_mechanism='zero': --refractory 1 (its zero reset "
                        "discards the whole step after a spike, input included); snnTorch Leaky needs none. Our own "
                        "files and netx files state theirs: the same is accepted, another refused")
    p.add_argument("--input-mode", choices=["current", "bias", "transform"], default=None,
                   help="how the --input values reach the network (docs/netx.md). current: the graded 8-bit payload "
                        "of the first synapses (the only mode for a network without input neurons). A lava-dl netx "
                        "file whose input layer has neurons is driven as lava-dl drives it, through those neurons' "
                        "bias (bias_exp 6): transform (its default) takes raw frames and applies the file's input "
                        "transform int(w * x + b) first; bias takes the bias mantissas themselves (13-bit integers, "
                        "what lava-dl's test writes into in_layer.neuron.bias_mant). Frames are flat in C order of "
                        "(C, H, W): a lava-dl (W, H, C) image is image.transpose(2, 1, 0)")
    p.add_argument("--reset-interval", type=int, default=None, metavar="N",
                   help="treat each sample as one long stream and zero every neuron's state every N steps, as "
                        "lava-dl's reset_interval does (its benchmarks stream one frame with reset_interval=16); "
                        "the steps between resets are separate inferences")
    p.add_argument("--reset-offset", type=int, default=0, metavar="K",
                   help="with --reset-interval N: the resets fall before steps t with (t - K) %% N == 0, 0 <= K < N "
                        "(lava-dl's reset_offset; default 0)")
    p.add_argument("--labels", metavar="FILE.npy",
                   help="with --input: integer class labels, one per sample, giving accuracy")
    p.add_argument("-o", "--out", required=True, metavar="traffic.json")
    p.set_defaults(func=run)


def range_warnings(traffic: dict) -> list[str]:
    """One line per layer whose integers left Loihi's ranges during the run: Lava (and the chip)
    wrap the 24-bit current and reset or clip the voltage without a word, so the tool says so."""
    from lmu2neuro.core import fixed_point as fx

    lines = []
    for layer in traffic["layers"]:
        if layer.get("wrapped_current"):
            peak = layer.get("peak_current")
            value = f"|current| up to {peak:,} " if peak else ""
            lines.append(f"layer '{layer['name']}': the 24-bit synaptic current wrapped in "
                         f"{layer['wrapped_current']} neuron-steps ({value}beyond the limit 2**23 = {fx.STATE_MAX}; "
                         "Loihi and Lava wrap it silently, so later spikes are not the trained model's)")
        if layer.get("out_of_range_samples"):
            top = fx.VTH_MAX << fx.ACT_SHIFT
            lines.append(f"layer '{layer['name']}': the readout voltage left its range in "
                         f"{layer['out_of_range_samples']} of {traffic['samples']} samples (it fired and reset "
                         f"to 0 above {top}, or was clipped at {-(fx.STATE_MAX - 1)}), so those scores are "
                         "not the model's sums")
    return lines


def run(args) -> int:
    from lmu2neuro.core.outdir import output_file_lock

    if args.dt is not None:
        from lmu2neuro.core.guards import check_dt

        check_dt("--dt", args.dt)
    # one run per output folder, taken before the work so a clash fails at once, not at the end
    with output_file_lock(args.out, "-o"):
        return _run(args)


def _run(args) -> int:
    from lmu2neuro.core.atomic import write_json
    from lmu2neuro.pipeline.simulate import simulate_file

    traffic, runs = simulate_file(args.model, dataset=args.dataset, input_file=args.input, data_root=args.data_root,
                                  samples=args.samples, backend=args.backend, tag=args.tag, dt=args.dt,
                                  progress=sys.stderr.isatty(), lava_batch=args.lava_batch, device=args.device,
                                  input_scale=args.input_scale, labels_file=args.labels, reset=args.reset,
                                  refractory=args.refractory, input_mode=args.input_mode,
                                  reset_interval=args.reset_interval, reset_offset=args.reset_offset)
    write_json(args.out, traffic)
    scale = traffic["input_scale"]
    if scale and scale["source"] != "model file":
        how = f"calibrated: {scale['rule']}" if scale["source"] == "calibrated" else "from --input-scale"
        print(f"input scale {scale['value']:.6g} ({how}); inputs quantized as clip(round(x * scale), -128, 127)")
    mode = traffic.get("input_mode") or {}
    if mode.get("target"):
        how = (f"the file's transform int({mode['transform_weight']:g} x + {mode['transform_bias']:g}) of each frame"
               if mode["mode"] == "transform" else "the values given")
        print(f"input: the bias mantissa of '{mode['target']}' every step, {how} (lava-dl's netx input layer)")
    if mode.get("reset_interval"):
        print(f"state reset every {mode['reset_interval']} steps (offset {mode['reset_offset']})")
    fid = traffic["fidelity"]
    if fid:
        line = f"float source graph vs deployed integers: predictions agree on {fid['prediction_agreement']:.2%}"
        if fid["float_accuracy"] is not None:
            line += f", accuracy float {fid['float_accuracy']:.4f} / integer {fid['int_accuracy']:.4f}"
        print(line)
        if fid["prediction_agreement"] < fid["warn_below"]:
            print(f"warning: the deployed integer network predicts like the float graph on only "
                  f"{fid['prediction_agreement']:.2%} of samples (below {fid['warn_below']:.0%}): check --input-scale "
                  "and --dt, or train with Loihi quantization-aware neurons", file=sys.stderr)
    for line in range_warnings(traffic):
        print(f"warning: {line}", file=sys.stderr)
    line = f"{traffic['samples']} samples x {traffic['timesteps']} steps ({args.backend})"
    if traffic["accuracy"] is not None:
        on = (traffic.get("inputs") or {}).get("source")
        line += f", accuracy {traffic['accuracy']:.4f}" + (f" on {on}" if on else "")
    agree = traffic["agreement"]
    if agree:
        line += (f", Lava vs reference: identical spikes {agree['identical_spikes']:.2%}, "
                 f"identical predictions {agree['identical_predictions']:.2%}")
    for name, m in runs.items():
        sps = m.timing.get("samples_per_second")
        if sps:
            line += f", {name} {sps:,.1f} samples/s"
            if m.timing.get("lanes"):
                line += f" running ({m.timing['lanes']} side by side, {m.timing['compile_s']:.1f} s compiling)"
    print(f"{line}; traffic written to {args.out}")
    if agree and agree["first_mismatch"]:
        print(f"first mismatch: {agree['first_mismatch']}", file=sys.stderr)
        return 1
    return 0
