"""SearchBatch through batched indexer calls: a gateway sending at most 7
queries per Search call to a replica answers a SearchBatch of 30 random
queries (groups of 7, 7, 7, 7 and 2) with exactly the results of 30 single
Search calls, at ONE, QUORUM and ALL, over 2 fragments of 3 replicas; the
metrics count the replicas asked per fragment, not per call; an empty or
oversized batch is refused with INVALID_ARGUMENT naming query_vectors."""
import re
import urllib.request

import grpc
import numpy as np
import pytest

from gateway_util import gateway_net
from muri_util import dataset

COLL = "batched"
K = 10


@pytest.fixture
def net(servers, stubs, tmp_path):
    yield from gateway_net(servers, stubs, tmp_path, "--default-timeout-ms", "20000", "--queries-per-call", "7", "--max-queries", "40")


def vec(pb, v):
    return pb.Vector(values=[float(x) for x in v])


def search_calls(net):
    """Search calls the indexers answered, from their /metrics."""
    n = 0
    for ix in net.indexers:
        text = urllib.request.urlopen(f"http://127.0.0.1:{ix.server.metrics_port}/metrics", timeout=10).read().decode()
        m = re.search(r'muri_rpc_calls_total\{method="/muri.v1.Indexer/Search"\} (\d+)', text)
        n += int(m.group(1)) if m else 0
    return n


def test_search_batch_equals_single_searches(net, stubs):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    stub = net.gw.stub
    base, queries, truth, _ = dataset("glove-100-angular-10k")
    info = stub.CreateCollection(vpb.CreateCollectionRequest(
        name=COLL, dimension=100, metric=tpb.COSINE, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=2,
        replication=3), timeout=90)
    assert info.fragments == 2
    rows = 3000
    ids = []
    for s in range(0, rows, 1500):
        r = stub.Insert(vpb.InsertRequest(collection=COLL, vectors=[vec(tpb, v) for v in base[s:s + 1500]],
                                          consistency_level=tpb.QUORUM), timeout=60)
        assert r.status == vpb.SUCCESS, r.message
        ids += list(r.vector_ids)
    row_of = {i: n for n, i in enumerate(ids)}
    qs = queries[np.random.default_rng(5).choice(len(queries), 30, replace=False)]
    # exact neighbours among the rows inserted
    bn = base[:rows] / np.linalg.norm(base[:rows], axis=1, keepdims=True)
    for level in (tpb.ONE, tpb.QUORUM, tpb.ALL):
        calls = search_calls(net)
        b = stub.SearchBatch(vpb.SearchBatchRequest(collection=COLL, query_vectors=[vec(tpb, q) for q in qs],
                                                    top_k=K, consistency_level=level, timeout_ms=60000), timeout=90)
        assert len(b.results) == len(qs)
        assert b.metrics.consistency_level_achieved >= level
        want = {tpb.ONE: 1, tpb.QUORUM: 2, tpb.ALL: 3}[level]
        assert b.metrics.nodes_answered >= 2 * want
        # 5 calls (7, 7, 7, 7, 2 queries) per fragment and replica asked, more only if answers disagreed
        assert 5 * 2 * want <= search_calls(net) - calls < 30 * 2 * want
        for n, q in enumerate(qs):
            one = stub.Search(vpb.SearchRequest(collection=COLL, query_vector=vec(tpb, q), top_k=K,
                                                consistency_level=level), timeout=30)
            assert [x.id for x in b.results[n].results] == [x.id for x in one.results]
            assert [x.distance for x in b.results[n].results] == pytest.approx([x.distance for x in one.results],
                                                                              abs=1e-6)
            exact = np.argsort(-(bn @ (q / np.linalg.norm(q))), kind="stable")[:K]
            assert len({row_of[x.id] for x in b.results[n].results} & set(exact.tolist())) >= K - 1
    bad = grpc.StatusCode.INVALID_ARGUMENT
    for qv, field in (([], "query_vectors: 0, expected 1..40"), ([vec(tpb, qs[0])] * 41, "query_vectors: 41")):
        with pytest.raises(grpc.RpcError) as e:
            stub.SearchBatch(vpb.SearchBatchRequest(collection=COLL, query_vectors=qv, top_k=K), timeout=30)
        assert e.value.code() == bad and field in e.value.details()
