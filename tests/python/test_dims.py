"""High dimensions end to end through the gateway, from a grpcio client: a
1536-d collection (glove-100-angular-10k lifted to 1536 dimensions by a
seeded random orthogonal map, which keeps every cosine distance) is
inserted, searched with recall@10 checked against numpy brute force, read
back, updated and deleted, and refuses vectors of the wrong dimension with
INVALID_ARGUMENT naming the field; a 4096-d collection (the largest
dimension) takes inserts, searches, gets and an Import of an .fvecs file."""
import signal
import time

import grpc
import numpy as np
import pytest

from chain_util import ChainNet
from gateway_util import Gateway, code_of, gateway_net
from muri_util import dataset, wait_until
from test_indexer import start_indexer  # noqa: F401 (a fixture)

K = 10


@pytest.fixture
def net(servers, stubs, tmp_path):
    yield from gateway_net(servers, stubs, tmp_path, "--default-timeout-ms", "30000", "--import-schemes", "file")


def lift(x, dim, seed):
    """x (n x d) times the transpose of a seeded d -> dim map with orthonormal
    columns: norms and inner products, hence every distance, are kept."""
    g = np.random.default_rng(seed).normal(size=(dim, x.shape[1]))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))
    return (x.astype(np.float64) @ q.T).astype(np.float32)


def cosine(base, q):
    bn = base / np.linalg.norm(base, axis=1, keepdims=True)
    return 1.0 - bn @ (q / np.linalg.norm(q))


def vec(tpb, v):
    return tpb.Vector(values=[float(x) for x in v])


def create(stub, vpb, tpb, name, dim, kind):
    return stub.CreateCollection(vpb.CreateCollectionRequest(
        name=name, dimension=dim, metric=tpb.COSINE, index=tpb.IndexSpec(kind=kind),
        fragments=2, replication=3), timeout=90)


