"""A gateway process over a ChainNet (tests/python/chain_util.py): started
with the genesis and the owner account as its payer, and a VectorStore stub
to it."""
import grpc
import pytest

from conftest import CHANNEL_OPTIONS
from sodium_keys import write_key_file

GATEWAY = "services/gateway/muri-gateway"


class Gateway:
    def __init__(self, servers, stubs, net, tmp_path, name="gateway", args=(), credentials=None):
        payer = tmp_path / f"{name}-payer.key"
        if not payer.exists():
            write_key_file(str(payer), net.owner.seed)
        key = tmp_path / f"{name}.key"
        if name == "gateway" and not key.exists():  # the gateway the genesis lists (indexers answer its proof reads)
            write_key_file(str(key), net.gwacc.seed)
        self.server = servers(name, GATEWAY, "--genesis", net.genesis, "--payer-key-file", str(payer),
                              "--key-file", str(key), "--grace-ms", "1000", *args)
        self.channel = (grpc.secure_channel(self.server.target, credentials, options=CHANNEL_OPTIONS)
                        if credentials else grpc.insecure_channel(self.server.target, options=CHANNEL_OPTIONS))
        self.stub = stubs.vectorstore_pb2_grpc.VectorStoreStub(self.channel)

    def close(self):
        self.channel.close()


def gateway_net(servers, stubs, tmp_path, *args):
    """A ChainNet with a Gateway started with args as net.gw, closed when the
    generator resumes: a pytest fixture's body is `yield from` it."""
    from chain_util import ChainNet
    n = ChainNet(servers, stubs, tmp_path)
    gw = Gateway(servers, stubs, n, tmp_path, args=args)
    n.gw = gw
    yield n
    gw.close()
    n.close()


def code_of(fn):
    """The status code and details of the RpcError fn() must raise."""
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code(), e.value.details()


def require_test_lie():
    """Skips the calling test unless the indexer was built with
    -Dtest_faults=true, which gives it --test-lie."""
    import os
    import subprocess
    from test_indexer import EXE
    out = subprocess.run([os.path.join(os.environ["MURI_BUILD_ROOT"], EXE), "--help"],
                         capture_output=True, text=True).stdout
    if "--test-lie" not in out:
        pytest.skip("the indexer's test_lie needs a build with -Dtest_faults=true")


def start_liar(servers, net, mode):
    """Restarts net's third indexer lying in mode (--test-lie mode); returns
    its account (net.ixacc[2])."""
    liar = net.indexers[2]
    liar.server.stop()
    liar.server = servers("ix2-liar", liar.server.cmd[0], *liar.server.cmd[7:], "--test-lie", mode)
    return net.ixacc[2]


def metric_sum(gw, prefix):
    """The sum of the gateway's /metrics samples whose line starts with prefix."""
    from conftest import scrape_metrics
    return sum(float(line.split()[-1]) for line in scrape_metrics(gw.server).splitlines() if line.startswith(prefix))


def assert_only_liar_caught(net, gw, lpb, liar):
    """The gateway counted lies of liar's node and of no other, and the
    ledger jails liar and no other indexer."""
    from conftest import scrape_metrics
    from muri_util import wait_until
    lies = {line.split('node="')[1][:64]: float(line.split()[-1])
            for line in scrape_metrics(gw.server).splitlines() if line.startswith("muri_gateway_node_lies_total{")}
    assert lies.get(liar.pk.hex(), 0) > 0, lies
    assert all(v == 0 for k, v in lies.items() if k != liar.pk.hex()), lies

    def jailed(acc):
        return net.lstubs[0].GetIndexer(lpb.IndexerRequest(pubkey=acc.pk), timeout=10).jailed
    assert wait_until(lambda: jailed(liar), timeout=60), "the ledger did not jail the liar"
    assert not any(jailed(a) for a in net.ixacc if a.pk != liar.pk)
