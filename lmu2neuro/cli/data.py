"""`lmu2neuro synth-kws` and `lmu2neuro dataset`: make and inspect training data."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser(
        "synth-kws",
        help="generate a small spoken-keyword set (Speech Commands layout) with espeak-ng",
        description=(
            "Write a Speech Commands V2-style folder DIR/<word>/<speaker>_nohash_0.wav with "
            "validation_list.txt and testing_list.txt, spoken by espeak-ng voices that vary in "
            "accent, variant, speed and pitch, resampled to 16 kHz by sox, with noise added. "
            "Each speaker says every word once; validation and test speakers are disjoint. "
            "Train on it with `lmu2neuro train --dataset synth-kws --data-root DIR`. "
            "Needs the espeak-ng and sox programs."
        ),
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--words", default="yes,no,up,down,left,right,on,off,stop,go",
                   help="comma-separated keywords (default: the 10 Speech Commands core words)")
    p.add_argument("--per-word", type=int, default=30, metavar="N",
                   help="clips per word = number of speakers (default 30; at least 3)")
    p.add_argument("--seed", type=int, default=0, help="seed for speakers, placement and noise (default 0)")
    p.set_defaults(func=run_synth)

    q = sub.add_parser(
        "dataset",
        help="show a dataset's splits, shapes and classes",
        description=(
            "Load a dataset the way `lmu2neuro train` does and print its split sizes, time steps, "
            "features per step and class names, so a folder can be checked before training. "
            "NAME is digits (built in), mnist1d (generated here), mnist, speechcommands, synth-kws, "
            "npz:FILE.npz or npy:DIR (your own arrays x, y or x_train, y_train, ...)."
        ),
    )
    q.add_argument("name", metavar="NAME", help="digits | mnist1d | mnist | speechcommands | synth-kws | npz:FILE | npy:DIR")
    q.add_argument("--data-root", metavar="DIR", help="dataset folder (not for digits or mnist1d)")
    q.set_defaults(func=run_info)


def run_synth(args) -> int:
    from lmu2neuro.datasets.synth_kws import generate

    from lmu2neuro.core.outdir import output_lock

    with output_lock(args.out):
        summary = generate(args.out, args.words.split(","), per_word=args.per_word, seed=args.seed)
    print(json.dumps(summary))
    return 0


def run_info(args) -> int:
    from lmu2neuro.datasets import get_dataset

    d = get_dataset(args.name, root=args.data_root)
    print(f"dataset     {args.name}")
    print(f"splits      train {len(d.train)}, val {len(d.val)}, test {len(d.test)}")
    print(f"frames      {d.timesteps} steps x {d.input_size} features")
    print(f"classes     {d.num_classes}: {', '.join(d.class_names)}")
    return 0
