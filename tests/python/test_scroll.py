"""Scroll through the gateway (python grpcio) over a ChainNet (4 ledger
replicas, 3 indexers) and a collection of 3 fragments: paging with a small
page size returns every live record exactly once, in ascending id order,
with its current metadata (and vectors when asked), after updates and
deletes; a filter returns exactly the matching records; pages still
complete with an indexer killed; bad page sizes, cursors, filters and names
are INVALID_ARGUMENT naming the field, a missing collection NOT_FOUND; an
indexer's own Scroll page is signed by it and refuses a bad limit; `muri
scroll` prints a page and its cursor, or every page with --all."""
import json
import os
import subprocess
import uuid

import grpc
import numpy as np
import pytest

from conftest import BUILD
from gateway_util import gateway_net

MURI = os.path.join(BUILD, "tools", "muri")

COLL = "rows"
D = 8
ROWS = 400
PAGE_MAX = 50


@pytest.fixture
def net(servers, stubs, tmp_path):
    yield from gateway_net(servers, stubs, tmp_path, "--default-timeout-ms", "20000", "--max-scroll-page", str(PAGE_MAX))


def scroll_all(stub, vpb, page_size, **kw):
    """Every page until next_cursor is empty: the records and the page count."""
    out, cursor, pages = [], "", 0
    while True:
        r = stub.Scroll(vpb.ScrollRequest(collection=COLL, page_size=page_size, cursor=cursor, **kw), timeout=60)
        assert len(r.records) <= page_size
        out.extend(r.records)
        pages += 1
        if not r.next_cursor:
            return out, pages
        assert r.next_cursor != cursor
        cursor = r.next_cursor
        assert pages < 1000


def meta(rec):
    return {k: (v.string_value if v.HasField("string_value") else v.int_value) for k, v in rec.metadata.fields.items()}


