"""Signed reads (proto/indexer.proto ReadAuth, common/cm_read_auth.h): the
caller's node key over H(CM_DOM_READ || method || 0 || chain_id || 0 ||
the request with auth.signature empty)."""
import hashlib
import time

import grpc
import pytest

from sodium_keys import keypair_from_seed, sign

DOM_READ = 0x13


def read_digest(req, method, chain_id):
    c = type(req)()
    c.CopyFrom(req)
    c.auth.signature = b""
    return hashlib.blake2b(bytes([DOM_READ]) + method.encode() + b"\0" + chain_id.encode() + b"\0" +
                           c.SerializeToString(), digest_size=32).digest()


def keys_of(key_path):
    """(public key, secret key) of a muri key file."""
    with open(key_path) as f:
        return keypair_from_seed(bytes.fromhex(f.read().split()[1]))


def signed(req, method, chain_id, keys, wall_ms=None):
    """req with auth filled and signed by keys = (pk, sk); returns req."""
    pk, sk = keys
    req.auth.requester = pk
    req.auth.wall_ms = wall_ms if wall_ms is not None else int(time.time() * 1000)
    req.auth.signature = sign(sk, read_digest(req, method, chain_id))
    return req


def refused(call, code, *words):
    """A call that must fail with code and a message naming every word;
    returns the message."""
    with pytest.raises(grpc.RpcError) as e:
        call()
    assert e.value.code() == code, (e.value.code(), e.value.details())
    for w in words:
        assert w in e.value.details(), e.value.details()
    return e.value.details()
