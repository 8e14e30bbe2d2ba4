"""muri-indexer as a user of its RPCs sees it, with real processes on
loopback: recall through Search on real embeddings, filtered search against
brute force, updates and deletes, a kill -9 crash loop, three replicas of
one fragment (catch-up, stale epochs, failover, an old primary without a
lease acknowledging nothing, truncation of its unacknowledged suffix), and
proof-of-replication challenges."""
import os
import random
import signal
import sqlite3
import threading
import time
import uuid

import grpc
import numpy as np
import pytest

from answer_digest import answer_digest, query_digest
from conftest import CHANNEL_OPTIONS
from muri_util import (DOM_CHALLENGE, DOM_ROOT, Indexer, cosine_distances, dataset, h,
                       leaf_hash, verify_inclusion, wait_until)
from read_auth import keys_of, signed as signed_read
from sodium_keys import key_file_public, verify

EXE = "services/indexer/muri-indexer"


@pytest.fixture
def start_indexer(servers, stubs, tmp_path):
    made = []

    def start(name, *extra):
        key = tmp_path / f"{name}.key"
        s = servers(name, EXE, "--key-file", str(key), "--data-dir", str(tmp_path / f"{name}-data"),
                    "--grace-ms", "2000", *extra)
        ix = Indexer(s, stubs, str(key), CHANNEL_OPTIONS)
        ix.pubkey = key_file_public(key)
        made.append(ix)
        return ix

    yield start
    for ix in made:
        ix.close()


def set_config(pb, ix, magu, fragment, epoch, replicas, primary):
    cfg = pb.types.FragmentConfig(magu=magu, fragment=fragment, epoch=epoch, primary=primary.pubkey,
                                  replicas=[r.replica() for r in replicas])
    return ix.stub.SetConfig(cfg, timeout=10)


def schema(types, dim, metric, kind, **params):
    return pb_schema(types, dim, metric, types.IndexSpec(kind=kind, **params))


def pb_schema(types, dim, metric, spec):
    from indexer_pb2 import FragmentSchema
    return FragmentSchema(dimension=dim, metric=metric, index=spec)


def records(pb, vectors, metas=None, ids=None, op=None, version=1):
    out = []
    for i, v in enumerate(vectors):
        r = pb.LogRecord(op=op if op is not None else pb.OP_INSERT,
                         id=ids[i] if ids else str(uuid.uuid4()), version=version)
        if v is not None:
            r.vector.values.extend(v.tolist() if hasattr(v, "tolist") else v)
        if metas:
            for k, val in metas[i].items():
                if isinstance(val, str):
                    r.metadata.fields[k].string_value = val
                elif isinstance(val, bool):
                    r.metadata.fields[k].bool_value = val
                elif isinstance(val, int):
                    r.metadata.fields[k].int_value = val
                else:
                    r.metadata.fields[k].number_value = val
        out.append(r)
    return out


def write(ix, magu, fragment, epoch, recs, sch, level=None, timeout_ms=5000):
    pb = ix.pb
    return ix.stub.Write(pb.FragmentWriteRequest(magu=magu, fragment=fragment, epoch=epoch, records=recs,
                                                 schema=sch, consistency_level=level or ix.types.ONE,
                                                 timeout_ms=timeout_ms), timeout=60)


def search(ix, magu, fragment, q, k=10, flt=None, include_vectors=False):
    pb = ix.pb
    req = pb.LocalSearchRequest(magu=magu, fragment=fragment, top_k=k, include_vectors=include_vectors)
    req.query.values.extend(q.tolist())
    if flt is not None:
        req.filter.CopyFrom(flt)
    return ix.stub.Search(req, timeout=30, wait_for_ready=True)


def load(ix, magu, epoch, base, words, sch, batch=1000):
    ids = []
    for start in range(0, len(base), batch):
        chunk = base[start:start + batch]
        metas = [{"word": words[start + i], "len": len(words[start + i]), "first": words[start + i][:1]}
                 for i in range(len(chunk))] if words else None
        recs = records(ix.pb, chunk, metas)
        ids += [r.id for r in recs]
        resp = write(ix, magu, 0, epoch, recs, sch)
        assert resp.log_size == start + len(chunk)
    return ids