def test_1536_dimensions_end_to_end(net, stubs):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    stub = net.gw.stub
    D, N, NQ = 1536, 4000, 200
    base0, queries0, _, _ = dataset("glove-100-angular-10k")
    base = lift(base0[:N], D, 1536)
    # a random sample of the queries: the dataset's first ones are the easy ones
    queries = lift(queries0[np.random.default_rng(7).choice(len(queries0), NQ, replace=False)], D, 1536)
    # the map keeps distances: the lifted data's brute force is the original's
    assert np.allclose(np.linalg.norm(base, axis=1), np.linalg.norm(base0[:N], axis=1), rtol=1e-4)
    info = create(stub, vpb, tpb, "d1536", D, tpb.HNSW)
    assert info.dimension == D

    ids = []
    t0 = time.time()
    for s in range(0, N, 1000):
        r = stub.Insert(vpb.InsertRequest(collection="d1536", vectors=[vec(tpb, v) for v in base[s:s + 1000]],
                                          consistency_level=tpb.QUORUM), timeout=120)
        assert r.status == vpb.SUCCESS, r.message
        ids.extend(r.vector_ids)
    t_insert = time.time() - t0
    row_of = {i: n for n, i in enumerate(ids)}
    assert len(row_of) == N
    assert stub.DescribeCollection(vpb.DescribeCollectionRequest(name="d1536"), timeout=30).vector_count == N

    # recall@10 against numpy brute force on the lifted vectors, and distances
    dist = np.stack([cosine(base, q) for q in queries])
    truth = np.argsort(dist, axis=1, kind="stable")[:, :K]
    t0 = time.time()
    got = []
    for s in range(0, NQ, 50):
        r = stub.SearchBatch(vpb.SearchBatchRequest(collection="d1536", query_vectors=[vec(tpb, q) for q in queries[s:s + 50]],
                                                    top_k=K, consistency_level=tpb.QUORUM), timeout=120)
        got.extend(r.results)
    t_search = time.time() - t0
    rec = np.mean([len({row_of[x.id] for x in g.results} & set(truth[q])) / K for q, g in enumerate(got)])
    assert rec >= 0.95, rec
    for q in (0, 1, 2):
        for x in got[q].results:
            assert abs(x.distance - dist[q][row_of[x.id]]) < 1e-4
    r = stub.Search(vpb.SearchRequest(collection="d1536", query_vector=vec(tpb, queries[3]), top_k=K,
                                      consistency_level=tpb.ALL), timeout=30)
    assert len({row_of[x.id] for x in r.results} & set(truth[3])) >= K - 1

    # get, update, delete
    g = stub.Get(vpb.GetRequest(collection="d1536", ids=ids[10:13], include_vectors=True), timeout=30)
    assert [x.id for x in g.records] == ids[10:13]
    for x, row in zip(g.records, (10, 11, 12)):
        assert len(x.vector.values) == D and np.array_equal(np.array(x.vector.values, dtype=np.float32), base[row])
    newv = lift(np.full((1, 100), 0.1, dtype=np.float32), D, 99)[0]
    r = stub.Update(vpb.UpsertRequest(collection="d1536", ids=[ids[10]], vectors=[vec(tpb, newv)],
                                      consistency_level=tpb.QUORUM), timeout=30)
    assert r.status == vpb.SUCCESS
    g = stub.Get(vpb.GetRequest(collection="d1536", ids=[ids[10]], include_vectors=True), timeout=30)
    assert np.array_equal(np.array(g.records[0].vector.values, dtype=np.float32), newv)
    for level in (tpb.ONE, tpb.QUORUM, tpb.ALL):
        r = stub.Search(vpb.SearchRequest(collection="d1536", query_vector=vec(tpb, newv), top_k=1,
                                          consistency_level=level), timeout=30)
        assert r.results[0].id == ids[10] and r.results[0].distance == pytest.approx(0, abs=1e-5)
    r = stub.Delete(vpb.DeleteRequest(collection="d1536", ids=[ids[10], ids[11]], consistency_level=tpb.QUORUM),
                    timeout=30)
    assert r.status == vpb.SUCCESS and r.deleted == 2
    assert [x.id for x in stub.Get(vpb.GetRequest(collection="d1536", ids=ids[10:13]), timeout=30).records] == [ids[12]]
    for level in (tpb.ONE, tpb.ALL):
        r = stub.Search(vpb.SearchRequest(collection="d1536", query_vector=vec(tpb, newv), top_k=5,
                                          consistency_level=level), timeout=30)
        assert ids[10] not in [x.id for x in r.results]
    assert stub.DescribeCollection(vpb.DescribeCollectionRequest(name="d1536"), timeout=30).vector_count == N - 2

    # bad input: the wrong dimension, named by field, writes nothing
    bad = grpc.StatusCode.INVALID_ARGUMENT
    short, long_ = vec(tpb, base[0][:D - 1]), vec(tpb, np.concatenate([base[0], [0.0]]))
    nan = vec(tpb, np.concatenate([base[0][:-1], [np.nan]]))
    for call, req, want in (
            (stub.Insert, vpb.InsertRequest(collection="d1536", vectors=[vec(tpb, base[0]), short]),
             "vectors[1]: 1535 values, the collection's dimension is 1536"),
            (stub.Insert, vpb.InsertRequest(collection="d1536", vectors=[long_]),
             "vectors[0]: 1537 values, the collection's dimension is 1536"),
            (stub.Insert, vpb.InsertRequest(collection="d1536", vectors=[vec(tpb, base0[0])]),
             "vectors[0]: 100 values"),
            (stub.Insert, vpb.InsertRequest(collection="d1536", vectors=[nan]),
             "vectors[0]: value 1535 is not finite (NaN)"),
            (stub.Update, vpb.UpsertRequest(collection="d1536", ids=[ids[20]], vectors=[short]), "vectors[0]: 1535"),
            (stub.Upsert, vpb.UpsertRequest(collection="d1536", ids=[ids[20]], vectors=[long_]), "vectors[0]: 1537"),
            (stub.Search, vpb.SearchRequest(collection="d1536", query_vector=short, top_k=K), "query_vector: 1535"),
            (stub.SearchBatch, vpb.SearchBatchRequest(collection="d1536", query_vectors=[vec(tpb, queries[0]), long_],
                                                      top_k=K), "query_vectors[1]: 1537")):
        code, msg = code_of(lambda: call(req, timeout=30))
        assert code == bad and msg.startswith(want), (want, code, msg)
    assert stub.DescribeCollection(vpb.DescribeCollectionRequest(name="d1536"), timeout=30).vector_count == N - 2
    g = stub.Get(vpb.GetRequest(collection="d1536", ids=[ids[20]], include_vectors=True), timeout=30)
    assert np.array_equal(np.array(g.records[0].vector.values, dtype=np.float32), base[20])
    print(f"\n1536-d: insert {N} at QUORUM {t_insert:.2f} s; SearchBatch {NQ} queries {t_search:.2f} s; "
          f"recall@10 {rec:.3f}")


