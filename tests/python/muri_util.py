"""Helpers for muri's Python tests: datasets, the RFC 6962 Merkle proofs
with muri's BLAKE2b hashing, signed-message checks, and indexer calls."""
import hashlib
import os
import time

import numpy as np

DATASETS = os.environ.get("MURI_DATASETS", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "datasets"))

DOM_LEAF, DOM_NODE, DOM_ANSWER, DOM_CHALLENGE, DOM_ROOT = 0x00, 0x01, 0x06, 0x07, 0x09


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    rows = raw.reshape(-1, d + 1)
    return rows[:, 1:].copy().view(dtype)


def dataset(name):
    base = os.path.join(DATASETS, name)
    words_path = os.path.join(base, "base_words.txt")
    words = open(words_path).read().split("\n") if os.path.exists(words_path) else None
    return (read_vecs(os.path.join(base, "base.fvecs"), np.float32),
            read_vecs(os.path.join(base, "query.fvecs"), np.float32),
            read_vecs(os.path.join(base, "groundtruth.ivecs"), np.int32), words)


def h(domain, *parts):
    m = hashlib.blake2b(digest_size=32)
    m.update(bytes([domain]))
    for p in parts:
        m.update(p)
    return m.digest()


def leaf_hash(leaf):
    return h(DOM_LEAF, leaf)


def verify_inclusion(leaf_hash_, index, size, path, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash_
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = h(DOM_NODE, p, r)
            if not fn & 1:
                while (fn & 1) == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = h(DOM_NODE, r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def cosine_distances(base, q):
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q)
    return 1.0 - bn @ qn


def wait_until(fn, timeout=60.0, interval=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(interval)
    return fn()


class Indexer:
    """A thin client of one muri-indexer process."""

    def __init__(self, server, stubs, key_path, channel_options, credentials=None):
        self.server = server
        self.credentials = credentials  # grpc channel credentials (TLS), or None: plaintext
        self.stubs = stubs
        self.options = channel_options
        self.pb = stubs.indexer_pb2
        self.types = stubs.types_pb2
        self.channel = None
        self.reconnect()
        self.pubkey = None
        self.key_path = key_path

    def reconnect(self):
        """A fresh channel: after a kill -9 the old connection fails its next call."""
        import grpc
        if self.channel:
            self.channel.close()
        self.channel = (grpc.secure_channel(self.server.target, self.credentials, options=self.options)
                        if getattr(self, "credentials", None) else
                        grpc.insecure_channel(self.server.target, options=self.options))
        self.stub = self.stubs.indexer_pb2_grpc.IndexerStub(self.channel)

    def restart(self):
        self.server.restart()
        self.reconnect()

    def replica(self):
        return self.types.Replica(pubkey=self.pubkey, address=self.server.target)

    def status(self):
        st = self.stub.Status(self.types.StatusRequest(), timeout=10)
        return st, dict(st.details)

    def close(self):
        self.channel.close()
