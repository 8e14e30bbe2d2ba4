"""Binary vectors benchmark (scripts/bench.sh binary): a network started
from a genesis file (4 ledger replicas, 3 indexers) and a gateway following
it; one HAMMING collection (HNSW M 32, efConstruction 200, one fragment, 3
replicas) of the sign bits of glove-100-angular's first MURI_BENCH_ROWS
rows lifted to MURI_BENCH_BITS dimensions by a seeded orthogonal map (the
codes of tests/python/test_binary_e2e.py). A Python grpcio client inserts
at QUORUM in batches of 10,000 (timed), waits for the indexes, then at ONE
and QUORUM measures SearchBatch (batches of 100) and sequential single
Searches on MURI_BENCH_QUERIES sampled queries, once every indexer's
index covers the log (Status index_backlog 0): QPS, p50/p99 and recall@10
against brute-force Hamming with ties counted (a hit at the 10th true
distance is a hit). Every answer passes the gateway's checks: signatures
and Hamming distances recomputed from the returned codes.

Not part of the test suite (the file name does not match test_*.py)."""
import os
import time

import numpy as np

from chain_util import ChainNet
from gateway_util import Gateway
from muri_util import dataset, wait_until
from test_binary_e2e import codes, hamming, recall
from test_dims import lift

COLL = "bench_bits"


def env(name, default):
    v = os.environ.get(name)
    return int(v) if v else default


def test_binary_bench(servers, stubs, tmp_path):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    rows, nq, bits = env("MURI_BENCH_ROWS", 100000), env("MURI_BENCH_QUERIES", 1000), env("MURI_BENCH_BITS", 384)
    base0, queries0, _, _ = dataset("glove-100-angular")
    sel = np.random.default_rng(7).choice(len(queries0), nq, replace=False)
    base, queries = codes(lift(base0[:rows], bits, bits)), codes(lift(queries0[sel], bits, bits))
    net = ChainNet(servers, stubs, tmp_path, n_indexers=3,
                   ix_args=("--max-index-backlog", "0", "--log-level", "warn"),
                   ledger_args=("--idle-when-final", "true"))
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "60000", "--log-level", "warn"))
    try:
        stub = gw.stub
        stub.CreateCollection(vpb.CreateCollectionRequest(
            name=COLL, dimension=bits, metric=tpb.HAMMING,
            index=tpb.IndexSpec(kind=tpb.HNSW, hnsw_m=32, hnsw_ef_construction=200), fragments=1, replication=3),
            timeout=120)
        ids, lat = [], []
        t0 = time.time()
        for s in range(0, rows, 10000):
            t = time.time()
            r = stub.Insert(vpb.InsertRequest(collection=COLL, vectors=[tpb.Vector(binary=bytes(c)) for c in base[s:s + 10000]],
                                              consistency_level=tpb.QUORUM), timeout=600)
            lat.append(time.time() - t)
            assert r.status == vpb.SUCCESS, r.message
            ids.extend(r.vector_ids)
        t_ins = time.time() - t0
        row_of = {i: n for n, i in enumerate(ids)}
        # the indexes catch up (no complete batch left outside them), as gateway_bench waits
        t0 = time.time()
        for ix in net.indexers:
            assert wait_until(lambda: ix.status()[1].get("index_backlog") == "0", timeout=1800, interval=1)
        t_idx = time.time() - t0
        stub.SearchBatch(vpb.SearchBatchRequest(collection=COLL, query_vectors=[tpb.Vector(binary=bytes(queries[0]))],
                                                top_k=10), timeout=600)
        dist = np.stack([hamming(base, q) for q in queries])
        qv = [tpb.Vector(binary=bytes(q)) for q in queries]
        print(f"\n{rows} codes of {bits} bits: insert at QUORUM {rows / t_ins:.0f} rows/s, 10k-batch p50 "
              f"{np.percentile(lat, 50):.2f} s max {max(lat):.2f} s; indexes caught up {t_idx:.0f} s later")
        for level, name in ((tpb.ONE, "ONE"), (tpb.QUORUM, "QUORUM")):
            got = []
            t0 = time.time()
            for s in range(0, nq, 100):
                r = stub.SearchBatch(vpb.SearchBatchRequest(collection=COLL, query_vectors=qv[s:s + 100], top_k=10,
                                                            consistency_level=level), timeout=600)
                got.extend(r.results)
            tb = time.time() - t0
            rb = np.mean([recall(g.results, row_of, dist[q]) for q, g in enumerate(got)])
            one, rs = [], []
            for q in range(min(nq, 300)):
                t = time.time()
                r = stub.Search(vpb.SearchRequest(collection=COLL, query_vector=qv[q], top_k=10,
                                                  consistency_level=level), timeout=60)
                one.append(time.time() - t)
                rs.append(recall(r.results, row_of, dist[q]))
            print(f"{name}: SearchBatch {nq / tb:.0f} QPS recall@10 {rb:.3f}; Search (sequential) "
                  f"{len(one) / sum(one):.0f} QPS p50 {1e3 * np.percentile(one, 50):.2f} ms "
                  f"p99 {1e3 * np.percentile(one, 99):.2f} ms recall@10 {np.mean(rs):.3f}")
            assert rb >= 0.9
    finally:
        gw.close()
        net.close()