def recall_at_10(ix, magu, queries, truth, ids):
    pos = {i: n for n, i in enumerate(ids)}
    hit = 0
    for q, t in zip(queries, truth):
        got = [pos[x.id] for x in search(ix, magu, 0, q, 10).hits]
        hit += len(set(got) & set(t[:10].tolist()))
    return hit / (10 * len(queries))


def wait_indexed(ix, timeout=300):
    return wait_until(lambda: ix.status()[1].get("index_backlog") == "0", timeout=timeout, interval=0.2)


@pytest.mark.parametrize("kind,params,label", [
    ("HNSW", dict(hnsw_m=32, hnsw_ef_construction=200, hnsw_ef_search=128), "hnsw"),
    ("IVF", dict(ivf_nlist=100, ivf_nprobe=20), "ivf"),
])
def test_recall_through_search_rpc(start_indexer, kind, params, label):
    base, queries, truth, words = dataset("glove-100-angular-10k")
    ix = start_indexer("ix")
    t = ix.types
    set_config(ix, ix, "glove", 0, 1, [ix], ix)
    sch = schema(t, 100, t.COSINE, getattr(t, kind), **params)
    ids = load(ix, "glove", 1, base, words, sch)
    # every acknowledged write is searchable at once (the tail is searched exactly)
    r0 = recall_at_10(ix, "glove", queries[:200], truth[:200], ids)
    assert wait_indexed(ix), "the index did not catch up"
    r = recall_at_10(ix, "glove", queries, truth, ids)
    print(f"{label}: recall@10 right after ingest (200 queries) {r0:.4f}, after indexing {r:.4f} ({params})")
    assert r >= 0.95
    assert r0 >= 0.95


def make_filter(t, **conds):
    f = t.Filter()
    for key, c in conds.items():
        cond = f.conditions[key]
        for op, val in c.items():
            if op == "eq":
                if isinstance(val, str):
                    cond.eq.string_value = val
                else:
                    cond.eq.int_value = val
            elif op == "in":
                for v in val:
                    cond.__getattribute__("in").values.add(string_value=v)
            else:
                setattr(cond, op, val)
    return f


def test_filtered_search_equals_brute_force(start_indexer):
    base, queries, _, words = dataset("glove-100-angular-10k")
    ix = start_indexer("ix")
    t = ix.types
    set_config(ix, ix, "words", 0, 1, [ix], ix)
    sch = schema(t, 100, t.COSINE, t.HNSW, hnsw_m=16, hnsw_ef_construction=100, hnsw_ef_search=64)
    ids = load(ix, "words", 1, base, words, sch)
    assert wait_indexed(ix)
    lens = np.array([len(w) for w in words[:len(base)]])
    firsts = np.array([w[:1] for w in words[:len(base)]])
    unique_word = words[1234]
    cases = [
        ("len == 5", make_filter(t, len={"eq": 5}), lens == 5),
        ("first in a,b,c", make_filter(t, first={"in": ["a", "b", "c"]}), np.isin(firsts, ["a", "b", "c"])),
        ("4 < len <= 6", make_filter(t, len={"gt": 4, "lte": 6}), (lens > 4) & (lens <= 6)),
        ("len >= 14 and first == s", make_filter(t, len={"gte": 14}, first={"eq": "s"}),
         (lens >= 14) & (firsts == "s")),
        ("one word in 10k", make_filter(t, word={"eq": unique_word}), np.array(words[:len(base)]) == unique_word),
    ]
    for label, flt, mask in cases:
        matching = np.nonzero(mask)[0]
        for q in queries[:20]:
            d = cosine_distances(base[matching], q)
            want = [ids[matching[j]] for j in np.argsort(d, kind="stable")[:10]]
            got = search(ix, "words", 0, q, 10, flt).hits
            assert len(got) == min(10, len(matching)), label
            # ties aside, the same set; compare distances to be tie-proof
            got_d = sorted(x.distance for x in got)
            want_d = sorted(d[np.argsort(d, kind="stable")[:10]].tolist())
            assert np.allclose(got_d, want_d, atol=1e-4), label
            assert len(set(x.id for x in got) & set(want)) >= len(want) - 1, label
        print(f"{label}: {len(matching)} matching, exact top-10 for 20 queries")


