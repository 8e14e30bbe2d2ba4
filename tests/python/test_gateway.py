"""The gateway end to end, from a grpcio client generated from proto/ alone:
4 ledger replicas and 3 indexers started from a genesis (ChainNet), a
gateway following the chain with the owner account as its payer. A
collection is created by transaction, glove-100-angular-10k is inserted with
each word as metadata, its queries are searched at ONE, QUORUM and ALL
(recall@10 against the dataset's ground truth), filtered searches equal
brute force, get/update/delete are visible at once, bad input is refused
with its status and a message naming the field and writes nothing, and a
second gateway over the same ledger sees the collection."""
import time
import uuid

import grpc
import numpy as np
import pytest

from chain_util import ChainNet
from gateway_util import Gateway
from muri_util import dataset

COLL = "glove10k"
K = 10
BATCH = 2500


@pytest.fixture
def net(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path)
    gw = Gateway(servers, stubs, n, tmp_path)
    n.gw = gw
    yield n
    gw.close()
    n.close()


def normalized(v):
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def vec(pb, v):
    return pb.Vector(values=[float(x) for x in v])


def meta(tpb, word, i):
    return tpb.Metadata(fields={"word": tpb.Value(string_value=word), "row": tpb.Value(int_value=i),
                                "bucket": tpb.Value(int_value=i % 10)})


def recall(got_ids, truth):
    return len(set(got_ids) & set(truth[:K])) / K


def create(stub, vpb, tpb, name=COLL, dim=100, metric=None, fragments=2, replication=3):
    return stub.CreateCollection(vpb.CreateCollectionRequest(
        name=name, dimension=dim, metric=metric or tpb.COSINE, index=tpb.IndexSpec(kind=tpb.FLAT),
        fragments=fragments, replication=replication), timeout=90)


