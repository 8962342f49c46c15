"""`lmu2neuro train`: train a (spiking) LMUFormer, or your own model from a Python file, on a dataset
and write checkpoints + metrics."""

from __future__ import annotations

import argparse
import json


def _options(pairs: list[str], flag: str) -> dict:
    from lmu2neuro.core.errors import UserError

    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} {pair!r}: expected KEY=VALUE")
        try:
            out[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = value  # a bare string such as words=yes,no
    return out


def _examples() -> str:
    from lmu2neuro.training.examples import MEASURED, command

    lines = ["examples (their test accuracy as measured by benchmarks/train_accuracy.py; docs/training.md):"]
    for name in ("digits", "mnist1d"):
        lines += [f"  {command(name, f'runs/{name}')}", f"      # {MEASURED[name]}"]
    lines += ["  torchrun --nproc_per_node 2 -m lmu2neuro train ... # the same run in two processes (DDP)"]
    return "\n".join(lines)


def register(sub) -> None:
    from lmu2neuro.datasets import DATASET_NAMES

    p = sub.add_parser(
        "train",
        help="train a spiking LMUFormer (optionally quantization-aware) and save checkpoints",
        description=(
            "Train a model from a preset on a dataset. Writes OUT/last.pt after every epoch, "
            "OUT/best.pt at the best validation accuracy, and OUT/metrics.json (per-epoch loss, "
            "accuracy and learning rate; at the end the test accuracy of best.pt, and for spiking "
            "models its integer-mode accuracy and accuracy by frames seen). Two recipes: plain "
            "(default: Adam, step decay, batch 64, cross-entropy) and paper (the LMUFormer paper's: "
            "batch 128, x0.85 every 10 epochs, BCE on mixup labels, SpecAugment, noise and time roll "
            "for speech, QAT after the float phase). --qat trains the first half of the epochs in "
            "float and the rest with Loihi fake quantization. A run stopped at any point continues "
            "with the same command plus --resume and ends with the same metrics as an uninterrupted "
            "run. Several processes: torchrun --nproc_per_node N -m lmu2neuro train ... (gloo on "
            "CPU, nccl on GPU) gives the metrics of one process with the same global batch; only "
            "rank 0 writes."
        ),
        epilog=_examples(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, metavar="NAME",
                   help=f"{' | '.join(DATASET_NAMES)} | npz:FILE.npz | npy:DIR. digits is built in and mnist1d "
                        "generated here; mnist, speechcommands and synth-kws read --data-root; npz:FILE.npz (your "
                        "arrays x (N, T, *frame) and y (N,), or x_train/y_train with optional x_val/y_val, "
                        "x_test/y_test) and npy:DIR (a folder of .npy files of the same names) are your own data")
    p.add_argument("--data-root", metavar="DIR", help="dataset folder (mnist: IDX files; speech: Speech Commands layout)")
    p.add_argument("--data-option", action="append", metavar="KEY=VALUE", default=[],
                   help="dataset option, repeatable: e.g. repeat=4 (digits, mnist1d), permuted=true (mnist), "
                        "words=yes,no / n_mels=64 / target_length=100 (speech), val_fraction=0.1 / "
                        "test_fraction=0.2 (the splits held out of your own arrays when not given)")
    try:
        from lmu2neuro.models.config import PRESETS

        presets = ", ".join(PRESETS)
    except ImportError:  # the model stage missing should not hide the rest of --help
        presets = "see lmu2neuro.models.lmuformer.PRESETS"
    p.add_argument("--preset",
                   help=f"model preset ({presets}); digits-small suits digits, kws-small the speech sets "
                        "(required unless --model)")
    p.add_argument("--model", metavar="FILE.py:FUNCTION",
                   help="your own model instead of a preset: FUNCTION in FILE.py returns a LoihiModel or an "
                        "nn.Module built from lmu2neuro.models.layers (wrapped as LoihiModel(module, frame_shape, "
                        "max_len=timesteps)); it may take any of the keyword arguments input_size, frame_shape, "
                        "num_classes, timesteps, filled from the dataset. The file is imported and run as Python "
                        "code: use only a file you trust, as you would `python FILE.py`. The checkpoint records the "
                        "file's path, sha256 and the function, and `export` rebuilds the model from that file, "
                        "refusing it if it has changed")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[], dest="overrides",
                   help="override a model config field of the preset, repeatable (e.g. dim=64 or memory_order=32)")
    p.add_argument("--no-spiking", action="store_true", help="train the non-spiking (ANN) LMUFormer")
    p.add_argument("--recipe", default="plain", metavar="NAME",
                   help="plain (default: small data, few CPU epochs) or paper (the LMUFormer paper's recipe)")
    p.add_argument("--qat", action=argparse.BooleanOptionalAction, default=None,
                   help="quantization-aware training for the Loihi integer network (default: on with "
                        "--recipe paper for spiking models, else off)")
    p.add_argument("--qat-warmup", type=int, metavar="N",
                   help="float epochs before fake quantization starts (default: half of --epochs)")
    p.add_argument("--epochs", type=int, required=True, metavar="N", help="total number of epochs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for last.pt, best.pt, metrics.json")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="start again even if --out holds a run")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and shuffling (default 0)")
    p.add_argument("--batch-size", type=int, metavar="B",
                   help="global batch size, shared by all processes (default: the recipe's, plain 64, paper 128)")
    p.add_argument("--lr", type=float, default=2.5e-3, help="Adam learning rate (default 2.5e-3)")
    p.add_argument("--lr-step", type=int, metavar="N",
                   help="decay lr x0.85 every N epochs (default: plain epochs // 10, paper 10)")
    p.add_argument("--device", default="cpu", metavar="DEV",
                   help="cpu (default) or cuda; under torchrun each process takes cuda:LOCAL_RANK")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 is often fastest for small "
                        "models on a busy machine)")
    p.add_argument("--limit", type=int, metavar="N", help="use at most N samples per split (quick trials)")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmu2neuro.core.errors import UserError
    from lmu2neuro.training.distributed import env_world

    rank = 0
    try:
        rank = env_world()[1]
        return _run(args, rank)
    except UserError:
        if rank:  # every process finds the same bad input: rank 0 alone says so
            return 2
        raise


