"""What search receipts cost a search: two gateways over one network (4
ledger replicas, 3 indexers; a collection of 2 fragments replicated twice,
2,000 vectors of dimension 32), one with receipts off (receipt_allowance 0),
one with receipts on (batches of receipt_batch, default 1024). Rounds
alternate between them; each round sends MURI_BENCH_SEARCHES Search calls
(default 400, top 10 at QUORUM) from MURI_BENCH_THREADS client threads
(default 4). Prints searches per second and the p50 / p99 latency of each
gateway, and what the receipts gateway settled.

Not part of the test suite (the file name does not match test_*.py); run it
with /usr/bin/python3 -m pytest -q -s tests/python/bench_receipts.py
"""
import os
import threading
import time
import urllib.request

import numpy as np

from chain_util import ChainNet
from gateway_util import Gateway
from muri_util import wait_until

D = 32


def env_int(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def metric(gw, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{gw.server.metrics_port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def run_round(gw, vpb, tpb, qs, threads):
    lat, lock = [], threading.Lock()
    per = len(qs) // threads

    def worker(part):
        mine = []
        for q in part:
            t0 = time.perf_counter()
            r = gw.stub.Search(vpb.SearchRequest(collection="bench", query_vector=tpb.Vector(values=q), top_k=10,
                                                 consistency_level=tpb.QUORUM), timeout=30)
            mine.append(time.perf_counter() - t0)
            assert len(r.results) == 10
        with lock:
            lat.extend(mine)
    ts = [threading.Thread(target=worker, args=(qs[i * per:(i + 1) * per],)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return len(lat) / (time.perf_counter() - t0), lat


def test_receipts_bench(servers, stubs, tmp_path):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    searches, threads, rounds = env_int("MURI_BENCH_SEARCHES", 400), env_int("MURI_BENCH_THREADS", 4), 3
    net = ChainNet(servers, stubs, tmp_path)
    off = Gateway(servers, stubs, net, tmp_path, name="gw-off", args=("--receipt-allowance", "0", "--spot-permille", "0"))
    on = Gateway(servers, stubs, net, tmp_path, name="gw-on", args=("--spot-permille", "0"))
    try:
        off.stub.CreateCollection(vpb.CreateCollectionRequest(
            name="bench", dimension=D, metric=tpb.L2, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=2,
            replication=2), timeout=90)
        rng = np.random.default_rng(1)
        base = rng.normal(size=(2000, D)).astype(np.float32)
        for s in range(0, len(base), 500):
            off.stub.Insert(vpb.InsertRequest(collection="bench", vectors=[tpb.Vector(values=list(map(float, v)))
                                                                           for v in base[s:s + 500]],
                                              consistency_level=tpb.ALL), timeout=60)
        assert wait_until(lambda: on.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=10).collections,
                          timeout=30)
        qs = [list(map(float, q)) for q in rng.normal(size=(searches, D)).astype(np.float32)]
        run_round(off, vpb, tpb, qs[:40], threads)  # warm both up
        run_round(on, vpb, tpb, qs[:40], threads)
        got = {"off": [], "on": []}
        for _ in range(rounds):
            for name, gw in (("off", off), ("on", on)):
                qps, lat = run_round(gw, vpb, tpb, qs, threads)
                got[name].append((qps, lat))
        print(f"\n{searches} Search calls per round (top 10, QUORUM, 2 fragments x 2 replicas, 2,000 x {D}), "
              f"{threads} client threads, {rounds} rounds alternating:")
        for name in ("off", "on"):
            qps = [g[0] for g in got[name]]
            lat = np.concatenate([g[1] for g in got[name]]) * 1000
            print(f"  receipts {name:3}: {np.median(qps):7.1f} searches/s (rounds {', '.join(f'{x:.1f}' for x in qps)})"
                  f", p50 {np.percentile(lat, 50):.2f} ms, p99 {np.percentile(lat, 99):.2f} ms")
        total = 40 + rounds * searches  # the receipts gateway's searches, warm-up included
        wait_until(lambda: metric(on, "muri_gateway_receipts_settled_total") >= total, timeout=60)
        print(f"  receipts gateway: {metric(on, 'muri_gateway_receipts_queued_total'):.0f} queued, "
              f"{metric(on, 'muri_gateway_receipts_settled_total'):.0f} settled in "
              f"{metric(on, 'muri_gateway_settles_total'):.0f} Settles "
              f"({metric(on, 'muri_gateway_settles_failed_total'):.0f} failed)")
    finally:
        off.close()
        on.close()
        net.close()
