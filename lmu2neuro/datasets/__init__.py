"""Datasets as sequences of frames: one frame = one model time step.

`get_dataset(name, root=None, **options)` returns a `sequences.DatasetSplits`; each split is a
`torch.utils.data.Dataset` of `(x (T, F) float32, y int)`. Every loader reads local files only
and never downloads; a folder that does not hold what the loader expects is a `UserError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from lmu2neuro.core.errors import UserError

if TYPE_CHECKING:  # torch loads only when a dataset does, so the CLI starts fast
    from lmu2neuro.datasets.sequences import DatasetSplits


def _digits(root=None, **options):
    from lmu2neuro.datasets.digits import load_digits_splits

    if root is not None:
        raise UserError("dataset 'digits' is built in (scikit-learn's 8x8 digits): drop --data-root")
    return load_digits_splits(**options)


def _mnist1d(root=None, **options):
    from lmu2neuro.datasets.mnist1d import load_mnist1d_splits

    if root is not None:
        raise UserError("dataset 'mnist1d' is generated here by the mnist1d package: drop --data-root")
    return load_mnist1d_splits(**options)


def _mnist(root=None, **options):
    from lmu2neuro.datasets.mnist import load_mnist_splits

    return load_mnist_splits(_need_root("mnist", root), **options)


def _speechcommands(root=None, **options):
    from lmu2neuro.datasets.speechcommands import load_speechcommands_splits

    return load_speechcommands_splits(_need_root("speechcommands", root), **options)


def _synth_kws(root=None, **options):
    from lmu2neuro.datasets.speechcommands import load_speechcommands_splits

    root = _need_root("synth-kws", root, hint="make one with `lmu2neuro synth-kws --out DIR`")
    return load_speechcommands_splits(root, **options)


def _need_root(name: str, root, hint: str = "") -> str:
    if root is None:
        extra = f" ({hint})" if hint else ""
        raise UserError(f"dataset '{name}' reads a local folder: pass --data-root DIR{extra}")
    return root


LOADERS: dict[str, Callable[..., DatasetSplits]] = {
    "digits": _digits,
    "mnist1d": _mnist1d,
    "mnist": _mnist,
    "speechcommands": _speechcommands,
    "synth-kws": _synth_kws,
}
DATASET_NAMES = tuple(LOADERS)
# your own arrays: npz:FILE.npz or npy:DIR (kept here, not imported, so the CLI starts without numpy)
ARRAY_PREFIXES = ("npz", "npy")


def _arrays(name: str, root=None, **options):
    from lmu2neuro.datasets.arrays import load_array_splits

    if root is not None:
        raise UserError(f"dataset '{name}' names its own file or folder: drop --data-root")
    kind, _, path = name.partition(":")
    return load_array_splits(kind, path, **options)


def get_dataset(name: str, root=None, **options) -> DatasetSplits:
    """Load dataset `name` ("digits", "mnist1d", "mnist", "speechcommands", "synth-kws", or your own
    arrays "npz:FILE.npz" / "npy:DIR", see `datasets.arrays`) from local files.

    `root` is the dataset folder (not used by the built-in "digits" and the generated "mnist1d");
    `options` are passed to the loader (e.g. `repeat=` for digits and mnist1d, `permuted=` for mnist, `words=`, `n_mels=`,
    `target_length=` for the speech sets). Raises `UserError` for an unknown name or bad files.
    """
    prefix, sep, _ = name.partition(":")
    try:
        loader = (lambda root, **o: _arrays(name, root, **o)) if sep and prefix in ARRAY_PREFIXES else LOADERS[name]
    except KeyError:
        raise UserError(f"unknown dataset {name!r}: expected one of {', '.join(DATASET_NAMES)}, "
                        "npz:FILE.npz or npy:DIR") from None
    try:
        return loader(root, **options)
    except TypeError as exc:  # an option the loader does not take
        if "unexpected keyword argument" in str(exc):
            raise UserError(f"dataset {name!r}: {exc}".replace("\n", " ")) from None
        raise


__all__ = ["get_dataset", "DATASET_NAMES"]
