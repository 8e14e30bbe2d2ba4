"""A fragment split driven by the chain, on 4 ledger replicas and 3 indexers
started from a genesis: one Magu of one fragment with 3 replicas takes
QUORUM writes; its owner's SplitFragment (a stranger's, or one naming no
fragment, fails with the field named) seals it in epoch + 1, after which its
primary refuses writes with a retryable status that says why; the sealing
primary signs its whole log, so the ledger freezes the fragment at the root
that holds every acknowledged write and creates the two halves, each with
its replicas, its cell and the parent's frozen log as its source. Each
half's replicas derive its records from the frozen log (those whose ids
fall in its cell), sign that log's root, and once the ledger commits it the
half takes writes (of ids in its cell only) and the parent retires. The
second test kills a replica during the split; test_split_gateway.py runs a
split through the gateway, which routes by the split map."""
import hashlib
import uuid

import grpc
import pytest

from chain_util import CHAIN, ChainNet, vec
from ledger_util import Account, signed_tx
from muri_util import wait_until
from test_indexer import records, write  # noqa: F401
from test_membership import MAGU, config, create_magu, first_config, write_until_acked


@pytest.fixture
def net3(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path, n_indexers=3,
                 ix_args=("--root-every", "4", "--root-interval-ms", "200", "--drop-ms", "0"))
    yield n
    n.close()


def tx_outcome(net, stx):
    r = net.lstubs[1].SubmitTransaction(net.pb.SubmitRequest(tx=stx, wait_commit=True, timeout_ms=20000),
                                        timeout=30)
    return r


def split_bit(rid, depth=0):
    """Bit depth of H(CM_DOM_SPLIT || id) read big-endian (common/cm_cell.h)."""
    h = hashlib.blake2b(bytes([0x18]) + uuid.UUID(rid).bytes, digest_size=32).digest()
    return (int.from_bytes(h[:8], "big") >> depth) & 1


def magu(net):
    return net.lstubs[0].GetMagu(net.pb.MaguRequest(name=MAGU), timeout=10)


