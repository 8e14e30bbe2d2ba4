"""A split whose halves are placed on an indexer that does not hold the
parent (issue 16): 4 ledger replicas and 5 indexers started from a genesis,
one Magu of 2 fragments with 3 replicas each, so its 5 seats hold more than
a fragment's replicas and the halves of fragment 0 (fragments 2 and 3) land
on seats fragment 0 is not on. Such a half's replica fetches the parent's
frozen log from the parent's replicas with FetchLog (one record a page
here, so the fetch takes a while), and the parent replica it reads first is
SIGKILLed once the fetch started: the fetcher moves on to the next replica,
starts over, and derives only once the fetched log has the frozen root. Its
half's root equals the one the replicas holding the parent derived, both
halves go live, the parent retires, and the fetching replica's searches and
gets answer every acknowledged id of its cell, and only those. A node that
is no replica of a half is still refused FetchLog of the parent."""
import os
import re
import uuid

import grpc
import pytest

from chain_util import CHAIN, ChainNet, DIM, MAGU, fragment_configs, vec
from ledger_util import signed_tx
from muri_util import wait_until
from conftest import CHANNEL_OPTIONS
from read_auth import keys_of, signed
from tls_util import TestCA
from test_indexer import records, write
from test_split import split_bit

PARENT = 0
HALVES = (2, 3)   # a Magu of 2 fragments: 0's halves take the next numbers


@pytest.fixture(params=["plaintext", "mtls"])
def net5(request, servers, stubs, tmp_path):
    # mtls: every service serves mutual TLS with a certificate bound to its
    # node key; the fetch's calls present the fetcher's (tls_util.TestCA)
    pki = TestCA(tmp_path / "pki") if request.param == "mtls" else None
    n = ChainNet(servers, stubs, tmp_path, n_indexers=5, pki=pki,
                 ix_args=("--root-every", "4", "--root-interval-ms", "200", "--drop-ms", "0",
                          "--split-fetch-page", "1", "--split-fetch-timeout-ms", "1000",
                          "--split-fetch-retries", "1"))
    yield n
    n.close()


def base0_ids(n):
    """ids of cell base 0 among 2 fragments: the first 8 bytes, big-endian, even."""
    out = []
    while len(out) < n:
        u = uuid.UUID(bytes=os.urandom(16), version=4)
        if u.bytes[7] % 2 == 0:
            out.append(str(u))
    return out


def frag(net, f):
    return net.lstubs[0].GetFragment(net.pb.FragmentRequest(magu=MAGU, fragment=f), timeout=10)


def write_acked(net, ipb, sch, t, recs):
    def go():
        c = frag(net, PARENT).config
        try:
            r = write(net.by_pk(c.primary), MAGU, PARENT, c.epoch, recs, sch, t.QUORUM, timeout_ms=3000)
            return r if r.level_achieved >= t.QUORUM else None
        except grpc.RpcError:
            return None
    assert wait_until(go, timeout=60), "a QUORUM write of the parent was never acknowledged"


