"""Fashion-MNIST (Debian's dataset-fashion-mnist, 784-d images, pixel values
0..255 as float32) as .fvecs for the benchmarks: base.fvecs the 60,000
training images, query.fvecs the 10,000 test images, written to OUT once
(an existing pair is kept).
    fashion_mnist.py OUT [--src /usr/share/datasets/fashion-mnist]"""
import argparse
import gzip
import os
import sys

import numpy as np


def idx_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic, n, rows, cols = np.frombuffer(raw[:16], dtype=">i4")
    if magic != 2051:
        sys.exit(f"{path}: not an IDX image file (magic {magic})")
    return np.frombuffer(raw[16:], dtype=np.uint8).reshape(n, rows * cols)


def write_fvecs(path, x):
    rows = np.empty((x.shape[0], x.shape[1] + 1), dtype=np.int32)
    rows[:, 0] = x.shape[1]
    rows[:, 1:] = x.astype(np.float32).view(np.int32)
    tmp = path + ".tmp"
    rows.tofile(tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name, src in (("base.fvecs", "train-images-idx3-ubyte.gz"), ("query.fvecs", "t10k-images-idx3-ubyte.gz")):
        dst = os.path.join(a.out, name)
        if not os.path.exists(dst):
            p = os.path.join(a.src, src)
            if not os.path.exists(p):
                sys.exit(f"{p}: missing (apt-get install dataset-fashion-mnist)")
            write_fvecs(dst, idx_images(p))
    print(a.out)


if __name__ == "__main__":
    main()