def config_from_args(args):
    """The ``TrainConfig`` that the parsed `lmu2neuro train` options describe."""
    from lmu2neuro.training.recipe import TrainConfig

    return TrainConfig(
        dataset=args.dataset, out=args.out, data_root=args.data_root,
        dataset_options=_options(args.data_option, "--data-option"), preset=args.preset, model=args.model,
        overrides=_options(args.overrides, "--set"), spiking=not args.no_spiking, recipe=args.recipe, qat=args.qat,
        qat_warmup=args.qat_warmup, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
        lr=args.lr, lr_step=args.lr_step, threads=args.threads, limit=args.limit, resume=args.resume,
        overwrite=args.overwrite, progress=True, device=args.device,
    )


def _run(args, rank: int) -> int:
    import contextlib

    from lmu2neuro.core.outdir import output_lock
    from lmu2neuro.training.recipe import check_config, train

    from lmu2neuro.core.errors import UserError

    if bool(args.preset) == bool(args.model):
        raise UserError("--preset / --model: give exactly one (a built-in preset, or FILE.py:FUNCTION for your model)")
    cfg = config_from_args(args)
    check_config(cfg)  # bad options end here, before the output folder exists
    # rank 0 writes and holds the folder's lock; the other processes only read
    with output_lock(args.out) if rank == 0 else contextlib.nullcontext():
        metrics = train(cfg)
    if rank:
        return 0
    test = metrics.get("test", {})
    line = f"test accuracy {test.get('accuracy', float('nan')):.4f}"
    if "integer_accuracy" in test:
        line += f", integer-mode {test['integer_accuracy']:.4f}"
    print(f"{line}; checkpoints and metrics.json in {args.out}")
    return 0