def test_scroll(net, stubs):
    vpb, tpb, ipb = stubs.vectorstore_pb2, stubs.types_pb2, stubs.indexer_pb2
    stub = net.gw.stub
    stub.CreateCollection(vpb.CreateCollectionRequest(
        name=COLL, dimension=D, metric=tpb.L2, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=3, replication=3),
        timeout=90)
    base = np.random.default_rng(11).normal(size=(ROWS, D)).astype(np.float32)

    def md(i, tag):
        return tpb.Metadata(fields={"n": tpb.Value(int_value=i), "parity": tpb.Value(string_value=tag)})
    r = stub.Insert(vpb.InsertRequest(
        collection=COLL, consistency_level=tpb.QUORUM, vectors=[tpb.Vector(values=list(map(float, v))) for v in base],
        metadata=[md(i, "even" if i % 2 == 0 else "odd") for i in range(ROWS)]), timeout=60)
    assert r.status == vpb.SUCCESS, r.message
    ids = list(r.vector_ids)
    expect = {ids[i]: {"n": i, "parity": "even" if i % 2 == 0 else "odd"} for i in range(ROWS)}
    vectors = {ids[i]: [float(x) for x in base[i]] for i in range(ROWS)}
    # 30 deleted, 20 updated (their parity flips)
    d = stub.Delete(vpb.DeleteRequest(collection=COLL, ids=ids[:30], consistency_level=tpb.QUORUM), timeout=60)
    assert d.deleted == 30
    for i in range(30):
        del expect[ids[i]]
    upd = list(range(30, 50))
    u = stub.Upsert(vpb.UpsertRequest(collection=COLL, ids=[ids[i] for i in upd], consistency_level=tpb.QUORUM,
                                      vectors=[tpb.Vector(values=list(map(float, base[i]))) for i in upd],
                                      metadata=[md(i, "odd" if i % 2 == 0 else "even") for i in upd]), timeout=60)
    assert u.status == vpb.SUCCESS, u.message
    for i in upd:
        expect[ids[i]]["parity"] = "odd" if i % 2 == 0 else "even"

    # every live record exactly once, ascending by the UUID's bytes, current metadata
    recs, pages = scroll_all(stub, vpb, 37)
    got = [x.id for x in recs]
    assert len(got) == len(set(got)) == len(expect)
    assert set(got) == set(expect)
    assert [uuid.UUID(x).bytes for x in got] == sorted(uuid.UUID(x).bytes for x in got)
    assert all(meta(x) == expect[x.id] for x in recs)
    assert all(not x.HasField("vector") for x in recs)
    assert pages == (len(expect) + 36) // 37, pages
    # with vectors, at the largest page size
    recs, _ = scroll_all(stub, vpb, PAGE_MAX, include_vectors=True)
    assert [x.id for x in recs] == got
    assert all(np.allclose(list(x.vector.values), vectors[x.id]) for x in recs)

    # a filter: exactly the matching live records
    flt = tpb.Filter(conditions={"parity": tpb.Condition(eq=tpb.Value(string_value="even"))})
    recs, _ = scroll_all(stub, vpb, 20, filter=flt)
    assert [x.id for x in recs] == [x for x in got if expect[x]["parity"] == "even"]
    flt = tpb.Filter(conditions={"n": tpb.Condition(gte=100, lt=110)})
    recs, _ = scroll_all(stub, vpb, 3, filter=flt)
    assert sorted(meta(x)["n"] for x in recs) == list(range(100, 110))

    # input errors name the field
    def refused(code, part, **kw):
        with pytest.raises(grpc.RpcError) as e:
            stub.Scroll(vpb.ScrollRequest(**kw), timeout=20)
        assert e.value.code() == code, e.value.details()
        assert part in e.value.details(), e.value.details()
    refused(grpc.StatusCode.INVALID_ARGUMENT, f"page_size: {PAGE_MAX + 1}, expected 1..{PAGE_MAX}",
            collection=COLL, page_size=PAGE_MAX + 1)
    refused(grpc.StatusCode.INVALID_ARGUMENT, "cursor:", collection=COLL, cursor="not-a-cursor")
    refused(grpc.StatusCode.INVALID_ARGUMENT, "cursor:", collection=COLL, cursor="c1" + "00" * 16)
    refused(grpc.StatusCode.INVALID_ARGUMENT, 'filter.conditions["x"]', collection=COLL,
            filter=tpb.Filter(conditions={"x": tpb.Condition()}))
    refused(grpc.StatusCode.INVALID_ARGUMENT, "collection", collection="bad name!")
    refused(grpc.StatusCode.NOT_FOUND, "collection", collection="nope")

    # an indexer's own page: signed by it, a bad limit refused
    ix = net.indexers[0]
    page = ix.stub.Scroll(ipb.LocalScrollRequest(magu=COLL, fragment=0, limit=5), timeout=20)
    assert page.signer == ix.pubkey and len(page.signature) == 64 and len(page.root) == 32
    assert len(page.hits) == 5 and not page.done and page.last_id == page.hits[-1].id
    with pytest.raises(grpc.RpcError) as e:
        ix.stub.Scroll(ipb.LocalScrollRequest(magu=COLL, fragment=0, limit=0), timeout=20)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "limit: 0" in e.value.details()

    # muri scroll: one page and its cursor, then the rest with --all, as JSON
    def muri(*args):
        p = subprocess.run([MURI, "scroll", COLL, "--gateway", net.gw.server.target, *args], capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr
    rc, out, _ = muri("--page-size", "30")
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 31 and lines[-1].startswith("next: c1")
    assert [ln.split()[0] for ln in lines[:30]] == got[:30]
    rc, out, _ = muri("--page-size", "50", "--cursor", lines[-1].split()[1], "--all", "--json")
    page = json.loads(out)
    assert rc == 0 and [x["id"] for x in page["records"]] == got[30:] and page["next_cursor"] == ""
    assert all(x["metadata"] == expect[x["id"]] for x in page["records"])
    rc, out, err = muri("--cursor", "nope")
    assert rc == 1 and "cursor:" in err and out == ""
    rc, _, err = muri("--filter", "{")
    assert rc == 2 and "--filter" in err

    # one indexer down: every fragment still has replicas to read a page from
    net.indexers[0].server.kill9()
    recs, _ = scroll_all(stub, vpb, PAGE_MAX)
    assert [x.id for x in recs] == got
