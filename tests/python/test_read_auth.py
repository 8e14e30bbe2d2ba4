"""Who may read a fragment's log and proofs, on 4 ledger replicas and 4
indexers started from a genesis that also lists a gateway key: FetchLog
answers the fragment's replicas; InclusionProof, ConsistencyProof and
Challenge also a ledger replica and the genesis gateway; an unregistered
key is refused (PERMISSION_DENIED), an unsigned, stale, replayed or
other-chain request too (UNAUTHENTICATED); a backup removed from the
fragment is refused as soon as the replicas apply the block that removed
it."""
import os
import time

import grpc
import pytest

from chain_util import CHAIN, ChainNet, vec
from ledger_util import Account
from muri_util import wait_until
from read_auth import keys_of, refused, signed
from test_indexer import records  # noqa: F401
from test_membership import MAGU, config, create_magu, first_config, write_until_acked


@pytest.fixture
def net4(servers, stubs, tmp_path):
    n = ChainNet(servers, stubs, tmp_path, n_indexers=4, ix_args=("--drop-ms", "3000"))
    yield n
    n.close()


def test_reads_answer_members_challengers_and_gateways_only(net4):
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
    keys = {"backup": keys_of(backup.key_path), "spare": keys_of(spare.key_path),
            "ledger": (net.replicas[0].pk, net.replicas[0].sk), "gateway": (net.gwacc.pk, net.gwacc.sk),
            "stranger": (lambda a: (a.pk, a.sk))(Account())}

    def fetch(who, **kw):
        return primary.stub.FetchLog(signed(ipb.FetchLogRequest(magu=MAGU, fragment=0, from_seq=0, max_records=100),
                                            "FetchLog", CHAIN, keys[who], **kw), timeout=10)

    def inclusion(who, chain=CHAIN, **kw):
        return primary.stub.InclusionProof(signed(ipb.InclusionProofRequest(magu=MAGU, fragment=0, index=7, size=40),
                                                  "InclusionProof", chain, keys[who], **kw), timeout=10)

    def consistency(who):
        return primary.stub.ConsistencyProof(
            signed(ipb.ConsistencyProofRequest(magu=MAGU, fragment=0, old_size=10, new_size=40),
                   "ConsistencyProof", CHAIN, keys[who]), timeout=10)

    def challenge(who):
        return primary.stub.Challenge(
            signed(ipb.ChallengeRequest(magu=MAGU, fragment=0, beacon=os.urandom(32), size=40, leaf_indices=[3, 9]),
                   "Challenge", CHAIN, keys[who]), timeout=10)

    # a member of the fragment reads the log and the proofs
    got = fetch("backup")
    assert got.log_size == 40 and len(got.records) == 40 and got.epoch == first.epoch
    leaf = inclusion("backup").leaf
    assert leaf
    # a ledger replica (a challenger) and the genesis gateway read proofs, not the log
    for who in ("ledger", "gateway"):
        assert inclusion(who).leaf == leaf, who
        assert consistency(who).new_root, who
        assert len(challenge(who).answers) == 2, who
        refused(lambda: fetch(who), grpc.StatusCode.PERMISSION_DENIED, "auth.requester", f"not a replica of {MAGU}/0")
    # an indexer that is not a replica of the fragment and an unregistered key read nothing
    for who in ("spare", "stranger"):
        for call in (lambda: fetch(who), lambda: inclusion(who), lambda: consistency(who), lambda: challenge(who)):
            refused(call, grpc.StatusCode.PERMISSION_DENIED, "auth.requester")
    details = refused(lambda: inclusion("stranger"), grpc.StatusCode.PERMISSION_DENIED)
    assert "a ledger replica or a genesis gateway" in details
    # unsigned, stale, replayed, or signed for another chain
    refused(lambda: primary.stub.InclusionProof(ipb.InclusionProofRequest(magu=MAGU, fragment=0, index=7, size=40),
                                                timeout=10), grpc.StatusCode.UNAUTHENTICATED, "auth:")
    refused(lambda: inclusion("gateway", wall_ms=int(time.time() * 1000) - 600_000),
            grpc.StatusCode.UNAUTHENTICATED, "auth.wall_ms")
    refused(lambda: inclusion("gateway", chain="another-chain"), grpc.StatusCode.UNAUTHENTICATED, "auth.signature")
    req = signed(ipb.InclusionProofRequest(magu=MAGU, fragment=0, index=7, size=40), "InclusionProof", CHAIN,
                 keys["gateway"])
    assert primary.stub.InclusionProof(req, timeout=10).leaf == leaf
    refused(lambda: primary.stub.InclusionProof(req, timeout=10), grpc.StatusCode.UNAUTHENTICATED, "replay")
    # another replica checks the same way: it answers the backup, not the stranger
    other = next(net.by_pk(p) for p in members if p not in (first.primary, backup.pubkey))
    assert other.stub.InclusionProof(signed(ipb.InclusionProofRequest(magu=MAGU, fragment=0, index=7, size=40),
                                            "InclusionProof", CHAIN, keys["backup"]), timeout=10).leaf == leaf

    # the backup dies and the ledger gives its seat to the spare: once the
    # primary applies that block, the backup's key is refused and the spare's answered
    backup.server.kill9()

    def replaced():
        c = config(net)
        return c if c.epoch > first.epoch and backup.pubkey not in {x.pubkey for x in c.replicas} else None
    new = wait_until(replaced, timeout=60)
    assert new, "the dead backup was not replaced"
    def spare_answered():
        try:
            return fetch("spare").epoch == new.epoch
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.PERMISSION_DENIED, e.details()
            return False
    assert wait_until(spare_answered, timeout=30), "the primary did not apply the block"
    refused(lambda: fetch("backup"), grpc.StatusCode.PERMISSION_DENIED, "auth.requester",
            f"not a replica of {MAGU}/0 in epoch {new.epoch}")
    refused(lambda: inclusion("backup"), grpc.StatusCode.PERMISSION_DENIED, "auth.requester")
    assert inclusion("spare").leaf == leaf
