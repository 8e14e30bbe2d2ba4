"""Indexers configured by the ledger alone: 4 ledger replicas and 3 indexers
started with the genesis (registered and staked there), a Magu created by
transaction, and then, with no SetConfig anywhere, QUORUM writes to each
fragment's primary as the ledger configured it are acknowledged and a
search on a backup finds them. SetConfig is refused while genesis is set.
A primary killed under QUORUM load is replaced through the ledger (the
backups' FailoverRequest transactions, the new epoch from the feed) and no
acknowledged write is lost. Roots signed at multiples of root_every are
committed on chain, and the challenges that follow are answered and pass."""
import os

import grpc
import pytest

from chain_util import CHAIN, DIM, FRAGMENTS, MAGU, ChainNet, fragment_configs, vec
from ledger_util import signed_tx
from muri_util import wait_until
from test_indexer import records, write  # noqa: F401


@pytest.fixture
def chain(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path)
    yield n
    n.close()


def test_ledger_configures_indexers(chain):
    net, pb, t = chain, chain.pb, chain.stubs.types_pb2
    ipb = chain.stubs.indexer_pb2
    spec = t.IndexSpec(kind=t.FLAT)
    net.submit(signed_tx(pb, CHAIN, net.owner, fee=1,
                         create_magu=pb.CreateMagu(name=MAGU, dimension=DIM, metric=t.L2, index=spec,
                                                   fragments=FRAGMENTS, replication=3, deposit=1000)))
    cfgs = fragment_configs(net)
    assert sorted(cfgs) == list(range(FRAGMENTS))
    # SetConfig is refused: the ledger configures these indexers
    some = net.indexers[0]
    with pytest.raises(grpc.RpcError) as e:
        some.stub.SetConfig(cfgs[0], timeout=10)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "allow_set_config" in e.value.details()
    sch = ipb.FragmentSchema(dimension=DIM, metric=t.L2, index=spec)
    for frag, cfg in cfgs.items():
        assert len(cfg.replicas) == 3
        primary = net.by_pk(cfg.primary)
        backups = [net.by_pk(r.pubkey) for r in cfg.replicas if r.pubkey != cfg.primary]
        vs = vec(20, seed=frag + 1)
        recs = records(ipb, vs)

        def acked():
            try:
                r = write(primary, MAGU, frag, cfg.epoch, recs, sch, t.QUORUM)
            except grpc.RpcError as e:
                # the indexer has not applied the block yet, or holds no lease yet
                if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
                                grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                    return None
                raise
            return r
        r = wait_until(acked, timeout=60)
        assert r and r.level_achieved >= t.QUORUM and r.log_size == 20
        # a backup finds them
        for b in backups:
            def found():
                req = ipb.LocalSearchRequest(magu=MAGU, fragment=frag, top_k=1)
                req.query.values.extend(vs[7].tolist())
                try:
                    got = b.stub.Search(req, timeout=10)
                except grpc.RpcError:
                    return False
                return got.log_size >= 20 and got.hits and got.hits[0].id == recs[7].id
            assert wait_until(found, timeout=30), f"backup of fragment {frag} does not find the write"
    # every indexer persisted how far it applied the chain (height hash root)
    heights = []
    for d in net.datadirs:
        with open(os.path.join(d, "chain.state")) as f:
            height, hash_, root = f.read().split()
        assert int(height) >= 1 and len(hash_) == 64 and len(root) == 64
        heights.append(int(height))
    # a backup killed and started again resumes from its follow point, keeps
    # its configuration and data, and follows on
    cfg = cfgs[0]
    b = next(net.by_pk(r.pubkey) for r in cfg.replicas if r.pubkey != cfg.primary)
    i = net.indexers.index(b)
    b.server.kill9()
    with open(os.path.join(net.datadirs[i], "chain.state")) as f:
        resumed = int(f.read().split()[0])
    b.restart()
    assert f"from_height={resumed}" in b.server.read_log()

    def moved_on():
        with open(os.path.join(net.datadirs[i], "chain.state")) as f:
            return int(f.read().split()[0]) > resumed
    assert wait_until(moved_on, timeout=30)
    req = ipb.LocalSearchRequest(magu=MAGU, fragment=0, top_k=1)
    req.query.values.extend(vec(20, seed=1)[7].tolist())
    got = b.stub.Search(req, timeout=10, wait_for_ready=True)
    assert got.log_size >= 20 and got.hits[0].id


