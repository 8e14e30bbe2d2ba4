"""Roles follow the chain, block by block, over mutual TLS
(common/cm_tls_id.h; services/indexer/ix_read_auth.c): 4 ledger replicas,
4 indexers and a gateway, each with a certificate of one test CA bound to
its node key.

- A backup of a fragment that signed two roots for the same size in the
  same epoch is slashed and jailed by ReportDoubleRoot evidence, and the
  ledger gives its seat to the spare. Before, it reads its primary's log,
  proofs and pages; once the primary applies that block, the same
  connection's Replicate, FetchLog, InclusionProof, Scroll and Search are
  PERMISSION_DENIED naming its key, the fragment and the epoch. It still
  holds the data and signs answers, but the gateway no longer takes them as
  the fragment's: with every replica the chain names stopped, a search
  fails although the slashed node is up.
- An address the chain names for one indexer, served by another node with
  a certificate of the same CA bound to its own key: the gateway refuses
  its answers ("tls: the server at ADDR is not node KEY: it is node
  OTHER"), so a search at ALL fails saying so, and one at QUORUM succeeds
  from the other replicas."""
import grpc
import pytest

from chain_util import CHAIN, ChainNet, vec
from conftest import CHANNEL_OPTIONS
from gateway_util import Gateway
from ledger_util import Account, signed_tx
from muri_util import DOM_ROOT, h, wait_until
from read_auth import refused, signed
from sodium_keys import keypair_from_seed, sign, write_key_file
from test_indexer import records
from test_membership import MAGU, config, create_magu, first_config, write_until_acked
from tls_util import TestCA

INDEXER = "services/indexer/muri-indexer"


def gateway_for(servers, stubs, net, tmp_path):
    return Gateway(servers, stubs, net, tmp_path, args=net.pki.args("gateway", net.gwacc.seed) +
                   ("--default-timeout-ms", "10000"), credentials=net.pki.credentials())


def start(servers, stubs, tmp_path, n_indexers, ix_args):
    """The network, the Magu (created by the owner) and a funded reporter
    account, then the gateway (which pays with the owner's account, so the
    owner submits nothing after it starts)."""
    n = ChainNet(servers, stubs, tmp_path, n_indexers=n_indexers, ix_args=ix_args, pki=TestCA(tmp_path / "pki"))
    n.sch = create_magu(n)
    n.reporter = Account()
    n.submit(signed_tx(n.pb, CHAIN, n.owner, fee=1, transfer=n.pb.Transfer(to=n.reporter.pk, amount=100_000)))
    n.gw = gateway_for(servers, stubs, n, tmp_path)
    return n


@pytest.fixture
def tls4(servers, stubs, tmp_path):
    n = start(servers, stubs, tmp_path, 4, ("--drop-ms", "3000"))
    yield n
    n.gw.close()
    n.close()


class Peer:
    """One indexer's calls to another over its own certificate (bound to its
    node key), its reads signed by that key."""

    def __init__(self, net, to, name, seed):
        self.ch = grpc.secure_channel(to.server.target, net.pki.credentials(net.pki.issue(name, seed)),
                                      options=CHANNEL_OPTIONS)
        self.ix = net.stubs.indexer_pb2_grpc.IndexerStub(self.ch)
        self.keys, self.pb, self.t = keypair_from_seed(seed), net.stubs.indexer_pb2, net.stubs.types_pb2

    def fetch(self):
        return self.ix.FetchLog(signed(self.pb.FetchLogRequest(magu=MAGU, fragment=0, from_seq=0, max_records=100),
                                       "FetchLog", CHAIN, self.keys), timeout=10)

    def inclusion(self):
        return self.ix.InclusionProof(signed(self.pb.InclusionProofRequest(magu=MAGU, fragment=0, index=7, size=40),
                                             "InclusionProof", CHAIN, self.keys), timeout=10)

    def scroll(self):
        return self.ix.Scroll(self.pb.LocalScrollRequest(magu=MAGU, fragment=0, limit=10), timeout=10)

    def search(self):
        return self.ix.Search(self.pb.LocalSearchRequest(magu=MAGU, fragment=0, top_k=1,
                                                         query=self.t.Vector(values=[0.0] * 8)), timeout=10)

    def replicate(self, epoch):
        return self.ix.Replicate(self.pb.ReplicateRequest(magu=MAGU, fragment=0, epoch=epoch, prev_size=40,
                                                          sender=self.keys[0]), timeout=10)

    def close(self):
        self.ch.close()


