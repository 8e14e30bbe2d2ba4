"""A departing indexer hands over before it leaves, on 4 ledger replicas and
4 indexers started from a genesis (no SetConfig): one Magu of one fragment
with 3 replicas runs a QUORUM write load while one backup unstakes. The
spare that takes its seat is stopped (SIGSTOP) first, so the hand-over is
seen from outside: the ledger commits epoch + 1 with 4 replicas (the leaver
listed in `leaving`, the spare joined, the primary kept), keeps it while the
spare cannot catch up, and the QUORUM acknowledgements of that epoch come
from 3 of its 4 replicas without the spare. Resumed, the spare catches up
from the primary and signs a root of the epoch at the primary's root; only
then does the ledger commit epoch + 2 without the leaver. Every write
acknowledged at QUORUM is on the replicas that stay.

A departing primary hands its role over first: it stops taking writes,
waits until a backup holds its whole log and gives the epoch up; the
ledger makes a replica that stays and reported that log the primary (the
leaver still a replica), and the hand-over then ends as above."""
import os
import re
import signal
import threading
import time

import grpc
import pytest

from chain_util import CHAIN, ChainNet, vec
from ledger_util import signed_tx
from muri_util import wait_until
from read_auth import keys_of, signed
from test_indexer import records, write  # noqa: F401
from test_membership import MAGU, config, create_magu, first_config, root_of


@pytest.fixture
def net4(servers, stubs, tmp_path):
    # removal only by readiness within this test (the deadline is a million blocks)
    n = ChainNet(servers, stubs, tmp_path, n_indexers=4, params={"handover_deadline": 1000000},
                 ix_args=("--root-every", "16", "--root-interval-ms", "200", "--drop-ms", "0"))
    yield n
    n.close()


def unstake(net, acc, amount):
    """Unstake from an indexer's own account (the indexer submits roots with it too: read the nonce)."""
    pb = net.pb
    for attempt in range(60):
        # the next nonce, or the one after it when the indexer's own transaction is pending
        acc.nonce = net.lstubs[1].GetAccount(pb.AccountRequest(address=acc.pk), timeout=10).nonce + attempt % 2
        try:
            r = net.lstubs[1].SubmitTransaction(pb.SubmitRequest(
                tx=signed_tx(pb, CHAIN, acc, fee=1, unstake=pb.Unstake(amount=amount)), wait_commit=True,
                timeout_ms=20000), timeout=30)
        except grpc.RpcError as e:  # the indexer's own transaction holds that nonce
            assert e.code() in (grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION) and \
                "nonce" in e.details(), e.details()
            time.sleep(0.05)
            continue
        if r.state == pb.TX_COMMITTED:
            return r
        assert "nonce" in r.message, r.message
        time.sleep(0.05)
    raise AssertionError("the Unstake never committed")


class Load:
    """QUORUM writes of 5 records to the fragment's current primary."""

    def __init__(self, net, sch, first):
        self.acked, self.lock, self.stop = [], threading.Lock(), threading.Event()
        self.th = threading.Thread(target=self.run, args=(net, sch, first))
        self.th.start()

    def run(self, net, sch, first):
        t, ipb = net.stubs.types_pb2, net.stubs.indexer_pb2
        seed, cfg = 7000, first
        while not self.stop.is_set():
            seed += 1
            recs = records(ipb, vec(5, seed))
            try:
                r = write(net.by_pk(cfg.primary), MAGU, 0, cfg.epoch, recs, sch, t.QUORUM, timeout_ms=3000)
                if r.level_achieved >= t.QUORUM:
                    with self.lock:
                        self.acked.append(([x.id for x in recs], cfg.epoch, set(r.acked_by)))
                continue
            except grpc.RpcError:
                pass
            time.sleep(0.05)
            try:
                cfg = config(net)
            except grpc.RpcError:
                pass

    def in_epoch(self, epoch):
        with self.lock:
            return sum(1 for _, e, _ in self.acked if e == epoch)

    def close(self):
        self.stop.set()
        self.th.join(timeout=30)


def all_acked_on(net, ixs, load, primary):
    """Every acknowledged write is on ixs, which reach the primary's size and root."""
    ipb = net.stubs.indexer_pb2
    want = root_of(primary)
    ids = [i for recs, _, _ in load.acked for i in recs]
    for ix in ixs:
        assert wait_until(lambda: (lambda x: x and x.size == want.size and x.root == want.root)(root_of(ix)),
                          timeout=60), "a replica did not reach the primary's size and root"
        hits = set()
        for s in range(0, len(ids), 10000):  # the indexer's max_get a call
            hits.update(h.id for h in ix.stub.Get(ipb.LocalGetRequest(magu=MAGU, fragment=0, ids=ids[s:s + 10000]),
                                                  timeout=30).hits)
        missing = [i for i in ids if i not in hits]
        assert not missing, f"{len(missing)} of {len(ids)} acknowledged writes missing"
    return len(ids)


