"""What the split tests through the gateway share (test_split_gateway.py,
test_split_auto.py): the network (4 ledger replicas, 3 indexers, a
gateway), vectors, a QUORUM upsert retried with the same ids until it is
acknowledged, ids of a given cell, and the checks of what a user sees once
the splits are done: every acknowledged id exactly once by Get, by Scroll
and by an exhaustive search."""
import hashlib
import time
import uuid

import grpc
import numpy as np

from chain_util import ChainNet
from gateway_util import Gateway

DIM = 8
DOM_SPLIT = 0x18  # CM_DOM_SPLIT (common/cm_crypto.h)


def split_net(servers, stubs, tmp_path, params=None, ix_args=()):
    """A ChainNet of 3 indexers (roots named every 4 entries, looked at
    every 1.5 s; ix_args: more flags) and a gateway with more RPC workers
    (a write waiting for a split holds one)."""
    n = ChainNet(servers, stubs, tmp_path, n_indexers=3, params=params,
                 ix_args=("--root-every", "4", "--root-interval-ms", "1500", "--drop-ms", "0", *ix_args))
    n.gw = Gateway(servers, stubs, n, tmp_path, args=("--default-timeout-ms", "20000", "--rpc-workers", "16"))
    return n


def close_split_net(n):
    n.gw.close()
    n.close()


def split_hash(rid):
    """cm_cell_hash: H(CM_DOM_SPLIT || id)'s first 8 bytes, big-endian."""
    h = hashlib.blake2b(bytes([DOM_SPLIT]) + uuid.UUID(rid).bytes, digest_size=32).digest()
    return int.from_bytes(h[:8], "big")


def in_cell(rid, depth, path):
    """Whether id rid is in the cell of (depth, path) of a one-fragment Magu."""
    return (split_hash(rid) & ((1 << depth) - 1)) == path


def ids_in_cell(n, depth, path):
    """n fresh ids whose cell at depth is path (base 0)."""
    out = []
    while len(out) < n:
        rid = str(uuid.uuid4())
        if in_cell(rid, depth, path):
            out.append(rid)
    return out


def vecs(tpb, n, seed):
    return [tpb.Vector(values=[float(x) for x in v])
            for v in np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)]


def upsert_until_acked(stub, vpb, tpb, coll, ids, seed, stop_at):
    """Upserts ids (the same ids and vectors on every try: no duplicates)
    until a QUORUM acknowledgement; returns the number of failed tries."""
    fails = 0
    while True:
        try:
            r = stub.Upsert(vpb.UpsertRequest(collection=coll, ids=ids, vectors=vecs(tpb, len(ids), seed),
                                              consistency_level=tpb.QUORUM, timeout_ms=15000), timeout=30)
            if r.status == vpb.SUCCESS:
                return fails
        except grpc.RpcError:
            pass
        fails += 1
        assert time.time() < stop_at, f"a batch was never acknowledged ({fails} tries)"
        time.sleep(0.1)


def check_found_once(stub, vpb, tpb, coll, acked):
    """Get, Scroll (pages of 37) and an exhaustive QUORUM search each find
    every acknowledged id exactly once and nothing else."""
    g = stub.Get(vpb.GetRequest(collection=coll, ids=acked), timeout=30)
    got = [x.id for x in g.records]
    assert sorted(got) == sorted(acked), f"Get found {len(got)} of {len(acked)}"

    seen, cursor = [], ""
    while True:
        r = stub.Scroll(vpb.ScrollRequest(collection=coll, page_size=37, cursor=cursor), timeout=30)
        seen += [x.id for x in r.records]
        cursor = r.next_cursor
        if not cursor:
            break
    assert len(seen) == len(set(seen)), "Scroll returned an id twice"
    assert sorted(seen) == sorted(acked), f"Scroll found {len(seen)} of {len(acked)}"

    q = vecs(tpb, 1, 5)[0]
    r = stub.Search(vpb.SearchRequest(collection=coll, query_vector=q, top_k=max(1000, len(acked)),
                                      consistency_level=tpb.QUORUM), timeout=30)
    found = [x.id for x in r.results]
    assert len(found) == len(set(found)), "an exhaustive search returned an id twice"
    assert sorted(found) == sorted(acked), f"an exhaustive search found {len(found)} of {len(acked)}"


def read_once(stub, vpb, tpb, coll, q, sample, stats, errors):
    """One search of q (top 200, QUORUM: its ids must not repeat, counted in
    stats with the slowest time) and one Get of sample (every id must be
    found), as a reader thread does during a split."""
    t0 = time.time()
    try:
        r = stub.Search(vpb.SearchRequest(collection=coll, query_vector=q, top_k=200,
                                          consistency_level=tpb.QUORUM, timeout_ms=10000), timeout=20)
        got = [x.id for x in r.results]
        if len(got) != len(set(got)):
            stats["dups"].append(got)
        stats["searches"] += 1
        stats["search_max_s"] = max(stats.get("search_max_s", 0), time.time() - t0)
    except grpc.RpcError:
        stats["search_failed"] += 1
    if not sample:
        return
    try:
        g = stub.Get(vpb.GetRequest(collection=coll, ids=sample), timeout=20)
        got = [x.id for x in g.records]
        if sorted(got) != sorted(sample):
            errors.append(f"Get of {len(sample)} acknowledged ids found {len(got)}")
        stats["gets"] += 1
    except grpc.RpcError as e:
        errors.append(f"Get failed: {e.details()}")


def describe_once(stub, vpb, coll, seen_states, failed=None):
    """Adds Describe's (fragment, state, searched) triples to seen_states;
    a failure goes to failed when given."""
    try:
        d = stub.DescribeCollection(vpb.DescribeCollectionRequest(name=coll), timeout=20)
        seen_states.update((x.fragment, x.state, x.searched) for x in d.fragment_states)
    except grpc.RpcError as e:
        if failed is not None:
            failed.append(f"{e.code()}: {e.details()}")
