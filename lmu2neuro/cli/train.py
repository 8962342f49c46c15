"""`lmu2neuro train`: train a (spiking) LMUFormer on a dataset and write checkpoints + metrics."""

from __future__ import annotations

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


def register(sub) -> None:
    from lmu2neuro.datasets import DATASET_NAMES

    p = sub.add_parser(
        "train",
        help="train a spiking LMUFormer (optionally quantization-aware) and save checkpoints",
        description=(
            "Train a model from a preset on a dataset. Writes OUT/last.pt after every epoch, "
            "OUT/best.pt at the best validation accuracy, and OUT/metrics.json (per-epoch loss, "
            "accuracy and learning rate; at the end the test accuracy of best.pt, and for spiking "
            "models its integer-mode accuracy and accuracy by frames seen). Adam with step "
            "learning-rate decay and cross-entropy loss; --qat trains the first half of the "
            "epochs in float and the rest with Loihi fake quantization. A run stopped at any "
            "point continues with the same command plus --resume and ends with the same metrics "
            "as an uninterrupted run."
        ),
        epilog="example: lmu2neuro train --dataset digits --preset digits-small --qat --epochs 20 --out runs/digits",
    )
    p.add_argument("--dataset", required=True, choices=DATASET_NAMES,
                   help="digits is built in; mnist, speechcommands and synth-kws read --data-root")
    p.add_argument("--data-root", metavar="DIR", help="dataset folder (mnist: IDX files; speech: Speech Commands layout)")
    p.add_argument("--data-option", action="append", metavar="KEY=VALUE", default=[],
                   help="dataset option, repeatable: e.g. repeat=4 (digits), permuted=true (mnist), "
                        "words=yes,no / n_mels=64 / target_length=100 (speech)")
    try:
        from lmu2neuro.models.config import PRESETS

        presets = ", ".join(PRESETS)
    except ImportError:  # the model stage missing should not hide the rest of --help
        presets = "see lmu2neuro.models.lmuformer.PRESETS"
    p.add_argument("--preset", required=True,
                   help=f"model preset ({presets}); digits-small suits digits, kws-small the speech sets")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[], dest="overrides",
                   help="override a model config field of the preset, repeatable (e.g. dim=64 or memory_order=32)")
    p.add_argument("--no-spiking", action="store_true", help="train the non-spiking (ANN) LMUFormer")
    p.add_argument("--qat", action="store_true", help="quantization-aware training for the Loihi integer network")
    p.add_argument("--qat-warmup", type=int, metavar="N",
                   help="float epochs before fake quantization starts (default: half of --epochs)")
    p.add_argument("--epochs", type=int, required=True, metavar="N", help="total number of epochs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder for last.pt, best.pt, metrics.json")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="start again even if --out holds a run")
    p.add_argument("--seed", type=int, default=0, help="seed for initialisation and shuffling (default 0)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="batch size (default 64)")
    p.add_argument("--lr", type=float, default=2.5e-3, help="Adam learning rate (default 2.5e-3)")
    p.add_argument("--lr-step", type=int, metavar="N", help="decay lr x0.85 every N epochs (default epochs // 10)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch CPU threads (default: torch's choice; 1 is often fastest for small "
                        "models on a busy machine)")
    p.add_argument("--limit", type=int, metavar="N", help="use at most N samples per split (quick trials)")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmu2neuro.training.recipe import TrainConfig, train

    cfg = TrainConfig(
        dataset=args.dataset, out=args.out, data_root=args.data_root,
        dataset_options=_options(args.data_option, "--data-option"), preset=args.preset,
        overrides=_options(args.overrides, "--set"), spiking=not args.no_spiking, qat=args.qat,
        qat_warmup=args.qat_warmup, epochs=args.epochs, seed=args.seed, batch_size=args.batch_size,
        lr=args.lr, lr_step=args.lr_step, threads=args.threads, limit=args.limit, resume=args.resume, overwrite=args.overwrite,
        progress=True,
    )
    from lmu2neuro.core.outdir import output_lock

    with output_lock(args.out):
        metrics = train(cfg)
    test = metrics.get("test", {})
    line = f"test accuracy {test.get('accuracy', float('nan')):.4f}"
    if "integer_accuracy" in test:
        line += f", integer-mode {test['integer_accuracy']:.4f}"
    print(f"{line}; checkpoints and metrics.json in {args.out}")
    return 0