def test_updates_and_deletes_visible_at_once(start_indexer):
    ix = start_indexer("ix")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "m", 0, 1, [ix], ix)
    sch = schema(t, 4, t.L2, t.FLAT)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    write(ix, "m", 0, 1, records(pb, [np.array([0, 0, 0, 0], np.float32), np.array([5, 5, 5, 5], np.float32)],
                                 ids=[a, b]), sch)
    q = np.array([0, 0, 0, 0.1], np.float32)
    assert [x.id for x in search(ix, "m", 0, q, 2).hits] == [a, b]
    # update moves a far away: b is nearest now
    write(ix, "m", 0, 1, records(pb, [np.array([9, 9, 9, 9], np.float32)], ids=[a], op=pb.OP_UPDATE, version=2), sch)
    assert [x.id for x in search(ix, "m", 0, q, 2).hits] == [b, a]
    # an older version loses to the newer one
    write(ix, "m", 0, 1, records(pb, [np.array([0, 0, 0, 0], np.float32)], ids=[a], op=pb.OP_UPDATE, version=1), sch)
    assert [x.id for x in search(ix, "m", 0, q, 2).hits] == [b, a]
    # delete b: it never comes back, not even after many more writes are indexed
    write(ix, "m", 0, 1, records(pb, [None], ids=[b], op=pb.OP_DELETE, version=5), sch)
    assert [x.id for x in search(ix, "m", 0, q, 10).hits] == [a]
    more = [np.random.default_rng(i).normal(size=4).astype(np.float32) + 20 for i in range(600)]
    write(ix, "m", 0, 1, records(pb, more), sch)
    assert wait_indexed(ix)
    hits = search(ix, "m", 0, q, 1000).hits
    assert b not in [x.id for x in hits] and len(hits) == 601
    got = ix.stub.Get(pb.LocalGetRequest(magu="m", fragment=0, ids=[a, b], include_vectors=True), timeout=10)
    assert [x.id for x in got.hits] == [a] and list(got.hits[0].vector.values) == [9, 9, 9, 9]
    assert got.hits[0].version == 2


def test_bad_requests_name_the_field(start_indexer):
    ix = start_indexer("ix")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "m", 0, 1, [ix], ix)
    sch = schema(t, 4, t.L2, t.FLAT)
    with pytest.raises(grpc.RpcError) as e:
        write(ix, "m", 0, 1, records(pb, [np.array([1, 2, 3], np.float32)]), sch)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "records[0]" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        write(ix, "m", 0, 1, records(pb, [np.array([1, 2, 3, 4], np.float32)], ids=["not-a-uuid"]), sch)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "id" in e.value.details()
    write(ix, "m", 0, 1, records(pb, [np.array([1, 2, 3, 4], np.float32)]), sch)
    with pytest.raises(grpc.RpcError) as e:
        search(ix, "m", 0, np.zeros(4, np.float32) + 1, k=0)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "top_k" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        search(ix, "m", 0, np.zeros(5, np.float32))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        search(ix, "nope", 0, np.zeros(4, np.float32))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        write(ix, "m", 0, 2, records(pb, [np.array([1, 2, 3, 4], np.float32)]), sch)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "epoch" in e.value.details()