def resigned(root, seed, new_root):
    """A copy of SignedRoot root with another root, signed by seed's key."""
    r = type(root)()
    r.CopyFrom(root)
    r.root = new_root
    r.signature = b""
    r.signature = sign(keypair_from_seed(seed)[1], h(DOM_ROOT, r.SerializeToString()))
    return r


def gw_search(net, q, level, timeout=30):
    vpb, t = net.stubs.vectorstore_pb2, net.stubs.types_pb2
    return net.gw.stub.Search(vpb.SearchRequest(collection=MAGU, query_vector=t.Vector(values=q.tolist()), top_k=1,
                                                consistency_level=level), timeout=timeout)


def gw_replicas(net):
    """(epoch, replica keys) of fragment 0 as the gateway routes it; (None, set())
    while the gateway does not know the Magu (UNAVAILABLE while it catches up
    with the ledger, NOT_FOUND until it applies the Magu's block)."""
    try:
        info = net.gw.stub.DescribeCollection(net.stubs.vectorstore_pb2.DescribeCollectionRequest(name=MAGU),
                                              timeout=10)
    except grpc.RpcError as e:
        if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
            return None, set()
        raise
    fs = next(s for s in info.fragment_states if s.fragment == 0)
    return fs.epoch, set(fs.replica_keys)


def test_slashed_backup_is_cut_off_at_the_next_block(tls4):
    net, t = tls4, tls4.stubs.types_pb2
    ipb, lpb = net.stubs.indexer_pb2, net.pb
    sch = net.sch
    first = first_config(net)
    members = {r.pubkey for r in first.replicas}
    vs = vec(40, seed=5)
    recs = records(ipb, vs)
    assert write_until_acked(net, first, recs, sch, t.ALL).log_size == 40
    primary = net.by_pk(first.primary)
    victim = next(net.by_pk(p) for p in members if p != first.primary)
    seed = bytes.fromhex(open(victim.key_path).read().split()[1])
    me = Peer(net, primary, "victim-peer", seed)

    # a member: its primary answers its log, proof, page and search reads
    assert me.fetch().log_size == 40
    assert me.inclusion().leaf
    assert len(me.scroll().hits) == 10
    assert len(me.search().hits) == 1
    assert wait_until(lambda: gw_replicas(net) == (first.epoch, {p.hex() for p in members}), timeout=30)
    got = gw_search(net, vs[7], t.QUORUM)
    assert [x.id for x in got.results] == [recs[7].id]

    # it signs a second root for a size it signed in this epoch: evidence
    # anyone can submit; the ledger slashes and jails it
    mine = victim.stub.GetRoot(ipb.RootRequest(magu=MAGU, fragment=0, size=40), timeout=10)
    assert mine.signer == victim.pubkey and mine.epoch == first.epoch and mine.chain_id == CHAIN
    forged = resigned(mine, seed, bytes(32))
    staked = net.lstubs[1].GetAccount(lpb.AccountRequest(address=victim.pubkey), timeout=10).staked
    r = net.submit(signed_tx(lpb, CHAIN, net.reporter, fee=1,
                             report_double_root=lpb.ReportDoubleRoot(a=mine, b=forged)))
    info = net.lstubs[1].GetIndexer(lpb.IndexerRequest(pubkey=victim.pubkey), timeout=10)
    assert info.jailed, info
    assert net.lstubs[1].GetAccount(lpb.AccountRequest(address=victim.pubkey), timeout=10).staked < staked

    def without_victim():
        c = config(net)
        return c if c.epoch > first.epoch and victim.pubkey not in {x.pubkey for x in c.replicas} else None
    new = wait_until(without_victim, timeout=60)
    assert new, "the jailed backup kept its seat"
    assert new.epoch > first.epoch

    # the primary applies that block: the same channel is refused from then on
    def cut_off():
        try:
            me.fetch()
            return False
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()
            return True
    assert wait_until(cut_off, timeout=30), f"the primary still answers the slashed backup (block {r.height})"
    hexpk = victim.pubkey.hex()[:16]
    for call in (me.fetch, me.inclusion, me.scroll, me.search, lambda: me.replicate(new.epoch)):
        d = refused(call, grpc.StatusCode.PERMISSION_DENIED, "tls:", hexpk, f"replica of {MAGU}/0 in epoch ")
        assert int(d.split(" in epoch ")[1].split()[0].rstrip(",;")) >= new.epoch, d

    # it still holds the fragment and signs answers for it ...
    ans = victim.stub.Search(ipb.LocalSearchRequest(magu=MAGU, fragment=0, top_k=1,
                                                    query=t.Vector(values=vs[7].tolist())), timeout=10)
    assert [x.id for x in ans.hits] == [recs[7].id] and ans.signer == victim.pubkey
    # ... but the gateway routes the fragment to the replicas the chain names now
    new_keys = {x.pubkey.hex() for x in config(net).replicas}
    assert wait_until(lambda: gw_replicas(net)[1] == new_keys, timeout=30), (gw_replicas(net), new_keys)
    assert victim.pubkey.hex() not in new_keys
    for pk in new_keys:
        net.by_pk(bytes.fromhex(pk)).server.kill9()
    with pytest.raises(grpc.RpcError) as e:
        gw_search(net, vs[7], t.ONE, timeout=60)
    assert e.value.code() != grpc.StatusCode.OK
    assert victim.server.target not in e.value.details(), e.value.details()
    me.close()


