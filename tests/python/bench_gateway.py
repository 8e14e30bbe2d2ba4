"""Gateway benchmark (scripts/bench.sh gateway): a network started from a
genesis file (4 ledger replicas, 3 indexers) and a gateway following it; one
collection (one Magu of one fragment, 3 replicas, HNSW) created through the
gateway; then tests/bench/gateway_bench.c, a C client, inserts the dataset
at QUORUM, waits for the indexes and measures Search and SearchBatch at
ONE, QUORUM and ALL next to in-process faiss with the same parameters.

Not part of the test suite (the file name does not match test_*.py). The
options come from the environment (scripts/bench.sh sets them):
MURI_BENCH_ROWS (0: the whole dataset), MURI_BENCH_QUERIES, MURI_BENCH_EF_SEARCH,
MURI_BENCH_DATASET, MURI_BENCH_ARGS (more gateway-bench options), MURI_BENCH_GW_ARGS and
MURI_BENCH_INDEXER_ARGS (more muri-gateway and muri-indexer flags)."""
import os
import subprocess

from chain_util import ChainNet
from gateway_util import Gateway

COLL = "bench"


def env(name, default):
    v = os.environ.get(name)
    return v if v else default


def test_gateway_bench(servers, stubs, tmp_path):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    m, efc, efs = 32, 200, int(env("MURI_BENCH_EF_SEARCH", "128"))
    # writes are not held back by the index backlog: the benchmark times the
    # log's ingest, then waits for the indexes before searching
    net = ChainNet(servers, stubs, tmp_path, n_indexers=3,
                   ix_args=("--max-index-backlog", "0", "--log-level", "warn", *env("MURI_BENCH_INDEXER_ARGS", "").split()),
                   # an idle chain idles (one empty block a second) instead of
                   # voting on empty blocks as fast as it can, which would take
                   # most of a core from the processes measured
                   ledger_args=("--idle-when-final", "true"))
    # no failures here: a slow replica on a busy machine is waited for, not left for another
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "60000", "--try-timeout-ms", "30000",
                                                      "--log-level", "warn", *env("MURI_BENCH_GW_ARGS", "").split()))
    try:
        info = gw.stub.CreateCollection(vpb.CreateCollectionRequest(
            name=COLL, dimension=100, metric=tpb.COSINE,
            index=tpb.IndexSpec(kind=tpb.HNSW, hnsw_m=m, hnsw_ef_construction=efc, hnsw_ef_search=efs),
            fragments=1, replication=3), timeout=120)
        assert info.fragments == 1 and info.replication == 3
        exe = os.path.join(os.environ["MURI_BUILD_ROOT"], "tests/bench/gateway-bench")
        args = [exe, "--gateway", gw.server.target, "--collection", COLL,
                "--indexers", ",".join(ix.server.target for ix in net.indexers),
                "--dataset", env("MURI_BENCH_DATASET", "glove-100-angular"),
                "--rows", env("MURI_BENCH_ROWS", "0"), "--queries", env("MURI_BENCH_QUERIES", "10000"),
                "--m", str(m), "--ef-construction", str(efc), "--ef-search", str(efs)]
        # CPU time per query of every process, over each sequential run
        pids = [f"gateway={gw.server.proc.pid}"] + [f"ix{i}={ix.server.proc.pid}" for i, ix in enumerate(net.indexers)]
        pids += [f"ledger{i}={p.proc.pid}" for i, p in enumerate(net.ledger_servers)]
        args += ["--cpu-pids", ",".join(pids)]
        args += env("MURI_BENCH_ARGS", "").split()
        r = subprocess.run(args, capture_output=True, text=True, timeout=6 * 3600)
        print(r.stderr[-4000:])
        print(r.stdout)
        assert r.returncode == 0, r.stderr[-2000:]
    finally:
        gw.close()
        net.close()