def test_kill9_loses_no_acknowledged_write(start_indexer):
    ix = start_indexer("ix")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "crash", 0, 1, [ix], ix)
    sch = schema(t, 16, t.L2, t.HNSW, hnsw_m=16, hnsw_ef_construction=64, hnsw_ef_search=64)
    rng = np.random.default_rng(7)
    acked = {}      # id -> vector
    roots = {}      # size -> root
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    for round_ in range(4):
        stop = threading.Event()
        errors = []

        def writer():
            while not stop.is_set():
                vecs = rng.normal(size=(50, 16)).astype(np.float32)
                recs = records(pb, vecs)
                try:
                    r = write(ix, "crash", 0, 1, recs, sch)
                except grpc.RpcError as e:
                    errors.append(e.code())
                    return
                for rec, v in zip(recs, vecs):
                    acked[rec.id] = v
                roots[r.log_size] = r.root

        th = threading.Thread(target=writer)
        th.start()
        time.sleep(random.Random(round_).uniform(0.3, 1.2))
        ix.server.kill9()
        stop.set()
        th.join()
        ix.restart()
        # every acknowledged write is there, and every acknowledged root holds
        ids = list(acked)
        for i in range(0, len(ids), 1000):
            got = ix.stub.Get(pb.LocalGetRequest(magu="crash", fragment=0, ids=ids[i:i + 1000],
                                                 include_vectors=True), timeout=30, wait_for_ready=True)
            assert len(got.hits) == len(ids[i:i + 1000])
            for hit in got.hits:
                assert np.array_equal(np.array(hit.vector.values, np.float32), acked[hit.id])
        for size, root in roots.items():
            assert ix.stub.GetRoot(pb.RootRequest(magu="crash", fragment=0, size=size), timeout=10,
                                   wait_for_ready=True).root == root
        # the same log prefix gives the same index, so once both have caught
        # up, the same queries give the same answers
        assert wait_indexed(ix)
        before = [[x.id for x in search(ix, "crash", 0, q, 10).hits] for q in queries]
        ix.server.kill9()
        ix.restart()
        assert wait_indexed(ix)
        after = [[x.id for x in search(ix, "crash", 0, q, 10).hits] for q in queries]
        assert before == after
    print(f"{len(acked)} acknowledged records survived 4 kill -9s; {len(roots)} roots unchanged")


def root_of(ix, magu, size=0):
    return ix.stub.GetRoot(ix.pb.RootRequest(magu=magu, fragment=0, size=size), timeout=10, wait_for_ready=True)


