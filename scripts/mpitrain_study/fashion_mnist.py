"""Fashion-MNIST from the IDX files of Debian's dataset-fashion-mnist, in
memory and normalised as mpitrain's converter and reader do (for the
PyTorch peer, bench_pytorch.py)."""

import gzip
import math
import os
import struct

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


class DataError(Exception):
    """A missing or broken data file; `code` is the exit code to end with."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def read_idx(path, magic, dims):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 + 4 * dims:
        raise ValueError(f"'{path}' is too short for an IDX header")
    got, *shape = struct.unpack(">" + "I" * (1 + dims), raw[:4 + 4 * dims])
    if got != magic:
        raise ValueError(f"'{path}' has magic 0x{got:08x}, not 0x{magic:08x}")
    count = int(np.prod(shape))
    payload = raw[4 + 4 * dims:]
    if len(payload) != count:
        raise ValueError(f"'{path}' has {len(payload)} data bytes, its header says {count}")
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape[0], -1)


def load_normalised(data_dir):
    """(train_x, train_y, test_x, test_y, mean, std): x float32 (rows, pixels), y int64."""
    paths = {k: os.path.join(data_dir, v) for k, v in FILES.items()}
    for path in paths.values():
        if not os.path.isfile(path):
            raise DataError(f"'{path}' not found: install the data set with 'apt-get install dataset-fashion-mnist'"
                            + ("" if data_dir == DATA_DIR else " or fix --data-dir"), 2)
    try:
        train_u8 = read_idx(paths["train_x"], 0x803, 3)
        train_y = read_idx(paths["train_y"], 0x801, 1).reshape(-1)
        test_u8 = read_idx(paths["test_x"], 0x803, 3)
        test_y = read_idx(paths["test_y"], 0x801, 1).reshape(-1)
    except (OSError, EOFError, ValueError) as e:
        raise DataError(f"{e}; reinstall dataset-fashion-mnist", 1)
    if len(train_u8) != len(train_y) or len(test_u8) != len(test_y) or train_u8.shape[1] != test_u8.shape[1]:
        raise DataError(f"the IDX files in '{data_dir}' do not belong together", 1)

    # Population mean and std of the train pixels after /255, as mpitrain's
    # converter: exact sums from a 256-bin histogram, variance around the mean.
    hist = np.bincount(train_u8.reshape(-1), minlength=256).astype(np.float64)
    values = np.arange(256, dtype=np.float64) / 255.0
    n = hist.sum()
    mean = float((hist * values).sum() / n)
    std = float(math.sqrt((hist * (values - mean) ** 2).sum() / n))
    # mpitrain's reader: v*a + c in float32 with a, c rounded to float32.
    a = np.float32((1.0 / 255.0) / std)
    c = np.float32(-mean / std)
    lut = np.arange(256, dtype=np.float32) * a + c

    return lut[train_u8], train_y.astype(np.int64), lut[test_u8], test_y.astype(np.int64), mean, std
