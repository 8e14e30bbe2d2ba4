"""deploy/docker-compose.yml on the real Docker engine: built without a
registry, started, scraped, a Magu written and searched through the
indexers' own API, an indexer primary and the ledger's leader killed, an
indexer partitioned and reconnected, the whole network taken down and up
again. The tests run in order on one network (module scope)."""
import json
import time
import urllib.request
import uuid

import grpc
import numpy as np
import pytest

from conftest import INDEXERS, LEDGERS, run
from ledger_util import Account, signed_tx

MAGU = "deploy"
DIM = 8


def wait_until(fn, timeout, step=0.5):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = fn()
        except grpc.RpcError:
            v = None
        if v:
            return v
        time.sleep(step)
    return None


class Net:
    """What the tests know about the running network."""

    def __init__(self, c, stubs):
        self.c, self.s = c, stubs
        self.pb, self.ipb, self.t = stubs.ledger_pb2, stubs.indexer_pb2, stubs.types_pb2
        genesis = c.file("/net/genesis.txt").decode()
        self.chain = next(ln.split("=", 1)[1].strip() for ln in genesis.splitlines() if ln.startswith("chain_id"))
        self.user = Account(bytes.fromhex(c.file("/net/keys/user.key").decode().split()[1]))
        self.pk = {n: self.key_pk(n) for n in INDEXERS}
        self.down = set()

    def key_pk(self, node):
        return Account(bytes.fromhex(self.c.file(f"/net/keys/{node}.key").decode().split()[1])).pk

    def by_pk(self, pk):
        return next(n for n, k in self.pk.items() if k == pk)

    def ledger(self, n):
        return self.s.ledger_pb2_grpc.LedgerStub(self.c.channel(n))

    def indexer(self, n):
        return self.s.indexer_pb2_grpc.IndexerStub(self.c.channel(n))

    def up_ledgers(self):
        return [n for n in LEDGERS if n not in self.down]

    def status(self, n):
        stub = self.ledger(n) if n.startswith("ledger") else self.indexer(n)
        return stub.Status(self.t.StatusRequest(), timeout=10)

    def height(self, n):
        return int(dict(self.status(n).details)["height"])

    def submit(self, **payload):
        """A transaction of the user account, committed (through a live ledger)."""
        stx = signed_tx(self.pb, self.chain, self.user, fee=1, **payload)
        last = None
        for n in self.up_ledgers():
            try:
                r = self.ledger(n).SubmitTransaction(self.pb.SubmitRequest(tx=stx, wait_commit=True,
                                                                           timeout_ms=30000), timeout=40)
                assert r.state == self.pb.TX_COMMITTED, r.message
                return r
            except grpc.RpcError as e:
                last = e
        raise AssertionError(f"no live ledger committed the transaction: {last}")

    def transfer(self):
        return self.submit(transfer=self.pb.Transfer(to=self.pk[INDEXERS[0]], amount=1))

    def config(self):
        for n in self.up_ledgers():
            try:
                return self.ledger(n).GetFragment(self.pb.FragmentRequest(magu=MAGU, fragment=0), timeout=10).config
            except grpc.RpcError:
                continue
        raise AssertionError("no ledger answered GetFragment")

    def write(self, node, cfg, n, seed, timeout_ms=5000):
        vs = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
        recs = []
        for v in vs:
            r = self.ipb.LogRecord(op=self.ipb.OP_INSERT, id=str(uuid.uuid4()), version=1)
            r.vector.values.extend(v.tolist())
            recs.append(r)
        req = self.ipb.FragmentWriteRequest(magu=MAGU, fragment=0, epoch=cfg.epoch, records=recs,
                                            schema=self.schema, consistency_level=self.t.QUORUM,
                                            timeout_ms=timeout_ms)
        r = self.indexer(node).Write(req, timeout=timeout_ms / 1000 + 10)
        assert r.level_achieved >= self.t.QUORUM
        return [x.id for x in recs], vs

    def write_retrying(self, n, seed, timeout=120):
        """A QUORUM write to the primary the ledger names now, retried while
        the fragment fails over or the primary has no lease yet."""
        got = {}

        def attempt():
            cfg = self.config()
            try:
                got["ids"], got["vs"] = self.write(self.by_pk(cfg.primary), cfg, n, seed)
                got["cfg"] = cfg
                return True
            except grpc.RpcError as e:
                if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION,
                                grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                    return False
                raise
        assert wait_until(attempt, timeout, step=1), f"no QUORUM write accepted within {timeout} s"
        return got["ids"], got["vs"], got["cfg"]

    def search(self, node, q):
        req = self.ipb.LocalSearchRequest(magu=MAGU, fragment=0, top_k=1)
        req.query.values.extend(q.tolist())
        return self.indexer(node).Search(req, timeout=10)

    def root(self, node):
        return self.indexer(node).GetRoot(self.ipb.RootRequest(magu=MAGU, fragment=0), timeout=10)


@pytest.fixture(scope="module")
def n(net, stubs):
    return Net(net, stubs)


def metrics_targets(c):
    url = f"http://127.0.0.1:{c.prometheus_port}/api/v1/targets"
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["data"]["activeTargets"]


