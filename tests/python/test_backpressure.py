"""Latency under ingest is bounded: the unindexed tail of a fragment is
searched by brute force, so a primary refuses writes with RESOURCE_EXHAUSTED
(naming the backlog and the setting) while its index is max_index_backlog
records behind the log. A refused write writes nothing; once the indexer
catches up, writes are taken again."""
import grpc
import numpy as np

from muri_util import wait_until
from test_indexer import records, schema, search, set_config, start_indexer, wait_indexed, write  # noqa: F401


def test_writes_refused_while_the_index_is_far_behind(start_indexer):
    ix = start_indexer("ix", "--max-index-backlog", "2000")
    t = ix.types
    set_config(ix, ix, "bp", 0, 1, [ix], ix)
    # a slow index (HNSW, large efConstruction) in small batches
    sch = schema(t, 64, t.L2, t.HNSW, hnsw_m=32, hnsw_ef_construction=400, index_batch=100)
    rng = np.random.default_rng(3)
    size, refused = 0, None
    for _ in range(200):
        recs = records(ix.pb, rng.normal(size=(1000, 64)).astype(np.float32))
        try:
            r = write(ix, "bp", 0, 1, recs, sch)
        except grpc.RpcError as e:
            refused = e
            break
        size = r.log_size
    assert refused is not None, "the primary never pushed back"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "records behind the log (max_index_backlog 2000)" in refused.details(), refused.details()
    # nothing of the refused write is there
    assert int(ix.status()[1]["log_records"]) == size
    got = search(ix, "bp", 0, rng.normal(size=64).astype(np.float32), k=1)
    assert got.log_size == size
    # once the index catches up, writes are taken again
    assert wait_indexed(ix), "the index did not catch up"
    r = write(ix, "bp", 0, 1, records(ix.pb, rng.normal(size=(10, 64)).astype(np.float32)), sch)
    assert r.log_size == size + 10
