"""The Ledger service's queries and blocks from a user's side, on four
muri-ledger replicas: every answer says where it was read (at.height and
at.state_root), two replicas agree on the root at one height and the chain
certifies it; paging through many Magus returns each once; bad paging and
keys are INVALID_ARGUMENT naming the field; GetBlock re-hashes from
header_bytes and payload, its commit_qc verifies against the genesis keys,
and FollowBlocks serves a linked chain with its effects, each block's
effects content re-hashing (from Python's own serialization) into the state
root chain that starts at the root block 1 certifies."""
import hashlib
import struct
import time

import grpc
import pytest

from ledger_util import Account, free_ports, make_genesis, signed_tx
from muri_util import wait_until
from sodium_keys import sign, verify, write_key_file

DOM_BLOCK, DOM_VOTE, DOM_STATE = 0x02, 0x04, 0x08
N_MAGUS = 45


def b2(data):
    return hashlib.blake2b(data, digest_size=32).digest()


def next_root(prev, effects):
    """root_h = H(DOM_STATE || root_{h-1} || be64(h) || W_h || E_h), E_h =
    H(DOM_STATE || 'E' || the effects serialized without state_root and
    write_set_hash) (ledger.proto, BlockEffects)."""
    e = type(effects)()
    e.CopyFrom(effects)
    e.ClearField("state_root")
    e.ClearField("write_set_hash")
    eh = b2(bytes([DOM_STATE]) + b"E" + e.SerializeToString(deterministic=True))
    return b2(bytes([DOM_STATE]) + prev + struct.pack(">Q", effects.height) + effects.write_set_hash + eh)


def block_hash(header_bytes, payload):
    """cm_block_hash: H(DOM_BLOCK || header_bytes || H(DOM_BLOCK || 0x00 || payload)),
    header_bytes being the canonical encoding up to and including payload_len."""
    return b2(bytes([DOM_BLOCK]) + header_bytes + b2(bytes([DOM_BLOCK, 0x00]) + payload))


def vote_digest(chain_id, view, h):
    tag = b2(bytes([DOM_VOTE]) + b"C" + chain_id.encode())
    return b2(bytes([DOM_VOTE]) + tag + struct.pack(">Q", view) + h)


class Net:
    """4 replicas, 2 indexers with stake (so that Magus can be created), 2 accounts."""

    def __init__(self, servers, stubs, tmp_path, params=None):
        self.pb = stubs.ledger_pb2
        self.types = stubs.types_pb2
        self.chain = "muri-queries"
        self.replicas = [Account() for _ in range(4)]
        self.accounts = [Account() for _ in range(2)]
        self.indexers = [Account() for _ in range(2)]
        self.addrs = [f"127.0.0.1:{p}" for p in free_ports(4)]
        ix_ports = free_ports(2)
        genesis = str(tmp_path / "genesis.txt")
        make_genesis(genesis, self.chain, list(zip(self.replicas, self.addrs)),
                     [(a, 10_000_000) for a in self.accounts + self.indexers], params,
                     indexers=[(x, f"127.0.0.1:{p}", 1 << 30, 5000) for x, p in zip(self.indexers, ix_ports)])
        for i, acc in enumerate(self.replicas):
            key = tmp_path / f"ledger{i}.key"
            write_key_file(str(key), acc.seed)
            servers(f"ledger{i}", "services/ledger/muri-ledger", "--listen", self.addrs[i], "--genesis", genesis,
                    "--key-file", str(key), "--data-dir", str(tmp_path / f"ledger{i}-data"), "--grace-ms", "500")
        self.channels = [grpc.insecure_channel(a) for a in self.addrs]
        self.stubs = [stubs.ledger_pb2_grpc.LedgerStub(c) for c in self.channels]

    def height(self, i):
        st = self.stubs[i].Status(self.types.StatusRequest(), timeout=5)
        return int(dict(st.details)["height"])

    def close(self):
        for c in self.channels:
            c.close()


@pytest.fixture
def net(servers, stubs, tmp_path):
    n = Net(servers, stubs, tmp_path)
    yield n
    n.close()


