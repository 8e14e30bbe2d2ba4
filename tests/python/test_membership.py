"""Membership driven by the ledger, on 4 ledger replicas and 4 indexers
started from a genesis (no SetConfig anywhere), one Magu of one fragment
with 3 replicas, so one staked indexer is a spare:

- a backup killed with SIGKILL is reported by the primary (FailoverRequest
  with drop), the ledger gives its seat to the spare at epoch + 1, and the
  spare catches up from the primary to the same log size and root, and
  finds the data;
- a primary killed under QUORUM load and restarted after the ledger failed
  the fragment over truncates only what was never acknowledged: it ends at
  the new primary's size and root, with every acknowledged write;
- an indexer whose store lost record bodies (each of 31 records overwritten
  by its successor while it was stopped; the leaf hashes kept, so it still
  claims the root)
  fails its challenge on chain and its stake drops."""
import glob
import os
import sqlite3
import threading
import time

import grpc
import pytest

from chain_util import CHAIN, DIM, MAGU, ChainNet, vec
from ledger_util import signed_tx
from muri_util import wait_until
from test_indexer import records, write  # noqa: F401


def create_magu(net):
    pb, t = net.pb, net.stubs.types_pb2
    spec = t.IndexSpec(kind=t.FLAT)
    net.submit(signed_tx(pb, CHAIN, net.owner, fee=1,
                         create_magu=pb.CreateMagu(name=MAGU, dimension=DIM, metric=t.L2, index=spec,
                                                   fragments=1, replication=3, deposit=1000)))
    return net.stubs.indexer_pb2.FragmentSchema(dimension=DIM, metric=t.L2, index=spec)


def config(net, i=2):
    return net.lstubs[i].GetFragment(net.pb.FragmentRequest(magu=MAGU, fragment=0), timeout=10).config


def first_config(net):
    def read():
        try:
            return config(net)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None
    c = wait_until(read, timeout=30)
    assert c, "the Magu was never created"
    return c


def write_until_acked(net, cfg, recs, sch, level):
    t = net.stubs.types_pb2
    primary = net.by_pk(cfg.primary)

    def acked():
        try:
            return write(primary, MAGU, 0, cfg.epoch, recs, sch, level)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
                            grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                return None
            raise
    r = wait_until(acked, timeout=60)
    assert r and r.level_achieved >= level, r
    assert r.level_achieved >= t.ONE
    return r


def root_of(ix, size=0):
    pb = ix.stubs.indexer_pb2
    try:
        return ix.stub.GetRoot(pb.RootRequest(magu=MAGU, fragment=0, size=size), timeout=10)
    except grpc.RpcError:
        return None


@pytest.fixture
def net4(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path, n_indexers=4, ix_args=("--drop-ms", "3000"))
    yield n
    n.close()


def test_spare_replaces_dead_backup(net4):
    net, t = net4, net4.stubs.types_pb2
    ipb = net.stubs.indexer_pb2
    sch = create_magu(net)
    first = first_config(net)
    members = {r.pubkey for r in first.replicas}
    assert len(members) == 3
    spare = [ix for ix in net.indexers if ix.pubkey not in members]
    assert len(spare) == 1, "one of the 4 staked indexers is not a replica"
    vs = vec(300, seed=11)
    recs = records(ipb, vs)
    r = write_until_acked(net, first, recs, sch, t.ALL)
    assert r.log_size == 300
    dead = next(net.by_pk(p) for p in members if p != first.primary)
    t0 = time.time()
    dead.server.kill9()

    # the primary asks for the dead backup's replacement; the ledger commits epoch + 1
    def replaced():
        c = config(net)
        return c if c.epoch > first.epoch and dead.pubkey not in {x.pubkey for x in c.replicas} else None
    new = wait_until(replaced, timeout=60)
    t_config = time.time() - t0
    assert new, "the dead backup was not replaced"
    assert new.epoch == first.epoch + 1
    assert new.primary == first.primary, "the primary stays"
    got = {x.pubkey for x in new.replicas}
    assert got == (members - {dead.pubkey}) | {spare[0].pubkey}, "only the dead seat moved, to the spare"
    # the spare catches up to the primary's size and root
    primary = net.by_pk(new.primary)
    want = root_of(primary)
    assert want.size == 300
    caught = wait_until(lambda: (lambda x: x and x.size == want.size and x.root == want.root)(root_of(spare[0])),
                        timeout=60)
    t_caught = time.time() - t0
    assert caught, f"the spare did not reach size {want.size} with the primary's root: {root_of(spare[0])}"
    # and finds the data
    req = ipb.LocalSearchRequest(magu=MAGU, fragment=0, top_k=1)
    req.query.values.extend(vs[123].tolist())
    res = spare[0].stub.Search(req, timeout=10)
    assert res.hits and res.hits[0].id == recs[123].id
    # the new replica set acknowledges at ALL: the spare counts once it holds the log
    more = records(ipb, vec(10, seed=12))
    r = write_until_acked(net, new, more, sch, t.ALL)
    assert r.log_size == 310
    assert wait_until(lambda: (lambda x: x and x.size == 310)(root_of(spare[0])), timeout=30)
    print(f"replacement config after {t_config:.1f} s, spare caught up {t_caught:.1f} s after the kill")


