"""What authentication costs a search: two gateways over one network (4
ledger replicas, 3 indexers; a collection of 1 fragment, 1,000 vectors of
dimension 32), one with auth off, one with auth on (receipts off on both,
so only the credential's check differs). Rounds alternate: auth off, an API
key (authorization: Bearer), a signed call (a fresh signature and nonce per
call, signed by the client in the loop). Each round sends
MURI_BENCH_SEARCHES sequential Search calls (default 300, top 10 at ONE)
and prints searches per second and p50 / p99 latency of each kind.

Not part of the test suite (the file name does not match test_*.py); run it
with /usr/bin/python3 -m pytest -q -s tests/python/bench_auth.py
"""
import hashlib
import os
import time

import numpy as np

from chain_util import CHAIN, ChainNet
from gateway_util import Gateway
from ledger_util import Account, signed_tx
from test_auth import bearer, key_hash, new_key, signed_call_md

D = 32


def run_round(gw, vpb, tpb, qs, md_of):
    lat = []
    t0 = time.perf_counter()
    for q in qs:
        req = vpb.SearchRequest(collection="b", query_vector=tpb.Vector(values=list(map(float, q))), top_k=10,
                                consistency_level=tpb.ONE)
        s = time.perf_counter()
        gw.stub.Search(req, timeout=30, metadata=md_of(req))
        lat.append(time.perf_counter() - s)
    wall = time.perf_counter() - t0
    lat.sort()
    return len(qs) / wall, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000


def test_bench_auth(servers, stubs, tmp_path):
    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    n = int(os.environ.get("MURI_BENCH_SEARCHES", "300"))
    net = ChainNet(servers, stubs, tmp_path)
    alice, key = Account(), new_key()
    net.submit(signed_tx(lpb, CHAIN, net.owner, transfer=lpb.Transfer(to=alice.pk, amount=100_000)))
    net.submit(signed_tx(lpb, CHAIN, alice, create_api_key=lpb.CreateApiKey(key_hash=key_hash(key),
                                                                            scope=lpb.SCOPE_ADMIN)))
    common = ("--spot-permille", "0", "--receipt-allowance", "0")
    off = Gateway(servers, stubs, net, tmp_path, name="gwoff", args=common)
    on = Gateway(servers, stubs, net, tmp_path, name="gwon", args=("--auth", "true") + common)
    try:
        on.stub.CreateCollection(vpb.CreateCollectionRequest(name="b", dimension=D, metric=tpb.L2, fragments=1,
                                                             replication=1), timeout=90, metadata=bearer(key))
        base = np.random.default_rng(1).normal(size=(1000, D)).astype(np.float32)
        on.stub.Insert(vpb.InsertRequest(collection="b", vectors=[tpb.Vector(values=list(map(float, v)))
                                                                  for v in base], consistency_level=tpb.ALL),
                       timeout=60, metadata=bearer(key))
        qs = np.random.default_rng(2).normal(size=(n, D)).astype(np.float32)
        kinds = {
            "auth off": (off, lambda req: ()),
            "API key": (on, lambda req: bearer(key)),
            "signed call": (on, lambda req: signed_call_md(alice, "/muri.v1.VectorStore/Search",
                                                            req.SerializeToString())),
        }
        res = {k: [] for k in kinds}
        for _ in range(3):
            for k, (gw, md) in kinds.items():
                res[k].append(run_round(gw, vpb, tpb, qs, md))
        for k, rounds in res.items():
            best = max(rounds)
            print(f"\n{k:12s} {best[0]:7.1f} searches/s  p50 {best[1]:6.2f} ms  p99 {best[2]:6.2f} ms  "
                  f"(best of {len(rounds)} rounds of {n})")
    finally:
        off.close()
        on.close()
        net.close()
