"""Filtered search through muri-indexer's Search RPC equals brute force over
the matching live records, with the in-memory postings (the default) and
with a filter_postings_max_mb cap too small for them (filters then read the
SQLite metadata tables; Status counts the fragment in filter_postings_off),
before and after updates and deletes change the metadata, and after a
restart rebuilds the postings."""
import numpy as np

from muri_util import cosine_distances, dataset
from test_indexer import (load, make_filter, records, schema, search, set_config, start_indexer,  # noqa: F401
                          wait_indexed, write)


def check_cases(ix, base, queries, ids, cases, label):
    for name, flt, mask in cases:
        matching = np.nonzero(mask)[0]
        for q in queries[:10]:
            got = search(ix, "pf", 0, q, 10, flt).hits
            assert len(got) == min(10, len(matching)), (label, name)
            if not len(matching):
                continue
            d = cosine_distances(base[matching], q)
            order = np.argsort(d, kind="stable")[:10]
            want_d = sorted(d[order].tolist())
            got_d = sorted(x.distance for x in got)
            assert np.allclose(got_d, want_d, atol=1e-4), (label, name)
            want = {ids[matching[j]] for j in order}
            assert len({x.id for x in got} & want) >= len(want) - 1, (label, name)


def test_filtered_search_with_postings_on_and_off(start_indexer):
    base, queries, _, words = dataset("glove-100-angular-10k")
    n = len(base)  # 10,000: the postings of 10k distinct words pass a 1 MiB cap
    words = words[:n]
    on = start_indexer("on")
    off = start_indexer("off", "--filter-postings-max-mb", "1")
    t = on.types
    sch = schema(t, 100, t.COSINE, t.HNSW, hnsw_m=16, hnsw_ef_construction=100, hnsw_ef_search=64)
    rng = np.random.default_rng(5)
    for ix in (on, off):
        set_config(ix, ix, "pf", 0, 1, [ix], ix)
    ids = load(on, "pf", 1, base, words, sch)
    # the same records (same ids) into the other indexer
    for start in range(0, n, 1000):
        metas = [{"word": words[i], "len": len(words[i]), "first": words[i][:1]} for i in range(start, start + 1000)]
        write(off, "pf", 0, 1, records(off.pb, base[start:start + 1000], metas, ids=ids[start:start + 1000]), sch)
    lens = np.array([len(w) for w in words])
    firsts = np.array([w[:1] for w in words])
    live = np.ones(n, bool)
    tagged = np.zeros(n, bool)

    def cases():
        return [
            ("len == 5", make_filter(t, len={"eq": 5}), live & (lens == 5)),
            ("first in a,b,c", make_filter(t, first={"in": ["a", "b", "c"]}), live & np.isin(firsts, ["a", "b", "c"])),
            ("4 < len <= 6", make_filter(t, len={"gt": 4, "lte": 6}), live & (lens > 4) & (lens <= 6)),
            ("len >= 12 and first == s", make_filter(t, len={"gte": 12}, first={"eq": "s"}),
             live & (lens >= 12) & (firsts == "s")),
            ("tagged", make_filter(t, len={"eq": 99}), live & tagged),
        ]

    for ix, label in ((on, "on"), (off, "off")):
        check_cases(ix, base, queries, ids, cases(), label)
    # updates move 300 records to len 99 (and new vectors); 200 others are deleted
    upd = rng.choice(n, 300, replace=False)
    rest = np.setdiff1d(np.arange(n), upd)
    dele = rng.choice(rest, 200, replace=False)
    base = base.copy()
    base[upd] = rng.normal(size=(300, 100)).astype(np.float32)
    lens = lens.copy()
    lens[upd] = 99
    tagged[upd] = True
    live[dele] = False
    for ix in (on, off):
        metas = [{"word": words[i], "len": 99, "first": firsts[i]} for i in upd]
        write(ix, "pf", 0, 1, records(ix.pb, base[upd], metas, ids=[ids[i] for i in upd], op=ix.pb.OP_UPDATE,
                                      version=2), sch)
        write(ix, "pf", 0, 1, records(ix.pb, [None] * 200, ids=[ids[i] for i in dele], op=ix.pb.OP_DELETE,
                                      version=3), sch)
    for ix, label in ((on, "on"), (off, "off")):
        check_cases(ix, base, queries, ids, cases(), label + " after updates")
        assert wait_indexed(ix)
        check_cases(ix, base, queries, ids, cases(), label + " indexed")
    st_on, st_off = on.status()[1], off.status()[1]
    assert st_on["filter_postings_off"] == "0" and int(st_on["filter_postings_bytes"]) > 0
    assert st_off["filter_postings_off"] == "1" and st_off["filter_postings_bytes"] == "0"
    assert "filter_postings_off" in off.server.read_log()  # the warning
    # a restart rebuilds the postings from the stored metadata
    for ix in (on, off):
        ix.server.stop()
        ix.restart()
    for ix, label in ((on, "on"), (off, "off")):
        check_cases(ix, base, queries, ids, cases(), label + " after a restart")
    assert int(on.status()[1]["filter_postings_bytes"]) > 0
