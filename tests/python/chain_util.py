"""A local network started from a genesis file for multi-process tests: 4
ledger replicas and some indexers registered and staked in the genesis, each
indexer following the chain (no SetConfig anywhere)."""
import grpc
import numpy as np

from conftest import CHANNEL_OPTIONS
from ledger_util import Account, free_ports, make_genesis
from muri_util import Indexer, wait_until
from sodium_keys import write_key_file

LEDGER = "services/ledger/muri-ledger"
INDEXER = "services/indexer/muri-indexer"
CHAIN = "chain-driven"
MAGU = "driven"
DIM = 8
FRAGMENTS = 2


class ChainNet:
    def __init__(self, servers, stubs, tmp_path, n_ledger=4, n_indexers=3, params=None, ix_args=(),
                 timing=("--lease-ms", "1000", "--suspect-ms", "3000"), ledger_args=(), credentials=None,
                 pki=None, capacity=1 << 30):
        # timing: the indexers' lease and failure detection; the tests' default
        # is slower than the indexer's own (500 / 1000 ms) so that a busy
        # machine (the sanitizer build) does not fail primaries over by itself;
        # ledger_args go to every ledger replica; credentials: grpc channel
        # credentials for the test's own calls to the ledgers (TLS), or None;
        # pki: a tls_util.TestCA: every ledger and indexer serves mutual TLS
        # with a certificate bound to its node key, and the test's own calls
        # verify against it (the indexers' present the genesis gateway's);
        # capacity: the bytes each indexer registers (placement keeps new
        # fragments off an indexer at the ledger's max_fill of it)
        self.stubs = stubs
        self.pb = stubs.ledger_pb2
        self.replicas = [Account() for _ in range(n_ledger)]
        self.ixacc = [Account() for _ in range(n_indexers)]
        self.owner = Account()
        self.gwacc = Account()  # the genesis gateway: a Gateway named "gateway" runs with its key
        ports = free_ports(n_ledger + n_indexers)
        self.addrs = [f"127.0.0.1:{p}" for p in ports[:n_ledger]]
        self.ixaddrs = [f"127.0.0.1:{p}" for p in ports[n_ledger:]]
        self.genesis = str(tmp_path / "genesis.txt")
        make_genesis(self.genesis, CHAIN, list(zip(self.replicas, self.addrs)),
                     [(a, 10_000_000) for a in [self.owner] + self.ixacc], params,
                     indexers=[(x, a, capacity, 5000) for x, a in zip(self.ixacc, self.ixaddrs)],
                     gateways=[self.gwacc])
        self.ledger_servers = []
        for i, acc in enumerate(self.replicas):
            key = tmp_path / f"ledger{i}.key"
            write_key_file(str(key), acc.seed)
            self.ledger_servers.append(servers(f"ledger{i}", LEDGER, "--listen", self.addrs[i], "--genesis", self.genesis,
                    "--key-file", str(key), "--data-dir", str(tmp_path / f"ledger{i}-data"), "--grace-ms", "1000",
                    *(pki.args(f"ledger{i}", acc.seed) if pki else ()), *ledger_args))
        if pki and not credentials:
            credentials = pki.credentials()
        self.pki = pki
        self.gw_cert = pki.issue("harness-gateway", self.gwacc.seed) if pki else None
        self.channels = [grpc.secure_channel(a, credentials) if credentials else grpc.insecure_channel(a)
                         for a in self.addrs]
        self.lstubs = [stubs.ledger_pb2_grpc.LedgerStub(c) for c in self.channels]
        self.indexers, self.datadirs = [], []
        for i, acc in enumerate(self.ixacc):
            key = tmp_path / f"ix{i}.key"
            write_key_file(str(key), acc.seed)
            # the genesis names the indexer at ixaddrs[i]: it listens there (the later flag wins)
            s = servers(f"ix{i}", INDEXER, "--key-file", str(key), "--data-dir", str(tmp_path / f"ix{i}-data"),
                        "--grace-ms", "2000", "--genesis", self.genesis, *timing,
                        "--listen", self.ixaddrs[i], *(pki.args(f"ix{i}", acc.seed) if pki else ()), *ix_args)
            self.datadirs.append(tmp_path / f"ix{i}-data")
            ix = Indexer(s, stubs, str(key), CHANNEL_OPTIONS,
                         credentials=pki.credentials(self.gw_cert) if pki else None)
            ix.pubkey = acc.pk
            self.indexers.append(ix)

    def by_pk(self, pk):
        return next(ix for ix in self.indexers if ix.pubkey == pk)

    def submit(self, stx):
        r = self.lstubs[1].SubmitTransaction(self.pb.SubmitRequest(tx=stx, wait_commit=True, timeout_ms=20000),
                                             timeout=30)
        assert r.state == self.pb.TX_COMMITTED, r.message
        return r

    def close(self):
        for ix in self.indexers:
            ix.close()
        for c in self.channels:
            c.close()


def vec(n, seed):
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def fragment_configs(net, magu=MAGU):
    """The Magu's fragment configurations, once replica 0 has committed the
    block that created it (a submission waits for the commit on the replica
    it went to, which need not be replica 0)."""
    got = {}

    def read():
        try:
            got["m"] = net.lstubs[0].GetMagu(net.pb.MaguRequest(name=magu), timeout=10)
            return True
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return False
    assert wait_until(read, timeout=30), "replica 0 never committed the Magu"
    return {c.fragment: c for c in got["m"].configs}