def test_4096_dimensions_insert_search_get_import(net, stubs, tmp_path):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    stub = net.gw.stub
    D, N = 4096, 300
    rng = np.random.default_rng(4096)
    base = rng.normal(size=(N, D)).astype(np.float32)
    create(stub, vpb, tpb, "d4096", D, tpb.FLAT)
    r = stub.Insert(vpb.InsertRequest(collection="d4096", vectors=[vec(tpb, v) for v in base[:200]],
                                      consistency_level=tpb.ALL), timeout=120)
    assert r.status == vpb.SUCCESS, r.message
    ids = list(r.vector_ids)
    # the rest through Import from an .fvecs file the gateway reads
    path = tmp_path / "rest.fvecs"
    rows = np.empty((N - 200, D + 1), dtype=np.int32)
    rows[:, 0] = D
    rows[:, 1:] = base[200:].view(np.int32)
    rows.tofile(path)
    msgs = list(stub.Import(vpb.ImportRequest(collection="d4096", source=f"file://{path}", batch_size=40,
                                              consistency_level=tpb.QUORUM), timeout=300))
    assert msgs[-1].HasField("summary") and msgs[-1].summary.status == vpb.SUCCESS, msgs[-1]
    assert msgs[-1].imported == N - 200
    assert stub.DescribeCollection(vpb.DescribeCollectionRequest(name="d4096"), timeout=30).vector_count == N
    # exact search: every vector finds itself first, imported ones too
    for row in (0, 150, 250, 299):
        res = stub.Search(vpb.SearchRequest(collection="d4096", query_vector=vec(tpb, base[row]), top_k=3,
                                            include_vectors=True, consistency_level=tpb.QUORUM), timeout=30)
        top = res.results[0]
        assert top.distance == pytest.approx(0, abs=1e-5)
        assert np.array_equal(np.array(top.vector.values, dtype=np.float32), base[row])
        if row < 200:
            assert top.id == ids[row]
    g = stub.Get(vpb.GetRequest(collection="d4096", ids=ids[:50], include_vectors=True), timeout=30)
    assert len(g.records) == 50
    assert all(np.array_equal(np.array(x.vector.values, dtype=np.float32), base[i]) for i, x in enumerate(g.records))
    code, msg = code_of(lambda: stub.Insert(vpb.InsertRequest(collection="d4096", vectors=[vec(tpb, base[0][:4095])]),
                                            timeout=30))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("vectors[0]: 4095 values"), msg
    code, msg = code_of(lambda: create(stub, vpb, tpb, "d4097", 4097, tpb.FLAT))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("dimension"), msg


