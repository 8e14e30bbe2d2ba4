"""Splits the suite's files into shards that run side by side (meson runs
python-1 and python-2 at once, pytest --shard i/n): each file goes whole to
one shard (its module fixtures start one network), by longest processing
time first over the seconds each file took in the sanitizer build, so the
shards end close together. A file not listed weighs DEFAULT: a new file
runs in some shard before anyone weighs it, never in none."""
import os

DEFAULT = 15.0

# seconds per file, ASan + UBSan build, serial (pytest --durations=0)
WEIGHTS = {
    "test_import_rpc.py": 71,
    "test_dims.py": 56,
    "test_gateway.py": 52,
    "test_binary_e2e.py": 45,
    "test_cli.py": 41,
    "test_split_remote.py": 36,
    "test_indexer.py": 31,
    "test_split_auto.py": 27,
    "test_hostile.py": 25,
    "test_receipts.py": 25,
    "test_membership.py": 24,
    "test_handover.py": 24,
    "test_ledger.py": 22,
    "test_chain_driven.py": 18,
    "test_console.py": 17,
    "test_signals.py": 17,
    "test_replica_agreement.py": 17,
    "test_tls_removal.py": 16,
    "test_split_gateway.py": 16,
    "test_quota.py": 15,
    "test_split.py": 14,
    "test_gateway_batch.py": 13,
    "test_tls_network.py": 12,
    "test_rpc_python.py": 11,
    "test_ledger_queries.py": 9,
    "test_gateway_ready.py": 8,
    "test_filter_postings.py": 8,
    "test_tls_identity.py": 7,
    "test_read_auth.py": 5,
    "test_indexer_batch.py": 4,
    "test_replication.py": 3,
    "test_services.py": 3,
    "test_auth.py": 3,
    "test_scroll.py": 3,
    "test_indexer_reads.py": 2,
    "test_backpressure.py": 1,
    "test_shards.py": 1,
}


def assign(files, n, weights=WEIGHTS):
    """{file: shard index 0..n-1}: the heaviest file first, each to the
    lightest shard so far (the lowest index on a tie), so every caller
    computes the same split from the same list."""
    load = [0.0] * n
    out = {}
    for f in sorted(files, key=lambda f: (-weights.get(f, DEFAULT), f)):
        k = min(range(n), key=lambda i: (load[i], i))
        out[f] = k
        load[k] += weights.get(f, DEFAULT)
    return out


def parse(spec):
    """(i, n) from "i/n" (1 <= i <= n), or None for an empty spec."""
    if not spec:
        return None
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard: {spec!r} is not i/n") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard: {spec!r}: i must be in 1..n")
    return i, n


def select(items, spec):
    """(kept, deselected) of pytest items for shard spec ("i/n"; empty:
    every item kept)."""
    s = parse(spec)
    if not s:
        return list(items), []
    i, n = s
    files = {os.path.basename(str(it.fspath)) for it in items}
    where = assign(files, n)
    kept = [it for it in items if where[os.path.basename(str(it.fspath))] == i - 1]
    dropped = [it for it in items if where[os.path.basename(str(it.fspath))] != i - 1]
    return kept, dropped
