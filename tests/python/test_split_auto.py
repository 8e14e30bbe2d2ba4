"""The automatic split through the gateway (README, Fragments that split): a
genesis whose param.split_size is small, 4 ledger replicas, 3 indexers and a
gateway. A collection of one fragment created through the gateway takes
QUORUM upserts (a batch retried with the same ids until acknowledged) while
another client searches and gets. When a committed root of the fragment
reaches split_size the ledger seals it and splits it; the halves derive
their records and go live. The writer then writes only ids of one half's
cell, so that half passes split_size and splits again (depth 2) while its
sibling, under split_size, never splits. Afterwards every acknowledged id
is found exactly once by Get, by Scroll and by an exhaustive search, no
search returned an id twice, Describe's states and counts match the
ledger's tree, and each leaf's replicas hold exactly the acknowledged ids
of its cell."""
import threading
import time
import uuid

import pytest

from muri_util import wait_until
from split_gw_util import (DIM, check_found_once, close_split_net, describe_once, ids_in_cell, in_cell, read_once,
                           split_net, upsert_until_acked, vecs)

COLL = "auto"
SPLIT_SIZE = 48


@pytest.fixture
def net(servers, stubs, tmp_path):
    # --root-ms: a log's tail past the last multiple of 4 is rooted too, so
    # that every leaf's committed size reaches its log size once writes stop
    n = split_net(servers, stubs, tmp_path, params={"split_size": SPLIT_SIZE}, ix_args=("--root-ms", "1000"))
    yield n
    close_split_net(n)


def configs(net):
    m = net.lstubs[0].GetMagu(net.pb.MaguRequest(name=COLL), timeout=10)
    return {c.fragment: c for c in m.configs}


def tree(net):
    """The ledger's fragments, one line each, for a failure's message."""
    return "; ".join(f"{f}: phase {c.phase} children {list(c.children)} cell ({c.cell_depth}, {c.cell_path}) "
                     f"source {c.source.fragment if c.HasField('source') else '-'}@{c.source.size} live {c.live}"
                     for f, c in sorted(configs(net).items()))


def settled(net):
    """The ledger's tree once no split is under way: every fragment retired
    or live and serving; None otherwise."""
    tpb = net.stubs.types_pb2
    cf = configs(net)
    for c in cf.values():
        if c.phase == tpb.FRAGMENT_PHASE_RETIRED:
            continue
        if c.phase != tpb.FRAGMENT_PHASE_SERVING or (c.HasField("source") and not c.live):
            return None
    return cf