def test_messages_bound_high_dimension_requests(servers, stubs, tmp_path):
    """Vectors of 4096 dimensions are 16 KiB each: with every process at
    rpc_max_message 1M, a request or reply that would not fit in one message
    is refused up front, naming the field and the most that fit, instead of
    failing between the gateway and a replica; a SearchBatch whose replica
    answers would not fit in one call is split into calls that do; a backup
    that fell 2 MB behind is caught up in appends that fit."""
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    net = ChainNet(servers, stubs, tmp_path, ix_args=("--rpc-max-message", "1M"))
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "30000", "--rpc-max-message", "1M",
                                                      "--import-schemes", "file"))
    try:
        stub = gw.stub
        D = 4096
        stub.CreateCollection(vpb.CreateCollectionRequest(name="big", dimension=D, metric=tpb.L2,
                                                          index=tpb.IndexSpec(kind=tpb.FLAT), fragments=1,
                                                          replication=3), timeout=90)
        base = np.random.default_rng(11).normal(size=(120, D)).astype(np.float32)
        # a backup stopped while 120 records (2 MB) are written: its primary
        # must ship them in appends that fit in a message to catch it up
        first = stub.DescribeCollection(vpb.DescribeCollectionRequest(name="big"), timeout=10).fragment_states[0]
        primary = first.primary
        backup = next(ix for ix in net.indexers if not ix.server.target.endswith(":" + primary.split(":")[1]))
        backup.server.proc.send_signal(signal.SIGSTOP)
        # a request over the limit is refused by gRPC before the gateway reads it
        code, msg = code_of(lambda: stub.Insert(vpb.InsertRequest(collection="big", vectors=[vec(tpb, v) for v in base[:100]]),
                                                timeout=30))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (code, msg)
        ids = []
        for s in range(0, 120, 40):
            r = stub.Insert(vpb.InsertRequest(collection="big", vectors=[vec(tpb, v) for v in base[s:s + 40]],
                                              consistency_level=tpb.QUORUM), timeout=60)
            ids.extend(r.vector_ids)
        backup.server.proc.send_signal(signal.SIGCONT)

        def all_answer():
            try:
                return stub.Search(vpb.SearchRequest(collection="big", query_vector=vec(tpb, base[119]), top_k=1,
                                                     consistency_level=tpb.ALL, timeout_ms=2000), timeout=10)
            except grpc.RpcError:
                return None
        r = wait_until(all_answer, timeout=60, interval=0.5)
        assert r and r.results[0].id == ids[119], "the stopped backup never caught up"
        # ... by its primary, not by a failover its silence would have forced
        after = stub.DescribeCollection(vpb.DescribeCollectionRequest(name="big"), timeout=10).fragment_states[0]
        assert (after.epoch, after.primary) == (first.epoch, first.primary)
        bad = grpc.StatusCode.INVALID_ARGUMENT
        code, msg = code_of(lambda: stub.Get(vpb.GetRequest(collection="big", ids=ids[:60], include_vectors=True), timeout=30))
        assert code == bad and msg.startswith("ids: 60 records with 4096-d vectors") and msg.endswith("at most 47"), msg
        g = stub.Get(vpb.GetRequest(collection="big", ids=ids[:47], include_vectors=True), timeout=30)
        assert len(g.records) == 47 and np.array_equal(np.array(g.records[46].vector.values, dtype=np.float32), base[46])
        assert len(stub.Get(vpb.GetRequest(collection="big", ids=ids), timeout=30).records) == 120
        code, msg = code_of(lambda: stub.Search(vpb.SearchRequest(collection="big", query_vector=vec(tpb, base[0]),
                                                                  top_k=60), timeout=30))
        assert code == bad and msg.startswith("top_k: 60 hits with 4096-d vectors"), msg
        r = stub.Search(vpb.SearchRequest(collection="big", query_vector=vec(tpb, base[0]), top_k=47,
                                          include_vectors=True, consistency_level=tpb.ALL), timeout=30)
        assert len(r.results) == 47 and r.results[0].id == ids[0]
        # 10 queries x 10 hits x 16 KiB do not fit in one call to a replica: the gateway splits them
        qs = [vec(tpb, v) for v in base[:10]]
        r = stub.SearchBatch(vpb.SearchBatchRequest(collection="big", query_vectors=qs, top_k=10,
                                                    consistency_level=tpb.QUORUM), timeout=60)
        assert [x.results[0].id for x in r.results] == ids[:10]
        code, msg = code_of(lambda: stub.SearchBatch(vpb.SearchBatchRequest(collection="big", query_vectors=qs, top_k=10,
                                                                            include_vectors=True), timeout=30))
        assert code == bad and msg.startswith("include_vectors: 100 hits"), msg
        # Import: a batch goes to the primary in one message (70 rows are 1.1 MB); the default
        # batch (1,000) shrinks to what fits
        path = tmp_path / "more.fvecs"
        rows = np.empty((70, D + 1), dtype=np.int32)
        rows[:, 0] = D
        rows[:, 1:] = np.random.default_rng(12).normal(size=(70, D)).astype(np.float32).view(np.int32)
        rows.tofile(path)
        code, msg = code_of(lambda: list(stub.Import(vpb.ImportRequest(collection="big", source=f"file://{path}",
                                                                       batch_size=60), timeout=60)))
        assert code == bad and msg.startswith("batch_size: 60 rows with 4096-d vectors") and msg.endswith("at most 47"), msg
        msgs = list(stub.Import(vpb.ImportRequest(collection="big", source=f"file://{path}"), timeout=120))
        assert [m.imported for m in msgs] == [47, 70, 70] and msgs[-1].summary.status == vpb.SUCCESS, msgs[-1]
        assert stub.DescribeCollection(vpb.DescribeCollectionRequest(name="big"), timeout=10).vector_count == 190
    finally:
        gw.close()
        net.close()


def test_fetch_log_of_wide_records_fits_in_a_message(start_indexer, tmp_path):
    """FetchLog of 4096-d records from an indexer at rpc_max_message 1M:
    max_records 100 (1.6 MB) comes back in calls of fewer records that fit,
    and following log_size reads every record once, in order."""
    from read_auth import signed
    from sodium_keys import keypair_from_seed
    from test_indexer import records, schema, set_config, write
    a, b = start_indexer("a", "--rpc-max-message", "1M"), start_indexer("b", "--rpc-max-message", "1M")
    for ix in (a, b):
        set_config(ix, ix, "w", 0, 1, [a, b], a)
    t = a.types
    vs = np.random.default_rng(3).normal(size=(100, 4096)).astype(np.float32)
    for s in range(0, 100, 25):
        r = write(a, "w", 0, 1, records(a.pb, vs[s:s + 25]), schema(t, 4096, t.L2, t.FLAT), t.ALL)
        assert r.level_achieved == t.ALL
    with open(tmp_path / "b.key") as f:
        keys = keypair_from_seed(bytes.fromhex(f.read().split()[1]))
    got, calls, seq = [], 0, 0
    while seq < 100 and calls < 20:
        req = a.pb.FetchLogRequest(magu="w", fragment=0, from_seq=seq, max_records=100)
        signed(req, "FetchLog", "", keys)
        resp = a.stub.FetchLog(req, timeout=30)
        assert resp.log_size == 100 and 1 <= len(resp.records) < 100
        got.extend(resp.records)
        seq += len(resp.records)
        calls += 1
    assert [r.seq for r in got] == list(range(100)) and calls >= 2
    assert np.array_equal(np.array(got[99].vector.values, dtype=np.float32), vs[99])
