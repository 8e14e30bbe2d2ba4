"""Binary vectors under HAMMING end to end through the gateway, from a
grpcio client: real codes (the sign bits of glove-100-angular-10k lifted
to 384 dimensions by a seeded random orthogonal map, packed 8 bits a byte,
bit i in byte i / 8 at bit i % 8) are inserted at QUORUM into a collection
of 2 fragments x 3 replicas, so the gateway checks every replica's signed
answer and recomputes its Hamming distances; searched with recall@10
against numpy brute force (a hit counts when its distance is at most the
10th true distance: codes tie often), filtered, read back, scrolled,
updated and deleted; and bad input is refused with INVALID_ARGUMENT naming
the field: a wrong byte length, floats for a binary collection and bytes
for a float one, a dimension that is not a multiple of 8."""
import time

import grpc
import numpy as np
import pytest

from chain_util import ChainNet
from gateway_util import (Gateway, assert_only_liar_caught, code_of, gateway_net,
                          require_test_lie, start_liar)
from muri_util import dataset, wait_until
from test_dims import lift
from test_indexer import start_indexer  # noqa: F401 (a fixture)

K = 10
BITS = 384


@pytest.fixture
def net(servers, stubs, tmp_path):
    yield from gateway_net(servers, stubs, tmp_path, "--default-timeout-ms", "30000", "--import-schemes", "file")


def codes(x):
    """Sign bits of the rows of x, packed little-endian within each byte."""
    return np.packbits(x > 0, axis=1, bitorder="little")


def hamming(base, q):
    return np.unpackbits(np.bitwise_xor(base, q), axis=1).sum(axis=1)


def bvec(tpb, c):
    return tpb.Vector(binary=bytes(c))


def recall(got, row_of, dist):
    """Hits whose true distance is at most the 10th smallest, over k."""
    kth = np.sort(dist)[K - 1]
    return sum(1 for x in got if dist[row_of[x.id]] <= kth) / K


