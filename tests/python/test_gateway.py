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
from gateway_util import (Gateway, assert_only_liar_caught, code_of, gateway_net, metric_sum,
                          require_test_lie, start_liar)
from muri_util import dataset, wait_until

COLL = "glove10k"
K = 10
BATCH = 2500


@pytest.fixture
def net(servers, stubs, tmp_path):
    # calls that name no timeout get 20 s: the suite may run on a busy machine
    yield from gateway_net(servers, stubs, tmp_path, "--default-timeout-ms", "20000")


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
    gw2 = Gateway(servers, stubs, net, tmp_path, name="gateway2", args=("--default-timeout-ms", "20000"))
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


@pytest.fixture
def small(servers, stubs, tmp_path):
    yield from gateway_net(servers, stubs, tmp_path, "--max-batch", "100", "--max-queries", "20", "--default-timeout-ms", "20000")


def test_gateway_bad_input_writes_nothing(small, stubs):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    stub = small.gw.stub
    D = 8
    bad = grpc.StatusCode.INVALID_ARGUMENT
    CR = vpb.CreateCollectionRequest
    for req, field in ((CR(name="", dimension=D), "name"), (CR(name="a b", dimension=D), "name"),
                       (CR(name="x" * 129, dimension=D), "name"), (CR(name="ok", dimension=0), "dimension"),
                       (CR(name="ok", dimension=4097), "dimension"), (CR(name="ok", dimension=D, metric=9), "metric"),
                       (CR(name="ok", dimension=D, replication=17), "replication"),
                       (CR(name="ok", dimension=D, fragments=1025), "fragments"),
                       (CR(name="ok", dimension=D, index=tpb.IndexSpec(kind=7)), "index.kind")):
        code, msg = code_of(lambda: stub.CreateCollection(req, timeout=30))
        assert code == bad and msg.startswith(field), (req, msg)
    assert not stub.ListCollections(vpb.ListCollectionsRequest(), timeout=10).collections
    create(stub, vpb, tpb, name="small", dim=D, metric=tpb.L2, fragments=2)
    rng = np.random.default_rng(1)
    base = rng.normal(size=(50, D)).astype(np.float32)
    r = stub.Insert(vpb.InsertRequest(collection="small", vectors=[vec(tpb, v) for v in base]), timeout=30)
    ids = list(r.vector_ids)

    def state():
        d = stub.DescribeCollection(vpb.DescribeCollectionRequest(name="small"), timeout=10)
        return d.vector_count, [f.log_size for f in d.fragment_states]
    before = state()
    assert before[0] == 50

    good = [vec(tpb, v) for v in base[:3]]
    nan = vec(tpb, [1.0] * (D - 1) + [float("nan")])
    inf = vec(tpb, [float("inf")] + [1.0] * (D - 1))
    short = vec(tpb, [1.0] * (D - 1))
    IR, UR, DR, GR, SR, BR = (vpb.InsertRequest, vpb.UpsertRequest, vpb.DeleteRequest, vpb.GetRequest,
                              vpb.SearchRequest, vpb.SearchBatchRequest)
    u1, u2 = str(uuid.uuid4()), str(uuid.uuid4())
    cases = [
        (stub.Insert, IR(collection="small", vectors=[good[0], short]), "vectors[1]"),
        (stub.Insert, IR(collection="small", vectors=[good[0], nan]), "vectors[1]: value 7 is not finite (NaN)"),
        (stub.Insert, IR(collection="small", vectors=[inf]), "vectors[0]: value 0 is not finite (infinity)"),
        (stub.Insert, IR(collection="small", vectors=[]), "vectors: 0"),
        (stub.Insert, IR(collection="small", vectors=[good[0]] * 101), "vectors: 101"),
        (stub.Insert, IR(collection="small", vectors=good, metadata=[tpb.Metadata()]), "metadata"),
        (stub.Insert, IR(collection="small", vectors=good[:1], metadata=[tpb.Metadata(
            fields={"k" * 129: tpb.Value(int_value=1)})]), "metadata[0]"),
        (stub.Insert, IR(collection="small", vectors=good[:1], metadata=[tpb.Metadata(
            fields={"k": tpb.Value()})]), "metadata[0]"),
        (stub.Insert, IR(collection="small", vectors=good, consistency_level=7), "consistency_level"),
        (stub.Insert, IR(collection="small", vectors=good, timeout_ms=600001), "timeout_ms"),
        (stub.Insert, IR(collection="bad name", vectors=good), "collection"),
        (stub.Upsert, UR(collection="small", ids=["not-a-uuid"], vectors=good[:1]), "ids[0]"),
        (stub.Upsert, UR(collection="small", ids=[u1, u2, u1], vectors=good), "ids[2]: repeats ids[0]"),
        (stub.Upsert, UR(collection="small", ids=[u1], vectors=good), "ids: 1 ids for 3 vectors"),
        (stub.Upsert, UR(collection="small", ids=[str(uuid.uuid1())], vectors=good[:1]), "ids[0]"),
        (stub.Update, UR(collection="small", ids=[u1], vectors=[short]), "vectors[0]"),
        (stub.Delete, DR(collection="small", ids=[]), "ids: 0"),
        (stub.Delete, DR(collection="small", ids=[ids[0], "zz"]), "ids[1]"),
        (stub.Delete, DR(collection="small", ids=[ids[0]], consistency_level=5), "consistency_level"),
        (stub.Get, GR(collection="small", ids=["zz"]), "ids[0]"),
        (stub.Get, GR(collection="small", ids=[]), "ids: 0"),
        (stub.Search, SR(collection="small", query_vector=good[0], top_k=0), "top_k"),
        (stub.Search, SR(collection="small", query_vector=good[0], top_k=1001), "top_k"),
        (stub.Search, SR(collection="small", query_vector=short, top_k=1), "query_vector"),
        (stub.Search, SR(collection="small", query_vector=nan, top_k=1), "query_vector: value 7 is not finite"),
        (stub.Search, SR(collection="small", top_k=1), "query_vector"),
        (stub.Search, SR(collection="small", query_vector=good[0], top_k=1, distance_metric=9), "distance_metric"),
        (stub.Search, SR(collection="small", query_vector=good[0], top_k=1, distance_metric=tpb.COSINE),
         "distance_metric"),
        (stub.Search, SR(collection="small", query_vector=good[0], top_k=1, consistency_level=4), "consistency_level"),
        (stub.Search, SR(collection="small", query_vector=good[0], top_k=1,
                         filter=tpb.Filter(conditions={"x": tpb.Condition()})), 'filter.conditions["x"]'),
        (stub.Search, SR(collection="small", query_vector=good[0], top_k=1,
                         filter=tpb.Filter(conditions={f"f{i}": tpb.Condition(gt=1) for i in range(17)})),
         "filter.conditions"),
        (stub.Search, SR(collection="small", query_vector=good[0], top_k=1,
                         filter=tpb.Filter(conditions={"x": tpb.Condition(lt=float("nan"))})), 'filter.conditions["x"]'),
        (stub.SearchBatch, BR(collection="small", query_vectors=[], top_k=1), "query_vectors: 0"),
        (stub.SearchBatch, BR(collection="small", query_vectors=[good[0]] * 21, top_k=1), "query_vectors: 21"),
        (stub.SearchBatch, BR(collection="small", query_vectors=[good[0], short], top_k=1), "query_vectors[1]"),
    ]
    for call, req, field in cases:
        code, msg = code_of(lambda: call(req, timeout=10))
        assert code == bad, (req, code, msg)
        assert msg.startswith(field), (field, msg)
    nf = grpc.StatusCode.NOT_FOUND
    for call, req in ((stub.Insert, IR(collection="nope", vectors=good)),
                      (stub.Search, SR(collection="nope", query_vector=good[0], top_k=1)),
                      (stub.Get, GR(collection="nope", ids=[u1])),
                      (stub.DescribeCollection, vpb.DescribeCollectionRequest(name="nope")),
                      (stub.DropCollection, vpb.DropCollectionRequest(name="nope"))):
        code, msg = code_of(lambda: call(req, timeout=10))
        assert code == nf and "nope" in msg, msg
    code, msg = code_of(lambda: stub.Update(UR(collection="small", ids=[ids[0], u1], vectors=good[:2]), timeout=10))
    assert code == nf and msg.startswith("ids[1]") and u1 in msg
    assert state() == before
    # a search with a valid filter still works, and Drop removes the collection
    r = stub.Search(SR(collection="small", query_vector=good[0], top_k=1), timeout=10)
    assert r.results[0].id == ids[0] and r.results[0].distance == pytest.approx(0, abs=1e-5)
    assert stub.DropCollection(vpb.DropCollectionRequest(name="small"), timeout=30).dropped
    code, msg = code_of(lambda: stub.Search(SR(collection="small", query_vector=good[0], top_k=1), timeout=10))
    assert code == nf


