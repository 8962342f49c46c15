"""Your own arrays as a dataset: npz:FILE and npy:DIR, their splits and every refusal."""

import numpy as np
import pytest
import torch

from lmu2neuro.core.errors import UserError
from lmu2neuro.datasets import get_dataset


def _digits_arrays():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32).repeat(2, axis=1), d.target


def test_npz_and_npy_folder_give_the_builtin_digits_splits(tmp_path):
    x, y = _digits_arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    (tmp_path / "dir").mkdir()
    np.save(tmp_path / "dir" / "x.npy", x)
    np.save(tmp_path / "dir" / "y.npy", y)
    ref = get_dataset("digits")
    for name in (f"npz:{tmp_path / 'd.npz'}", f"npy:{tmp_path / 'dir'}"):
        d = get_dataset(name)
        assert (d.input_size, d.num_classes, d.timesteps, d.frame_shape) == (8, 10, 16, (8,))
        # the same stratified split as the built-in loader, for the same seed
        for a, b in ((d.train, ref.train), (d.val, ref.val), (d.test, ref.test)):
            assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    other = get_dataset(f"npz:{tmp_path / 'd.npz'}", seed=3, test_fraction=0.3)
    assert len(other.test) == 540 and not torch.equal(other.test.y, ref.test.y)


def test_named_splits_kept_and_missing_ones_held_out_of_train(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((200, 5, 2, 3)).astype(np.float64)  # frames of shape (2, 3): flattened to 6 values
    y = np.arange(200) % 4
    np.savez(tmp_path / "all.npz", x_train=x[:100], y_train=y[:100], x_val=x[100:150], y_val=y[100:150],
             x_test=x[150:], y_test=y[150:])
    d = get_dataset(f"npz:{tmp_path / 'all.npz'}")
    assert (len(d.train), len(d.val), len(d.test)) == (100, 50, 50)
    assert d.frame_shape == (2, 3) and d.input_size == 6 and d.timesteps == 5 and d.num_classes == 4
    assert torch.equal(d.test.x, torch.from_numpy(x[150:].reshape(50, 5, 6)).float())
    assert torch.equal(d.val.y, torch.from_numpy(y[100:150]))
    np.savez(tmp_path / "tt.npz", x_train=x[:150], y_train=y[:150], x_test=x[150:], y_test=y[150:])
    d = get_dataset(f"npz:{tmp_path / 'tt.npz'}", val_fraction=0.2)
    assert (len(d.train), len(d.val), len(d.test)) == (120, 30, 50)
    # the held-out validation split is disjoint from training and stratified
    seen = {tuple(r.flatten().tolist()) for r in d.train.x}
    assert not any(tuple(r.flatten().tolist()) in seen for r in d.val.x)
    assert sorted(torch.bincount(d.val.y).tolist()) == [7, 7, 8, 8]


def _bad(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return f"npz:{path}"


X = np.zeros((10, 4, 3), dtype=np.float32)
Y = np.arange(10) % 2


@pytest.mark.parametrize("arrays, message", [
    (dict(x=X), r"bad.npz: array 'y': missing; expected it beside 'x'"),
    (dict(x_train=X, y_train=Y, y_test=Y), r"array 'x_test': missing; expected it beside 'y_test'"),
    (dict(x_val=X, y_val=Y), r"named splits without x_train and y_train"),
    (dict(z=X), r"no arrays x and y \(nor x_train and y_train\); found none"),
    (dict(x=X, y=Y[:9]), r"array 'y': 9 labels for 10 samples in 'x'"),
    (dict(x=np.where(np.arange(120).reshape(10, 4, 3) == 7, np.nan, 0.0), y=Y), r"array 'x': 1 values are NaN"),
    (dict(x=np.full((10, 4, 3), np.inf), y=Y), r"array 'x': 120 values are NaN or infinite"),
    (dict(x=X, y=Y.astype(np.float32)), r"array 'y': dtype float32; expected integer class labels"),
    (dict(x=X.astype(np.complex64), y=Y), r"array 'x': dtype complex64; expected int or float"),
    (dict(x=np.full((10, 4, 3), "a"), y=Y), r"array 'x': dtype <U1; expected int or float"),
    (dict(x=X, y=-Y), r"array 'y': label -1 is negative"),
    (dict(x=X[:, :, 0], y=Y), r"array 'x': shape \(10, 4\); expected \(N, T, \*frame\)"),
    (dict(x=X, y=Y[:, None]), r"array 'y': shape \(10, 1\); expected \(N,\)"),
    (dict(x=X, y=Y, x_train=X, y_train=Y), r"both x/y and named splits"),
    (dict(x_train=X, y_train=Y, x_test=X[:, :3], y_test=Y), r"array 'x_test': steps x frame \(3, 3\); the other"),
    (dict(x=X[:3], y=Y[:3]), r"cannot split x/y into train/val/test"),
])
def test_bad_arrays_are_one_line_naming_file_and_array(tmp_path, arrays, message):
    with pytest.raises(UserError, match=message) as err:
        get_dataset(_bad(tmp_path, **arrays))
    assert "\n" not in str(err.value) and "bad.npz" in str(err.value)


def test_object_arrays_are_refused_without_unpickling(tmp_path):
    x = np.empty(10, dtype=object)
    with pytest.raises(UserError, match=r"array 'x': dtype object; expected int or float"):
        get_dataset(_bad(tmp_path, x=x, y=Y))


def test_npy_folder_names_the_file(tmp_path):
    np.save(tmp_path / "x_train.npy", X)
    with pytest.raises(UserError, match=r"y_train.npy: missing; expected it beside 'x_train'"):
        get_dataset(f"npy:{tmp_path}")
    np.save(tmp_path / "y_train.npy", Y.astype(np.float64))
    with pytest.raises(UserError, match=r"y_train.npy: dtype float64; expected integer"):
        get_dataset(f"npy:{tmp_path}")
    (tmp_path / "y_train.npy").write_bytes((tmp_path / "x_train.npy").read_bytes()[:200])  # the header and part of the data
    with pytest.raises(UserError, match=r"y_train.npy: .*truncated"):
        get_dataset(f"npy:{tmp_path}")
    with pytest.raises(UserError, match=r"nothere: not found; expected a folder of .npy files"):
        get_dataset(f"npy:{tmp_path / 'nothere'}")


def test_files_that_are_not_archives_too_big_or_misnamed(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"missing.npz: dataset file not found"):
        get_dataset(f"npz:{tmp_path / 'missing.npz'}")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(UserError, match=r"text.npz: not a .npz archive"):
        get_dataset(f"npz:{tmp_path / 'text.npz'}")
    name = _bad(tmp_path, x=X, y=Y)
    monkeypatch.setenv("LMU2NEURO_MAX_ELEMENTS", "100")  # x declares 120: refused before it is read
    with pytest.raises(UserError, match=r"bad.npz: array 'x': 120 elements .* exceeds the limit of 100"):
        get_dataset(name)
    monkeypatch.delenv("LMU2NEURO_MAX_ELEMENTS")
    with pytest.raises(UserError, match=r"names its own file or folder: drop --data-root"):
        get_dataset(name, root=str(tmp_path))
    with pytest.raises(UserError, match=r"npz:FILE.npz or npy:DIR"):
        get_dataset("zip:foo")
    with pytest.raises(UserError, match=r"option val_fraction=1.5"):
        get_dataset(name, val_fraction=1.5)
    with pytest.raises(UserError, match=r"option test_fraction='a'"):
        get_dataset(name, test_fraction="a")
