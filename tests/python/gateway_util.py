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
