"""Fill benchmark (scripts/bench.sh fill): does a node's fill slow its
searches? One indexer registers a capacity on chain; a searched collection
(the first N rows of glove-100-angular, HNSW) and a filler collection (random
256-d vectors, FLAT) live on it. The filler is written until the ledger's own
fill figure for the indexer (GetIndexer.fill_permille: committed log sizes x
the per-record estimate) reaches 40%, then 80%; at each step the same queries
are searched on the searched collection through a gateway, one at a time at
ONE (twice at 40%: the run-to-run noise), and p50 / p99 / QPS are printed with the CPU time the indexer and the
gateway spent per search (from /proc/<pid>/stat) and recall@10 against brute
force over the same rows. The 40% row is the baseline of the 80% row.

Not part of the test suite (the file name does not match test_*.py). Options
from the environment (scripts/bench.sh sets them): MURI_BENCH_ROWS (searched
rows, default 10000), MURI_BENCH_QUERIES (default 1000), MURI_BENCH_SHARE
(the searched collection's share of the capacity, default 0.2),
MURI_BENCH_EF_SEARCH (default 64)."""
import os
import time

import grpc
import numpy as np

from chain_util import ChainNet
from gateway_util import Gateway
from muri_util import dataset, wait_until

OVERHEAD = 768   # the ledger's default record_overhead
FILL_DIM = 256
BATCH = 2000
K = 10
ROOT_EVERY = 500  # the indexer's root_every here: roots cover the log in steps of it