def test_binary_hamming_end_to_end(net, stubs):
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    stub = net.gw.stub
    N, NQ = 4000, 200
    base0, queries0, _, _ = dataset("glove-100-angular-10k")
    base = codes(lift(base0[:N], BITS, 384))
    queries = codes(lift(queries0[np.random.default_rng(7).choice(len(queries0), NQ, replace=False)], BITS, 384))
    assert base.shape == (N, BITS // 8)
    info = stub.CreateCollection(vpb.CreateCollectionRequest(
        name="codes", dimension=BITS, metric=tpb.HAMMING, index=tpb.IndexSpec(kind=tpb.HNSW),
        fragments=2, replication=3), timeout=90)
    assert info.dimension == BITS and info.metric == tpb.HAMMING

    ids = []
    t0 = time.time()
    for s in range(0, N, 1000):
        meta = [tpb.Metadata(fields={"bucket": tpb.Value(int_value=(s + i) % 10)}) for i in range(1000)]
        r = stub.Insert(vpb.InsertRequest(collection="codes", vectors=[bvec(tpb, c) for c in base[s:s + 1000]],
                                          metadata=meta, consistency_level=tpb.QUORUM), timeout=120)
        assert r.status == vpb.SUCCESS, r.message
        ids.extend(r.vector_ids)
    t_insert = time.time() - t0
    row_of = {i: n for n, i in enumerate(ids)}
    assert len(row_of) == N
    assert stub.DescribeCollection(vpb.DescribeCollectionRequest(name="codes"), timeout=30).vector_count == N

    # recall@10 against brute force, at QUORUM: every replica's distances recomputed by the gateway
    dist = np.stack([hamming(base, q) for q in queries])
    got = []
    t0 = time.time()
    for s in range(0, NQ, 50):
        r = stub.SearchBatch(vpb.SearchBatchRequest(collection="codes", query_vectors=[bvec(tpb, q) for q in queries[s:s + 50]],
                                                    top_k=K, consistency_level=tpb.QUORUM), timeout=120)
        got.extend(r.results)
    t_search = time.time() - t0
    assert all(len(g.results) == K for g in got)
    rec = np.mean([recall(g.results, row_of, dist[q]) for q, g in enumerate(got)])
    assert rec >= 0.95, rec
    for q, g in enumerate(got):
        ds = [x.distance for x in g.results]
        assert ds == sorted(ds)
        for x in g.results:  # integer distances, the true ones
            assert x.distance == dist[q][row_of[x.id]]
    # a single search at ALL, with the vectors back
    r = stub.Search(vpb.SearchRequest(collection="codes", query_vector=bvec(tpb, queries[3]), top_k=K,
                                      consistency_level=tpb.ALL, include_vectors=True), timeout=30)
    assert recall(r.results, row_of, dist[3]) >= 0.9
    for x in r.results:
        assert x.vector.binary == bytes(base[row_of[x.id]]) and len(x.vector.values) == 0
    # a filter: exact over the matching subset
    r = stub.Search(vpb.SearchRequest(
        collection="codes", query_vector=bvec(tpb, queries[4]), top_k=K, consistency_level=tpb.QUORUM,
        filter=tpb.Filter(conditions={"bucket": tpb.Condition(eq=tpb.Value(int_value=3))})), timeout=30)
    sub = [n for n in range(N) if n % 10 == 3]
    want = np.sort(dist[4][sub])[:K]
    assert [row_of[x.id] % 10 for x in r.results] == [3] * K
    assert [x.distance for x in r.results] == list(want)

    # get, scroll, update, delete
    g = stub.Get(vpb.GetRequest(collection="codes", ids=ids[10:13], include_vectors=True), timeout=30)
    assert [x.id for x in g.records] == ids[10:13]
    for x, row in zip(g.records, (10, 11, 12)):
        assert x.vector.binary == bytes(base[row]) and x.metadata.fields["bucket"].int_value == row % 10
    page = stub.Scroll(vpb.ScrollRequest(collection="codes", page_size=50, include_vectors=True), timeout=30)
    assert len(page.records) == 50 and page.next_cursor
    for x in page.records:
        assert x.vector.binary == bytes(base[row_of[x.id]])
    newc = np.bitwise_not(base[10])
    r = stub.Update(vpb.UpsertRequest(collection="codes", ids=[ids[10]], vectors=[bvec(tpb, newc)],
                                      consistency_level=tpb.QUORUM), timeout=30)
    assert r.status == vpb.SUCCESS
    g = stub.Get(vpb.GetRequest(collection="codes", ids=[ids[10]], include_vectors=True), timeout=30)
    assert g.records[0].vector.binary == bytes(newc)
    for level in (tpb.ONE, tpb.QUORUM, tpb.ALL):
        r = stub.Search(vpb.SearchRequest(collection="codes", query_vector=bvec(tpb, newc), top_k=1,
                                          consistency_level=level), timeout=30)
        assert r.results[0].id == ids[10] and r.results[0].distance == 0
    r = stub.Delete(vpb.DeleteRequest(collection="codes", ids=[ids[10], ids[11]], consistency_level=tpb.QUORUM),
                    timeout=30)
    assert r.status == vpb.SUCCESS and r.deleted == 2
    assert [x.id for x in stub.Get(vpb.GetRequest(collection="codes", ids=ids[10:13]), timeout=30).records] == [ids[12]]
    for level in (tpb.ONE, tpb.ALL):
        for q in (newc, base[11]):
            r = stub.Search(vpb.SearchRequest(collection="codes", query_vector=bvec(tpb, q), top_k=5,
                                              consistency_level=level), timeout=30)
            assert ids[10] not in [x.id for x in r.results] and ids[11] not in [x.id for x in r.results]
    assert stub.DescribeCollection(vpb.DescribeCollectionRequest(name="codes"), timeout=30).vector_count == N - 2

    # bad input, named by field, writes nothing
    bad = grpc.StatusCode.INVALID_ARGUMENT
    short, long_ = tpb.Vector(binary=bytes(base[0][:-1])), tpb.Vector(binary=bytes(base[0]) + b"\0")
    floats = tpb.Vector(values=[0.5] * BITS)
    for call, req, want in (
            (stub.Insert, vpb.InsertRequest(collection="codes", vectors=[bvec(tpb, base[0]), short]),
             "vectors[1].binary: 47 bytes, the collection's dimension is 384 bits (48 bytes)"),
            (stub.Insert, vpb.InsertRequest(collection="codes", vectors=[long_]), "vectors[0].binary: 49 bytes"),
            (stub.Insert, vpb.InsertRequest(collection="codes", vectors=[floats]),
             "vectors[0].values: 384 floats given, the collection holds binary vectors (HAMMING)"),
            (stub.Update, vpb.UpsertRequest(collection="codes", ids=[ids[20]], vectors=[short]), "vectors[0].binary: 47"),
            (stub.Search, vpb.SearchRequest(collection="codes", query_vector=short, top_k=K), "query_vector.binary: 47"),
            (stub.Search, vpb.SearchRequest(collection="codes", query_vector=floats, top_k=K), "query_vector.values: 384"),
            (stub.SearchBatch, vpb.SearchBatchRequest(collection="codes", query_vectors=[bvec(tpb, queries[0]), long_],
                                                      top_k=K), "query_vectors[1].binary: 49"),
            (stub.Search, vpb.SearchRequest(collection="codes", query_vector=bvec(tpb, queries[0]), top_k=K,
                                            distance_metric=tpb.L2), "distance_metric: L2")):
        code, msg = code_of(lambda: call(req, timeout=30))
        assert code == bad and msg.startswith(want), (want, code, msg)
    code, msg = code_of(lambda: list(stub.Import(vpb.ImportRequest(collection="codes", source="file:///tmp/rows.fvecs"),
                                                 timeout=30)))
    assert code == bad and msg.startswith('collection: "codes" holds binary vectors (HAMMING)'), msg
    assert stub.DescribeCollection(vpb.DescribeCollectionRequest(name="codes"), timeout=30).vector_count == N - 2
    g = stub.Get(vpb.GetRequest(collection="codes", ids=[ids[20]], include_vectors=True), timeout=30)
    assert g.records[0].vector.binary == bytes(base[20])

    # creating: bits in multiples of 8, no IVF, no quantizer; a float collection refuses bytes
    for req, want in (
            (vpb.CreateCollectionRequest(name="b12", dimension=12, metric=tpb.HAMMING),
             "dimension: 12 bits under HAMMING, expected a multiple of 8"),
            (vpb.CreateCollectionRequest(name="b0", dimension=0, metric=tpb.HAMMING), "dimension: 0 bits"),
            (vpb.CreateCollectionRequest(name="bivf", dimension=64, metric=tpb.HAMMING,
                                         index=tpb.IndexSpec(kind=tpb.IVF)), "index.kind: HAMMING takes FLAT or HNSW"),
            (vpb.CreateCollectionRequest(name="bsq", dimension=64, metric=tpb.HAMMING,
                                         index=tpb.IndexSpec(kind=tpb.FLAT, quantizer=tpb.SQ8)), "index.quantizer")):
        code, msg = code_of(lambda: stub.CreateCollection(req, timeout=30))
        assert code == bad and msg.startswith(want), (want, code, msg)
    stub.CreateCollection(vpb.CreateCollectionRequest(name="floats", dimension=48, metric=tpb.L2, fragments=1,
                                                      replication=1), timeout=90)
    code, msg = code_of(lambda: stub.Insert(vpb.InsertRequest(collection="floats", vectors=[bvec(tpb, base[0])]),
                                            timeout=30))
    assert code == bad and msg.startswith("vectors[0].binary: 48 bytes given, the collection holds float vectors")
    print(f"\nbinary {BITS} bits: insert {N} at QUORUM {t_insert:.2f} s; SearchBatch {NQ} queries at QUORUM "
          f"{t_search:.2f} s; recall@10 {rec:.3f}")


def test_binary_flat_exact_at_all(net, stubs):
    """A FLAT binary collection is exact: at ALL every answer is the brute-force top-k by distance."""
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    stub = net.gw.stub
    rng = np.random.default_rng(64)
    base = rng.integers(0, 256, size=(500, 8), dtype=np.uint8)  # 64 bits
    stub.CreateCollection(vpb.CreateCollectionRequest(name="flat64", dimension=64, metric=tpb.HAMMING,
                                                      index=tpb.IndexSpec(kind=tpb.FLAT), fragments=2,
                                                      replication=3), timeout=90)
    r = stub.Insert(vpb.InsertRequest(collection="flat64", vectors=[bvec(tpb, c) for c in base],
                                      consistency_level=tpb.ALL), timeout=120)
    assert r.status == vpb.SUCCESS, r.message
    row_of = {i: n for n, i in enumerate(r.vector_ids)}
    for q in rng.integers(0, 256, size=(20, 8), dtype=np.uint8):
        d = hamming(base, q)
        r = stub.Search(vpb.SearchRequest(collection="flat64", query_vector=bvec(tpb, q), top_k=K,
                                          consistency_level=tpb.ALL), timeout=30)
        assert [x.distance for x in r.results] == list(np.sort(d)[:K])
        assert all(d[row_of[x.id]] == x.distance for x in r.results)


def test_indexer_binary_replication_answers_and_proofs(start_indexer, tmp_path):
    """At the indexer: binary records replicate (equal roots), a search's
    signature is over the query's bytes (answer_digest.py, an independent
    reading of common/cm_answer.h), FetchLog and InclusionProof carry the
    format-2 leaf with the code, and floats are refused in either place."""
    from answer_digest import answer_digest, query_digest_bin
    from muri_util import leaf_hash, verify_inclusion
    from read_auth import keys_of, signed
    from sodium_keys import verify
    from test_indexer import records, schema, set_config, write
    a, b = start_indexer("a"), start_indexer("b")
    for ix in (a, b):
        set_config(ix, ix, "bin", 0, 1, [a, b], a)
    t, pb = a.types, a.pb
    sch = schema(t, 64, t.HAMMING, t.HNSW)
    rng = np.random.default_rng(8)
    base = rng.integers(0, 256, size=(300, 8), dtype=np.uint8)
    recs = records(pb, [None] * len(base))
    for r, c in zip(recs, base):
        r.vector.binary = bytes(c)
    w = write(a, "bin", 0, 1, recs, sch, t.ALL)
    assert w.level_achieved == t.ALL and w.log_size == len(base)
    ra = a.stub.GetRoot(pb.RootRequest(magu="bin", fragment=0, size=len(base)), timeout=10)
    rb = b.stub.GetRoot(pb.RootRequest(magu="bin", fragment=0, size=len(base)), timeout=10)
    assert ra.root == rb.root
    bkeys = keys_of(tmp_path / "b.key")
    for n, q in enumerate(rng.integers(0, 256, size=(5, 8), dtype=np.uint8)):
        ix = (a, b)[n % 2]
        req = pb.LocalSearchRequest(magu="bin", fragment=0, top_k=K, include_vectors=True)
        req.query.binary = bytes(q)
        resp = ix.stub.Search(req, timeout=30)
        d = hamming(base, q)
        assert [x.distance for x in resp.hits] == list(np.sort(d)[:K])
        for x in resp.hits:
            assert x.vector.binary == bytes(base[x.seq]) and x.distance == d[x.seq]
        qd = query_digest_bin(bytes(q), K)
        assert verify(ix.pubkey, resp.signature, answer_digest(qd, "bin", 0, resp))
        other = bytes([q[0] ^ 1]) + bytes(q[1:])
        assert not verify(ix.pubkey, resp.signature, answer_digest(query_digest_bin(other, K), "bin", 0, resp))
        # the hit's leaf, proven under the answer's root
        h = resp.hits[0]
        p = a.stub.InclusionProof(signed(pb.InclusionProofRequest(magu="bin", fragment=0, index=h.seq,
                                                                  size=resp.log_size), "InclusionProof", "", bkeys),
                                  timeout=10)
        assert p.leaf[0] == 2 and bytes(base[h.seq]) in p.leaf
        assert verify_inclusion(leaf_hash(p.leaf), h.seq, resp.log_size, list(p.path), resp.root)
    got = a.stub.FetchLog(signed(pb.FetchLogRequest(magu="bin", fragment=0, from_seq=0, max_records=10), "FetchLog",
                                 "", bkeys), timeout=10)
    assert [r.vector.binary for r in got.records] == [bytes(c) for c in base[:10]]
    bad = grpc.StatusCode.INVALID_ARGUMENT
    req = pb.LocalSearchRequest(magu="bin", fragment=0, top_k=K)
    req.query.values.extend([0.5] * 64)
    code, msg = code_of(lambda: a.stub.Search(req, timeout=10))
    assert code == bad and "query.binary" in msg, msg
    code, msg = code_of(lambda: write(a, "bin", 0, 1, records(pb, [np.ones(64, np.float32)]), sch, t.ALL))
    assert code == bad and "vector.binary: missing" in msg, msg
    short = records(pb, [None])
    short[0].vector.binary = bytes(7)
    code, msg = code_of(lambda: write(a, "bin", 0, 1, short, sch, t.ALL))
    assert code == bad and "vector.binary: 7 bytes" in msg, msg


def test_binary_byzantine_indexer(servers, stubs, tmp_path):
    """One indexer of three lies in its answers on a binary collection
    (test_lie = mix: a fabricated code under a real id, Hamming distances
    made smaller, the nearest dropped, the previous answer replayed, in
    turn): at QUORUM and ALL the results are still the exact top k, the
    gateway counts the liar's lies only, and a spot check proves a
    fabricated code false against the committed root (a format-2 leaf): the
    ledger jails the liar."""
    require_test_lie()
    vpb, tpb, lpb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.ledger_pb2
    net = ChainNet(servers, stubs, tmp_path, ix_args=("--root-every", "100", "--root-interval-ms", "200"))
    liar = start_liar(servers, net, "mix")
    gw = Gateway(servers, stubs, net, tmp_path, args=("--default-timeout-ms", "20000", "--spot-permille", "1000"))
    try:
        stub = gw.stub
        rng = np.random.default_rng(5)
        base = rng.integers(0, 256, size=(1000, 16), dtype=np.uint8)  # 128 bits
        stub.CreateCollection(vpb.CreateCollectionRequest(name="byzbits", dimension=128, metric=tpb.HAMMING,
                                                          index=tpb.IndexSpec(kind=tpb.FLAT), fragments=1,
                                                          replication=3), timeout=90)
        r = stub.Insert(vpb.InsertRequest(collection="byzbits", vectors=[bvec(tpb, c) for c in base],
                                          consistency_level=tpb.ALL), timeout=60)
        row_of = {i: n for n, i in enumerate(r.vector_ids)}
        assert wait_until(lambda: stub.DescribeCollection(vpb.DescribeCollectionRequest(name="byzbits"), timeout=10)
                          .fragment_states[0].committed_size >= 500, timeout=60), "no root committed"
        queries = rng.integers(0, 256, size=(40, 16), dtype=np.uint8)
        for level in (tpb.ALL, tpb.QUORUM):
            res = stub.SearchBatch(vpb.SearchBatchRequest(collection="byzbits", query_vectors=[bvec(tpb, q) for q in queries],
                                                          top_k=K, consistency_level=level), timeout=60)
            for q, got in zip(queries, res.results):
                d = hamming(base, q)
                assert [x.distance for x in got.results] == list(np.sort(d)[:K]), level
                assert all(d[row_of[x.id]] == x.distance for x in got.results)
        assert_only_liar_caught(net, gw, lpb, liar)
    finally:
        gw.close()
        net.close()