@pytest.fixture
def net4_nodrop(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path, n_indexers=4, ix_args=("--drop-ms", "0"))
    yield n
    n.close()


def test_rejoining_primary_keeps_acknowledged(net4_nodrop):
    """Under a QUORUM load both backups are SIGKILLed, a write the primary
    appends then cannot reach QUORUM (it is in the primary's log only), and
    the primary is SIGKILLed; the backups come back, ask for failover, the
    ledger commits epoch 2 with one of them as primary and the load goes on
    there. The old primary, restarted, must drop exactly that unacknowledged
    suffix and end with the new primary's size and root."""
    net, t = net4_nodrop, net4_nodrop.stubs.types_pb2
    ipb = net.stubs.indexer_pb2
    sch = create_magu(net)
    first = first_config(net)
    old = net.by_pk(first.primary)
    backups = [net.by_pk(x.pubkey) for x in first.replicas if x.pubkey != first.primary]
    acked, lock, stop, run = [], threading.Lock(), threading.Event(), threading.Event()
    run.set()

    def load():
        seed, cfg = 5000, first
        while not stop.is_set():
            if not run.wait(0.1):
                continue
            with lock:
                ix = net.by_pk(cfg.primary)
                seed += 1
                recs = records(ipb, vec(5, seed))
                try:
                    r = write(ix, MAGU, 0, cfg.epoch, recs, sch, t.QUORUM, timeout_ms=2000)
                    if r.level_achieved >= t.QUORUM:
                        acked.extend((x.id, cfg.epoch) for x in recs)
                    continue
                except grpc.RpcError:
                    pass
            time.sleep(0.05)
            try:
                cfg = config(net)
            except grpc.RpcError:
                pass
    th = threading.Thread(target=load)
    th.start()
    try:
        assert wait_until(lambda: len(acked) >= 100, timeout=60), "no QUORUM writes before the kill"
        with lock:
            run.clear()
        for b in backups:
            b.server.kill9()
        doomed = records(ipb, vec(7, seed=99))
        try:
            r = write(old, MAGU, 0, first.epoch, doomed, sch, t.QUORUM, timeout_ms=1000)
            assert r.level_achieved < t.QUORUM, "a write reached QUORUM with both backups dead"
        except grpc.RpcError:
            pass
        signed_old = root_of(old)  # epoch 1, over the unacknowledged suffix too
        size_old = signed_old.size
        n_acked_old = len(acked)
        assert size_old >= n_acked_old + len(doomed), (size_old, n_acked_old)
        old.server.kill9()
        for b in backups:
            b.restart()
        run.set()
        new = wait_until(lambda: (lambda c: c if c.epoch > first.epoch else None)(config(net)), timeout=90)
        assert new and new.primary != first.primary
        assert old.pubkey in {x.pubkey for x in new.replicas}, "failover keeps the replica set"
        assert wait_until(lambda: sum(1 for _, e in acked if e >= new.epoch) >= 50, timeout=60), \
            "writes did not resume on the new primary"
        old.restart()
        time.sleep(2)  # the load goes on while the old primary rejoins
    finally:
        stop.set()
        run.set()
        th.join(timeout=30)
    primary = net.by_pk(new.primary)
    want = root_of(primary)

    def same():
        x, cur = root_of(old, want.size), root_of(old)
        return x and cur and x.root == want.root and cur.size == want.size
    assert wait_until(same, timeout=60), \
        f"the old primary did not reach size {want.size} with the new primary's root"
    ids = [i for i, _ in acked]
    got = old.stub.Get(ipb.LocalGetRequest(magu=MAGU, fragment=0, ids=ids + [d.id for d in doomed]), timeout=30)
    have = {h.id for h in got.hits}
    missing = [i for i in ids if i not in have]
    assert not missing, f"{len(missing)} of {len(ids)} acknowledged writes missing on the rejoined primary"
    kept = [d.id for d in doomed if d.id in have]
    assert not kept, "the unacknowledged suffix survived on the rejoined primary"
    assert want.size >= len(ids), (want.size, len(ids))
    # the old primary now signs another root at size_old, in epoch 2: not
    # evidence of a double root (roots are bound to their epoch), and it
    # keeps its stake
    pb = net.pb
    signed_new = root_of(old, size_old)
    assert signed_new.epoch == new.epoch and signed_old.epoch == first.epoch
    assert signed_new.root != signed_old.root and signed_new.chain_id == signed_old.chain_id == CHAIN
    stake0 = net.lstubs[0].GetAccount(pb.AccountRequest(address=old.pubkey), timeout=10).staked
    r = net.lstubs[1].SubmitTransaction(pb.SubmitRequest(
        tx=signed_tx(pb, CHAIN, net.owner, fee=1,
                     report_double_root=pb.ReportDoubleRoot(a=signed_old, b=signed_new)),
        wait_commit=True, timeout_ms=20000), timeout=30)
    assert r.state == pb.TX_FAILED and "report_double_root.b.epoch" in r.message, r
    info = net.lstubs[1].GetIndexer(pb.IndexerRequest(pubkey=old.pubkey), timeout=10)
    assert not info.jailed and info.at.height >= r.height
    assert net.lstubs[1].GetAccount(pb.AccountRequest(address=old.pubkey), timeout=10).staked == stake0
    print(f"{len(ids)} acknowledged writes ({n_acked_old} in epoch {first.epoch}); old primary held {size_old}, "
          f"dropped {len(doomed)} unacknowledged, ends at {want.size} = the new primary's size and root "
          f"(epoch {new.epoch})")


