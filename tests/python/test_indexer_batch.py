"""The indexer's batched Search (LocalSearchRequest.queries): one call
carries several query vectors and gets one answer per query, each with the
hits, distances, log size and root a single-query call gives, all signed
with one signature over the Merkle root of their digests (each answer
carrying its path, answer_digest.signed_message; a path taken for another
query, index or size does not verify); recall
through the batch on glove-100-angular-10k; bad batches are refused with
INVALID_ARGUMENT naming the field."""
import grpc
import numpy as np
import pytest

from answer_digest import answer_digest, query_digest, signed_answer_message, signed_message
from muri_util import dataset
from sodium_keys import verify
from test_indexer import load, make_filter, schema, set_config, start_indexer, wait_indexed  # noqa: F401


def batch_req(pb, magu, qs, k, flt=None, include_vectors=True):
    r = pb.LocalSearchRequest(magu=magu, fragment=0, top_k=k, include_vectors=include_vectors)
    for q in qs:
        r.queries.add().values.extend(q.tolist())
    if flt is not None:
        r.filter.CopyFrom(flt)
    return r


def single_req(pb, magu, q, k, flt=None, include_vectors=True):
    r = pb.LocalSearchRequest(magu=magu, fragment=0, top_k=k, include_vectors=include_vectors)
    r.query.values.extend(q.tolist())
    if flt is not None:
        r.filter.CopyFrom(flt)
    return r


def same_answer(a, b):
    """The same hits, log size, root and signer; the signatures differ (one over
    a batch root, one over the answer alone)."""
    return list(a.hits) == list(b.hits) and a.log_size == b.log_size and a.root == b.root and a.signer == b.signer


