"""Scale benchmark (scripts/bench.sh scale): a network started from a
genesis file (4 ledger replicas, 3 indexers) and a gateway following it;
tests/bench/scale_bench.c, a C client, runs the in-process baseline, creates
the collection (L2, HNSW, MURI_BENCH_REPLICATION replicas of
MURI_BENCH_FRAGMENTS fragments) through the gateway, loads the dataset at
QUORUM, searches, runs the mixed load and prints DVESP's targets met or not.
Afterwards the indexers' data folders on disk, in bytes per vector.

Not part of the test suite (the file name does not match test_*.py). The
options come from the environment (scripts/bench.sh sets them):
MURI_BENCH_DATA (the dataset folder), MURI_BENCH_ROWS (0: all),
MURI_BENCH_QUERIES, MURI_BENCH_REPLICATION, MURI_BENCH_FRAGMENTS,
MURI_BENCH_INDEXER_ARGS (more muri-indexer options, e.g. --persist-interval-ms),
MURI_BENCH_ARGS (more scale-bench options)."""
import os
import shutil
import subprocess

from chain_util import ChainNet
from gateway_util import Gateway


def env(name, default):
    v = os.environ.get(name)
    return v if v else default


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(d, f)).st_blocks * 512
            except OSError:
                pass
    return total


def test_scale_bench(servers, stubs, tmp_path):
    # writes are not held back by the index backlog: the client times the
    # log's ingest and then the wait until every index covers it. No
    # failures here: on a loaded machine a primary busy indexing 784-d
    # vectors may be silent for seconds, so backups wait longer before they
    # ask for a failover (suspect_ms), Replicate calls get longer deadlines
    # and a slow backup is waited for, never replaced (drop_ms 0)
    net = ChainNet(servers, stubs, tmp_path, n_indexers=3,
                   ix_args=("--max-index-backlog", "0", "--repl-timeout-ms", "60000", "--drop-ms", "0",
                            "--log-level", "warn", *env("MURI_BENCH_INDEXER_ARGS", "").split()),
                   timing=("--lease-ms", "5000", "--suspect-ms", "30000"),
                   ledger_args=("--idle-when-final", "true"))
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "60000", "--try-timeout-ms", "30000",
                                                      "--log-level", "warn"))
    try:
        exe = os.path.join(os.environ["MURI_BUILD_ROOT"], "tests/bench/scale-bench")
        args = [exe, "--gateway", gw.server.target, "--data", os.environ["MURI_BENCH_DATA"],
                "--indexers", ",".join(ix.server.target for ix in net.indexers),
                "--pids", ",".join(str(ix.server.proc.pid) for ix in net.indexers),
                "--rows", env("MURI_BENCH_ROWS", "0"), "--queries", env("MURI_BENCH_QUERIES", "1000"),
                "--replication", env("MURI_BENCH_REPLICATION", "3"),
                "--fragments", env("MURI_BENCH_FRAGMENTS", "1")]
        args += env("MURI_BENCH_ARGS", "").split()
        r = subprocess.run(args, stdout=subprocess.PIPE, text=True, timeout=12 * 3600)
        print(r.stdout)
        # the client's line "vectors: N" (the rows loaded)
        vectors = next((int(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("vectors: ")), 0)
        for i, d in enumerate(net.datadirs):
            b = du(str(d))
            print(f"indexer {i} data folder on disk: {b / 2**20:.0f} MiB"
                  + (f", {b / vectors:.0f} bytes per vector" if vectors else ""))
        assert r.returncode == 0, "scale-bench failed (its messages are above)"
    finally:
        gw.close()
        net.close()
        # the replicas' data (gigabytes at 1M) is not kept, not even as a failed test's logs
        for ix in net.indexers:
            ix.server.stop()
        for d in net.datadirs:
            shutil.rmtree(str(d), ignore_errors=True)