def test_automatic_split_through_the_gateway(net):
    vpb, tpb, ipb = net.stubs.vectorstore_pb2, net.stubs.types_pb2, net.stubs.indexer_pb2
    stub = net.gw.stub
    stub.CreateCollection(vpb.CreateCollectionRequest(
        name=COLL, dimension=DIM, metric=tpb.L2, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=1,
        replication=3), timeout=90)

    acked, seed = [], [0]
    stop, stop_writes, errors = threading.Event(), threading.Event(), []
    stats = {"searches": 0, "search_failed": 0, "gets": 0, "write_retries": 0, "dups": []}
    seen_states = set()  # (fragment, state, searched) as Describe showed them during the load
    # what the writer writes: ids of any cell (None) or of one cell (depth,
    # path), and how many more; the test sets the next step once the ledger
    # took the previous one (a budget keeps the tree as small as planned:
    # a log far past split_size splits down to leaves under it)
    plan = {"cell": None, "budget": 64}

    def writer():
        while not stop_writes.is_set():
            if plan["budget"] <= 0:
                time.sleep(0.05)
                continue
            cell = plan["cell"]
            ids = ids_in_cell(5, *cell) if cell else [str(uuid.uuid4()) for _ in range(5)]
            seed[0] += 1
            try:
                stats["write_retries"] += upsert_until_acked(stub, vpb, tpb, COLL, ids, seed[0],
                                                             time.time() + 120)
            except AssertionError as e:
                errors.append(str(e))
                return
            acked.extend(ids)
            plan["budget"] -= len(ids)
            time.sleep(0.05)

    def reader():
        q = vecs(tpb, 1, 999)[0]
        while not stop.is_set():
            read_once(stub, vpb, tpb, COLL, q, list(acked[::3]), stats, errors)
            time.sleep(0.05)

    def describer():
        while not stop.is_set():
            describe_once(stub, vpb, COLL, seen_states)
            time.sleep(0.05)

    threads = [threading.Thread(target=t) for t in (writer, reader, describer)]
    for th in threads:
        th.start()
    try:
        # the first split: fragment 0's committed root reaches split_size
        def halves_live():
            cf = configs(net)
            return cf if 1 in cf and 2 in cf and cf[1].live and cf[2].live else None
        cf = wait_until(halves_live, timeout=180)
        assert cf and not errors, (errors[:3], "fragment 0 never split by itself", tree(net))
        assert list(cf[0].children) == [1, 2]
        assert cf[0].phase in (tpb.FRAGMENT_PHASE_SPLIT, tpb.FRAGMENT_PHASE_RETIRED)
        assert cf[1].source.size >= SPLIT_SIZE, "split before its committed root reached split_size"
        assert (cf[1].cell_depth, cf[1].cell_path) == (1, 0) and (cf[2].cell_depth, cf[2].cell_path) == (1, 1)
        n_first = len(acked)
        # now only ids of fragment 1's cell: it passes split_size, 2 does not
        plan["cell"], plan["budget"] = (1, 0), 40

        def quarters_live():
            cf = configs(net)
            return cf if 3 in cf and 4 in cf and cf[3].live and cf[4].live else None
        cf = wait_until(quarters_live, timeout=180)
        assert cf and not errors, (errors[:3], "fragment 1 never split by itself", tree(net))
        assert list(cf[1].children) == [3, 4]
        assert cf[3].source.fragment == 1 and cf[3].source.size >= SPLIT_SIZE
        assert (cf[3].cell_depth, cf[3].cell_path) == (2, 0) and (cf[4].cell_depth, cf[4].cell_path) == (2, 2)
        # a few writes into the quarters, then the load stops
        n_live = len(acked)
        plan["budget"] = 10
        assert wait_until(lambda: len(acked) >= n_live + 10 or errors, timeout=60), "no writes after depth 2"
        stop_writes.set()
        threads[0].join()

        # the readers go on until every root is committed and no split is under way
        def quiet():
            cf = settled(net)
            if not cf:
                return None
            d = stub.DescribeCollection(vpb.DescribeCollectionRequest(name=COLL), timeout=20)
            asked = [s for s in d.fragment_states if s.searched]
            return (cf, d) if all(s.committed_size == s.log_size for s in asked) and settled(net) else None
        got = wait_until(quiet, timeout=120, interval=0.5)
        if not got:
            d = stub.DescribeCollection(vpb.DescribeCollectionRequest(name=COLL), timeout=20)
            assert got, ("the splits never settled", tree(net),
                         [(x.fragment, x.state, x.searched, x.committed_size, x.log_size, x.vector_count, x.epoch)
                          for x in d.fragment_states])
        cf, d = got
    finally:
        stop_writes.set()
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors[:5]
    assert not stats["dups"], f"a search returned an id twice: {stats['dups'][0]}"
    assert stats["searches"] > 0 and stats["gets"] > 0, stats
    assert len(acked) == len(set(acked))

    # the ledger's tree: 0 and 1 split and retired; 2 never split (under
    # split_size); every leaf serving under split_size; every split parent
    # frozen at or past it
    tpb_retired, tpb_serving = tpb.FRAGMENT_PHASE_RETIRED, tpb.FRAGMENT_PHASE_SERVING
    assert cf[0].phase == tpb_retired and cf[1].phase == tpb_retired
    assert cf[2].phase == tpb_serving and not cf[2].children
    leaves = {f: c for f, c in cf.items() if c.phase == tpb_serving}
    for f, c in cf.items():
        if c.phase == tpb_retired:
            assert len(c.children) == 2 and cf[c.children[0]].source.size >= SPLIT_SIZE, f
    states = {s.fragment: s for s in d.fragment_states}
    assert sorted(states) == sorted(cf)
    for f, c in leaves.items():
        assert states[f].committed_size < SPLIT_SIZE, (f, states[f].committed_size)
    assert max(c.cell_depth for c in leaves.values()) >= 2

    # Describe: retired parents not asked, the leaves serving and asked,
    # their counts summing to the total
    for f, s in states.items():
        if f in leaves:
            assert s.state == "serving" and s.searched, (f, s.state)
        else:
            assert s.state == "retired" and not s.searched, (f, s.state)
    assert sum(states[f].vector_count for f in leaves) == len(acked)
    assert d.vector_count == len(acked) and d.fragments == 1
    # the readers saw the splits under way
    assert (0, "serving", True) in seen_states and (0, "retired", False) in seen_states, seen_states
    assert (1, "retired", False) in seen_states, seen_states

    # Get, Scroll and an exhaustive search: every acknowledged id exactly once
    check_found_once(stub, vpb, tpb, COLL, acked)

    # each leaf's replicas hold exactly the acknowledged ids of its cell
    for f, c in leaves.items():
        mine = sorted(i for i in acked if in_cell(i, c.cell_depth, c.cell_path))
        for r in c.replicas:
            got = net.by_pk(r.pubkey).stub.Get(ipb.LocalGetRequest(magu=COLL, fragment=f, ids=acked), timeout=10)
            assert sorted(x.id for x in got.hits) == mine, (f, len(got.hits), len(mine))
    print(f"automatic split: {len(acked)} acknowledged ({n_first} before the first halves went live), "
          f"leaves {sorted((f, states[f].vector_count) for f in leaves)}, {stats['write_retries']} write retries, "
          f"{stats['searches']} searches ({stats['search_failed']} failed), {stats['gets']} gets")