def test_gateway_reads_around_a_replica_that_does_not_answer(small, stubs):
    """A replica that accepts connections but never answers (its process
    stopped with SIGSTOP: what a dead container or a partition that drops
    packets looks like) costs a search or get at most try_timeout_ms before
    the gateway asks the fragment's next replica, not the request's
    deadline: QUORUM searches and gets still answer within a 4 s deadline.
    A write sent to it meanwhile (the chain still names it primary) is not
    held to its deadline: once the backups have the ledger fail it over, the
    gateway gives up on the stopped primary and the next one acknowledges
    the write, which reads back."""
    import signal
    import threading
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    stub = small.gw.stub
    D = 8
    create(stub, vpb, tpb, name="mute", dim=D, metric=tpb.L2, fragments=1)
    vs = np.random.default_rng(5).normal(size=(40, D)).astype(np.float32)
    r = stub.Insert(vpb.InsertRequest(collection="mute", vectors=[vec(tpb, x) for x in vs],
                                      consistency_level=tpb.ALL), timeout=60)
    assert r.status == vpb.SUCCESS
    primary = stub.DescribeCollection(vpb.DescribeCollectionRequest(name="mute"), timeout=10).fragment_states[0].primary
    mute = next(ix for ix in small.indexers if ix.server.target.endswith(primary.split(":")[1]))
    epoch = stub.DescribeCollection(vpb.DescribeCollectionRequest(name="mute"), timeout=10).fragment_states[0].epoch
    mute.server.proc.send_signal(signal.SIGSTOP)
    late = np.random.default_rng(6).normal(size=(3, D)).astype(np.float32)
    wrote = {}

    def write():  # sent now, to the primary the chain still names: the stopped one
        try:
            wrote["r"] = stub.Insert(vpb.InsertRequest(collection="mute", vectors=[vec(tpb, x) for x in late],
                                                       consistency_level=tpb.QUORUM, timeout_ms=30000), timeout=40)
        except grpc.RpcError as e:
            wrote["err"] = (e.code(), e.details())
    w = threading.Thread(target=write)
    w.start()
    try:
        for i in (3, 17, 29):
            got = stub.Search(vpb.SearchRequest(collection="mute", query_vector=vec(tpb, vs[i]), top_k=1,
                                                consistency_level=tpb.QUORUM, timeout_ms=4000), timeout=10)
            assert [x.id for x in got.results] == [r.vector_ids[i]]
            assert got.metrics.nodes_answered >= 2
            assert got.metrics.consistency_level_achieved == tpb.QUORUM
            # within the request's 4 s, as the gateway measured it (the client's
            # own clock adds its scheduling on a loaded machine)
            assert got.metrics.time_ms < 4000, got.metrics
        g = stub.Get(vpb.GetRequest(collection="mute", ids=r.vector_ids[:5]), timeout=10)
        assert sorted(x.id for x in g.records) == sorted(r.vector_ids[:5])
        w.join(60)
        assert "r" in wrote and wrote["r"].status == vpb.SUCCESS, wrote
        fs = stub.DescribeCollection(vpb.DescribeCollectionRequest(name="mute"), timeout=10).fragment_states[0]
        assert fs.epoch > epoch and fs.primary != primary, (epoch, fs)
        g = stub.Get(vpb.GetRequest(collection="mute", ids=wrote["r"].vector_ids), timeout=10)
        assert sorted(x.id for x in g.records) == sorted(wrote["r"].vector_ids)
    finally:
        mute.server.proc.send_signal(signal.SIGCONT)
        w.join(60)


