"""A fragment split through the gateway (README, Fragments that split): on 4
ledger replicas and 3 indexers started from a genesis, a collection of one
fragment created through the gateway takes QUORUM writes; its owner splits
the fragment with a SplitFragment transaction while one client keeps
upserting at QUORUM (retrying a batch with the same ids until it is
acknowledged) and another keeps searching and getting. The gateway follows
the split map: writes wait while the fragment seals and its halves derive,
then go to the half whose cell holds each id; searches ask the frozen
parent for a half not live yet, restricted to the half's cell. Afterwards
every acknowledged id is found exactly once by Get and by Scroll, the
halves' counts sum to the total, a record written after the split is in the
half its cell names, and no search ever returned an id twice."""
import threading
import time
import uuid

import pytest

from chain_util import CHAIN
from ledger_util import signed_tx
from muri_util import wait_until
from split_gw_util import (DIM, check_found_once, close_split_net, describe_once, read_once, split_net,
                           upsert_until_acked, vecs)
from test_split import split_bit

COLL = "halves"


@pytest.fixture
def net(servers, stubs, tmp_path):
    n = split_net(servers, stubs, tmp_path)
    yield n
    close_split_net(n)


def test_split_through_the_gateway(net):
    vpb, tpb, pb = net.stubs.vectorstore_pb2, net.stubs.types_pb2, net.pb
    stub = net.gw.stub
    stub.CreateCollection(vpb.CreateCollectionRequest(
        name=COLL, dimension=DIM, metric=tpb.L2, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=1,
        replication=3), timeout=90)
    acked, seed = [], [0]
    for _ in range(6):
        ids = [str(uuid.uuid4()) for _ in range(10)]
        seed[0] += 1
        upsert_until_acked(stub, vpb, tpb, COLL, ids, seed[0], time.time() + 60)
        acked += ids
    n_before = len(acked)

    stop, errors, after_live = threading.Event(), [], []
    stats = {"searches": 0, "search_failed": 0, "gets": 0, "write_retries": 0, "dups": []}
    describe_failed = []
    seen_states = set()  # (fragment, state, searched) as Describe showed them during the load
    live_at = [None]

    def writer():
        while not stop.is_set():
            ids = [str(uuid.uuid4()) for _ in range(5)]
            seed[0] += 1
            try:
                stats["write_retries"] += upsert_until_acked(stub, vpb, tpb, COLL, ids, seed[0],
                                                             time.time() + 120)
            except AssertionError as e:
                errors.append(str(e))
                return
            acked.extend(ids)
            if live_at[0] is not None:
                after_live.extend(ids)
            time.sleep(0.05)  # an exhaustive search (top_k 1000) must still cover them all

    def reader():
        q = vecs(tpb, 1, 999)[0]
        while not stop.is_set():
            read_once(stub, vpb, tpb, COLL, q, list(acked[:n_before:7]), stats, errors)
            time.sleep(0.05)

    def describer():
        while not stop.is_set():
            describe_once(stub, vpb, COLL, seen_states, describe_failed)
            time.sleep(0.02)

    threads = [threading.Thread(target=t) for t in (writer, reader, describer)]
    for th in threads:
        th.start()
    try:
        time.sleep(1.0)
        # the gateway pays with the owner's account (CreateCollection): take up its nonce
        net.owner.nonce = net.lstubs[1].GetAccount(pb.AccountRequest(address=net.owner.pk), timeout=10).nonce
        r = net.submit(signed_tx(pb, CHAIN, net.owner, fee=1,
                                 split_fragment=pb.SplitFragment(magu=COLL, fragment=0)))
        assert "to split into 1 and 2" in r.message, r.message

        def live():
            m = net.lstubs[0].GetMagu(pb.MaguRequest(name=COLL), timeout=10)
            ok = len(m.configs) == 3 and all(c.live for c in m.configs[1:]) and \
                m.configs[0].phase == tpb.FRAGMENT_PHASE_RETIRED
            return m if ok else None
        m = wait_until(live, timeout=120)
        assert m, "the split never completed"
        live_at[0] = time.time()
        # the load goes on until the halves took writes through the gateway
        assert wait_until(lambda: len(after_live) >= 20 or errors, timeout=60), "no writes after the split"
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert not errors, errors[:5]
    assert not stats["dups"], f"a search returned an id twice: {stats['dups'][0]}"
    assert stats["searches"] > 0 and stats["gets"] > 0, stats
    # the readers ran through the split: the parent sealing or frozen, then retired
    assert (0, "serving", True) in seen_states and (0, "retired", False) in seen_states, seen_states
    assert len(acked) == len(set(acked))

    # Get, Scroll and an exhaustive search: every acknowledged id exactly once
    check_found_once(stub, vpb, tpb, COLL, acked)

    # Describe: the parent retired, the halves serving, their counts summing to the total
    d = stub.DescribeCollection(vpb.DescribeCollectionRequest(name=COLL), timeout=30)
    states = {s.fragment: s for s in d.fragment_states}
    assert d.fragments == 1 and sorted(states) == [0, 1, 2]
    assert states[0].state == "retired" and not states[0].searched
    assert states[1].state == states[2].state == "serving" and states[1].searched and states[2].searched
    assert states[1].vector_count + states[2].vector_count == len(acked)
    assert d.vector_count == len(acked)

    # a record written after the split is in the half its cell names, only there
    ipb = net.stubs.indexer_pb2
    for b in range(2):
        h = m.configs[1 + b]
        mine = sorted(i for i in after_live if split_bit(i) == b)
        ix = net.by_pk(h.primary)
        got = ix.stub.Get(ipb.LocalGetRequest(magu=COLL, fragment=1 + b, ids=after_live), timeout=10)
        assert sorted(x.id for x in got.hits) == mine, b
    print(f"split through the gateway: {len(acked)} acknowledged ({n_before} before, {len(after_live)} after "
          f"the halves went live), {stats['write_retries']} write retries, {stats['searches']} searches "
          f"({stats['search_failed']} failed, slowest {stats['search_max_s']:.2f} s), {stats['gets']} gets; states seen {sorted(seen_states)}; describe failed {len(describe_failed)} {describe_failed[:3]}")
