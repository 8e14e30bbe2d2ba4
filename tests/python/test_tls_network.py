"""A network over TLS end to end: 4 ledger replicas, 3 indexers and a
gateway, every one serving TLS with a certificate from a test CA, bound to
its node key (common/cm_tls_id.h), presenting it when it calls another and
verifying the others' against the CA (--tls-ca): the ledgers' consensus
links, the indexers' and the gateway's verified followers and ledger
clients (their transactions), the replication between indexers and the
gateway's fan-out. A collection created through the gateway (a transaction
from its ledger client), written at QUORUM and searched, works; a plaintext
client is refused."""
import grpc
import numpy as np
import pytest

from chain_util import ChainNet
from gateway_util import Gateway
from tls_util import TestCA


@pytest.fixture
def tls_net(servers, stubs, tmp_path):
    pki = TestCA(tmp_path / "pki")
    n = ChainNet(servers, stubs, tmp_path, pki=pki)
    creds = pki.credentials()
    n.gw = Gateway(servers, stubs, n, tmp_path, args=pki.args("gateway", n.gwacc.seed) +
                   ("--default-timeout-ms", "20000"), credentials=creds)
    yield n
    n.gw.close()
    n.close()


def test_network_over_tls(tls_net, stubs):
    net = tls_net
    vpb, tpb = stubs.vectorstore_pb2, stubs.types_pb2
    # plaintext is refused by every kind of node
    for addr in (net.addrs[0], net.ixaddrs[0], net.gw.server.target):
        with grpc.insecure_channel(addr) as ch:
            with pytest.raises(grpc.RpcError) as e:
                ch.unary_unary("/muri.v1.Ledger/Status", request_serializer=lambda x: x,
                               response_deserializer=lambda x: x)(b"", timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    info = net.gw.stub.CreateCollection(vpb.CreateCollectionRequest(
        name="secure", dimension=8, metric=tpb.L2, index=tpb.IndexSpec(kind=tpb.FLAT), fragments=1,
        replication=3), timeout=90)
    assert info.name == "secure" and len(info.fragment_states) == 1
    vs = np.random.default_rng(11).normal(size=(50, 8)).astype(np.float32)
    r = net.gw.stub.Insert(vpb.InsertRequest(collection="secure",
                                             vectors=[tpb.Vector(values=v.tolist()) for v in vs],
                                             consistency_level=tpb.QUORUM), timeout=60)
    assert r.status == vpb.SUCCESS and len(r.vector_ids) == 50 and len(r.storage_nodes) >= 2
    got = net.gw.stub.Search(vpb.SearchRequest(collection="secure", query_vector=tpb.Vector(values=vs[7].tolist()),
                                               top_k=1, consistency_level=tpb.QUORUM), timeout=60)
    assert [x.id for x in got.results] == [r.vector_ids[7]]
    assert got.metrics.nodes_answered >= 2
