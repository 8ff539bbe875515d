"""Images for the deep latent-variable zoo: scikit-learn's bundled digits, and MNIST-style files the user has.

Images come back as ``float32`` arrays ``(N, D)`` of grey levels in ``[0, 1]``
(a Bernoulli likelihood reads them after binarisation). Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import pathlib
import struct

import numpy as np

__all__ = ["load_digits", "load_images", "check_unit_interval", "binarize"]

#: held-out digits for test log-likelihoods (the last ones after a fixed shuffle)
DIGITS_TEST_SIZE = 297


def check_unit_interval(name: str, x) -> np.ndarray:
    """``x`` as a float array with every entry in ``[0, 1]``, or a ``ValueError`` naming ``name``."""
    a = np.asarray(x)
    if a.size and (not np.all(np.isfinite(a)) or a.min() < 0 or a.max() > 1):
        lo, hi = (float(np.nanmin(a)), float(np.nanmax(a))) if a.size else (0.0, 0.0)
        raise ValueError(
            f"{name} must hold grey levels or binary pixels in [0, 1] for a Bernoulli likelihood, "
            f"got values in [{lo:.4g}, {hi:.4g}] (divide 8-bit images by 255)"
        )
    return a


def binarize(x, seed: int = 0) -> np.ndarray:
    """A fixed binarisation ``1[u < x]``, ``u ~ U(0, 1)`` with ``seed`` (``float32``, same shape)."""
    x = check_unit_interval("x", x)
    return (np.random.default_rng(seed).random(x.shape) < x).astype(np.float32)


def load_digits(split: str = "train") -> np.ndarray:
    """scikit-learn's 8x8 digits (1,797 images) as ``(N, 64)`` grey levels in ``[0, 1]``.

    ``split``: ``"train"`` (1,500 images), ``"test"`` (the other 297, after a
    fixed shuffle) or ``"all"``.
    """
    from sklearn.datasets import load_digits as sk_digits

    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    x = (sk_digits().data / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    if split == "train":
        return x[order[:-DIGITS_TEST_SIZE]]
    if split == "test":
        return x[order[-DIGITS_TEST_SIZE:]]
    return x


def _read_idx(path: pathlib.Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(4)
        if len(head) != 4 or head[:2] != b"\x00\x00" or head[2] != 0x08:
            raise ValueError(f"{path}: not an unsigned-byte IDX file (MNIST format)")
        ndim = head[3]
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: the IDX header promises {shape} values, the file holds {data.size}")
    return data.reshape(shape)


def load_images(path, key: str | None = None) -> np.ndarray:
    """Images from an IDX file (MNIST / Fashion-MNIST ``*-images-idx3-ubyte[.gz]``) or a ``.npz``.

    Args:
        path: the file; never downloaded.
        key: for a ``.npz`` with several arrays, which one (e.g. ``"x_train"``).

    Returns ``(N, D)`` ``float32`` in ``[0, 1]``: 8-bit images are divided by 255,
    each image flattened.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a readable file")
    if path.suffix == ".npz":
        with np.load(path) as archive:
            names = list(archive.keys())
            if key is None:
                if len(names) != 1:
                    raise ValueError(f"{path} holds several arrays {names}; pass key=")
                key = names[0]
            if key not in names:
                raise ValueError(f"key must be one of {names}, got {key!r}")
            data = archive[key]
    else:
        data = _read_idx(path)
    if data.ndim < 2:
        raise ValueError(f"{path}: expected images (N, ...), got an array of shape {data.shape}")
    x = data.reshape(len(data), -1)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    return check_unit_interval(str(path), x)