def test_split_seals_freezes_and_creates_halves(net3):
    net, pb, t = net3, net3.pb, net3.stubs.types_pb2
    sch = create_magu(net)
    cfg = first_config(net)
    acked = []
    for seed in range(3):
        recs = records(net.stubs.indexer_pb2, vec(4, 100 + seed))
        write_until_acked(net, cfg, recs, sch, t.QUORUM)
        acked += [r.id for r in recs]
    frag = lambda: net.lstubs[0].GetFragment(pb.FragmentRequest(magu=MAGU, fragment=0), timeout=10)  # noqa: E731
    # (a write retried after a timeout may have logged its records twice)
    assert wait_until(lambda: frag().committed_size >= 12, timeout=30), frag()

    # refusals name the field
    stranger = Account()
    net.submit(signed_tx(pb, CHAIN, net.owner, fee=1, transfer=pb.Transfer(to=stranger.pk, amount=1000)))
    r = tx_outcome(net, signed_tx(pb, CHAIN, stranger, fee=1,
                                  split_fragment=pb.SplitFragment(magu=MAGU, fragment=0)))
    assert r.state == pb.TX_FAILED and "only the owner of \"driven\" may split" in r.message, r
    r = tx_outcome(net, signed_tx(pb, CHAIN, net.owner, fee=1,
                                  split_fragment=pb.SplitFragment(magu=MAGU, fragment=9)))
    assert r.state == pb.TX_FAILED and "split_fragment.fragment: no fragment 9" in r.message, r

    # the owner's split: sealing in epoch + 1, the halves' numbers reserved
    r = tx_outcome(net, signed_tx(pb, CHAIN, net.owner, fee=1,
                                  split_fragment=pb.SplitFragment(magu=MAGU, fragment=0)))
    assert r.state == pb.TX_COMMITTED, r.message
    assert "sealing in epoch 2 to split into 1 and 2" in r.message, r.message

    # the sealing primary takes no writes and says why (retryable); a write
    # it acknowledged before it saw the seal is in the log the ledger freezes
    def refused():
        c = config(net)
        recs = records(net.stubs.indexer_pb2, vec(1, 9))
        try:
            r = write(net.by_pk(c.primary), MAGU, 0, c.epoch, recs, sch, t.QUORUM, timeout_ms=2000)
            if r.level_achieved >= t.QUORUM:
                acked.append(recs[0].id)
            return None
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE and "to split into 1 and 2" in e.details():
                return e.details()
            return None
    msg = wait_until(refused, timeout=30)
    assert msg and "takes no more writes" in msg, msg

    # the primary's whole log is committed: frozen, the halves created
    def split_done():
        m = magu(net)
        return m if len(m.configs) == 3 and m.configs[0].phase == t.FRAGMENT_PHASE_SPLIT else None
    m = wait_until(split_done, timeout=60)
    assert m, magu(net)
    parent, halves = m.configs[0], m.configs[1:]
    assert list(parent.children) == [1, 2]
    f0 = frag()
    whole = net.by_pk(parent.primary).stub.GetRoot(net.stubs.indexer_pb2.RootRequest(magu=MAGU, fragment=0),
                                                   timeout=10)
    assert f0.committed_size == whole.size >= len(acked)  # the primary's whole log, nothing after
    assert m.fragments == 1
    for b, h in enumerate(halves):
        assert h.fragment == 1 + b and h.epoch == 1 and len(h.replicas) == 3
        assert h.phase == t.FRAGMENT_PHASE_SERVING
        assert (h.cell_base, h.cell_depth, h.cell_path) == (0, 1, b)
        assert h.source.fragment == 0 and h.source.size == f0.committed_size and h.source.root == f0.committed_root

    # the frozen parent takes no root, and its records stay readable
    got = net.by_pk(parent.primary).stub.Get(net.stubs.indexer_pb2.LocalGetRequest(magu=MAGU, fragment=0,
                                                                                   ids=acked), timeout=10)
    assert sorted(h.id for h in got.hits) == sorted(acked) and got.log_size == f0.committed_size

    # each half derives the acknowledged records of its cell, commits their
    # root and goes live; the parent retires
    def live():
        m = magu(net)
        return m if all(c.live for c in m.configs[1:]) and m.configs[0].phase == t.FRAGMENT_PHASE_RETIRED else None
    m = wait_until(live, timeout=60)
    assert m, magu(net)
    ipb = net.stubs.indexer_pb2
    for b in range(2):
        h = m.configs[1 + b]
        mine = sorted(i for i in acked if split_bit(i) == b)
        fi = net.lstubs[0].GetFragment(pb.FragmentRequest(magu=MAGU, fragment=1 + b), timeout=10)
        assert fi.committed_size >= len(mine)
        for rep in h.replicas:
            got = net.by_pk(rep.pubkey).stub.Get(ipb.LocalGetRequest(magu=MAGU, fragment=1 + b, ids=acked),
                                                 timeout=10)
            assert sorted(x.id for x in got.hits) == mine, (b, rep.address)
        # it takes writes of its own ids at QUORUM, and refuses the other half's
        rec = next(r for s in range(100) for r in records(ipb, vec(1, 20 + s)) if split_bit(r.id) == b)

        def half_acked(h=h, b=b, rec=rec):  # the primary may not have applied the block that made it live
            try:
                return write(net.by_pk(h.primary), MAGU, 1 + b, h.epoch, [rec], sch, t.QUORUM)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.UNAVAILABLE and "derived here" in e.details(), e.details()
                return None
        r = wait_until(half_acked, timeout=30)
        assert r and r.level_achieved >= t.QUORUM, r
        other = next(r for s in range(100) for r in records(ipb, vec(1, 40 + s)) if split_bit(r.id) != b)
        with pytest.raises(grpc.RpcError) as ei:
            write(net.by_pk(h.primary), MAGU, 1 + b, h.epoch, [other], sch, t.QUORUM)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ei.value.details()
        assert "records[0].id: not in the cell of" in ei.value.details(), ei.value.details()