def test_gateway_writes_through_a_failover(net, stubs):
    """SIGKILL a fragment's primary under a write and search load through the
    gateway: searches at QUORUM keep succeeding, writes resume on the new
    primary (the gateway retries within the request's timeout), and every
    write acknowledged at QUORUM is there afterwards, once."""
    import threading
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    stub = net.gw.stub
    D = 8
    create(stub, vpb, tpb, name="fo", dim=D, metric=tpb.L2, fragments=1)
    first = stub.DescribeCollection(vpb.DescribeCollectionRequest(name="fo"), timeout=10).fragment_states[0]
    killed = next(ix for ix in net.indexers if ix.server.target.endswith(first.primary.split(":")[1]))
    acked, lock, stop = [], threading.Lock(), threading.Event()
    errors, searches = [], [0, 0]
    rng = np.random.default_rng(7)

    def load():
        while not stop.is_set():
            v = rng.normal(size=(5, D)).astype(np.float32)
            try:
                r = stub.Insert(vpb.InsertRequest(collection="fo", vectors=[vec(tpb, x) for x in v],
                                                  consistency_level=tpb.QUORUM, timeout_ms=30000), timeout=40)
                assert r.status == vpb.SUCCESS
                with lock:
                    acked.extend(zip(r.vector_ids, [time.time()] * len(r.vector_ids)))
            except grpc.RpcError as e:
                errors.append((e.code(), e.details()))
                time.sleep(0.05)

    def search():
        q = vec(tpb, [0.0] * D)
        while not stop.is_set():
            try:
                stub.Search(vpb.SearchRequest(collection="fo", query_vector=q, top_k=5,
                                              consistency_level=tpb.QUORUM, timeout_ms=2000), timeout=5)
                searches[0] += 1
            except grpc.RpcError:
                searches[1] += 1
            time.sleep(0.01)
    ths = [threading.Thread(target=load), threading.Thread(target=search)]
    for th in ths:
        th.start()
    try:
        end = time.time() + 60
        while len(acked) < 100 and time.time() < end:
            time.sleep(0.05)
        assert len(acked) >= 100, errors[-3:]
        killed.server.kill9()
        t_kill = time.time()
        end = time.time() + 90
        while time.time() < end and sum(1 for _, t in acked if t > t_kill + 0.5) < 50:
            time.sleep(0.1)
        assert sum(1 for _, t in acked if t > t_kill + 0.5) >= 50, ("writes did not resume", errors[-3:])
    finally:
        stop.set()
        for th in ths:
            th.join(timeout=60)
    after = stub.DescribeCollection(vpb.DescribeCollectionRequest(name="fo"), timeout=10).fragment_states[0]
    assert after.epoch > first.epoch and after.primary != first.primary
    ids = [i for i, _ in acked]
    got = set()
    for s in range(0, len(ids), 1000):
        got |= {x.id for x in stub.Get(vpb.GetRequest(collection="fo", ids=ids[s:s + 1000]), timeout=30).records}
    missing = [i for i in ids if i not in got]
    assert not missing, f"{len(missing)} of {len(ids)} acknowledged writes lost"
    d = stub.DescribeCollection(vpb.DescribeCollectionRequest(name="fo"), timeout=10)
    # a write retried on the new primary is there once (a refused one may have landed too, once)
    assert d.vector_count == len(ids) if not errors else d.vector_count >= len(ids)
    assert searches[0] > 0
    # with one replica of three left: QUORUM is refused as PARTIAL, ONE still answers
    other = next(ix for ix in net.indexers if ix is not killed and ix.server.proc.poll() is None)
    other.server.kill9()
    q = vec(tpb, [0.0] * D)
    code, msg = code_of(lambda: stub.Search(vpb.SearchRequest(collection="fo", query_vector=q, top_k=5,
                                                              consistency_level=tpb.QUORUM, timeout_ms=3000), timeout=10))
    assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and msg.startswith("PARTIAL"), msg
    r = stub.Search(vpb.SearchRequest(collection="fo", query_vector=q, top_k=5, consistency_level=tpb.ONE,
                                      timeout_ms=5000), timeout=10)
    assert len(r.results) == 5 and r.metrics.consistency_level_achieved == tpb.ONE
    code, msg = code_of(lambda: stub.Insert(vpb.InsertRequest(collection="fo", vectors=[q], consistency_level=tpb.QUORUM,
                                                              timeout_ms=1500), timeout=10))
    assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and msg.startswith("FAILED"), msg
    print(f"\n{len(ids)} acknowledged writes, {len(errors)} refused; {searches[0]} QUORUM searches answered, "
          f"{searches[1]} refused; epoch {first.epoch} -> {after.epoch}")