def test_failover_through_the_ledger(chain):
    """SIGKILL the primary under a QUORUM write load: the backups ask the
    ledger for failover (FailoverRequest transactions), the ledger commits a
    new epoch, the indexers apply it from the feed, writes resume on the new
    primary, and every acknowledged write is there afterwards."""
    import threading
    import time
    net, pb, t = chain, chain.pb, chain.stubs.types_pb2
    ipb = chain.stubs.indexer_pb2
    spec = t.IndexSpec(kind=t.FLAT)
    net.submit(signed_tx(pb, CHAIN, net.owner, fee=1,
                         create_magu=pb.CreateMagu(name=MAGU, dimension=DIM, metric=t.L2, index=spec,
                                                   fragments=1, replication=3, deposit=1000)))
    sch = ipb.FragmentSchema(dimension=DIM, metric=t.L2, index=spec)

    def config():
        return net.lstubs[2].GetFragment(pb.FragmentRequest(magu=MAGU, fragment=0), timeout=10).config

    def created():
        try:
            return config()
        except grpc.RpcError as e:  # replica 2 has not committed the Magu's block yet
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None
    first = wait_until(created, timeout=30)
    assert first, "the Magu was never created"
    acked, lock, stop = [], threading.Lock(), threading.Event()
    killed = net.by_pk(first.primary)

    def load():
        seed = 1000
        cfg = first
        while not stop.is_set():
            ix = net.by_pk(cfg.primary)
            if ix is killed and killed.server.proc.poll() is not None:
                time.sleep(0.1)
                cfg = config()
                continue
            seed += 1
            recs = records(ipb, vec(1, seed))
            try:
                r = write(ix, MAGU, 0, cfg.epoch, recs, sch, t.QUORUM, timeout_ms=2000)
                if r.level_achieved >= t.QUORUM:
                    with lock:
                        acked.append((recs[0].id, cfg.epoch))
            except grpc.RpcError:
                time.sleep(0.05)
                try:
                    cfg = config()
                except grpc.RpcError:
                    pass
    th = threading.Thread(target=load)
    th.start()
    try:
        assert wait_until(lambda: len(acked) >= 20, timeout=60), "no QUORUM writes before the kill"
        killed.server.kill9()
        with lock:
            before = len(acked)
        # the ledger moves the fragment to a new epoch with a live primary
        new = wait_until(lambda: (lambda c: c if c.epoch > first.epoch else None)(config()), timeout=90)
        assert new, "the ledger did not fail the fragment over"
        assert new.primary != first.primary
        assert wait_until(lambda: sum(1 for _, e in acked if e >= new.epoch) >= 10, timeout=60), \
            "writes did not resume on the new primary"
    finally:
        stop.set()
        th.join(timeout=30)
    assert before >= 20
    cur = config()
    primary = net.by_pk(cur.primary)
    ids = [i for i, _ in acked]
    got = primary.stub.Get(ipb.LocalGetRequest(magu=MAGU, fragment=0, ids=ids), timeout=30)
    have = {h.id for h in got.hits}
    missing = [i for i in ids if i not in have]
    assert not missing, f"{len(missing)} of {len(ids)} acknowledged writes lost after the failover"
    print(f"{len(ids)} acknowledged writes, {before} before the kill; epoch {first.epoch} -> {cur.epoch}")