def code_of(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


def test_gateway_end_to_end(net, servers, stubs, tmp_path):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    stub = net.gw.stub
    base, queries, truth, words = dataset("glove-100-angular-10k")
    t0 = time.time()
    info = create(stub, vpb, tpb)
    t_create = time.time() - t0
    assert info.name == COLL and info.dimension == 100 and info.fragments == 2 and info.replication == 3
    assert len(info.fragment_states) == 2
    for fs in info.fragment_states:
        assert fs.available and fs.epoch >= 1 and len(fs.replicas) == 3 and fs.primary in fs.replicas
    code, msg = code_of(lambda: create(stub, vpb, tpb))
    assert code == grpc.StatusCode.ALREADY_EXISTS and COLL in msg

    # insert the 10k vectors with their words, at QUORUM, in batches
    ids = []
    t0 = time.time()
    for s in range(0, len(base), BATCH):
        r = stub.Insert(vpb.InsertRequest(
            collection=COLL, vectors=[vec(tpb, v) for v in base[s:s + BATCH]],
            metadata=[meta(tpb, words[i], i) for i in range(s, min(s + BATCH, len(base)))],
            consistency_level=tpb.QUORUM), timeout=60)
        assert r.status == vpb.SUCCESS, r.message
        assert len(r.vector_ids) == len(base[s:s + BATCH])
        assert len(r.storage_nodes) >= 2 and len(r.consistency_hash) == 64
        ids.extend(r.vector_ids)
    t_insert = time.time() - t0
    assert len(set(ids)) == len(base)
    assert all(uuid.UUID(i).version == 4 for i in ids)
    row_of = {i: n for n, i in enumerate(ids)}
    d = stub.DescribeCollection(vpb.DescribeCollectionRequest(name=COLL), timeout=30)
    assert d.vector_count == len(base)

    # recall@10 at each level, through SearchBatch (and single Search for a sample)
    nq = len(queries)
    timing = {}
    for level in (tpb.ONE, tpb.QUORUM, tpb.ALL):
        t0 = time.time()
        got = []
        for s in range(0, nq, 250):
            r = stub.SearchBatch(vpb.SearchBatchRequest(
                collection=COLL, query_vectors=[vec(tpb, q) for q in queries[s:s + 250]], top_k=K,
                consistency_level=level, timeout_ms=60000), timeout=90)
            assert len(r.results) == len(queries[s:s + 250])
            assert r.metrics.consistency_level_achieved >= level
            got.extend(r.results)
        timing[level] = time.time() - t0
        rec = np.mean([recall([row_of[x.id] for x in g.results], truth[q]) for q, g in enumerate(got)])
        assert rec >= 0.95, (level, rec)
        # the distances are cosine distances of the stored vectors
        g0 = got[0].results
        qn = normalized(queries[:1])[0]
        for x in g0:
            assert abs(x.distance - (1 - float(normalized(base[row_of[x.id]:row_of[x.id] + 1])[0] @ qn))) < 1e-4
    t0 = time.time()
    for q in range(50):
        r = stub.Search(vpb.SearchRequest(collection=COLL, query_vector=vec(tpb, queries[q]), top_k=K,
                                          consistency_level=tpb.ONE), timeout=30)
        assert [row_of[x.id] for x in r.results][:3] == list(truth[q][:3]) or recall(
            [row_of[x.id] for x in r.results], truth[q]) >= 0.9
        assert r.metrics.nodes_queried == 2 and r.metrics.nodes_answered == 2
        assert r.results[0].metadata.fields["word"].string_value == words[row_of[r.results[0].id]]
    t_single = (time.time() - t0) / 50
    r = stub.Search(vpb.SearchRequest(collection=COLL, query_vector=vec(tpb, queries[0]), top_k=K,
                                      consistency_level=tpb.ALL), timeout=30)
    assert r.metrics.nodes_queried == 6 and r.metrics.nodes_answered == 6
    assert r.metrics.consistency_level_achieved == tpb.ALL

    # filtered searches equal brute force over the matching rows
    bn = normalized(base)
    for q in range(5):
        qn = normalized(queries[q:q + 1])[0]
        for flt, rows in (
                (tpb.Filter(conditions={"bucket": tpb.Condition(eq=tpb.Value(int_value=3))}),
                 np.arange(len(base)) % 10 == 3),
                (tpb.Filter(conditions={"row": tpb.Condition(gte=100, lt=600)}),
                 (np.arange(len(base)) >= 100) & (np.arange(len(base)) < 600)),
                (tpb.Filter(conditions={"word": tpb.Condition(**{"in": tpb.ValueList(values=[
                    tpb.Value(string_value=words[w]) for w in range(0, 400, 7)])})}),
                 np.isin(np.arange(len(base)), list(range(0, 400, 7))))):
            r = stub.Search(vpb.SearchRequest(collection=COLL, query_vector=vec(tpb, queries[q]), top_k=K,
                                              filter=flt, consistency_level=tpb.QUORUM), timeout=30)
            cand = np.nonzero(rows)[0]
            dist = 1 - bn[cand] @ qn
            want = [int(cand[i]) for i in np.argsort(dist, kind="stable")[:K]]
            got = [row_of[x.id] for x in r.results]
            assert len(got) == K
            assert np.allclose(sorted(x.distance for x in r.results), np.sort(dist)[:K], atol=1e-4)
            assert len(set(got) & set(want)) >= K - 1, (got, want)
            assert all(rows[g] for g in got)

    # get, update, delete: visible at once
    some = [ids[5], ids[6]]
    r = stub.Get(vpb.GetRequest(collection=COLL, ids=some, include_vectors=True), timeout=10)
    assert [x.id for x in r.records] == some
    assert np.allclose(r.records[0].vector.values, base[5], atol=1e-6)
    assert r.records[1].metadata.fields["word"].string_value == words[6]
    newv = np.full(100, 0.5, dtype=np.float32)
    r = stub.Update(vpb.UpsertRequest(collection=COLL, ids=[ids[5]], vectors=[vec(tpb, newv)],
                                      metadata=[tpb.Metadata(fields={"word": tpb.Value(string_value="changed")})],
                                      consistency_level=tpb.QUORUM), timeout=10)
    assert r.status == vpb.SUCCESS and list(r.vector_ids) == [ids[5]]
    r = stub.Get(vpb.GetRequest(collection=COLL, ids=[ids[5]], include_vectors=True), timeout=10)
    assert np.allclose(r.records[0].vector.values, newv) and r.records[0].metadata.fields["word"].string_value == "changed"
    for level in (tpb.ONE, tpb.QUORUM, tpb.ALL):
        r = stub.Search(vpb.SearchRequest(collection=COLL, query_vector=vec(tpb, newv), top_k=1,
                                          consistency_level=level), timeout=10)
        assert r.results[0].id == ids[5]
    r = stub.Delete(vpb.DeleteRequest(collection=COLL, ids=[ids[5], ids[7]], consistency_level=tpb.QUORUM), timeout=10)
    assert r.status == vpb.SUCCESS and r.deleted == 2
    r = stub.Get(vpb.GetRequest(collection=COLL, ids=[ids[5], ids[7], ids[8]]), timeout=10)
    assert [x.id for x in r.records] == [ids[8]]
    for level in (tpb.ONE, tpb.QUORUM, tpb.ALL):
        r = stub.Search(vpb.SearchRequest(collection=COLL, query_vector=vec(tpb, newv), top_k=5,
                                          consistency_level=level), timeout=10)
        assert ids[5] not in [x.id for x in r.results]
    code, msg = code_of(lambda: stub.Get(vpb.GetRequest(collection=COLL, ids=[ids[5]]), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND
    # an Update of a missing id writes nothing; Upsert creates it
    fresh = str(uuid.uuid4())
    code, msg = code_of(lambda: stub.Update(vpb.UpsertRequest(collection=COLL, ids=[ids[9], fresh],
                                                              vectors=[vec(tpb, newv), vec(tpb, newv)]), timeout=10))
    assert code == grpc.StatusCode.NOT_FOUND and fresh in msg
    r = stub.Get(vpb.GetRequest(collection=COLL, ids=[ids[9]], include_vectors=True), timeout=10)
    assert np.allclose(r.records[0].vector.values, base[9], atol=1e-6)
    r = stub.Upsert(vpb.UpsertRequest(collection=COLL, ids=[fresh], vectors=[vec(tpb, newv)]), timeout=10)
    assert r.status == vpb.SUCCESS
    assert [x.id for x in stub.Get(vpb.GetRequest(collection=COLL, ids=[fresh]), timeout=10).records] == [fresh]
    d = stub.DescribeCollection(vpb.DescribeCollectionRequest(name=COLL), timeout=30)
    assert d.vector_count == len(base) - 2 + 1

    # a second gateway over the same ledger sees the collection and its data
    gw2 = Gateway(servers, stubs, net, tmp_path, name="gateway2")
    try:
        lst = None
        end = time.time() + 30
        while time.time() < end:
            lst = gw2.stub.ListCollections(vpb.ListCollectionsRequest(), timeout=10)
            if lst.collections:
                break
            time.sleep(0.2)
        assert [c.name for c in lst.collections] == [COLL]
        assert lst.collections[0].vector_count == len(base) - 1
        r = gw2.stub.Search(vpb.SearchRequest(collection=COLL, query_vector=vec(tpb, queries[1]), top_k=K,
                                              consistency_level=tpb.QUORUM), timeout=10)
        assert recall([row_of.get(x.id, -1) for x in r.results], truth[1]) >= 0.9
    finally:
        gw2.close()
    print(f"\ncreate {t_create:.2f} s; insert 10k at QUORUM {t_insert:.2f} s; "
          f"SearchBatch 1000 queries: ONE {timing[tpb.ONE]:.2f} s, QUORUM {timing[tpb.QUORUM]:.2f} s, "
          f"ALL {timing[tpb.ALL]:.2f} s; single Search at ONE {t_single * 1000:.1f} ms")