def test_prometheus_scraped_every_target(net):
    want = {f"{x}:9100" for x in LEDGERS + INDEXERS + ["gateway"]}

    def all_up():
        ts = metrics_targets(net)
        up = {t["labels"]["instance"] for t in ts if t["health"] == "up" and t["lastScrape"][:4] != "0001"}
        return up if up >= want else None
    assert wait_until(all_up, 90, step=2), f"targets: {[(t['labels']['instance'], t['health'], t['lastError']) for t in metrics_targets(net)]}"
    # the ledgers' own figures arrive through Prometheus
    q = urllib.parse.quote("muri_ledger_height")
    with urllib.request.urlopen(f"http://127.0.0.1:{net.prometheus_port}/api/v1/query?query={q}", timeout=10) as r:
        res = json.load(r)["data"]["result"]
    assert sorted(x["metric"]["instance"] for x in res) == sorted(f"{x}:9100" for x in LEDGERS)


def test_status_and_commits(n):
    for x in LEDGERS + INDEXERS:
        st = n.status(x)
        assert st.service == ("ledger" if x.startswith("ledger") else "indexer"), x
    h0 = n.height(LEDGERS[0])
    r = n.transfer()
    assert r.height > h0
    assert wait_until(lambda: all(n.height(x) >= r.height for x in LEDGERS), 30)


def test_magu_written_and_searched_on_every_replica(n):
    spec = n.t.IndexSpec(kind=n.t.FLAT)
    n.schema = n.ipb.FragmentSchema(dimension=DIM, metric=n.t.L2, index=spec)
    n.submit(create_magu=n.pb.CreateMagu(name=MAGU, dimension=DIM, metric=n.t.L2, index=spec, fragments=1,
                                         replication=3, deposit=1000))
    ids, vs, cfg = n.write_retrying(50, seed=1)
    assert len(cfg.replicas) == 3
    n.acked = list(ids)
    for x in INDEXERS:
        def found(x=x):
            r = n.search(x, vs[7])
            return r.hits and r.hits[0].id == ids[7]
        assert wait_until(found, 30), f"{x} does not find row 7"


def test_kill_primary_indexer_and_ledger_leader(n, net):
    cfg = n.config()
    primary = n.by_pk(cfg.primary)
    view = int(dict(n.status(LEDGERS[0]).details)["view"])
    leader = LEDGERS[view % len(LEDGERS)]
    h0 = max(n.height(x) for x in LEDGERS)
    run(["docker", "kill", net.container(primary)])
    run(["docker", "kill", net.container(leader)])
    n.down = {leader}
    try:
        # the chain goes on: a transfer commits, the height grows, the other
        # replicas answer Status
        r = n.transfer()
        assert r.height > h0
        for x in n.up_ledgers():
            assert wait_until(lambda x=x: n.height(x) >= r.height, 30), x
        # the ledger fails the fragment over; QUORUM writes resume on the new primary
        new = wait_until(lambda: (lambda c: c if c.epoch > cfg.epoch else None)(n.config()), 120, step=1)
        assert new, "the ledger did not fail the fragment over"
        assert new.primary != cfg.primary
        ids, vs, got = n.write_retrying(20, seed=2)
        assert got.epoch >= new.epoch
        n.acked += ids
        for x in INDEXERS:
            if x != primary:
                assert wait_until(lambda x=x: n.search(x, vs[3]).hits[0].id == ids[3], 30), x
    finally:
        run(["docker", "start", net.container(primary), net.container(leader)])
        n.down = set()
    net.wait_healthy([primary, leader])
    # both catch up: the ledger to the others' height, the indexer to the log
    h = n.transfer().height
    assert wait_until(lambda: n.height(leader) >= h, 60), "the restarted ledger did not catch up"
    want = n.root(n.by_pk(n.config().primary))
    assert wait_until(lambda: n.root(primary).size >= want.size, 90), "the restarted indexer did not catch up"


def test_partitioned_indexer_catches_up_to_the_same_root(n, net):
    cfg = n.config()
    backup = next(n.by_pk(r.pubkey) for r in cfg.replicas if r.pubkey != cfg.primary)
    before = n.root(backup).size
    run(["docker", "network", "disconnect", net.network, net.container(backup)])
    try:
        # two of three replicas: QUORUM writes still go through
        ids, vs, _ = n.write_retrying(30, seed=3)
        n.acked += ids
        primary = n.by_pk(n.config().primary)
        size = n.root(primary).size
        assert size >= before + 30
    finally:
        run(["docker", "network", "connect", "--alias", backup, net.network, net.container(backup)])

    def same_root():
        p = n.by_pk(n.config().primary)
        a, b = n.root(p), n.root(backup)
        return a.size >= size and a.size == b.size and a.root == b.root
    assert wait_until(same_root, 120, step=1), "the reconnected backup did not reach the primary's root"
    assert n.search(backup, vs[5]).hits[0].id == ids[5]


def test_down_and_up_keeps_the_data(n, net):
    h = max(n.height(x) for x in LEDGERS)
    cfg = n.config()
    size = n.root(n.by_pk(cfg.primary)).size
    for c in list(net.channels.values()):
        c.close()
    net.channels.clear()
    net("down", "-t", "10")
    net("up", "-d")
    net.wait_healthy(LEDGERS + INDEXERS + ["gateway"])
    # the chain does not go back and goes on
    assert all(n.height(x) >= h for x in LEDGERS)
    r = n.transfer()
    assert r.height > h
    # the Magu and every acknowledged record are still there
    cfg2 = n.config()
    assert cfg2.epoch >= cfg.epoch
    p = n.by_pk(cfg2.primary)
    assert n.root(p).size >= size
    got = n.indexer(p).Get(n.ipb.LocalGetRequest(magu=MAGU, fragment=0, ids=n.acked), timeout=30)
    assert {x.id for x in got.hits} == set(n.acked)