def test_gateway_byzantine_indexer(servers, stubs, tmp_path):
    """One indexer lies in its search answers (test_lie = fabricate: a real
    record's id with the query's own vector): at QUORUM and ALL the results
    are still the exact top k, the gateway counts the liar's lies in its
    node metrics and asks it last, and a spot check proves an answer false
    against the committed root and reports it: the ledger jails the liar."""
    require_test_lie()
    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    net = ChainNet(servers, stubs, tmp_path, ix_args=("--root-every", "100", "--root-interval-ms", "200"))
    liar = start_liar(servers, net, "fabricate")
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "20000", "--spot-permille", "1000"))
    try:
        stub = gw.stub
        D, N = 16, 1000
        create(stub, vpb, tpb, name="byz", dim=D, metric=tpb.L2, fragments=1, replication=3)
        rng = np.random.default_rng(3)
        base = rng.normal(size=(N, D)).astype(np.float32)
        r = stub.Insert(vpb.InsertRequest(collection="byz", vectors=[vec(tpb, v) for v in base],
                                          consistency_level=tpb.ALL), timeout=60)
        row_of = {i: n for n, i in enumerate(r.vector_ids)}
        assert wait_until(lambda: stub.DescribeCollection(vpb.DescribeCollectionRequest(name="byz"), timeout=10)
                          .fragment_states[0].committed_size >= 500, timeout=60), "no root committed"
        queries = rng.normal(size=(40, D)).astype(np.float32)
        for level in (tpb.ALL, tpb.QUORUM):
            res = stub.SearchBatch(vpb.SearchBatchRequest(collection="byz", query_vectors=[vec(tpb, q) for q in queries],
                                                          top_k=K, consistency_level=level), timeout=60)
            for q, got in zip(queries, res.results):
                want = list(np.argsort(((base - q) ** 2).sum(axis=1), kind="stable")[:K])
                assert [row_of[x.id] for x in got.results] == want, level
        assert_only_liar_caught(net, gw, lpb, liar)
        # the spot checks' proofs came from the honest replicas, which answer
        # the gateway's signed reads because the genesis lists its key
        assert metric_sum(gw, "muri_gateway_spot_false_total") > 0, "no spot check proved an answer false with an inclusion proof"
    finally:
        gw.close()
        net.close()
