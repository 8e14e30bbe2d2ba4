"""Node identities over mutual TLS (common/cm_tls_id.h): 4 ledger replicas
and 4 indexers, each with a certificate from one test CA that is bound to its
node key. A node whose certificate is just as valid (same CA, bound to its
own key) but which holds no role on chain cannot replicate to, read the log
or proofs of, write to or search a fragment, nor take part in the ledgers'
consensus: PERMISSION_DENIED naming its key and the role it lacks. A
certificate that names no node key, or names a member's key but was made
for another TLS key, and a call with no certificate: UNAUTHENTICATED saying
which. A backup the ledger removes from the fragment is cut off from its
peers' log and proofs once they apply that block. A TLS key file readable
by others is refused at start."""
import os
import subprocess

import grpc
import pytest

from chain_util import CHAIN, ChainNet, vec
from conftest import BUILD, CHANNEL_OPTIONS
from ledger_util import Account
from muri_util import wait_until
from read_auth import keys_of, refused, signed
from test_indexer import records  # noqa: F401
from test_membership import MAGU, config, create_magu, first_config, write_until_acked
from tls_util import TestCA, node_uri


@pytest.fixture
def net4(servers, stubs, tmp_path):
    pki = TestCA(tmp_path / "pki")
    n = ChainNet(servers, stubs, tmp_path, n_indexers=4, ix_args=("--drop-ms", "3000"), pki=pki)
    yield n
    n.close()


class Caller:
    """Stubs to one indexer and one ledger over mutual TLS with a given
    certificate (or none), signing reads with keys."""

    def __init__(self, net, ix, cert, keys):
        creds = net.pki.credentials(cert)
        self.ch = grpc.secure_channel(ix.server.target, creds, options=CHANNEL_OPTIONS)
        self.ix = net.stubs.indexer_pb2_grpc.IndexerStub(self.ch)
        self.lch = grpc.secure_channel(net.addrs[0], creds)
        self.keys, self.pb = keys, net.stubs.indexer_pb2

    def fetch(self):
        return self.ix.FetchLog(signed(self.pb.FetchLogRequest(magu=MAGU, fragment=0, from_seq=0, max_records=100),
                                       "FetchLog", CHAIN, self.keys), timeout=10)

    def inclusion(self):
        return self.ix.InclusionProof(signed(self.pb.InclusionProofRequest(magu=MAGU, fragment=0, index=7, size=40),
                                             "InclusionProof", CHAIN, self.keys), timeout=10)

    def replicate(self, epoch):
        return self.ix.Replicate(self.pb.ReplicateRequest(magu=MAGU, fragment=0, epoch=epoch, prev_size=40,
                                                          sender=self.keys[0]), timeout=10)

    def write(self, epoch):
        return self.ix.Write(self.pb.FragmentWriteRequest(magu=MAGU, fragment=0, epoch=epoch), timeout=10)

    def search(self):
        t = self.ix_types
        return self.ix.Search(self.pb.LocalSearchRequest(magu=MAGU, fragment=0, top_k=1,
                                                         query=t.Vector(values=[0.0] * 8)), timeout=10)

    def scroll(self):
        return self.ix.Scroll(self.pb.LocalScrollRequest(magu=MAGU, fragment=0, limit=10), timeout=10)

    def deliver(self):
        return self.lch.unary_unary("/muri.v1.Consensus/Deliver", request_serializer=lambda x: x,
                                    response_deserializer=lambda x: x)(b"", timeout=10)

    def close(self):
        self.ch.close()
        self.lch.close()