def create_magus(net, count):
    acc = net.accounts[0]
    txs = [signed_tx(net.pb, net.chain, acc, fee=1,
                     create_magu=net.pb.CreateMagu(name=f"magu-{i:03d}", dimension=8, fragments=1,
                                                   replication=1, deposit=100))
           for i in range(count)]
    r = net.stubs[1].SubmitTransactions(net.pb.SubmitBatchRequest(txs=txs), timeout=30)
    assert all(x.code == 0 for x in r.results), [x.message for x in r.results if x.code]
    last = r.results[-1].tx_hash

    def committed(i):
        try:
            return net.stubs[i].GetTransaction(net.pb.TxRequest(tx_hash=last), timeout=5).state == \
                net.pb.TX_COMMITTED
        except grpc.RpcError:
            return False
    wait_until(lambda: all(committed(i) for i in range(4)), timeout=60)
    for x in r.results:
        st = net.stubs[0].GetTransaction(net.pb.TxRequest(tx_hash=x.tx_hash), timeout=5)
        assert st.state == net.pb.TX_COMMITTED, st.message


def check_block(net, b, height):
    """What any client can check alone: the hash, the QC, the decoded fields."""
    assert len(b.header_bytes) > 0
    assert b.header_bytes[0] == 1  # encoding version
    hb_height, hb_view = struct.unpack(">QQ", b.header_bytes[1:17])
    assert hb_height == height == b.header.height
    assert hb_view == b.header.view
    assert b.header_bytes[17:49] == b.header.parent_hash
    assert struct.unpack(">I", b.header_bytes[-4:])[0] == len(b.payload)  # payload_len ends header_bytes
    h = block_hash(b.header_bytes, b.payload)
    assert h == b.hash
    qc = b.commit_qc
    assert qc.block_hash == h and qc.view == hb_view
    keys = {r.pk for r in net.replicas}
    assert len(qc.signers) == len(qc.signatures) >= 3 and len(set(qc.signers)) == len(qc.signers)
    d = vote_digest(net.chain, qc.view, h)
    for pk, sig in zip(qc.signers, qc.signatures):
        assert pk in keys
        assert verify(pk, sig, d)
    # a flipped bit is caught by the same check (the check can fail)
    bad = bytearray(qc.signatures[0])
    bad[5] ^= 1
    assert not verify(qc.signers[0], bytes(bad), d)
    assert b.effects.height == height and len(b.effects.state_root) == 32
    assert len(b.effects.outcomes) == len(b.txs)


