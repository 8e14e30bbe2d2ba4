"""The indexer's reads as a gateway uses them: search answers signed over
the canonical answer digest (common/cm_answer.h, checked here against an
independent Python reading) with the root they were computed at; reads
with min_size that wait for the log (read your writes) or answer
UNAVAILABLE; and, in builds with -Dtest_faults=true, the lying mode the
Byzantine tests start an indexer in."""
import subprocess
import time

import grpc
import numpy as np
import pytest

from answer_digest import answer_digest, query_digest
from sodium_keys import verify
from test_indexer import EXE, records, schema, search, set_config, start_indexer, write  # noqa: F401


def faults_built():
    import os
    exe = os.path.join(os.environ["MURI_BUILD_ROOT"], EXE)
    out = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
    return "--test-lie" in out


def req_of(ix, magu, q, k, flt=None, min_size=0):
    r = ix.pb.LocalSearchRequest(magu=magu, fragment=0, top_k=k, include_vectors=True, min_size=min_size)
    r.query.values.extend(q.tolist())
    if flt is not None:
        r.filter.CopyFrom(flt)
    return r


def test_answer_digest_binds_filter_and_root(start_indexer):
    ix = start_indexer("ix")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "d", 0, 1, [ix], ix)
    sch = schema(t, 3, t.L2, t.FLAT)
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((40, 3)).astype(np.float32)
    metas = [{"n": i, "word": f"w{i % 5}", "odd": bool(i % 2), "x": i / 3} for i in range(40)]
    write(ix, "d", 0, 1, records(pb, vecs, metas), sch)
    flt = t.Filter()
    flt.conditions["n"].gte = 10
    getattr(flt.conditions["word"], "in").values.add().string_value = "w1"
    getattr(flt.conditions["word"], "in").values.add().string_value = "w3"
    flt.conditions["odd"].eq.bool_value = True
    q = rng.standard_normal(3).astype(np.float32)
    resp = ix.stub.Search(req_of(ix, "d", q, 5, flt), timeout=30)
    assert len(resp.hits) == 5 and resp.log_size == 40
    assert all(x.metadata.fields["word"].string_value in ("w1", "w3") and x.metadata.fields["n"].int_value >= 10
               and x.metadata.fields["odd"].bool_value for x in resp.hits)
    qd = query_digest(q, 5, flt)
    assert verify(ix.pubkey, resp.signature, answer_digest(qd, "d", 0, resp))
    # the root is the log's root at the size answered
    root = ix.stub.GetRoot(pb.RootRequest(magu="d", fragment=0, size=resp.log_size), timeout=10)
    assert resp.root == root.root and len(resp.root) == 32
    # the same filter built in another key order is the same query
    flt2 = t.Filter()
    flt2.conditions["odd"].eq.bool_value = True
    getattr(flt2.conditions["word"], "in").values.add().string_value = "w1"
    getattr(flt2.conditions["word"], "in").values.add().string_value = "w3"
    flt2.conditions["n"].gte = 10
    assert query_digest(q, 5, flt2) == qd
    resp2 = ix.stub.Search(req_of(ix, "d", q, 5, flt2), timeout=30)
    assert verify(ix.pubkey, resp2.signature, answer_digest(qd, "d", 0, resp2))
    # but not another filter, k or fragment
    flt2.conditions["n"].gte = 11
    assert not verify(ix.pubkey, resp.signature, answer_digest(query_digest(q, 5, flt2), "d", 0, resp))
    assert not verify(ix.pubkey, resp.signature, answer_digest(query_digest(q, 4, flt), "d", 0, resp))
    assert not verify(ix.pubkey, resp.signature, answer_digest(qd, "d", 1, resp))


def test_min_size_reached_answers_at_once(start_indexer):
    ix = start_indexer("ix", "--read-wait-ms", "3000")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "w", 0, 1, [ix], ix)
    sch = schema(t, 2, t.L2, t.FLAT)
    recs = records(pb, [np.array([5, 5], np.float32)] * 3 + [np.array([0, 0], np.float32)])
    assert write(ix, "w", 0, 1, recs, sch).log_size == 4
    t0 = time.monotonic()
    resp = ix.stub.Search(req_of(ix, "w", np.array([0, 0], np.float32), 1, min_size=4), timeout=30)
    # at once: well under the 3 s a search waiting for min_size would take
    assert resp.log_size == 4 and resp.hits[0].id == recs[3].id and time.monotonic() - t0 < 2
    got = ix.stub.Get(pb.LocalGetRequest(magu="w", fragment=0, ids=[recs[3].id], min_size=4), timeout=30)
    assert [x.id for x in got.hits] == [recs[3].id] and got.log_size == 4


def test_min_size_beyond_the_log_is_unavailable(start_indexer):
    ix = start_indexer("ix", "--read-wait-ms", "300")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "u", 0, 1, [ix], ix)
    write(ix, "u", 0, 1, records(pb, [np.array([1, 2], np.float32)]), schema(t, 2, t.L2, t.FLAT))
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        ix.stub.Search(req_of(ix, "u", np.array([0, 0], np.float32), 1, min_size=9), timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "min_size" in e.value.details() and "holds 1 records, 9 asked" in e.value.details()
    assert 0.25 <= time.monotonic() - t0 < 5
    with pytest.raises(grpc.RpcError) as e:
        ix.stub.Get(pb.LocalGetRequest(magu="u", fragment=0, ids=[records(pb, [None])[0].id], min_size=2),
                    timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "min_size" in e.value.details()


def l2(a, b):
    return float(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).sum())


@pytest.mark.skipif(not faults_built(), reason="built without -Dtest_faults=true")
@pytest.mark.parametrize("kind", ["fabricate", "distance", "drop_nn", "replay"])
def test_lying_mode(start_indexer, kind):
    honest = start_indexer("honest")
    liar = start_indexer("liar", "--test-lie", kind)
    t, pb = honest.types, honest.pb
    sch = schema(t, 4, t.L2, t.FLAT)
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((30, 4)).astype(np.float32)
    recs = records(pb, vecs)
    for ix in (honest, liar):
        set_config(ix, ix, "b", 0, 1, [ix], ix)
        write(ix, "b", 0, 1, recs, sch)
    queries = rng.standard_normal((3, 4)).astype(np.float32)
    for n, q in enumerate(queries):
        h = honest.stub.Search(req_of(honest, "b", q, 5), timeout=30)
        lie = liar.stub.Search(req_of(liar, "b", q, 5), timeout=30)
        qd = query_digest(q, 5)
        assert verify(honest.pubkey, h.signature, answer_digest(qd, "b", 0, h))
        signed_for_q = verify(liar.pubkey, lie.signature, answer_digest(qd, "b", 0, lie))
        if kind == "replay":
            if n == 0:
                continue  # nothing to replay yet: the first answer is honest
            assert not signed_for_q
            continue
        assert signed_for_q
        if kind == "fabricate":
            assert lie.hits[0].id == h.hits[0].id and list(lie.hits[0].vector.values) == q.tolist()
        elif kind == "distance":
            assert [x.id for x in lie.hits] == [x.id for x in h.hits]
            assert all(abs(x.distance - l2(x.vector.values, q)) > 0.05 for x in lie.hits)
        else:
            assert [x.id for x in lie.hits] == [x.id for x in h.hits][1:] + [
                x.id for x in honest.stub.Search(req_of(honest, "b", q, 6), timeout=30).hits][5:]