def test_only_chain_roles_get_in(net4, tmp_path):
    net, t = net4, net4.stubs.types_pb2
    ipb = net.stubs.indexer_pb2
    sch = create_magu(net)
    first = first_config(net)
    members = {r.pubkey for r in first.replicas}
    r = write_until_acked(net, first, records(ipb, vec(40, seed=3)), sch, t.ALL)
    assert r.log_size == 40
    primary = net.by_pk(first.primary)
    backup = next(net.by_pk(p) for p in members if p != first.primary)
    spare = next(ix for ix in net.indexers if ix.pubkey not in members)
    seed_of = {ix.pubkey: bytes.fromhex(open(ix.key_path).read().split()[1]) for ix in net.indexers}
    stranger = Account()

    def caller(name, seed=None, keys=None, cert=True, uri=None):
        c = Caller(net, primary, net.pki.issue(name, seed, uri=uri) if cert else None,
                   keys or (keys_of_seed(seed) if seed else (stranger.pk, stranger.sk)))
        c.ix_types = t
        return c

    def keys_of_seed(seed):
        from sodium_keys import keypair_from_seed
        return keypair_from_seed(seed)

    # a member over its own certificate reads the log and proofs
    b = caller("backup", seed_of[backup.pubkey])
    got = b.fetch()
    assert got.log_size == 40 and got.epoch == first.epoch
    assert b.inclusion().leaf

    # an indexer with a valid certificate (the same CA, bound to its own key)
    # and no role on chain: refused everything a member may do, naming why
    s = caller("stranger", stranger.seed)
    hexpk = stranger.pk.hex()[:16]
    for call in (s.fetch, s.inclusion, lambda: s.replicate(first.epoch), lambda: s.write(first.epoch), s.scroll, s.search):
        d = refused(call, grpc.StatusCode.PERMISSION_DENIED, "tls:", hexpk, f"replica of {MAGU}/0")
    assert "in epoch" in d
    refused(s.deliver, grpc.StatusCode.PERMISSION_DENIED, "tls:", hexpk, "not a ledger replica")
    # a registered, staked indexer that is not a replica of this fragment
    sp = caller("spare", seed_of[spare.pubkey])
    refused(lambda: sp.replicate(first.epoch), grpc.StatusCode.PERMISSION_DENIED, "tls:", spare.pubkey.hex()[:16])
    refused(sp.fetch, grpc.StatusCode.PERMISSION_DENIED, "tls:")
    # it cannot sign as a member either: its TLS identity is checked first
    sp.keys = keys_of_seed(seed_of[backup.pubkey])
    refused(sp.fetch, grpc.StatusCode.PERMISSION_DENIED, "tls:", spare.pubkey.hex()[:16])

    # a certificate of the CA that names no node key; one that copies a
    # member's URI onto another TLS key; no certificate at all
    n = caller("nameless", keys=keys_of_seed(seed_of[backup.pubkey]))
    refused(n.fetch, grpc.StatusCode.UNAUTHENTICATED, "tls:", "names no node key")
    member_crt, member_key = net.pki.issue("backup-2", seed_of[backup.pubkey])
    copied = caller("copycat", keys=keys_of_seed(seed_of[backup.pubkey]),
                    uri=node_uri(seed_of[backup.pubkey], member_key))
    refused(copied.fetch, grpc.StatusCode.UNAUTHENTICATED, "tls:", "another TLS key")
    refused(lambda: copied.replicate(first.epoch), grpc.StatusCode.UNAUTHENTICATED, "another TLS key")
    anon = caller("anon", keys=keys_of_seed(seed_of[backup.pubkey]), cert=False)
    refused(anon.fetch, grpc.StatusCode.UNAUTHENTICATED, "tls:", "presented no TLS certificate")
    refused(anon.deliver, grpc.StatusCode.UNAUTHENTICATED, "tls:")
    # public calls need no certificate
    assert anon.ix.Status(t.StatusRequest(), timeout=10).service == "indexer"

    # the backup dies and the ledger gives its seat to the spare: once the
    # primary applies that block, the backup's certificate is refused and the spare's answered
    backup.server.kill9()

    def replaced():
        c = config(net)
        return c if c.epoch > first.epoch and backup.pubkey not in {x.pubkey for x in c.replicas} else None
    new = wait_until(replaced, timeout=60)
    assert new, "the dead backup was not replaced"
    sp.keys = keys_of_seed(seed_of[spare.pubkey])

    def spare_answered():
        try:
            return sp.fetch().epoch == new.epoch
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()
            return False
    assert wait_until(spare_answered, timeout=30), "the primary did not apply the block"
    refused(b.fetch, grpc.StatusCode.PERMISSION_DENIED, "tls:", backup.pubkey.hex()[:16],
            f"replica of {MAGU}/0 in epoch {new.epoch}")
    refused(lambda: b.replicate(new.epoch), grpc.StatusCode.PERMISSION_DENIED, "tls:")
    for c in (b, s, sp, n, copied, anon):
        c.close()


def test_key_files_readable_by_others_are_refused(tmp_path):
    pki = TestCA(tmp_path / "pki")
    crt, key = pki.issue("node")
    os.chmod(key, 0o644)
    exe = os.path.join(BUILD, "services/indexer/muri-indexer")
    r = subprocess.run([exe, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir", str(tmp_path / "d"),
                        "--key-file", str(tmp_path / "node.key"), "--tls-cert", crt, "--tls-key", key,
                        "--tls-ca", pki.ca], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, r.stderr
    assert "tls_key" in r.stderr and "chmod 600" in r.stderr and "644" in r.stderr, r.stderr
    os.chmod(key, 0o600)
    # the node key file too
    nk = tmp_path / "node.key"
    assert nk.exists() and (nk.stat().st_mode & 0o777) == 0o600  # created 0600 by the run above
    os.chmod(nk, 0o640)
    r = subprocess.run([exe, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir", str(tmp_path / "d"),
                        "--key-file", str(nk)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "chmod 600" in r.stdout + r.stderr, r.stdout + r.stderr