@pytest.fixture
def net4_challenges(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path, n_indexers=4,
                 params={"challenge_interval": 5, "challenges_per_round": 64,
                                                         "challenge_deadline": 20},
                 ix_args=("--root-every", "16", "--root-interval-ms", "200", "--drop-ms", "0"))
    yield n
    n.close()


def test_lost_records_fail_challenge_and_slash(net4_challenges):
    net, pb, t = net4_challenges, net4_challenges.pb, net4_challenges.stubs.types_pb2
    ipb = net.stubs.indexer_pb2
    sch = create_magu(net)
    cfg = first_config(net)
    r = write_until_acked(net, cfg, records(ipb, vec(40, seed=21)), sch, t.ALL)
    assert r.log_size == 40
    frag = wait_until(lambda: (lambda f: f if f.committed_size == 32 else None)(
        net.lstubs[0].GetFragment(pb.FragmentRequest(magu=MAGU, fragment=0), timeout=10)), timeout=60)
    assert frag, "no root committed"
    backups = [net.by_pk(x.pubkey) for x in cfg.replicas if x.pubkey != cfg.primary]

    def challenges(pk, state=None):
        res = net.lstubs[0].GetChallenges(pb.ChallengesRequest(indexer=pk, max=1000), timeout=10).challenges
        return [c for c in res if state is None or c.state == state]

    # an honest first: a backup (one that signed the committed root, so it
    # is challenged) passes a challenge; it becomes the victim
    victim = wait_until(lambda: next((b for b in backups if challenges(b.pubkey, pb.CHALLENGE_PASSED)), None),
                        timeout=90)
    assert victim, "no backup passed a challenge"
    i = net.indexers.index(victim)
    stake0 = net.lstubs[0].GetAccount(pb.AccountRequest(address=victim.pubkey), timeout=10).staked
    victim.server.stop()
    dbs = [p for p in glob.glob(os.path.join(net.datadirs[i], "fragments", "**", "*"), recursive=True)
           if os.path.isfile(p) and open(p, "rb").read(16).startswith(b"SQLite format 3")]
    lost = 0
    for p in dbs:
        db = sqlite3.connect(p)
        try:
            if db.execute("SELECT name FROM sqlite_master WHERE name='log'").fetchone():
                # the bodies of records 0..30 are lost: each holds its
                # successor's bytes (valid records, the wrong ones)
                lost += db.execute("UPDATE log SET leaf = (SELECT l2.leaf FROM log AS l2 "
                                   "WHERE l2.seq = log.seq + 1) WHERE seq < 31").rowcount
                db.commit()
        finally:
            db.close()
    assert lost == 31, f"record rows deleted: {lost} in {dbs}"
    failed_before = len(challenges(victim.pubkey, pb.CHALLENGE_FAILED))
    assert failed_before == 0
    victim.restart()
    failed = wait_until(lambda: challenges(victim.pubkey, pb.CHALLENGE_FAILED), timeout=120)
    assert failed, "the indexer that lost records never failed a challenge"
    assert all(c.magu == MAGU and c.size == 32 for c in failed)

    def stake():
        return net.lstubs[0].GetAccount(pb.AccountRequest(address=victim.pubkey), timeout=10).staked
    assert wait_until(lambda: stake() < stake0, timeout=30), "the stake did not drop"
    info = net.lstubs[0].GetIndexer(pb.IndexerRequest(pubkey=victim.pubkey), timeout=10)
    assert info.failures >= 1
    # the honest replicas keep passing
    others = [ix for ix in net.indexers if ix is not victim and ix.pubkey in {x.pubkey for x in cfg.replicas}]
    assert not [c for ix in others for c in challenges(ix.pubkey, pb.CHALLENGE_FAILED)]
    print(f"stake {stake0} -> {stake()}; failed challenges {len(failed)}; failures {info.failures}")