@pytest.fixture
def tls3(servers, stubs, tmp_path):
    n = start(servers, stubs, tmp_path, 3, ("--drop-ms", "0"))
    yield n
    n.gw.close()
    n.close()


def test_gateway_refuses_another_node_at_an_indexers_address(tls3, servers, tmp_path):
    net, t = tls3, tls3.stubs.types_pb2
    ipb = net.stubs.indexer_pb2
    sch = net.sch
    first = first_config(net)
    vs = vec(30, seed=9)
    recs = records(ipb, vs)
    assert write_until_acked(net, first, recs, sch, t.ALL).log_size == 30
    assert wait_until(lambda: gw_replicas(net)[0] == first.epoch, timeout=30)
    got = gw_search(net, vs[4], t.ALL)
    assert [x.id for x in got.results] == [recs[4].id] and got.metrics.nodes_answered == 3

    # a backup's address is taken over by another node: the same CA signed
    # its certificate, bound to its own node key, not the one the chain names
    backup = next(net.by_pk(r.pubkey) for r in first.replicas if r.pubkey != first.primary)
    addr = backup.server.target
    backup.server.kill9()
    other = Account()
    key = tmp_path / "impostor.key"
    write_key_file(str(key), other.seed)
    servers("impostor", INDEXER, "--key-file", str(key), "--data-dir", str(tmp_path / "impostor-data"),
            "--listen", addr, "--metrics-listen", "", *net.pki.args("impostor", other.seed))

    def refused_at_all():
        try:
            gw_search(net, vs[4], t.ALL)
            return None
        except grpc.RpcError as e:
            return e.details() if "is not node" in e.details() else None
    why = wait_until(refused_at_all, timeout=30)
    assert why, "the gateway took the impostor's answer"
    assert f"tls: the server at {addr} is not node {backup.pubkey.hex()[:16]}" in why, why
    assert f"it is node {other.pk.hex()[:16]}" in why, why
    got = gw_search(net, vs[4], t.QUORUM)
    assert [x.id for x in got.results] == [recs[4].id]
    assert got.metrics.nodes_answered == 2
    assert got.metrics.consistency_level_achieved == t.QUORUM