def test_split_with_a_replica_killed(net3):
    """Under a QUORUM load one backup of the fragment (a replica of both
    halves too) is SIGKILLed as the owner splits it: the split completes on
    the other two (the sealing primary's whole log frozen, each half derived
    and live on two of three), every write acknowledged before the freeze is
    in exactly the half whose cell holds it, and the killed replica, started
    again, catches the parent's log up, derives both halves and then holds
    what the halves acknowledged since."""
    import threading
    import time
    net, pb, t = net3, net3.pb, net3.stubs.types_pb2
    ipb = net.stubs.indexer_pb2
    sch = create_magu(net)
    first = first_config(net)
    victim = net.by_pk(next(r.pubkey for r in first.replicas if r.pubkey != first.primary))
    acked, stop = [], threading.Event()

    def load():
        seed = 3000
        while not stop.is_set():
            seed += 1
            recs = records(ipb, vec(3, seed))
            try:
                c = config(net)
                r = write(net.by_pk(c.primary), MAGU, 0, c.epoch, recs, sch, t.QUORUM, timeout_ms=1500)
                if r.level_achieved >= t.QUORUM:
                    acked.extend(x.id for x in recs)
            except grpc.RpcError:
                time.sleep(0.05)
    th = threading.Thread(target=load)
    th.start()
    try:
        assert wait_until(lambda: len(acked) >= 30, timeout=60), "no QUORUM writes"
        r = tx_outcome(net, signed_tx(pb, CHAIN, net.owner, fee=1,
                                      split_fragment=pb.SplitFragment(magu=MAGU, fragment=0)))
        assert r.state == pb.TX_COMMITTED, r.message
        victim.server.kill9()

        def live():
            m = magu(net)
            return m if len(m.configs) == 3 and all(c.live for c in m.configs[1:]) else None
        m = wait_until(live, timeout=90)
        assert m, magu(net)
    finally:
        stop.set()
        th.join()
    assert m.configs[0].phase == t.FRAGMENT_PHASE_RETIRED
    frozen = net.lstubs[0].GetFragment(pb.FragmentRequest(magu=MAGU, fragment=0), timeout=10).committed_size
    assert frozen >= len(acked)
    # every acknowledged write in exactly its half, on the live replicas
    for b in range(2):
        h = m.configs[1 + b]
        mine = sorted(i for i in acked if split_bit(i) == b)
        for rep in h.replicas:
            if rep.pubkey == victim.pubkey:
                continue
            got = net.by_pk(rep.pubkey).stub.Get(ipb.LocalGetRequest(magu=MAGU, fragment=1 + b, ids=acked),
                                                 timeout=10)
            assert sorted(x.id for x in got.hits) == mine, (b, rep.address)
    # the halves take writes meanwhile; the victim comes back and holds them all
    extra = {0: [], 1: []}
    for b in range(2):
        h = m.configs[1 + b]
        for s in range(200):
            rec = records(ipb, vec(1, 500 + 1000 * b + s))[0]
            if split_bit(rec.id) != b:
                continue

            def half_acked(b=b, rec=rec):  # the half's primary may be the victim: fail over
                c = net.lstubs[0].GetFragment(pb.FragmentRequest(magu=MAGU, fragment=1 + b), timeout=10).config
                try:
                    r = write(net.by_pk(c.primary), MAGU, 1 + b, c.epoch, [rec], sch, t.QUORUM, timeout_ms=2000)
                    return r if r.level_achieved >= t.QUORUM else None
                except grpc.RpcError:
                    return None
            assert wait_until(half_acked, timeout=60)
            extra[b].append(rec.id)
            if len(extra[b]) == 3:
                break
    victim.restart()
    for b in range(2):
        want = sorted([i for i in acked if split_bit(i) == b] + extra[b])

        def caught_up(b=b, want=want):
            try:
                got = victim.stub.Get(ipb.LocalGetRequest(magu=MAGU, fragment=1 + b, ids=acked + extra[b]),
                                      timeout=10)
            except grpc.RpcError:
                return False
            return sorted(x.id for x in got.hits) == want
        assert wait_until(caught_up, timeout=60), f"the restarted replica never held half {1 + b}"