def test_batch_answers_are_the_single_answers(start_indexer):
    base, queries, truth, words = dataset("glove-100-angular-10k")
    ix = start_indexer("ix")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "g", 0, 1, [ix], ix)
    sch = schema(t, 100, t.COSINE, t.HNSW, hnsw_m=32, hnsw_ef_construction=200, hnsw_ef_search=128)
    ids = load(ix, "g", 1, base, words, sch)
    assert wait_indexed(ix), "the index did not catch up"
    pos = {i: n for n, i in enumerate(ids)}
    # a random sample of the queries, never the head of the file
    sample = np.random.default_rng(11).choice(len(queries), 300, replace=False)
    hit = 0
    for s in range(0, len(sample), 64):
        part = sample[s:s + 64]
        resp = ix.stub.Search(batch_req(pb, "g", queries[part], 10), timeout=60)
        assert len(resp.answers) == len(part) and not resp.hits and not resp.signature
        sigs = {a.signature for a in resp.answers}
        assert len(sigs) == 1, "one signature for the call"
        for n, qi in enumerate(part):
            a = resp.answers[n]
            assert a.signer == ix.pubkey
            assert a.batch_size == len(part) and a.batch_index == n
            qd = query_digest(queries[qi], 10, None)
            assert verify(ix.pubkey, a.signature, signed_answer_message(qd, "g", 0, a))
            # another query's digest does not verify it (a root signed for another query)
            other = part[(n + 1) % len(part)]
            assert not verify(ix.pubkey, a.signature,
                              signed_answer_message(query_digest(queries[other], 10, None), "g", 0, a))
            # nor another answer's path, a forged path or another index
            b = resp.answers[(n + 1) % len(part)]
            forged = type(a)()
            forged.CopyFrom(a)
            forged.batch_path = b.batch_path
            m = signed_answer_message(qd, "g", 0, forged)
            assert m is None or not verify(ix.pubkey, a.signature, m)
            forged.CopyFrom(a)
            forged.batch_path = bytes([a.batch_path[0] ^ 1]) + a.batch_path[1:]
            assert not verify(ix.pubkey, a.signature, signed_answer_message(qd, "g", 0, forged))
            forged.CopyFrom(a)
            forged.batch_index = (n + 1) % len(part)
            m = signed_answer_message(qd, "g", 0, forged)
            assert m is None or not verify(ix.pubkey, a.signature, m)
            hit += len({pos[h.id] for h in a.hits} & set(truth[qi][:10].tolist()))
        # every answer holds the single-query call's hits, log size and root
        for n in (0, len(part) // 2, len(part) - 1):
            one = ix.stub.Search(single_req(pb, "g", queries[part[n]], 10), timeout=30)
            assert one.batch_size == 0
            assert verify(ix.pubkey, one.signature, signed_message(answer_digest(
                query_digest(queries[part[n]], 10, None), "g", 0, one), one))
            assert same_answer(one, resp.answers[n])
    rec = hit / (10 * len(sample))
    print(f"recall@10 through batched Search, 300 random queries: {rec:.4f}")
    assert rec >= 0.95
    # with a filter and without vectors, the same holds
    flt = make_filter(t, first={"in": ["a", "b", "c", "d", "e", "f", "g", "h"]})
    qs = queries[sample[:20]]
    resp = ix.stub.Search(batch_req(pb, "g", qs, 5, flt, include_vectors=False), timeout=60)
    assert len(resp.answers) == 20
    for n, q in enumerate(qs):
        a = resp.answers[n]
        assert len(a.hits) == 5 and all(not h.HasField("vector") for h in a.hits)
        assert all(h.metadata.fields["first"].string_value in "abcdefgh" for h in a.hits)
        assert same_answer(a, ix.stub.Search(single_req(pb, "g", q, 5, flt, include_vectors=False), timeout=30))


def test_bad_batches_name_the_field(start_indexer):
    ix = start_indexer("ix", "--max-search-batch", "4")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "b", 0, 1, [ix], ix)
    sch = schema(t, 3, t.L2, t.FLAT)
    from test_indexer import records, write
    rng = np.random.default_rng(3)
    write(ix, "b", 0, 1, records(pb, rng.standard_normal((10, 3)).astype(np.float32)), sch)
    qs = rng.standard_normal((5, 3)).astype(np.float32)

    def refused(req):
        with pytest.raises(grpc.RpcError) as e:
            ix.stub.Search(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        return e.value.details()

    assert len(ix.stub.Search(batch_req(pb, "b", qs[:4], 3), timeout=10).answers) == 4
    assert "queries: 5, expected 1..4" in refused(batch_req(pb, "b", qs, 3))
    # neither query nor queries: an empty batch
    assert refused(pb.LocalSearchRequest(magu="b", fragment=0, top_k=3)).startswith("query: required")
    both = batch_req(pb, "b", qs[:2], 3)
    both.query.values.extend(qs[2].tolist())
    assert refused(both).startswith("queries: 2 vectors and query set too")
    short = batch_req(pb, "b", qs[:3], 3)
    del short.queries[1].values[2]
    assert refused(short).startswith("queries[1].vector: 2 values, the dimension is 3")
    nan = batch_req(pb, "b", qs[:3], 3)
    nan.queries[2].values[0] = float("nan")
    assert refused(nan).startswith("queries[2].vector: value 0 is not finite")
    assert refused(batch_req(pb, "b", qs[:2], 0)).startswith("top_k: 0")


def test_concurrent_answers_signed_together(start_indexer):
    """Single-query answers ready at the same time share one signature over
    their Merkle root (ix_sign.h): from 8 threads at once every answer
    verifies against its own query only (through its path when grouped), and
    a lone sequential search is signed alone."""
    import threading
    base, queries, truth, words = dataset("glove-100-angular-10k")
    ix = start_indexer("ix", "--answer-group-wait-us", "2000")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "c", 0, 1, [ix], ix)
    sch = schema(t, 100, t.COSINE, t.HNSW, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64)
    load(ix, "c", 1, base[:2000], words[:2000], sch)
    assert wait_indexed(ix), "the index did not catch up"
    got, errors = [], []

    def worker(w):
        try:
            for i in range(w, 400, 8):
                got.append((i, ix.stub.Search(single_req(pb, "c", queries[i], 10), timeout=30)))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    assert not errors, errors[0]
    assert len(got) == 400
    grouped = 0
    for i, a in got:
        qd = query_digest(queries[i], 10, None)
        assert verify(ix.pubkey, a.signature, signed_answer_message(qd, "c", 0, a))
        m = signed_answer_message(query_digest(queries[(i + 1) % 400], 10, None), "c", 0, a)
        assert m is None or not verify(ix.pubkey, a.signature, m)
        grouped += a.batch_size > 1
    print(f"answers signed under a shared root: {grouped} of 400")
    one = ix.stub.Search(single_req(pb, "c", queries[5], 10), timeout=30)
    assert one.batch_size == 0
    assert verify(ix.pubkey, one.signature, answer_digest(query_digest(queries[5], 10, None), "c", 0, one))
