"""A gateway that has not caught up with the ledger does not call a
collection missing: until its routing table has applied the height f + 1
ledger replicas vouch for, a collection it does not know gets UNAVAILABLE
(try again) rather than NOT_FOUND, /readyz says how far it is, and its
Status carries the heights; once caught up, NOT_FOUND means missing."""
import time

import grpc

from chain_util import DIM, ChainNet
from gateway_util import Gateway, code_of
from muri_util import wait_until
from test_membership import MAGU, create_magu
from test_services import http_get


def describe(gw, name):
    return gw.stub.DescribeCollection(gw_pb(gw).DescribeCollectionRequest(name=name), timeout=10)


def gw_pb(gw):
    return gw.stubs.vectorstore_pb2


def status(gw):
    return dict(gw.status_stub.Status(gw.stubs.types_pb2.StatusRequest(), timeout=10).details)


def test_gateway_not_caught_up_answers_unavailable(servers, stubs, tmp_path):
    net = ChainNet(servers, stubs, tmp_path)
    create_magu(net)
    height = max(int(s.Status(stubs.types_pb2.StatusRequest(), timeout=10).details["height"]) for s in net.lstubs)
    assert height >= 1
    # every ledger replica down: the gateway starts (after ready_wait_ms) but
    # cannot know the chain's height, so it cannot know what is missing
    for s in net.ledger_servers:
        s.stop()
    t0 = time.time()
    gw = Gateway(servers, stubs, net, tmp_path, args=("--ready-wait-ms", "1500"))
    assert time.time() - t0 >= 1.4  # it waited for the ledger before announcing itself
    gw.stubs = stubs
    gw.status_stub = stubs.vectorstore_pb2_grpc.VectorStoreStub(gw.channel)
    for name in (MAGU, "no-such"):
        code, msg = code_of(lambda: describe(gw, name))
        assert code == grpc.StatusCode.UNAVAILABLE, (code, msg)
        assert msg == (f'name: no collection "{name}" yet: the gateway is catching up with the ledger '
                       f'(at height 0; no f + 1 replicas have told their height yet)'), msg
    code, msg = code_of(lambda: gw.stub.Search(gw_pb(gw).SearchRequest(
        collection=MAGU, query_vector=stubs.types_pb2.Vector(values=[0.0] * DIM), top_k=1), timeout=10))
    assert code == grpc.StatusCode.UNAVAILABLE and msg.startswith(f'collection: no collection "{MAGU}" yet'), msg
    port = gw.server.metrics_port
    assert http_get(port, "/healthz") == (200, "ok")  # alive: a liveness probe leaves it be
    code, body = http_get(port, "/readyz")
    assert code == 503 and body.startswith("catching up with the ledger: at height 0"), (code, body)
    st = status(gw)
    assert st["ready"] == "false" and st["chain_target"] == "", st

    # the replicas come back: the gateway learns the height, follows to it
    for s in net.ledger_servers:
        s.restart()
    assert wait_until(lambda: http_get(port, "/readyz") == (200, "ok"), timeout=60), http_get(port, "/readyz")
    st = status(gw)
    assert st["ready"] == "true" and int(st["chain_target"]) >= height, st
    assert int(st["chain_height"]) >= int(st["chain_target"]), st
    info = describe(gw, MAGU)
    assert info.name == MAGU and info.dimension == DIM
    code, msg = code_of(lambda: describe(gw, "no-such"))
    assert code == grpc.StatusCode.NOT_FOUND and msg == 'name: no collection "no-such"', (code, msg)
    gw.close()
    net.close()