def test_departing_primary_hands_over_its_role_first(net4):
    net = net4
    sch = create_magu(net)
    first = first_config(net)
    members = {r.pubkey for r in first.replicas}
    leaver = net.by_pk(first.primary)
    leaver_acc = next(a for a in net.ixacc if a.pk == leaver.pubkey)
    spare = next(ix for ix in net.indexers if ix.pubkey not in members)
    load = Load(net, sch, first)
    try:
        assert wait_until(lambda: len(load.acked) >= 30, timeout=60), "no QUORUM writes before the hand-over"
        os.kill(spare.server.proc.pid, signal.SIGSTOP)  # the hand-over cannot end before we look
        try:
            unstake(net, leaver_acc, 5000)

            def moved():
                c = config(net)
                return c if c.primary != first.primary else None
            m = wait_until(moved, timeout=90)
            assert m, "the leaving primary kept its role"
            assert {x.pubkey for x in m.replicas} == members | {spare.pubkey}, "the leaver is still a replica"
            assert list(m.leaving) == [leaver.pubkey]
            assert m.primary in members and m.primary != spare.pubkey
            assert "event=handoff" in leaver.server.read_log()
            assert wait_until(lambda: load.in_epoch(m.epoch) >= 20, timeout=60), \
                "writes did not resume on the new primary"
        finally:
            os.kill(spare.server.proc.pid, signal.SIGCONT)

        def left():
            c = config(net)
            return c if leaver.pubkey not in {x.pubkey for x in c.replicas} else None
        after = wait_until(left, timeout=90)
        assert after, "the leaver was never removed"
        assert after.primary == m.primary and not after.leaving
        assert wait_until(lambda: load.in_epoch(after.epoch) >= 10, timeout=60)
    finally:
        load.close()
    stay = [net.by_pk(p) for p in members if p != leaver.pubkey] + [spare]
    n = all_acked_on(net, stay, load, net.by_pk(after.primary))
    print(f"{n} records acknowledged at QUORUM; primary moved at epoch {m.epoch}, leaver removed at {after.epoch}")


def test_departing_backup_hands_over_under_quorum_load(net4):
    net = net4
    ipb = net.stubs.indexer_pb2
    sch = create_magu(net)
    first = first_config(net)
    members = {r.pubkey for r in first.replicas}
    leaver = next(net.by_pk(p) for p in members if p != first.primary)
    leaver_acc = next(a for a in net.ixacc if a.pk == leaver.pubkey)
    spare = next(ix for ix in net.indexers if ix.pubkey not in members)
    primary = net.by_pk(first.primary)
    load = Load(net, sch, first)
    acked = load.acked
    try:
        assert wait_until(lambda: len(acked) >= 30, timeout=60), "no QUORUM writes before the hand-over"
        os.kill(spare.server.proc.pid, signal.SIGSTOP)
        try:
            unstake(net, leaver_acc, 5000)

            def handing_over():
                c = config(net)
                return c if c.epoch > first.epoch else None
            hov = wait_until(handing_over, timeout=60)
            assert hov, "no configuration after the Unstake"
            assert hov.epoch == first.epoch + 1
            got = {x.pubkey for x in hov.replicas}
            assert got == members | {spare.pubkey}, "the leaver stays next to the spare"
            assert list(hov.leaving) == [leaver.pubkey]
            assert hov.primary == first.primary
            # the spare cannot catch up: the leaver stays, and QUORUM goes on without the spare
            n0 = len(acked)
            assert wait_until(lambda: load.in_epoch(hov.epoch) >= 20, timeout=60), \
                "QUORUM writes did not go on in the hand-over epoch"
            time.sleep(2)
            now = config(net)
            assert now.epoch == hov.epoch and len(now.replicas) == 4, "the leaver left before the spare caught up"
            with load.lock:
                during = [a for _, e, a in acked[n0:] if e == hov.epoch]
            assert during and all(spare.pubkey not in a and len(a) >= 3 for a in during), \
                [len(a) for a in during]
        finally:
            os.kill(spare.server.proc.pid, signal.SIGCONT)

        def left():
            c = config(net)
            return c if c.epoch > hov.epoch else None
        after = wait_until(left, timeout=90)
        assert after, "the leaver was never removed"
        assert after.epoch == hov.epoch + 1
        assert {x.pubkey for x in after.replicas} == (members - {leaver.pubkey}) | {spare.pubkey}
        assert not after.leaving and after.primary == first.primary
        assert wait_until(lambda: load.in_epoch(after.epoch) >= 10, timeout=60), \
            "writes did not go on after the hand-over"
    finally:
        load.close()
    # before it was removed, the spare signed a root of the hand-over epoch, the primary's root at that size
    sizes = [int(m.group(1)) for m in re.finditer(
        rf"event=root_submitted magu={MAGU} fragment=0 epoch={hov.epoch} size=(\d+)", spare.server.read_log())]
    assert sizes, "the spare submitted no root in the hand-over epoch"
    me = keys_of(spare.key_path)

    def root_at(ix, size):
        req = ipb.ConsistencyProofRequest(magu=MAGU, fragment=0, old_size=size, new_size=size)
        return ix.stub.ConsistencyProof(signed(req, "ConsistencyProof", CHAIN, me), timeout=10).new_root
    assert root_at(spare, sizes[0]) == root_at(primary, sizes[0])
    # every acknowledged write is on the replicas that stay, which agree
    other = net.by_pk(next(p for p in members if p not in (first.primary, leaver.pubkey)))
    all_acked_on(net, [spare, other], load, primary)
    # the leaver's stake is released once it left (unbonding_delay 100 blocks after the Unstake)
    pb = net.pb
    assert wait_until(lambda: net.lstubs[0].GetAccount(pb.AccountRequest(address=leaver.pubkey),
                                                       timeout=10).unbonding == 0, timeout=60)
    print(f"{len(acked)} QUORUM writes; hand-over epoch {hov.epoch}, spare's first root at {sizes[0]}, "
          f"leaver removed at epoch {after.epoch}")