def magu_written_at_all(net, n, seed):
    """Creates a one-fragment Magu replicated 3 ways by transaction and
    writes n records at ALL to the primary the ledger named; returns its
    configuration and primary once the write is acknowledged."""
    pb, t, ipb = net.pb, net.stubs.types_pb2, net.stubs.indexer_pb2
    spec = t.IndexSpec(kind=t.FLAT)
    net.submit(signed_tx(pb, CHAIN, net.owner, fee=1,
                         create_magu=pb.CreateMagu(name=MAGU, dimension=DIM, metric=t.L2, index=spec,
                                                   fragments=1, replication=3, deposit=1000)))
    sch = ipb.FragmentSchema(dimension=DIM, metric=t.L2, index=spec)
    cfg = fragment_configs(net)[0]
    primary = net.by_pk(cfg.primary)
    recs = records(ipb, vec(n, seed=seed))

    def acked():
        try:
            return write(primary, MAGU, 0, cfg.epoch, recs, sch, t.ALL)
        except grpc.RpcError:
            return None
    r = wait_until(acked, timeout=60)
    assert r and r.level_achieved == t.ALL and r.log_size == n
    return cfg, primary


def committed_at(net, size):
    """The fragment once the ledger committed a root at size (None if it did not in time)."""
    return wait_until(lambda: (lambda f: f if f.committed_size == size else None)(
        net.lstubs[0].GetFragment(net.pb.FragmentRequest(magu=MAGU, fragment=0), timeout=10)), timeout=60)


@pytest.fixture
def chain_challenges(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path, params={"challenge_interval": 5, "challenges_per_round": 64,
                                                         "challenge_deadline": 20},
                 ix_args=("--root-every", "16", "--root-interval-ms", "200"))
    yield n
    n.close()


def test_roots_committed_and_challenges_passed(chain_challenges):
    """The replicas sign their roots at multiples of root_every and submit
    CommitRoot; the ledger commits the root, challenges the signers, and
    the answers (leaves, inclusion proofs, tags) pass on chain."""
    net, pb = chain_challenges, chain_challenges.pb
    ipb = net.stubs.indexer_pb2
    cfg, primary = magu_written_at_all(net, 40, seed=5)
    # the root at 32 (the largest multiple of 16) is committed by a majority's votes
    frag = committed_at(net, 32)
    assert frag, "no root committed"
    got = primary.stub.GetRoot(ipb.RootRequest(magu=MAGU, fragment=0, size=32), timeout=10)
    assert got.root == frag.committed_root

    def passed():
        out = []
        for ix in net.indexers:
            res = net.lstubs[0].GetChallenges(pb.ChallengesRequest(indexer=ix.pubkey, max=1000), timeout=10)
            out += list(res.challenges)
        return [c for c in out if c.state == pb.CHALLENGE_PASSED] or None
    ok = wait_until(passed, timeout=90)
    assert ok, "no challenge passed"
    assert all(c.magu == MAGU and c.size == 32 for c in ok)
    res = [c for ix in net.indexers for c in net.lstubs[0].GetChallenges(
        pb.ChallengesRequest(indexer=ix.pubkey, max=1000), timeout=10).challenges]
    assert not [c for c in res if c.state == pb.CHALLENGE_FAILED], "a challenge failed"


@pytest.fixture
def chain_named_roots(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path, ix_args=("--root-every", "1000000", "--root-ms", "300",
                                                   "--root-interval-ms", "200"))
    yield n
    n.close()


def test_roots_at_sizes_the_primary_names(chain_named_roots):
    """With root_ms the primary names its log size for roots once the log
    has grown and root_ms passed; the backups learn the named size from its
    appends, so all replicas sign the same size (37 here, no multiple of
    root_every) and the ledger commits it."""
    net = chain_named_roots
    ipb = net.stubs.indexer_pb2
    cfg, _ = magu_written_at_all(net, 37, seed=9)
    frag = committed_at(net, 37)
    assert frag, "the named size was not committed"
    for x in cfg.replicas:
        got = net.by_pk(x.pubkey).stub.GetRoot(ipb.RootRequest(magu=MAGU, fragment=0, size=37), timeout=10)
        assert got.root == frag.committed_root and got.epoch == cfg.epoch and got.chain_id == CHAIN