def test_three_replicas(start_indexer):
    a, b, c = start_indexer("a"), start_indexer("b"), start_indexer("c")
    t, pb = a.types, a.pb
    group = [a, b, c]
    for ix in group:
        set_config(ix, ix, "r", 0, 1, group, a)
    sch = schema(t, 8, t.L2, t.FLAT)
    rng = np.random.default_rng(3)
    vec = lambda n: rng.normal(size=(n, 8)).astype(np.float32)
    r = write(a, "r", 0, 1, records(pb, vec(100)), sch, t.ALL)
    assert r.level_achieved == t.ALL and len(r.acked_by) == 3
    # a killed backup: QUORUM still acknowledges, and the backup catches up after restart
    c.server.kill9()
    r = write(a, "r", 0, 1, records(pb, vec(100)), sch, t.QUORUM)
    assert r.level_achieved == t.QUORUM and r.log_size == 200
    r = write(a, "r", 0, 1, records(pb, vec(50)), sch, t.ALL, timeout_ms=300)
    assert r.level_achieved == t.QUORUM  # ALL cannot be met with c down
    c.restart()
    assert wait_until(lambda: root_of(c, "r").size == 250, timeout=30)
    assert root_of(c, "r").root == root_of(a, "r").root
    # a stale epoch is refused by the primary and by backups
    with pytest.raises(grpc.RpcError) as e:
        write(a, "r", 0, 0 + 2, records(pb, vec(1)), sch)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    rep = pb.ReplicateRequest(magu="r", fragment=0, epoch=0, schema=sch, primary_size=1)
    with pytest.raises(grpc.RpcError) as e:
        b.stub.Replicate(rep, timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "epoch" in e.value.details()

    # a QUORUM write survives the primary's death: b takes over in epoch 2
    r = write(a, "r", 0, 1, records(pb, vec(30)), sch, t.QUORUM)
    quorum_size, quorum_root = r.log_size, r.root
    a.server.kill9()
    for ix in (b, c):
        set_config(ix, ix, "r", 0, 2, group, b)
    got = root_of(b, "r", quorum_size)
    assert got.root == quorum_root
    r = write(b, "r", 0, 2, records(pb, vec(10)), sch, t.QUORUM)
    assert r.level_achieved >= t.QUORUM

    # the old primary, cut off from the new epoch, takes writes but holds no
    # lease (b and c refuse its shipments), so it acknowledges none of them,
    # not even at ONE; that suffix disappears when it rejoins as a backup
    a.restart()  # still in epoch 1 as primary
    with pytest.raises(grpc.RpcError) as e:
        write(a, "r", 0, 1, records(pb, vec(7)), sch, t.ONE, timeout_ms=200)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE and "no lease" in e.value.details()
    assert root_of(a, "r").size == quorum_size + 7
    for ix in (a, b, c):
        set_config(ix, ix, "r", 0, 3, group, b)
    assert wait_until(lambda: root_of(a, "r").size == root_of(b, "r").size and
                      root_of(a, "r").root == root_of(b, "r").root, timeout=30)
    assert root_of(a, "r").size == quorum_size + 10
    assert "log_truncated" in a.server.read_log()
    # older epochs are refused by SetConfig too
    with pytest.raises(grpc.RpcError) as e:
        set_config(a, a, "r", 0, 2, group, b)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_challenges_verify_and_detect_a_lost_record(start_indexer, tmp_path):
    ix = start_indexer("ix")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "ch", 0, 1, [ix], ix)
    sch = schema(t, 8, t.L2, t.FLAT)
    rng = np.random.default_rng(5)
    write(ix, "ch", 0, 1, records(pb, rng.normal(size=(300, 8)).astype(np.float32)), sch)
    signed = root_of(ix, "ch")
    assert signed.size == 300
    # the root is signed by the indexer
    msg = t.SignedRoot()
    msg.CopyFrom(signed)
    msg.signature = b""
    assert verify(ix.pubkey, signed.signature, h(DOM_ROOT, msg.SerializeToString()))
    beacon = os.urandom(32)
    leaves = [0, 17, 150, 299]
    # a challenge is read by a replica of the fragment (here its only one) with a signed request
    me = keys_of(ix.key_path)
    resp = ix.stub.Challenge(signed_read(pb.ChallengeRequest(magu="ch", fragment=0, beacon=beacon, size=300,
                                                        leaf_indices=leaves), "Challenge", "", me), timeout=10)
    assert resp.root == signed.root
    for ans, idx in zip(resp.answers, leaves):
        assert ans.index == idx
        assert verify_inclusion(leaf_hash(ans.leaf), idx, 300, list(ans.path), signed.root)
        assert ans.tag == h(DOM_CHALLENGE, beacon, ix.pubkey, ans.leaf)
    # an answer for another indexer's key or another beacon does not pass
    assert resp.answers[0].tag != h(DOM_CHALLENGE, os.urandom(32), ix.pubkey, resp.answers[0].leaf)
    # the indexer loses record 150 from its log file: it cannot answer for it
    ix.server.stop()
    db = [os.path.join(dp, f) for dp, _, fs in os.walk(tmp_path / "ix-data") for f in fs if f.endswith(".db")]
    assert db, "no fragment database found"
    con = sqlite3.connect(db[0])
    con.execute("DELETE FROM log WHERE seq = 150")
    con.commit()
    con.close()
    ix.restart()
    try:
        resp = ix.stub.Challenge(signed_read(pb.ChallengeRequest(magu="ch", fragment=0, beacon=beacon, size=300,
                                                            leaf_indices=[150]), "Challenge", "", me), timeout=10)
        ok = all(verify_inclusion(leaf_hash(a.leaf), a.index, 300, list(a.path), signed.root) and
                 a.tag == h(DOM_CHALLENGE, beacon, ix.pubkey, a.leaf) for a in resp.answers)
    except grpc.RpcError as e:
        print(f"challenge after losing a record: {e.code()} {e.details()}")
        ok = False
    assert not ok


def test_search_answers_are_signed(start_indexer):
    ix = start_indexer("ix")
    t, pb = ix.types, ix.pb
    set_config(ix, ix, "s", 0, 1, [ix], ix)
    sch = schema(t, 4, t.DOT_PRODUCT, t.FLAT)
    write(ix, "s", 0, 1, records(pb, [np.array([1, 0, 0, 0], np.float32), np.array([0, 2, 0, 0], np.float32)]), sch)
    resp = search(ix, "s", 0, np.array([0, 1, 0, 0], np.float32), 2, include_vectors=True)
    assert [round(x.distance, 5) for x in resp.hits] == [-2.0, 0.0]
    assert resp.log_size == 2 and resp.signer == ix.pubkey
    # over the canonical answer digest (common/cm_answer.h), bound to this query
    qd = query_digest(np.array([0, 1, 0, 0], np.float32), 2)
    assert verify(ix.pubkey, resp.signature, answer_digest(qd, "s", 0, resp))
    assert not verify(ix.pubkey, resp.signature, answer_digest(query_digest(np.array([0, 1, 0, 0], np.float32), 3),
                                                               "s", 0, resp))