def env(name, default):
    v = os.environ.get(name)
    return v if v else default


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def test_fill_bench(servers, stubs, tmp_path):
    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    rows, nq = int(env("MURI_BENCH_ROWS", "10000")), int(env("MURI_BENCH_QUERIES", "1000"))
    share, efs = float(env("MURI_BENCH_SHARE", "0.2")), int(env("MURI_BENCH_EF_SEARCH", "64"))
    base, queries, _, _ = dataset("glove-100-angular")
    base, queries = base[:rows], queries[:nq]
    rec_s, rec_f = 100 * 4 + OVERHEAD, FILL_DIM * 4 + OVERHEAD
    capacity = int(rows * rec_s / share)
    print(f"\nload average before: {loadavg()}")
    print(f"searched: glove-100-angular first {rows} rows ({rows * rec_s} bytes by the chain's estimate); "
          f"capacity {capacity} bytes; filler {FILL_DIM}-d, {rec_f} bytes a record")
    net = ChainNet(servers, stubs, tmp_path, n_indexers=1, capacity=capacity,
                   ix_args=("--max-index-backlog", "0", "--log-level", "warn", "--root-every", str(ROOT_EVERY),
                            "--root-interval-ms", "200"),
                   ledger_args=("--idle-when-final", "true"))
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "60000", "--log-level", "warn"))
    ixpk = net.ixacc[0].pk
    pids = {"indexer": net.indexers[0].server.proc.pid, "gateway": gw.server.proc.pid}

    def info():
        return net.lstubs[0].GetIndexer(lpb.IndexerRequest(pubkey=ixpk), timeout=30)

    def insert(coll, vecs):
        for s in range(0, len(vecs), BATCH):
            r = gw.stub.Insert(vpb.InsertRequest(
                collection=coll, vectors=[tpb.Vector(values=v.tolist()) for v in vecs[s:s + BATCH]],
                consistency_level=tpb.ONE), timeout=120)
            assert r.status == vpb.SUCCESS, r.message

    def settle(want_used):
        # the chain's figure follows committed roots (each a multiple of
        # ROOT_EVERY records): wait until it covers what was written
        assert wait_until(lambda: info().used_bytes >= want_used, timeout=300), (info(), want_used)
        return info()

    def measure(label):
        for q in queries[:50]:  # warm up
            gw.stub.Search(vpb.SearchRequest(collection="searched", query_vector=tpb.Vector(values=q.tolist()),
                                             top_k=K, consistency_level=tpb.ONE), timeout=30)
        c0 = {k: cpu_s(p) for k, p in pids.items()}
        lat, hits = [], 0
        t0 = time.perf_counter()
        for i, q in enumerate(queries):
            t = time.perf_counter()
            r = gw.stub.Search(vpb.SearchRequest(collection="searched", query_vector=tpb.Vector(values=q.tolist()),
                                                 top_k=K, consistency_level=tpb.ONE), timeout=30)
            lat.append(time.perf_counter() - t)
            hits += len({row_of[x.id] for x in r.results} & set(truth[i]))
        wall = time.perf_counter() - t0
        c1 = {k: cpu_s(p) for k, p in pids.items()}
        x = info()
        lat = np.array(lat) * 1000
        row = dict(label=label, fill=x.fill_permille / 10, used=x.used_bytes, p50=np.percentile(lat, 50),
                   p99=np.percentile(lat, 99), qps=len(queries) / wall,
                   cpu_ix=(c1["indexer"] - c0["indexer"]) / len(queries) * 1e6,
                   cpu_gw=(c1["gateway"] - c0["gateway"]) / len(queries) * 1e6,
                   recall=hits / (K * len(queries)), load=loadavg())
        print(f"measured at {label}: {row}")
        return row

    try:
        gw.stub.CreateCollection(vpb.CreateCollectionRequest(
            name="searched", dimension=100, metric=tpb.COSINE,
            index=tpb.IndexSpec(kind=tpb.HNSW, hnsw_m=16, hnsw_ef_construction=100, hnsw_ef_search=efs),
            fragments=1, replication=1), timeout=120)
        gw.stub.CreateCollection(vpb.CreateCollectionRequest(
            name="filler", dimension=FILL_DIM, metric=tpb.L2, index=tpb.IndexSpec(kind=tpb.FLAT),
            fragments=1, replication=1), timeout=120)
        ids = []
        for s in range(0, rows, BATCH):
            r = gw.stub.Insert(vpb.InsertRequest(
                collection="searched", vectors=[tpb.Vector(values=v.tolist()) for v in base[s:s + BATCH]],
                consistency_level=tpb.ONE), timeout=120)
            assert r.status == vpb.SUCCESS, r.message
            ids.extend(r.vector_ids)
        row_of = {v: i for i, v in enumerate(ids)}
        nb = base / np.linalg.norm(base, axis=1, keepdims=True)
        nqv = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        truth = [set(t) for t in np.argsort(-(nqv @ nb.T), axis=1)[:, :K].tolist()]
        settle(rows // ROOT_EVERY * ROOT_EVERY * rec_s)
        rng = np.random.default_rng(16)
        results, filled = [], 0
        for target in (400, 800):
            need = target * capacity // 1000 - info().used_bytes
            n = max(0, -(-need // rec_f))
            n = -(-n // ROOT_EVERY) * ROOT_EVERY  # whole root steps, so the chain's figure gets there
            insert("filler", rng.normal(size=(n, FILL_DIM)).astype(np.float32))
            filled += n
            x = settle(rows // ROOT_EVERY * ROOT_EVERY * rec_s + filled * rec_f)
            assert x.fill_permille >= target, x
            time.sleep(2)  # the filler's index catches up
            results.append(measure(f"{target // 10}%"))
            if target == 400:  # the same again: the run-to-run noise at one fill
                results.append(measure("40% again"))
        a, a2, b = results
        # at 80% the node is full for new placements: a collection that needs it is refused
        try:
            gw.stub.CreateCollection(vpb.CreateCollectionRequest(name="late", dimension=100, metric=tpb.COSINE,
                                                                 fragments=1, replication=1), timeout=120)
            raise AssertionError("a collection was placed on a node at max_fill")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.FAILED_PRECONDITION and "capacity" in e.details(), e
            print(f"CreateCollection at {b['fill']:.1f}%: {e.code().name}: {e.details()}")
        print(f"\n| measured at | used bytes | search p50 ms | p99 ms | QPS | CPU/search indexer us | "
              f"gateway us | recall@10 | load average |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['label']}: {r['fill']:.1f}% | {r['used']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['qps']:.0f} | "
                  f"{r['cpu_ix']:.0f} | {r['cpu_gw']:.0f} | {r['recall']:.3f} | {r['load']} |")
        for name, x, y in (("40% again / 40%", a2, a), ("80% / 40%", b, a)):
            print(f"| {name} | | {x['p50'] / y['p50']:.3f} | {x['p99'] / y['p99']:.3f} | {x['qps'] / y['qps']:.3f} | "
                  f"{x['cpu_ix'] / max(y['cpu_ix'], 1e-9):.3f} | {x['cpu_gw'] / max(y['cpu_gw'], 1e-9):.3f} | | |")
        print(f"load average after: {loadavg()}")
    finally:
        gw.close()
        net.close()