def test_blocks_rehash_and_qc_verifies(net):
    pb = net.pb
    acc, to = net.accounts
    r = net.stubs[0].SubmitTransaction(pb.SubmitRequest(
        tx=signed_tx(pb, net.chain, acc, fee=1, transfer=pb.Transfer(to=to.pk, amount=5)),
        wait_commit=True, timeout_ms=20000), timeout=25)
    assert r.state == pb.TX_COMMITTED
    wait_until(lambda: min(net.height(i) for i in range(4)) >= r.height + 1, timeout=30)
    prev = None
    for height in range(1, r.height + 2):
        b = net.stubs[height % 4].GetBlock(pb.BlockRequest(height=height), timeout=5)
        check_block(net, b, height)
        if prev is not None:
            assert b.header.parent_hash == prev.hash
        prev = b
    blk = net.stubs[3].GetBlock(pb.BlockRequest(height=r.height), timeout=5)
    assert [o.tx_hash for o in blk.effects.outcomes] == [r.tx_hash]
    assert blk.effects.outcomes[0].state == pb.TX_COMMITTED
    # the same block from another replica is byte-identical where it counts
    other = net.stubs[1].GetBlock(pb.BlockRequest(height=r.height), timeout=5)
    assert (other.header_bytes, other.payload, other.hash) == (blk.header_bytes, blk.payload, blk.hash)
    assert other.effects == blk.effects
    with pytest.raises(grpc.RpcError) as e:
        net.stubs[0].GetBlock(pb.BlockRequest(height=10 ** 9), timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "height" in e.value.details()


def test_follow_blocks_linked_with_effects(net):
    pb = net.pb
    acc, to = net.accounts
    r = None
    for _ in range(3):
        r = net.stubs[1].SubmitTransaction(pb.SubmitRequest(
            tx=signed_tx(pb, net.chain, acc, fee=1, transfer=pb.Transfer(to=to.pk, amount=1)),
            wait_commit=True, timeout_ms=20000), timeout=25)
        assert r.state == pb.TX_COMMITTED
    stream = net.stubs[2].FollowBlocks(pb.FollowRequest(from_height=1), timeout=30)
    prev_hash = None
    root = None
    got = []
    for b in stream:
        check_block(net, b, len(got) + 1)
        if prev_hash is not None:
            assert b.header.parent_hash == prev_hash
        prev_hash = b.hash
        if root is None:  # block 1 certifies root_0
            assert b.header.state_height == 0 and len(b.header.state_root) == 32
            root = b.header.state_root
        before = root
        assert len(b.effects.write_set_hash) == 32
        root = next_root(before, b.effects)
        assert root == b.effects.state_root, f"effects of block {b.header.height} do not re-hash to their root"
        if b.effects.outcomes:  # content is bound: one flipped outcome changes the root
            altered = type(b.effects)()
            altered.CopyFrom(b.effects)
            altered.outcomes[0].state = pb.TX_FAILED if altered.outcomes[0].state == pb.TX_COMMITTED \
                else pb.TX_COMMITTED
            assert next_root(before, altered) != root
        got.append(b.header.height)
        if len(got) == r.height:
            break
    stream.cancel()
    assert got == list(range(1, r.height + 1))
    # from a later height: starts there
    stream = net.stubs[0].FollowBlocks(pb.FollowRequest(from_height=r.height), timeout=30)
    b = next(iter(stream))
    stream.cancel()
    assert b.header.height == r.height and b.hash == prev_hash


def test_reads_say_where_and_replicas_agree(net):
    pb = net.pb
    acc, to = net.accounts
    for _ in range(4):
        r = net.stubs[0].SubmitTransaction(pb.SubmitRequest(
            tx=signed_tx(pb, net.chain, acc, fee=1, transfer=pb.Transfer(to=to.pk, amount=1)),
            wait_commit=True, timeout_ms=20000), timeout=25)
        assert r.state == pb.TX_COMMITTED
    # (height -> root) from every replica's answers; at one height all agree
    seen = {}
    deadline = time.time() + 30
    common = set()
    while time.time() < deadline and not common:
        for i in range(4):
            a = net.stubs[i].GetAccount(pb.AccountRequest(address=to.pk), timeout=5)
            assert a.HasField("at") and len(a.at.state_root) == 32
            if a.at.height >= r.height:
                assert a.balance == 10_000_000 + 4
            seen.setdefault(a.at.height, {})[i] = a.at.state_root
        common = {h for h, by in seen.items() if len(by) >= 2 and h >= r.height}
    assert common, "no two replicas answered at the same height"
    for h in seen:
        assert len(set(seen[h].values())) == 1, f"replicas disagree on the state root at {h}"
    # the chain certifies what the answers said: the block's effects carry
    # the same root, and every block that pins a height pins that root
    top = max(seen)
    wait_until(lambda: min(net.height(i) for i in range(4)) >= top, timeout=30)
    for h in seen:
        if h > 0:
            assert net.stubs[3].GetBlock(pb.BlockRequest(height=h), timeout=5).effects.state_root == \
                next(iter(seen[h].values()))
    pins = 0
    for k in range(1, top + 1):
        b = net.stubs[k % 4].GetBlock(pb.BlockRequest(height=k), timeout=5)
        sh = b.header.state_height
        assert sh < k
        if sh >= 1:
            assert net.stubs[(k + 1) % 4].GetBlock(pb.BlockRequest(height=sh), timeout=5).effects.state_root == \
                b.header.state_root
            pins += 1
    assert pins >= 1
    for q in [net.stubs[1].GetParams(pb.ParamsRequest(), timeout=5),
              net.stubs[2].GetEarnings(pb.EarningsRequest(node=net.indexers[0].pk), timeout=5),
              net.stubs[3].GetIndexer(pb.IndexerRequest(pubkey=net.indexers[1].pk), timeout=5),
              net.stubs[0].GetTransaction(pb.TxRequest(tx_hash=r.tx_hash), timeout=5)]:
        assert q.HasField("at") and len(q.at.state_root) == 32 and q.at.height >= r.height


def test_paging_magus_each_once(net):
    pb = net.pb
    create_magus(net, N_MAGUS)
    names, token, pages = [], b"", 0
    while True:
        r = net.stubs[pages % 4].ListMagus(pb.ListMagusRequest(limit=7, page_token=token), timeout=5)
        assert len(r.magus) <= 7
        assert r.HasField("at") and len(r.at.state_root) == 32
        names += [m.name for m in r.magus]
        pages += 1
        token = r.next_page_token
        if not token:
            break
        assert pages < 100
    assert names == sorted(names)
    assert len(names) == len(set(names)) == N_MAGUS
    assert set(names) == {f"magu-{i:03d}" for i in range(N_MAGUS)}
    assert pages == (N_MAGUS + 6) // 7
    # default page size
    assert len(net.stubs[0].ListMagus(pb.ListMagusRequest(), timeout=5).magus) == 20
    # a created Magu's fragment
    f = net.stubs[0].GetFragment(pb.FragmentRequest(magu="magu-007", fragment=0), timeout=5)
    assert f.HasField("at") and f.HasField("config")
    with pytest.raises(grpc.RpcError) as e:
        net.stubs[0].GetFragment(pb.FragmentRequest(magu="magu-007", fragment=5), timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_paging_challenges_each_once(servers, stubs, tmp_path):
    net = Net(servers, stubs, tmp_path, params={"challenge_interval": 5, "challenges_per_round": 64,
                                                "challenge_deadline": 1_000_000})
    try:
        pb, types = net.pb, net.types
        acc = net.accounts[0]
        r = net.stubs[0].SubmitTransaction(pb.SubmitRequest(
            tx=signed_tx(pb, net.chain, acc, fee=1, create_magu=pb.CreateMagu(
                name="chal", dimension=8, fragments=12, replication=1, deposit=100)),
            wait_commit=True, timeout_ms=20000), timeout=25)
        assert r.state == pb.TX_COMMITTED, r.message
        wait_until(lambda: min(net.height(i) for i in range(4)) >= r.height, timeout=30)
        magu = net.stubs[0].GetMagu(pb.MaguRequest(name="chal"), timeout=5)
        by_pk = {x.pk: x for x in net.indexers}
        txs = {}
        for c in magu.configs:
            ix = by_pk[c.replicas[0].pubkey]
            root = types.SignedRoot(magu="chal", fragment=c.fragment, size=1, root=b2(b"\x00leaf"), signer=ix.pk,
                                    chain_id=net.chain, epoch=c.epoch)
            root.signature = sign(ix.sk, b2(bytes([0x09]) + root.SerializeToString()))
            txs.setdefault(ix.pk, []).append(
                signed_tx(pb, net.chain, ix, fee=0, commit_root=pb.CommitRoot(root=root)))
        last = []
        for k, batch in txs.items():
            res = net.stubs[1].SubmitTransactions(pb.SubmitBatchRequest(txs=batch), timeout=30)
            assert all(x.code == 0 for x in res.results), [x.message for x in res.results]
            last.append(res.results[-1].tx_hash)

        def committed(i, h):
            try:
                return net.stubs[i].GetTransaction(pb.TxRequest(tx_hash=h), timeout=5).state == pb.TX_COMMITTED
            except grpc.RpcError:
                return False
        wait_until(lambda: all(committed(i, h) for i in range(4) for h in last), timeout=60)
        # challenges come every block for the committed fragments
        ix = max(txs, key=lambda k: len(txs[k]))

        def count(i):
            return len(net.stubs[i].GetChallenges(pb.ChallengesRequest(indexer=ix, max=1000), timeout=5).challenges)
        # the walk starts on replica 0 and pins its height: every replica must
        # already hold 40, not only the one asked first
        wait_until(lambda: min(count(i) for i in range(4)) >= 40, timeout=60)
        def walk(limit):
            ids, token, pages = [], b"", 0
            while True:
                page = net.stubs[pages % 4].GetChallenges(
                    pb.ChallengesRequest(indexer=ix, max=limit, page_token=token), timeout=5)
                assert len(page.challenges) <= limit
                assert page.HasField("at") and len(page.at.state_root) == 32
                assert all(c.indexer == ix for c in page.challenges)
                ids += [c.id for c in page.challenges]
                pages += 1
                token = page.next_page_token
                if not token:
                    return ids
                assert pages < 10000
        ids = walk(7)
        assert ids == sorted(ids, reverse=True)  # newest first
        assert len(ids) == len(set(ids)) >= 40
        # a walk in large pages finds the same ones at or below the first id
        # (newer ones keep coming while paging; none is lost or repeated)
        assert [i for i in walk(1000) if i <= ids[0]] == ids
    finally:
        net.close()


@pytest.mark.parametrize("call,field", [
    ("magus_token", "page_token"),
    ("magus_limit", "limit"),
    ("challenges_token", "page_token"),
    ("challenges_max", "max"),
    ("challenges_indexer", "indexer"),
    ("receipts_none", "searcher"),
    ("receipts_token", "page_token"),
    ("receipts_limit", "limit"),
    ("earnings_node", "node"),
    ("fragment_magu", "magu"),
])
def test_bad_arguments_name_the_field(net, call, field):
    pb = net.pb
    s = net.stubs[0]
    ix = net.indexers[0].pk
    calls = {
        "magus_token": lambda: s.ListMagus(pb.ListMagusRequest(page_token=b"\xff" * 3), timeout=5),
        "magus_limit": lambda: s.ListMagus(pb.ListMagusRequest(limit=101), timeout=5),
        "challenges_token": lambda: s.GetChallenges(pb.ChallengesRequest(indexer=ix, page_token=b"junk"), timeout=5),
        "challenges_max": lambda: s.GetChallenges(pb.ChallengesRequest(indexer=ix, max=1001), timeout=5),
        "challenges_indexer": lambda: s.GetChallenges(pb.ChallengesRequest(indexer=b"short"), timeout=5),
        "receipts_none": lambda: s.GetReceipts(pb.ReceiptsRequest(), timeout=5),
        "receipts_token": lambda: s.GetReceipts(pb.ReceiptsRequest(node=ix, page_token=b"junk"), timeout=5),
        "receipts_limit": lambda: s.GetReceipts(pb.ReceiptsRequest(node=ix, limit=1001), timeout=5),
        "earnings_node": lambda: s.GetEarnings(pb.EarningsRequest(node=b"abc"), timeout=5),
        "fragment_magu": lambda: s.GetFragment(pb.FragmentRequest(magu="bad name!", fragment=0), timeout=5),
    }
    with pytest.raises(grpc.RpcError) as e:
        calls[call]()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in e.value.details()


def test_empty_pages_still_say_where(net):
    pb = net.pb
    ix = net.indexers[0].pk
    c = net.stubs[1].GetChallenges(pb.ChallengesRequest(indexer=ix), timeout=5)
    assert len(c.challenges) == 0 and not c.next_page_token
    assert c.HasField("at") and len(c.at.state_root) == 32
    r = net.stubs[2].GetReceipts(pb.ReceiptsRequest(node=ix), timeout=5)
    assert len(r.receipts) == 0 and r.HasField("at")
    e = net.stubs[3].GetEarnings(pb.EarningsRequest(node=ix), timeout=5)
    assert e.total_earned == 0 and e.receipts == 0 and e.HasField("at")
