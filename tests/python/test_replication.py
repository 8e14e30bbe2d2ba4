"""Replication rules of muri-indexer as a peer or an outsider sees them over
its RPCs: a configuration's epoch never repeats with different contents,
Replicate is taken only from the epoch's primary (signed), FetchLog answers
only members (signed, fresh, unreplayed requests), a primary without a lease acknowledges
nothing, and concurrent first writes to a fragment share one store."""
import hashlib
import threading
import time

import grpc
import numpy as np
import pytest

from muri_util import wait_until
from read_auth import signed
from sodium_keys import keypair_from_seed, sign
from test_indexer import records, root_of, schema, search, set_config, start_indexer, write  # noqa: F401



def vec(n, seed=1):
    return np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)


def test_same_epoch_with_another_primary_is_refused(start_indexer):
    a, b = start_indexer("a"), start_indexer("b")
    for ix in (a, b):
        set_config(ix, ix, "e", 0, 1, [a, b], a)
    assert set_config(a, a, "e", 0, 1, [a, b], a).epoch == 1  # the same again: fine
    with pytest.raises(grpc.RpcError) as e:
        set_config(a, a, "e", 0, 1, [a, b], b)  # two primaries in epoch 1
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "epoch: 1 is the current epoch" in e.value.details()
    t = a.types
    r = write(a, "e", 0, 1, records(a.pb, vec(3)), schema(t, 8, t.L2, t.FLAT), t.ALL)
    assert r.log_size == 3 and r.level_achieved == t.ALL  # a is still the primary, b its backup
    with pytest.raises(grpc.RpcError) as e:
        set_config(b, b, "e", 0, 1, [a, b], b)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_replicate_only_from_the_primary_signed(start_indexer):
    a, b = start_indexer("a"), start_indexer("b")
    for ix in (a, b):
        set_config(ix, ix, "s", 0, 1, [a, b], a)
    t, pb = b.types, b.pb
    sch = schema(t, 8, t.L2, t.FLAT)
    recs = records(pb, vec(4))
    for i, r in enumerate(recs):
        r.seq, r.epoch = i, 1
    empty_root = hashlib.blake2b(b"", digest_size=32).digest()
    pk, sk = keypair_from_seed(bytes(range(32)))
    cases = {
        "unsigned, claiming the primary": dict(sender=a.pubkey),
        "signed by an outsider, claiming the primary": dict(sender=a.pubkey, signature=sign(sk, b"x" * 32)),
        "an outsider as itself": dict(sender=pk, signature=sign(sk, b"x" * 32)),
        "the backup's own key": dict(sender=b.pubkey),
    }
    for name, extra in cases.items():
        req = pb.ReplicateRequest(magu="s", fragment=0, epoch=1, records=recs, schema=sch, primary_size=4,
                                  prev_size=0, prev_root=empty_root, **extra)
        with pytest.raises(grpc.RpcError) as e:
            b.stub.Replicate(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED, name
    # nothing was written: b holds no data for s/0; being assigned it, b
    # answers a search from its empty log
    with pytest.raises(grpc.RpcError) as e:
        root_of(b, "s")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    got = search(b, "s", 0, vec(1)[0], k=3)
    assert got.log_size == 0 and not got.hits
    # the real primary's records do arrive
    r = write(a, "s", 0, 1, records(pb, vec(5)), sch, t.ALL)
    assert r.level_achieved == t.ALL and r.log_size == 5
    assert root_of(b, "s").root == root_of(a, "s").root


def fetch(ix, keys, wall_ms=None, magu="f", chain_id=""):
    req = ix.pb.FetchLogRequest(magu=magu, fragment=0, from_seq=0, max_records=100)
    if keys is not None:
        signed(req, "FetchLog", chain_id, keys, wall_ms)
    return ix.stub.FetchLog(req, timeout=10)


def test_fetch_log_answers_members_only(start_indexer, tmp_path):
    a, b = start_indexer("a"), start_indexer("b")
    for ix in (a, b):
        set_config(ix, ix, "f", 0, 1, [a, b], a)
    t = a.types
    write(a, "f", 0, 1, records(a.pb, vec(6)), schema(t, 8, t.L2, t.FLAT), t.ALL)
    with open(tmp_path / "b.key") as f:
        b_pk, b_sk = keypair_from_seed(bytes.fromhex(f.read().split()[1]))
    assert b_pk == b.pubkey
    out_pk, out_sk = keypair_from_seed(bytes(32))
    with pytest.raises(grpc.RpcError) as e:
        fetch(a, None)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "auth:" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        fetch(a, (out_pk, out_sk))
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "auth.requester" in e.value.details() and "not a replica of f/0" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:  # a member's key claimed by an outsider
        fetch(a, (b_pk, out_sk))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "auth.signature" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:  # signed for another chain
        fetch(a, (b_pk, b_sk), chain_id="another-chain")
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "auth.signature" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:  # an old request
        fetch(a, (b_pk, b_sk), wall_ms=int(time.time() * 1000) - 3_600_000)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "auth.wall_ms" in e.value.details()
    req = signed(a.pb.FetchLogRequest(magu="f", fragment=0, from_seq=0, max_records=100), "FetchLog", "",
                 (b_pk, b_sk))
    got = a.stub.FetchLog(req, timeout=10)
    assert got.log_size == 6 and len(got.records) == 6 and got.epoch == 1
    with pytest.raises(grpc.RpcError) as e:  # the same signed request again
        a.stub.FetchLog(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "replay" in e.value.details()
    # a request signed for FetchLog is no InclusionProof
    p = a.pb.InclusionProofRequest(magu="f", fragment=0, index=0, size=6)
    p.auth.CopyFrom(signed(a.pb.FetchLogRequest(magu="f", fragment=0, from_seq=0, max_records=100), "FetchLog",
                           "", (b_pk, b_sk)).auth)
    with pytest.raises(grpc.RpcError) as e:
        a.stub.InclusionProof(p, timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert fetch(a, (b_pk, b_sk)).log_size == 6


def test_concurrent_first_writes_share_one_store(start_indexer):
    ix = start_indexer("a")
    t, pb = ix.types, ix.pb
    sch = schema(t, 8, t.L2, t.FLAT)
    frags, writers = 12, 4
    for k in range(frags):
        set_config(ix, ix, f"c{k}", 0, 1, [ix], ix)
    reqs = {(k, j): records(pb, vec(20, 10 * k + j)) for k in range(frags) for j in range(writers)}
    results, errors = [], []
    go = threading.Barrier(frags * writers)

    def writer(k, j):
        go.wait()
        try:
            results.append(write(ix, f"c{k}", 0, 1, reqs[(k, j)], sch).log_size)
        except grpc.RpcError as e:
            errors.append(e.details())

    threads = [threading.Thread(target=writer, args=(k, j)) for k in range(frags) for j in range(writers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert sorted(results) == sorted([20 * (j + 1) for j in range(writers)] * frags)
    for k in range(frags):
        assert root_of(ix, f"c{k}").size == 20 * writers
    ix.server.kill9()
    ix.restart()
    for k in range(frags):
        assert root_of(ix, f"c{k}").size == 20 * writers


def test_backup_asks_for_failover_and_refuses_the_lost_epoch(start_indexer):
    timing = ("--heartbeat-ms", "50", "--lease-ms", "300", "--suspect-ms", "800")
    a, b = start_indexer("a", *timing), start_indexer("b", *timing)
    for ix in (a, b):
        set_config(ix, ix, "v", 0, 1, [a, b], a)
    t = a.types
    sch = schema(t, 8, t.L2, t.FLAT)
    assert write(a, "v", 0, 1, records(a.pb, vec(4)), sch, t.ALL).log_size == 4
    a.server.kill9()
    # b hears nothing valid for suspect_ms: it signs a failover request with its (size, root)
    assert wait_until(lambda: "event=failover_request" in b.server.read_log(), timeout=20)
    line = [x for x in b.server.read_log().splitlines() if "event=failover_request" in x][0]
    assert "epoch=1 " in line and "size=4 " in line and "last_epoch=1 " in line
    # and takes nothing more in epoch 1: the old primary, back, gets no lease
    # (UNAVAILABLE) or, told so by b, closes the epoch too (FAILED_PRECONDITION)
    a.restart()
    with pytest.raises(grpc.RpcError) as e:
        write(a, "v", 0, 1, records(a.pb, vec(2)), sch, t.ONE, timeout_ms=1000)
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION)
    assert wait_until(lambda: "event=failover_request" in a.server.read_log(), timeout=20)
    # the next epoch (the ledger's choice later; here the operator's) works
    for ix in (a, b):
        set_config(ix, ix, "v", 0, 2, [a, b], b)
    r = write(b, "v", 0, 2, records(b.pb, vec(3)), sch, t.ALL)
    assert r.level_achieved == t.ALL and r.log_size == 7
    assert wait_until(lambda: root_of(a, "v").root == root_of(b, "v").root, timeout=20)