def test_half_without_the_parent_fetches_it(net5):
    net, pb, t = net5, net5.pb, net5.stubs.types_pb2
    ipb = net.stubs.indexer_pb2
    spec = t.IndexSpec(kind=t.FLAT)
    net.submit(signed_tx(pb, CHAIN, net.owner, fee=1,
                         create_magu=pb.CreateMagu(name=MAGU, dimension=DIM, metric=t.L2, index=spec,
                                                   fragments=2, replication=3, deposit=1000)))
    sch = ipb.FragmentSchema(dimension=DIM, metric=t.L2, index=spec)
    assert len(fragment_configs(net)) == 2  # replica 0 committed the Magu
    acked = []
    for b in range(6):
        ids = base0_ids(100)
        write_acked(net, ipb, sch, t, records(ipb, vec(100, 700 + b), ids=ids))
        acked += ids
    assert wait_until(lambda: frag(net, PARENT).committed_size >= len(acked), timeout=60), frag(net, PARENT)

    parent_cfg = frag(net, PARENT).config
    holders = {r.pubkey for r in parent_cfg.replicas}
    r = net.lstubs[1].SubmitTransaction(pb.SubmitRequest(
        tx=signed_tx(pb, CHAIN, net.owner, fee=1, split_fragment=pb.SplitFragment(magu=MAGU, fragment=PARENT)),
        wait_commit=True, timeout_ms=20000), timeout=30)
    assert r.state == pb.TX_COMMITTED, r.message

    def halves():
        m = net.lstubs[0].GetMagu(pb.MaguRequest(name=MAGU), timeout=10)
        cs = {c.fragment: c for c in m.configs}
        return cs if all(h in cs for h in HALVES) else None
    cs = wait_until(halves, timeout=60)
    assert cs, net.lstubs[0].GetMagu(pb.MaguRequest(name=MAGU), timeout=10)
    remote = [(h, rep.pubkey) for h in HALVES for rep in cs[h].replicas if rep.pubkey not in holders]
    if not remote:
        pytest.skip("the beacon placed every half's replica on the parent's (1 run in about 100)")
    h, fetcher_pk = remote[0]
    fetcher = net.by_pk(fetcher_pk)
    assert frag(net, PARENT).committed_size >= len(acked)

    # a half's replica may FetchLog the parent; a node that is no replica of
    # a half (nor of the parent) is refused
    outsiders = [ix for ix in net.indexers
                 if ix.pubkey not in holders and all(ix.pubkey not in {r.pubkey for r in cs[x].replicas}
                                                     for x in HALVES)]
    holder = net.by_pk(parent_cfg.replicas[0].pubkey)

    def fetch_as(ix):
        req = signed(ipb.FetchLogRequest(magu=MAGU, fragment=PARENT, from_seq=0, max_records=10), "FetchLog",
                     CHAIN, keys_of(ix.key_path))
        if not net.pki:
            return holder.stub.FetchLog(req, timeout=10)
        # over mutual TLS the caller's certificate must be bound to its node key too
        i = net.indexers.index(ix)
        ch = grpc.secure_channel(holder.server.target, net.pki.credentials(net.pki.issue(f"as-ix{i}",
                                                                                       net.ixacc[i].seed)),
                                 options=CHANNEL_OPTIONS)
        try:
            return net.stubs.indexer_pb2_grpc.IndexerStub(ch).FetchLog(req, timeout=10)
        finally:
            ch.close()

    def fetcher_may():
        try:
            return len(fetch_as(fetcher).records) == 10
        except grpc.RpcError:
            return False  # the holder may not have applied the block with the halves yet
    assert wait_until(fetcher_may, timeout=30)
    for o in outsiders:
        with pytest.raises(grpc.RpcError) as ei:
            fetch_as(o)
        assert ei.value.code() == grpc.StatusCode.PERMISSION_DENIED, ei.value.details()
        assert "or of one of its split halves" in ei.value.details(), ei.value.details()

    # the fetch starts at one parent replica; SIGKILL it while the fetch runs
    pat = re.compile(rf"event=split_fetch magu={MAGU} fragment={h} parent={PARENT} .*first=(\S+)")
    got = wait_until(lambda: pat.search(fetcher.server.read_log()), timeout=60)
    assert got, fetcher.server.read_log()[-3000:]
    first_addr = got.group(1)
    victim = net.indexers[net.ixaddrs.index(first_addr)]
    assert victim.pubkey in holders and victim is not fetcher
    victim.server.kill9()

    def live():
        m = net.lstubs[0].GetMagu(pb.MaguRequest(name=MAGU), timeout=10)
        cs = {c.fragment: c for c in m.configs}
        return cs if all(cs[x].live for x in HALVES) and cs[PARENT].phase == t.FRAGMENT_PHASE_RETIRED else None
    cs = wait_until(live, timeout=120)
    assert cs, fetcher.server.read_log()[-4000:]
    # the fetcher derived by fetching (a half goes live on a majority: it may finish later)
    done = re.compile(rf"event=split_fetched magu={MAGU} fragment={h} parent={PARENT} ")
    assert wait_until(lambda: done.search(fetcher.server.read_log()), timeout=120), fetcher.server.read_log()[-4000:]
    log = fetcher.server.read_log()
    if not re.search(rf"event=split_derived magu={MAGU} fragment={h} .*from=fetched", log):
        raise AssertionError(log[-4000:])
    assert re.search(rf"event=split_fetch_failed magu={MAGU} fragment={h} parent={PARENT} peer={first_addr}",
                     log), "the kill did not fall in the fetch:\n" + log[-4000:]

    # its root equals the one derived by the replicas holding the parent
    b = HALVES.index(h)
    mine = sorted(i for i in acked if split_bit(i) == b)
    derived = len(mine)
    roots = {}
    for rep in cs[h].replicas:
        if rep.pubkey == victim.pubkey:
            continue
        ix = net.by_pk(rep.pubkey)

        def root_at(ix=ix):  # a replica vouches for a size once its epoch cannot truncate it
            try:
                return ix.stub.GetRoot(ipb.RootRequest(magu=MAGU, fragment=h, size=derived), timeout=10)
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e.details()
                return None
        got = wait_until(root_at, timeout=60)
        assert got, f"{rep.address} never answered the root at {derived}"
        roots[rep.pubkey] = got.root
    assert fetcher_pk in roots and len(roots) >= 2 and len(set(roots.values())) == 1, roots

    # the fetching replica answers every acknowledged id of its cell
    got = fetcher.stub.Get(ipb.LocalGetRequest(magu=MAGU, fragment=h, ids=acked), timeout=10)
    assert sorted(x.id for x in got.hits) == mine
    q = ipb.LocalSearchRequest(magu=MAGU, fragment=h, top_k=1000)
    q.query.values.extend(vec(1, 1)[0].tolist())
    res = fetcher.stub.Search(q, timeout=30)
    assert sorted(x.id for x in res.hits) == mine
