"""The compose network through the gateway's published port, as a user sees
it (muri.v1.VectorStore, proto/vectorstore.proto): create a collection,
insert glove-100-angular-10k, recall@10 >= 0.95 at QUORUM, and searches at
QUORUM keep answering after the fragment's primary is killed.

Skipped, saying so, while the gateway serves Status only (CreateCollection
answers UNIMPLEMENTED): it runs as soon as the gateway's VectorStore API is
on the branch."""
import os
import time

import grpc
import numpy as np
import pytest

from conftest import CHANNEL_OPTIONS, INDEXERS, Compose, run

DATASET = "glove-100-angular-10k"
COLL = "glove"
QUERIES = 200   # a random sample (seeded) of the dataset's 1,000 queries
BATCH = 1000


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = int(raw[0])
    return raw.reshape(-1, dim + 1)[:, 1:].copy().view(dtype)


@pytest.fixture(scope="module")
def gnet(images, tmp_path_factory):
    c = Compose(images, str(tmp_path_factory.mktemp("compose-gw")))
    c.project += "gw"
    c.network = f"{c.project}_default"
    c.env["COMPOSE_PROJECT_NAME"] = c.project
    try:
        c("up", "-d")
        c.wait_healthy([f"ledger-{i}" for i in range(4)] + INDEXERS + ["gateway"])
        c.read_ca()
        yield c
    finally:
        if os.environ.get("MURI_DEPLOY_KEEP"):
            print(f"\nkept project {c.project} (MURI_DEPLOY_KEEP)")
        else:
            c.cleanup()


def admin_key(gnet, timeout=120):
    """The network's admin API key, /net/admin.apikey, once the admin-key
    service made it."""
    end = time.time() + timeout
    while True:
        try:
            return gnet.file("/net/admin.apikey").decode().strip()
        except Exception:
            if time.time() > end:
                raise AssertionError("no /net/admin.apikey: " + gnet("logs", "admin-key", check=False).stdout[-3000:])
            time.sleep(2)


@pytest.fixture(scope="module")
def vs(gnet, stubs):
    # with TLS on, the gateway serves its clients TLS too: verified with the network's CA
    ch = (grpc.secure_channel(f"127.0.0.1:{gnet.gateway_port}", grpc.ssl_channel_credentials(gnet.ca),
                              options=CHANNEL_OPTIONS + [("grpc.ssl_target_name_override", "gateway")])
          if gnet.ca else grpc.insecure_channel(f"127.0.0.1:{gnet.gateway_port}", options=CHANNEL_OPTIONS))
    raw = stubs.vectorstore_pb2_grpc.VectorStoreStub(ch)
    t, v = stubs.types_pb2, stubs.vectorstore_pb2
    # the gateway runs with auth = true: no key, UNAUTHENTICATED
    try:
        raw.DescribeCollection(v.DescribeCollectionRequest(name=COLL), timeout=30, wait_for_ready=True)
        raise AssertionError("the gateway answered a caller with no API key")
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            ch.close()
            pytest.skip("the gateway serves Status only on this branch (VectorStore answers UNIMPLEMENTED)")
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (e.code(), e.details())
    md = (("authorization", "Bearer " + admin_key(gnet)),)

    class Keyed:
        """The stub with the admin key on every call."""
        def __getattr__(self, name):
            f = getattr(raw, name)
            return lambda req, **kw: f(req, metadata=md, **kw)
    yield Keyed()
    ch.close()


def test_glove_recall_through_the_gateway_and_after_killing_a_primary(vs, gnet, stubs):
    t, v, lpb = stubs.types_pb2, stubs.vectorstore_pb2, stubs.ledger_pb2
    root = os.environ.get("MURI_DATASETS", "/work/shared/datasets")
    d = os.path.join(root, DATASET)
    if not os.path.isdir(d):
        pytest.skip(f"{d} is missing (set MURI_DATASETS)")
    base = read_vecs(os.path.join(d, "base.fvecs"), np.float32)
    queries = read_vecs(os.path.join(d, "query.fvecs"), np.float32)
    truth = read_vecs(os.path.join(d, "groundtruth.ivecs"), np.int32)[:, :10]
    spec = t.IndexSpec(kind=t.HNSW, hnsw_m=32, hnsw_ef_construction=200, hnsw_ef_search=128)
    info = vs.CreateCollection(v.CreateCollectionRequest(name=COLL, dimension=base.shape[1], metric=t.COSINE,
                                                         index=spec, replication=3, fragments=1), timeout=120)
    assert info.name == COLL and info.dimension == base.shape[1]
    row_of = {}
    for lo in range(0, len(base), BATCH):
        req = v.InsertRequest(collection=COLL, consistency_level=t.QUORUM, timeout_ms=60000)
        for row in base[lo:lo + BATCH]:
            req.vectors.add().values.extend(row.tolist())
        r = vs.Insert(req, timeout=120)
        assert r.status == v.SUCCESS, r.message
        for i, vid in enumerate(r.vector_ids):
            row_of[vid] = lo + i
    assert len(row_of) == len(base)
    sample = np.random.default_rng(7).choice(len(queries), QUERIES, replace=False)

    def recall():
        hit = 0
        for qi in sample:
            req = v.SearchRequest(collection=COLL, top_k=10, consistency_level=t.QUORUM, timeout_ms=10000)
            req.query_vector.values.extend(queries[qi].tolist())
            r = vs.Search(req, timeout=30)
            assert r.metrics.consistency_level_achieved >= t.QUORUM
            hit += len({row_of[x.id] for x in r.results} & set(truth[qi].tolist()))
        return hit / (10 * len(sample))
    # the indexers build their graphs in the background: wait for them
    end, rc = time.time() + 300, 0.0
    while time.time() < end:
        rc = recall()
        if rc >= 0.95:
            break
        time.sleep(5)
    print(f"\nrecall@10 through the gateway at QUORUM: {rc:.4f} over {QUERIES} queries")
    assert rc >= 0.95

    # kill the fragment's primary: searches at QUORUM keep answering
    cfg = stubs.ledger_pb2_grpc.LedgerStub(gnet.channel("ledger-0")).GetFragment(
        lpb.FragmentRequest(magu=COLL, fragment=0), timeout=10).config
    pk_of = {}
    for x in INDEXERS:
        seed = bytes.fromhex(gnet.file(f"/net/keys/{x}.key").decode().split()[1])
        from ledger_util import Account
        pk_of[Account(seed).pk] = x
    primary = pk_of[cfg.primary]
    run(["docker", "kill", gnet.container(primary)])
    try:
        rc2 = recall()
        print(f"recall@10 at QUORUM with the primary {primary} killed: {rc2:.4f}")
        assert rc2 >= 0.95
    finally:
        run(["docker", "start", gnet.container(primary)])
